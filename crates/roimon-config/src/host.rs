//! `[host]`: how host power is measured (RAPL or the linear model).

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
