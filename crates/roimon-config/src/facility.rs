//! `[facility]`: the facility around the node (PUE).

use serde::Deserialize;

/// `[facility]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Facility {
    /// Power usage effectiveness, ≥ 1.
    pub pue: f64,
}
impl Default for Facility {
    fn default() -> Self {
        Self { pue: 1.0 }
    }
}
