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
    /// What runs on the GPU, where the driver says (`None`: not asked or not
    /// supported, so attribution falls back to the GPU's owner of record).
    pub processes: Option<GpuProcesses>,
}

/// The processes on one GPU at one sample, and its MIG layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuProcesses {
    /// Running compute and graphics processes (one entry per pid and MIG
    /// instance).
    pub running: Vec<GpuProcess>,
    /// MIG instances; empty when MIG is off.
    pub mig: Vec<MigInstance>,
}

/// One process holding a context on a GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuProcess {
    /// Process id (in the host's pid namespace). Never a metric label.
    pub pid: u32,
    /// GPU memory it holds, bytes, where the driver says.
    pub used_memory_bytes: Option<u64>,
    /// Its mean SM utilisation 0..1 over the samples the driver took since
    /// the previous sample; `None` when the driver gave none for it.
    pub sm_utilization: Option<f64>,
    /// The MIG instance it runs in (index into [`GpuProcesses::mig`]'s ids).
    pub mig_instance: Option<u32>,
}

/// One MIG instance of a GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigInstance {
    /// The instance's id (the MIG device index on its parent GPU).
    pub id: u32,
    /// GPU instance slices it holds (of the GPU's 7 or 8), the weight of its
    /// share of the GPU's power.
    pub slices: u32,
}

/// Who a fraction of one GPU's interval belongs to: a process, or nobody
/// (idle, or an idle MIG instance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// The process, or `None` for idle.
    pub pid: Option<u32>,
    /// Fraction of the GPU, 0..1; the claims of a GPU sum to 1.
    pub share: f64,
}

impl GpuProcesses {
    /// How the GPU's energy and costs split over its processes:
    ///
    /// - no MIG: processes share by their SM utilisation samples; if none of
    ///   them has a (non-zero) sample, equally; no process at all: idle.
    /// - MIG: each instance gets `slices / Σ slices` of the GPU (NVML gives
    ///   power and energy per physical GPU only), split inside the instance
    ///   over its processes as above; an instance without a process is
    ///   idle. Processes naming an instance NVML did not list are ignored.
    ///
    /// The shares sum to 1 (to rounding).
    pub fn claims(&self) -> Vec<Claim> {
        if self.mig.is_empty() {
            let all: Vec<&GpuProcess> = self.running.iter().collect();
            return split(&all, 1.0);
        }
        let total: f64 = self.mig.iter().map(|m| f64::from(m.slices)).sum();
        let mut out = Vec::new();
        for m in &self.mig {
            let weight = if total > 0.0 {
                f64::from(m.slices) / total
            } else {
                1.0 / self.mig.len() as f64
            };
            let inside: Vec<&GpuProcess> = self
                .running
                .iter()
                .filter(|p| p.mig_instance == Some(m.id))
                .collect();
            out.extend(split(&inside, weight));
        }
        out
    }
}

/// `weight` split over `procs` by SM utilisation (equally without samples);
/// idle when there is no process. A pid listed twice counts once.
fn split(procs: &[&GpuProcess], weight: f64) -> Vec<Claim> {
    let mut pids: Vec<(u32, f64)> = Vec::new();
    for p in procs {
        let u = p
            .sm_utilization
            .filter(|u| u.is_finite() && *u > 0.0)
            .unwrap_or(0.0);
        match pids.iter_mut().find(|(pid, _)| *pid == p.pid) {
            Some((_, v)) => *v = v.max(u),
            None => pids.push((p.pid, u)),
        }
    }
    if pids.is_empty() {
        return vec![Claim {
            pid: None,
            share: weight,
        }];
    }
    let sum: f64 = pids.iter().map(|(_, u)| u).sum();
    let n = pids.len() as f64;
    pids.into_iter()
        .map(|(pid, u)| Claim {
            pid: Some(pid),
            share: if sum > 0.0 {
                weight * u / sum
            } else {
                weight / n
            },
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, util: Option<f64>, mig: Option<u32>) -> GpuProcess {
        GpuProcess {
            pid,
            used_memory_bytes: None,
            sm_utilization: util,
            mig_instance: mig,
        }
    }

    fn shares(c: &[Claim]) -> Vec<(Option<u32>, f64)> {
        c.iter().map(|c| (c.pid, c.share)).collect()
    }

    #[test]
    fn time_sliced_processes_share_by_utilisation() {
        let g = GpuProcesses {
            running: vec![p(10, Some(0.6), None), p(20, Some(0.2), None)],
            mig: vec![],
        };
        let c = shares(&g.claims());
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].0, c[1].0), (Some(10), Some(20)));
        assert!(
            (c[0].1 - 0.75).abs() < 1e-12 && (c[1].1 - 0.25).abs() < 1e-12,
            "{c:?}"
        );
    }

    #[test]
    fn without_samples_processes_share_equally_and_no_process_is_idle() {
        let g = GpuProcesses {
            running: vec![p(1, None, None), p(2, Some(0.0), None), p(2, None, None)],
            mig: vec![],
        };
        assert_eq!(shares(&g.claims()), [(Some(1), 0.5), (Some(2), 0.5)]);
        assert_eq!(
            shares(&GpuProcesses::default().claims()),
            [(None, 1.0)],
            "idle GPU"
        );
    }

    #[test]
    fn mig_instances_share_by_slices_and_an_empty_instance_is_idle() {
        let g = GpuProcesses {
            running: vec![
                p(1, None, Some(0)),
                p(2, None, Some(0)),
                p(3, Some(0.9), Some(1)),
                p(4, Some(0.5), Some(9)),
            ],
            mig: vec![
                MigInstance { id: 0, slices: 4 },
                MigInstance { id: 1, slices: 2 },
                MigInstance { id: 2, slices: 2 },
            ],
        };
        assert_eq!(
            shares(&g.claims()),
            [
                (Some(1), 0.25),
                (Some(2), 0.25),
                (Some(3), 0.25),
                (None, 0.25)
            ]
        );
    }
}
