//! `[sampling]`: how often the node is sampled, how long a collector may take
//! and how long a gap is still integrated.

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
