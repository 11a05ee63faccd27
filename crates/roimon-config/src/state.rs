//! `[state]`: where counters are checkpointed, and how often.

use crate::{Check, Ctx, Failure};
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

impl Check for State {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if !(self.checkpoint_interval_secs.is_finite()
            && (0.1..=300.0).contains(&self.checkpoint_interval_secs))
        {
            return ctx.fail(
                "checkpoint_interval_secs",
                format!(
                    "must be between 0.1 and 300 seconds (counters on /metrics lag it), got {}",
                    self.checkpoint_interval_secs
                ),
            );
        }
        if self.dir.as_os_str().is_empty() {
            return ctx.fail(
                "dir",
                "must not be empty (counters would be written to the working directory)",
            );
        }
        if !(self.max_downtime_secs.is_finite() && self.max_downtime_secs >= 0.0) {
            return ctx.fail(
                "max_downtime_secs",
                format!("must be ≥ 0 seconds, got {}", self.max_downtime_secs),
            );
        }
        Ok(())
    }
}
