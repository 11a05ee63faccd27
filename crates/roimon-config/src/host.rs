//! `[host]`: how host power is measured (RAPL or the linear model).

use crate::{Check, Ctx, Failure};
use serde::Deserialize;
use std::path::PathBuf;

/// `[host] power`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HostPower {
    /// RAPL where readable, else the linear model.
    #[default]
    Auto,
    /// RAPL only.
    Rapl,
    /// The linear model only.
    Model,
}

/// `[host]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Host {
    /// Whether to collect host metrics and energy at all.
    pub enabled: bool,
    /// auto | rapl | model
    pub power: HostPower,
    /// Root of the powercap tree.
    pub rapl_root: PathBuf,
    /// Model: power at 0 % CPU, W.
    pub idle_watts: f64,
    /// Model: power at 100 % CPU, W.
    pub max_watts: f64,
}
impl Default for Host {
    fn default() -> Self {
        Self {
            enabled: true,
            power: HostPower::Auto,
            rapl_root: PathBuf::from("/sys/class/powercap"),
            idle_watts: 100.0,
            max_watts: 400.0,
        }
    }
}

impl Check for Host {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if !(self.idle_watts.is_finite() && self.idle_watts >= 0.0) {
            return ctx.fail(
                "idle_watts",
                format!("must be ≥ 0, got {}", self.idle_watts),
            );
        }
        if !(self.max_watts.is_finite() && self.max_watts >= self.idle_watts) {
            return ctx.fail(
                "max_watts",
                format!(
                    "must be ≥ host.idle_watts ({}), got {}",
                    self.idle_watts, self.max_watts
                ),
            );
        }
        // A node draws at most a few tens of kW; more cannot be energy.
        if self.max_watts > 100_000.0 {
            return ctx.fail(
                "max_watts",
                format!("must be at most 100000 W, got {}", self.max_watts),
            );
        }
        Ok(())
    }
}
