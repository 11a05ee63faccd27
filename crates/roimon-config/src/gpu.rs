//! `[gpu]`: where GPU readings come from and who owns each GPU.

use crate::{Check, Ctx, Failure};
use serde::Deserialize;
use std::collections::HashMap;
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

impl Check for Gpu {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.simulated_count.is_some_and(|n| n > 4096) {
            return ctx.fail("simulated_count", "must be at most 4096");
        }
        let owners = ctx.at("owners");
        let mut seen = HashMap::new();
        for (i, o) in self.owners.iter().enumerate() {
            let at = owners.item(i);
            if o.gpu_uuid.trim().is_empty() {
                return at.fail("gpu_uuid", "must not be empty");
            }
            if let Some(j) = seen.insert(o.gpu_uuid.clone(), i) {
                return at.fail(
                    "gpu_uuid",
                    format!(
                        "{} is already owned by {}",
                        o.gpu_uuid,
                        owners.item(j).path()
                    ),
                );
            }
        }
        Ok(())
    }
}
