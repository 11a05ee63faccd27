//! `[facility]`: the facility around the node (PUE).

use crate::{Check, Ctx, Failure};
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

impl Check for Facility {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if !(self.pue.is_finite() && (1.0..=5.0).contains(&self.pue)) {
            return ctx.fail(
                "pue",
                format!("must be between 1.0 and 5.0, got {}", self.pue),
            );
        }
        Ok(())
    }
}
