//! roimon's GPU collector: reads power, the driver's energy counter,
//! utilisation, memory, temperature and the enforced power limit of every GPU
//! through NVML (via `nvml-wrapper`), and turns them into core readings.
//!
//! Failure model: NVML missing at start is [`SampleError::Unavailable`]; a field a
//! GPU does not support is `None`; a GPU whose calls fail becomes a
//! [`Reading::DeviceFault`] for that interval and is retried next time without
//! disturbing the others; only an unreadable device count fails the whole sample.
//!
//! With [`NvmlCollector::set_processes`] on, each reading also lists what runs
//! on the GPU (compute and graphics processes, their SM utilisation samples
//! since the previous sample, MIG devices and their slice counts), for
//! attribution by process. A GPU that cannot say (not supported, or the call
//! failed this time) has `processes: None`; that never faults the GPU.

use std::collections::HashMap;
use std::path::Path;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, Nvml};
use roimon_core::{
    Collector, GpuProcess, GpuProcesses, GpuReading, Joules, MigInstance, Reading, SampleError,
    Watts,
};
use tracing::{debug, info, warn};

/// The library NVML is loaded from when no path is given (found by the dynamic loader).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

/// Collects one [`Reading::Gpu`] (or [`Reading::DeviceFault`]) per GPU from NVML.
#[derive(Debug)]
pub struct NvmlCollector {
    nvml: Nvml,
    driver_version: String,
    device_count: u32,
    last_count: u32,
    gpus: Vec<GpuState>,
    processes: bool,
}

/// What is remembered about the GPU at one NVML index between samples.
#[derive(Debug, Default)]
struct GpuState {
    /// `(uuid, name)`, read once and reused.
    identity: Option<(String, String)>,
    /// Re-read the identity at the next successful handle (after a fault the
    /// index may hold a different GPU, e.g. after a driver reload).
    recheck_identity: bool,
    /// Consecutive failed samples; `None` while healthy.
    failing: Option<u64>,
    /// Fields already logged as unsupported (bit per [`Field`]).
    unsupported_logged: u8,
    /// Time stamp (µs) of the newest process utilisation sample seen.
    util_seen: u64,
    /// Process listing failed or unsupported: logged once until it works.
    processes_logged: bool,
}

/// The optional per-sample fields, for "not supported" bookkeeping and messages.
#[derive(Debug, Clone, Copy)]
enum Field {
    Power,
    Energy,
    Utilization,
    Memory,
    Temperature,
    PowerLimit,
}

impl Field {
    fn bit(self) -> u8 {
        1 << self as u8
    }
    /// The NVML function behind the field (what operators search for).
    fn call(self) -> &'static str {
        match self {
            Self::Power => "nvmlDeviceGetPowerUsage",
            Self::Energy => "nvmlDeviceGetTotalEnergyConsumption",
            Self::Utilization => "nvmlDeviceGetUtilizationRates",
            Self::Memory => "nvmlDeviceGetMemoryInfo_v2",
            Self::Temperature => "nvmlDeviceGetTemperature",
            Self::PowerLimit => "nvmlDeviceGetEnforcedPowerLimit",
        }
    }
}

/// Why one GPU could not be read this interval.
#[derive(Debug)]
struct Fault {
    call: &'static str,
    error: NvmlError,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.call, self.error)
    }
}

fn fault(call: &'static str) -> impl FnOnce(NvmlError) -> Fault {
    move |error| Fault { call, error }
}

/// Errors meaning "this GPU or driver cannot give this field": the field is absent,
/// not the GPU broken. A symbol missing from an older driver (e.g.
/// `nvmlDeviceGetMemoryInfo_v2` before R510) counts as unsupported too.
fn is_unsupported(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported | NvmlError::FunctionNotFound | NvmlError::FailedToLoadSymbol(_)
    )
}

impl NvmlCollector {
    /// Loads NVML from `library` (an absolute path, or a name for the dynamic
    /// loader), or from [`DEFAULT_LIBRARY`] when `None`, and initialises it.
    ///
    /// # Errors
    /// [`SampleError::Unavailable`] when the library cannot be loaded or no
    /// NVIDIA driver is running; [`SampleError::Failed`] for any other
    /// initialisation failure (no permission, a library that is not NVML, an
    /// unreadable device count).
    pub fn open(library: Option<&Path>) -> Result<Self, SampleError> {
        let mut builder = Nvml::builder();
        if let Some(path) = library {
            builder.lib_path(path.as_os_str());
        }
        let shown = library.map_or_else(|| DEFAULT_LIBRARY.into(), |p| p.display().to_string());
        let nvml = builder.init().map_err(|e| match e {
            NvmlError::LibloadingError(_)
            | NvmlError::LibraryNotFound
            | NvmlError::DriverNotLoaded => {
                SampleError::Unavailable(format!("NVML from {shown}: {e}"))
            }
            e => SampleError::Failed(format!("NVML init from {shown}: {e}")),
        })?;
        let driver_version = nvml.sys_driver_version().unwrap_or_else(|e| {
            debug!(error = %e, "nvml: cannot read the driver version");
            "unknown".to_owned()
        });
        let device_count = nvml
            .device_count()
            .map_err(|e| SampleError::Failed(format!("nvmlDeviceGetCount_v2: {e}")))?;
        Ok(Self {
            nvml,
            driver_version,
            device_count,
            last_count: device_count,
            gpus: Vec::new(),
            processes: false,
        })
    }

    /// The driver version NVML reported at open (`"unknown"` if it did not say).
    pub fn driver_version(&self) -> &str {
        &self.driver_version
    }

    /// The number of GPUs NVML reported at open.
    pub fn device_count(&self) -> u32 {
        self.device_count
    }

    /// Also list what runs on each GPU (off by default: it costs a few NVML
    /// calls per GPU and sample).
    pub fn set_processes(&mut self, on: bool) {
        self.processes = on;
    }
}

/// Compute and graphics processes of a GPU or MIG device, one entry per pid.
fn running(device: &Device<'_>) -> Result<Vec<ProcessInfo>, NvmlError> {
    let compute = device.running_compute_processes();
    let graphics = device.running_graphics_processes();
    let mut all = match (compute, graphics) {
        (Ok(mut c), Ok(g)) => {
            c.extend(g);
            c
        }
        (Ok(c), Err(e)) | (Err(e), Ok(c)) if is_unsupported(&e) => c,
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    all.sort_by_key(|p| p.pid);
    all.dedup_by_key(|p| p.pid);
    Ok(all)
}

fn process(p: &ProcessInfo, util: Option<f64>, mig: Option<u32>) -> GpuProcess {
    GpuProcess {
        pid: p.pid,
        used_memory_bytes: match p.used_gpu_memory {
            UsedGpuMemory::Used(b) => Some(b),
            UsedGpuMemory::Unavailable => None,
        },
        sm_utilization: util,
        mig_instance: mig,
    }
}

/// What runs on a GPU: its processes with their mean SM utilisation over the
/// samples since `state.util_seen`, or its MIG devices and theirs. A process
/// that exits between the calls simply is, or is not, in the lists.
fn read_processes(device: &Device<'_>, state: &mut GpuState) -> Result<GpuProcesses, NvmlError> {
    let mig_on = match device.mig_mode() {
        Ok(m) => m.current == 1,
        Err(e) if is_unsupported(&e) => false,
        Err(e) => return Err(e),
    };
    if mig_on {
        // Per-instance readings: NVML has no power or process utilisation
        // per MIG device, so an instance weighs its GPU instance slices.
        let mut out = GpuProcesses::default();
        for i in 0..device.mig_device_count()? {
            let mig = match device.mig_device_by_index(i) {
                Ok(m) => m,
                Err(NvmlError::NotFound | NvmlError::InvalidArg) => continue,
                Err(e) => return Err(e),
            };
            let slices = mig
                .attributes()
                .map(|a| a.gpu_instance_slice_count)
                .unwrap_or(1)
                .max(1);
            out.mig.push(MigInstance { id: i, slices });
            for p in running(&mig)? {
                out.running.push(process(&p, None, Some(i)));
            }
        }
        return Ok(out);
    }
    let procs = running(device)?;
    let util: HashMap<u32, f64> = if procs.is_empty() {
        HashMap::new()
    } else {
        match device.process_utilization_stats(state.util_seen) {
            Ok(samples) => {
                let mut sums: HashMap<u32, (f64, f64)> = HashMap::new();
                for s in &samples {
                    state.util_seen = state.util_seen.max(s.timestamp);
                    let e = sums.entry(s.pid).or_default();
                    e.0 += f64::from(s.sm_util.min(100)) / 100.0;
                    e.1 += 1.0;
                }
                sums.into_iter().map(|(p, (s, n))| (p, s / n)).collect()
            }
            // No sample since the last one, or no per-process samples on
            // this part: the processes share equally.
            Err(e) if is_unsupported(&e) || matches!(e, NvmlError::NotFound) => HashMap::new(),
            Err(e) => return Err(e),
        }
    };
    Ok(GpuProcesses {
        running: procs
            .iter()
            .map(|p| process(p, util.get(&p.pid).copied(), None))
            .collect(),
        mig: Vec::new(),
    })
}

/// Reads one GPU. The handle is fetched every time (it borrows `nvml`); the
/// identity is cached in `state`.
fn read_gpu(
    nvml: &Nvml,
    index: u32,
    state: &mut GpuState,
    processes: bool,
) -> Result<GpuReading, Fault> {
    let device = nvml
        .device_by_index(index)
        .map_err(fault("nvmlDeviceGetHandleByIndex_v2"))?;
    let (uuid, name) = match state.identity.take() {
        Some(identity) if !state.recheck_identity => identity,
        previous => {
            let uuid = device.uuid().map_err(fault("nvmlDeviceGetUUID"));
            let name = device.name().map_err(fault("nvmlDeviceGetName"));
            let (uuid, name) = match (uuid, name) {
                (Ok(uuid), Ok(name)) => (uuid, name),
                (Err(f), _) | (_, Err(f)) => {
                    state.identity = previous;
                    return Err(f);
                }
            };
            if let Some((old, _)) = previous.filter(|(old, _)| *old != uuid) {
                info!(index, old = %old, new = %uuid, "nvml: a different GPU is now at this index");
                state.unsupported_logged = 0;
            }
            state.recheck_identity = false;
            (uuid, name)
        }
    };

    let reading = read_fields(&device, index, &uuid, &name, &mut state.unsupported_logged);
    let reading = reading.map(|mut r| {
        if processes {
            match read_processes(&device, state) {
                Ok(p) => {
                    if state.processes_logged {
                        info!(gpu = %uuid, "nvml: processes readable again");
                        state.processes_logged = false;
                    }
                    r.processes = Some(p);
                }
                Err(e) => {
                    if !state.processes_logged {
                        state.processes_logged = true;
                        warn!(gpu = %uuid, error = %e, "nvml: cannot list the GPU's processes; its owners stay as they were (logged again on recovery)");
                    }
                }
            }
        }
        r
    });
    state.identity = Some((uuid, name));
    reading
}

/// Reads the per-sample fields of one GPU; `logged` remembers which fields were
/// already logged as unsupported.
fn read_fields(
    device: &Device<'_>,
    index: u32,
    uuid: &str,
    name: &str,
    logged: &mut u8,
) -> Result<GpuReading, Fault> {
    let mut get = |field, result| optional(field, result, uuid, logged);
    // Power and energy are what roimon accounts: their failure faults the GPU.
    let power = get(Field::Power, device.power_usage().map(u64::from))?;
    let energy = get(Field::Energy, device.total_energy_consumption())?;
    // The other fields are context: a failure there (NoPermission, Unknown)
    // leaves that field empty for this sample rather than voiding the GPU's
    // energy.
    let mut extra = |field, result| {
        optional(field, result, uuid, logged).unwrap_or_else(|f| {
            debug!(uuid, fault = ?f, "nvml: a secondary field failed; left empty this sample");
            None
        })
    };
    let utilization = extra(
        Field::Utilization,
        device.utilization_rates().map(|u| u64::from(u.gpu)),
    );
    let temperature = extra(
        Field::Temperature,
        device.temperature(TemperatureSensor::Gpu).map(u64::from),
    );
    let power_limit = extra(
        Field::PowerLimit,
        device.enforced_power_limit().map(u64::from),
    );
    let memory = optional(
        Field::Memory,
        device.memory_info().map(|m| (m.used, m.total)),
        uuid,
        logged,
    )
    .unwrap_or_else(|f| {
        debug!(uuid, fault = ?f, "nvml: memory info failed; left empty this sample");
        None
    });
    Ok(GpuReading {
        index,
        uuid: uuid.to_owned(),
        name: name.to_owned(),
        power: power.map(milliwatts),
        energy_counter: energy.map(Joules::from_millijoules),
        utilization: utilization.map(|pct| pct.min(100) as f64 / 100.0),
        memory_used_bytes: memory.map(|(used, _)| used),
        memory_total_bytes: memory.map(|(_, total)| total),
        temperature_celsius: temperature.map(|c| c as f64),
        power_limit: power_limit.map(milliwatts),
        processes: None,
    })
}

/// NVML reports power in `u32` milliwatts; it travels as `u64` through [`optional`].
fn milliwatts(mw: u64) -> Watts {
    Watts::from_milliwatts(u32::try_from(mw).unwrap_or(u32::MAX))
}

/// `Some` on success, `None` (logged once per GPU and field at debug) when
/// unsupported, a [`Fault`] otherwise.
fn optional<T>(
    field: Field,
    result: Result<T, NvmlError>,
    uuid: &str,
    logged: &mut u8,
) -> Result<Option<T>, Fault> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_unsupported(&e) => {
            if *logged & field.bit() == 0 {
                *logged |= field.bit();
                debug!(gpu = %uuid, call = field.call(), error = %e, "nvml: not supported; reported as absent");
            }
            Ok(None)
        }
        Err(error) => Err(Fault {
            call: field.call(),
            error,
        }),
    }
}

impl Collector for NvmlCollector {
    fn name(&self) -> &'static str {
        "nvml"
    }

    fn sample(&mut self, out: &mut Vec<Reading>) -> Result<(), SampleError> {
        let count = self
            .nvml
            .device_count()
            .map_err(|e| SampleError::Failed(format!("nvmlDeviceGetCount_v2: {e}")))?;
        if count != self.last_count {
            info!(
                before = self.last_count,
                now = count,
                "nvml: the number of GPUs changed"
            );
            self.last_count = count;
        }
        if self.gpus.len() < count as usize {
            self.gpus.resize_with(count as usize, GpuState::default);
        }
        for (index, state) in (0..count).zip(self.gpus.iter_mut()) {
            match read_gpu(&self.nvml, index, state, self.processes) {
                Ok(reading) => {
                    if let Some(failed) = state.failing.take() {
                        info!(gpu = %reading.uuid, index, failed_samples = failed, "nvml: GPU readable again");
                    }
                    out.push(Reading::Gpu(reading));
                }
                Err(f) => {
                    let device = state
                        .identity
                        .as_ref()
                        .map_or_else(|| format!("index {index}"), |(uuid, _)| uuid.clone());
                    match &mut state.failing {
                        Some(n) => *n += 1,
                        None => {
                            warn!(gpu = %device, index, error = %f, "nvml: GPU read failed; retrying every interval, logging again on recovery");
                            state.failing = Some(1);
                        }
                    }
                    state.recheck_identity = true;
                    out.push(Reading::DeviceFault {
                        device,
                        message: f.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}
