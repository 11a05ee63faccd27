//! `[sampling]`: how often the node is sampled, how long a collector may take
//! and how long a gap is still integrated.

use crate::{Check, Ctx, Failure};
use serde::Deserialize;

/// `[sampling]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sampling {
    /// Seconds between samples.
    pub interval_secs: f64,
    /// An interval longer than this many sampling intervals is a gap: counted
    /// in `roimon_unaccounted_seconds_total`, not filled in.
    pub max_gap_intervals: f64,
    /// How long one collector's sample may take before it is reported down
    /// for that tick (a GPU fallen off the bus can block NVML); the other
    /// collectors go on. Default: 0.8 × `interval_secs`.
    pub collector_timeout_secs: Option<f64>,
}
impl Default for Sampling {
    fn default() -> Self {
        Self {
            interval_secs: 1.0,
            max_gap_intervals: 5.0,
            collector_timeout_secs: None,
        }
    }
}

impl Sampling {
    /// The per-sample deadline of each collector.
    pub fn collector_timeout(&self) -> f64 {
        self.collector_timeout_secs
            .unwrap_or((self.interval_secs * 0.8).min(10.0))
    }
}

impl Check for Sampling {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        let i = self.interval_secs;
        if !(i.is_finite() && (0.05..=3600.0).contains(&i)) {
            return ctx.fail(
                "interval_secs",
                format!("must be between 0.05 and 3600 seconds, got {i}"),
            );
        }
        if !(self.max_gap_intervals.is_finite() && self.max_gap_intervals >= 1.5) {
            return ctx.fail(
                "max_gap_intervals",
                format!("must be at least 1.5, got {}", self.max_gap_intervals),
            );
        }
        if let Some(t) = self.collector_timeout_secs {
            // At most 10 s: a sample waited on longer would stall the loop
            // (and the systemd watchdog) for nothing a collector should need.
            let max = (i * 10.0).min(10.0);
            if !(t.is_finite() && (0.01..=max).contains(&t)) {
                return ctx.fail(
                    "collector_timeout_secs",
                    format!(
                        "must be between 0.01 s and {max} s (10 × sampling.interval_secs, at most 10 s), got {t}"
                    ),
                );
            }
        }
        Ok(())
    }
}
