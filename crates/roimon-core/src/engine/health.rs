//! The health of what feeds the engine: sampled collectors (readiness waits
//! for them), outside sources such as the price feed, and the error counts
//! kept in the counters.

use super::Engine;
use serde::Serialize;

/// Per-collector health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CollectorHealth {
    /// Whether the last sample succeeded.
    pub up: bool,
    /// Whether it ever reported successfully.
    pub reported: bool,
    /// Whether the source is not present on this machine.
    pub unavailable: bool,
}

impl Engine {
    /// Declare a collector, so readiness waits for it.
    pub fn register_collector(&mut self, name: &str) {
        self.collectors
            .entry(name.to_string())
            .or_insert(CollectorHealth {
                up: false,
                reported: false,
                unavailable: false,
            });
    }

    /// True once every registered collector that exists here has reported once.
    pub fn ready(&self) -> bool {
        self.collectors
            .values()
            .all(|c| c.reported || c.unavailable)
    }

    /// Record the outcome of an outside source that is not a sampled
    /// collector (the price feed): health and error count. It does not gate
    /// readiness: costing goes on at the fallback without it.
    pub fn note_source(&mut self, name: &str, ok: bool) {
        let h = self
            .collectors
            .entry(name.to_string())
            .or_insert(CollectorHealth {
                up: false,
                reported: true,
                unavailable: false,
            });
        h.up = ok;
        h.reported = true;
        if !ok {
            *self
                .counters
                .collector_errors
                .entry(name.to_string())
                .or_default() += 1;
        }
    }

    /// Count fetched slots the feed `name` dropped (far past or future).
    pub fn note_dropped(&mut self, name: &str, n: u64) {
        *self
            .counters
            .slots_dropped
            .entry(name.to_string())
            .or_default() += n;
    }

    /// Count processes that matched no attribution rule.
    pub fn note_unmatched(&mut self, n: u64) {
        self.counters.attribution_unmatched += n;
    }

    /// Count a failed checkpoint write (kept in the counters, so the count
    /// survives restarts once a later write succeeds).
    pub fn note_checkpoint_error(&mut self) {
        self.counters.checkpoint_errors += 1;
    }
}
