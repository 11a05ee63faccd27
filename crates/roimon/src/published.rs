//! What the sampler publishes, apart from who reads it: the latest snapshot
//! with its generation, readiness, checkpoint health and liveness, and the
//! highest generation a `/metrics` response has carried. The sampler writes
//! here; the HTTP handlers and the InfluxDB stream read. It knows none of
//! them (it imports no other module of the daemon), so publishing never
//! depends on the router.

use roimon_core::Snapshot;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The sampler's latest publication, shared with every reader.
#[derive(Debug)]
pub struct Published {
    snapshot: RwLock<(u64, Arc<Snapshot>)>,
    /// Highest snapshot generation a `/metrics` response has carried.
    served: AtomicU64,
    ready: AtomicBool,
    /// Why `/readyz` fails although collectors reported (checkpoints failing).
    not_ready: Mutex<Option<String>>,
    /// Checkpoint writes failed in a row (0 when the last one succeeded).
    checkpoint_streak: AtomicU32,
    last_publish: Mutex<Instant>,
    stale_after: Duration,
}

impl Published {
    /// Start with an initial snapshot; [`Published::live`] turns false once
    /// no snapshot has been published for `stale_after` (the sampler has
    /// stalled or died).
    pub fn new(initial: Snapshot, stale_after: Duration) -> Self {
        Self {
            snapshot: RwLock::new((0, Arc::new(initial))),
            served: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            not_ready: Mutex::new(None),
            checkpoint_streak: AtomicU32::new(0),
            last_publish: Mutex::new(Instant::now()),
            stale_after,
        }
    }

    /// Whether the sampler published recently enough.
    pub fn live(&self) -> bool {
        let last = *self.last_publish.lock().unwrap_or_else(|e| e.into_inner());
        last.elapsed() <= self.stale_after
    }

    /// Replace the snapshot (called once per tick); returns its generation.
    pub fn publish(&self, s: Snapshot, ready: bool) -> u64 {
        let s = Arc::new(s);
        let mut g = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let generation = g.0 + 1;
        *g = (generation, s);
        drop(g);
        self.ready.store(ready, Ordering::Release);
        *self.last_publish.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        generation
    }

    /// Every enabled collector has reported once (as of the last publish).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Checkpoints are being written.
    pub fn checkpoint_ok(&self) {
        *self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.checkpoint_streak.store(0, Ordering::Relaxed);
    }

    /// A checkpoint failed (`streak` in a row); past the threshold
    /// (`unready`) `/readyz` fails saying why.
    pub fn checkpoint_failed(&self, streak: u32, unready: bool, why: &str) {
        self.checkpoint_streak.store(streak, Ordering::Relaxed);
        if unready {
            *self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("checkpoint failing ({streak} in a row): {why}"));
        }
    }

    /// Why the daemon is not ready although collectors reported, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        self.not_ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checkpoint writes failed in a row (0 when the last one succeeded).
    pub fn checkpoint_failures_in_a_row(&self) -> u32 {
        self.checkpoint_streak.load(Ordering::Relaxed)
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot_gen().1
    }

    /// The latest snapshot and its generation.
    pub fn snapshot_gen(&self) -> (u64, Arc<Snapshot>) {
        let g = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        (g.0, g.1.clone())
    }

    /// A `/metrics` response carried snapshot `generation`.
    pub fn note_served(&self, generation: u64) {
        self.served.fetch_max(generation, Ordering::AcqRel);
    }

    /// Highest generation a `/metrics` response has carried.
    pub fn served_generation(&self) -> u64 {
        self.served.load(Ordering::Acquire)
    }
}
