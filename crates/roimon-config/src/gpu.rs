//! `[gpu]`: where GPU readings come from and who owns each GPU.

use serde::Deserialize;
use std::path::PathBuf;

/// `[gpu] source`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GpuSource {
    /// NVML if it loads, else no GPUs (said once in the log).
    #[default]
    Auto,
    /// NVML, and failing to load it is reported as an error (retried).
    Nvml,
    /// No GPU collector.
    None,
    /// Simulated GPUs (labelled as such), for demos without hardware.
    Simulated,
}

/// `[gpu]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gpu {
    /// auto | nvml | none | simulated
    pub source: GpuSource,
    /// Load NVML from this file instead of the system's `libnvidia-ml.so.1`.
    pub nvml_library: Option<PathBuf>,
    /// Number of simulated GPUs (source = "simulated").
    pub simulated_count: Option<u32>,
    /// Owners by GPU UUID.
    pub owners: Vec<GpuOwner>,
}

/// `[[gpu.owners]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuOwner {
    /// The GPU's UUID as NVML reports it (`GPU-…`).
    pub gpu_uuid: String,
    /// Team.
    pub team: String,
    /// Workload.
    #[serde(default = "unallocated")]
    pub workload: String,
}
fn unallocated() -> String {
    roimon_core::engine::UNALLOCATED.to_string()
}
