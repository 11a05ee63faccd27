//! `[state]`: where counters are checkpointed, and how often.

use serde::Deserialize;
use std::path::PathBuf;

/// `[state]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct State {
    /// Where counters are checkpointed.
    pub dir: PathBuf,
    /// Seconds between checkpoints.
    pub checkpoint_interval_secs: f64,
    /// A downtime (roimon stopped) longer than this is still booked (fixed
    /// costs accrue while stopped) but logged as a WARN naming the span.
    pub max_downtime_secs: f64,
}
impl Default for State {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("roimon-state"),
            checkpoint_interval_secs: 5.0,
            max_downtime_secs: 86_400.0,
        }
    }
}
