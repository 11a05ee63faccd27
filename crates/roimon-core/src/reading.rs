//! What collectors hand to the engine: a closed set of typed readings and the
//! one-method collector interface every source implements.

use crate::units::{Joules, Watts};
use serde::Serialize;

/// One sample of one GPU. Fields the device does not support are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuReading {
    /// Index in enumeration order (may change across reboots).
    pub index: u32,
    /// Stable identity, e.g. `GPU-5f3c…`.
    pub uuid: String,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Power draw.
    pub power: Option<Watts>,
    /// The driver's total-energy counter (since driver load).
    pub energy_counter: Option<Joules>,
    /// GPU utilisation 0..1.
    pub utilization: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Total memory, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Core temperature, °C.
    pub temperature_celsius: Option<f64>,
    /// Enforced power limit.
    pub power_limit: Option<Watts>,
}

/// Where the host's power figure comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum HostPowerSource {
    /// RAPL powercap energy counters.
    Rapl,
    /// Linear model idle + (max − idle) × CPU utilisation.
    Model,
    /// Board power from the BMC.
    Bmc,
}

impl HostPowerSource {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rapl => "rapl",
            Self::Model => "model",
            Self::Bmc => "bmc",
        }
    }
}

/// One sample of the host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostReading {
    /// CPU utilisation 0..1 over the last interval.
    pub cpu_utilization: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Where power/energy come from.
    pub source: HostPowerSource,
    /// Instantaneous (or interval-average) power.
    pub power: Option<Watts>,
    /// A monotonic energy counter kept by the collector (already unwrapped).
    pub energy_counter: Option<Joules>,
}

/// A closed set of readings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Reading {
    /// A GPU sample.
    Gpu(GpuReading),
    /// A host sample.
    Host(HostReading),
    /// A device of a collector failed this time (the others may be fine).
    DeviceFault {
        /// The device, e.g. a GPU UUID or index.
        device: String,
        /// What went wrong.
        message: String,
    },
}

/// Why a collector produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// The source does not exist on this machine (no NVML, no RAPL): not an error to page on.
    #[error("unavailable here: {0}")]
    Unavailable(String),
    /// The source exists but failed this time.
    #[error("failed: {0}")]
    Failed(String),
}

/// A source of readings. The scheduler calls `sample` once per interval and
/// isolates failures: an error becomes a log line and a metric, never a crash.
pub trait Collector: Send {
    /// The `collector` label value, e.g. `nvml`.
    fn name(&self) -> &'static str;
    /// Append this interval's readings to `out`.
    fn sample(&mut self, out: &mut Vec<Reading>) -> Result<(), SampleError>;
}
