//! roimon's host collector: CPU utilisation and memory from sysinfo, and host
//! power either from RAPL powercap energy counters or, where those cannot be
//! read, from a linear CPU-utilisation model.
//!
//! `energy_uj` is root-only on current kernels, so the default `Auto` mode
//! probes RAPL once at construction and falls back to the model, saying why
//! at info level.

mod rapl;
mod system;

pub use rapl::{rapl_delta, rapl_zones};

use roimon_core::{Collector, HostPowerSource, HostReading, Joules, Reading, SampleError, Watts};
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

/// How the host's power figure is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostPowerMode {
    /// RAPL if every package zone is readable at start, else the linear model.
    #[default]
    Auto,
    /// RAPL only; without readable RAPL every sample is `Unavailable`.
    Rapl,
    /// The linear model only; RAPL is never touched.
    Model,
}

/// Host collector settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// Root of the powercap tree, normally `/sys/class/powercap`.
    pub rapl_root: PathBuf,
    /// Where power comes from.
    pub power: HostPowerMode,
    /// Model: power at 0 % CPU, W.
    pub idle_watts: f64,
    /// Model: power at 100 % CPU, W.
    pub max_watts: f64,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            rapl_root: PathBuf::from("/sys/class/powercap"),
            power: HostPowerMode::Auto,
            idle_watts: 100.0,
            max_watts: 400.0,
        }
    }
}

impl HostConfig {
    /// The linear model: `idle + (max − idle) × util`, `util` clamped to 0..1.
    pub fn model_power(&self, cpu_utilization: f64) -> Watts {
        let u = if cpu_utilization.is_nan() {
            0.0
        } else {
            cpu_utilization.clamp(0.0, 1.0)
        };
        Watts(self.idle_watts + (self.max_watts - self.idle_watts) * u)
    }
}

/// RAPL state while it is the power source.
#[derive(Debug)]
struct RaplState {
    zones: Vec<rapl::Zone>,
    /// When `zones[*].last_uj` were read.
    last_read: Instant,
    /// Energy since this collector started, summed over zones, unwrapped, µJ.
    cumulative_uj: u64,
    /// A zone vanished: the next sample re-discovers the zones and takes a
    /// fresh baseline instead of trusting the old one.
    stale: bool,
}

impl RaplState {
    fn new(zones: Vec<rapl::Zone>, read_at: Instant) -> Self {
        Self {
            zones,
            last_read: read_at,
            cumulative_uj: 0,
            stale: false,
        }
    }

    fn counter(&self) -> Joules {
        Joules(self.cumulative_uj as f64 / 1e6)
    }
}

#[derive(Debug)]
enum PowerState {
    /// The linear model.
    Model,
    /// RAPL counters.
    Rapl(RaplState),
    /// `Rapl` mode, but nothing readable (yet): probed again every sample.
    RaplUnavailable,
}

/// The host collector (`collector="host"`). One per daemon: it keeps the
/// running RAPL total and a long-lived sysinfo handle between samples.
pub struct HostCollector {
    cfg: HostConfig,
    system: system::SystemStats,
    power: PowerState,
    /// Why the current power source was chosen.
    reason: String,
}

impl fmt::Debug for HostCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCollector")
            .field("cfg", &self.cfg)
            .field("power", &self.power)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl HostCollector {
    /// Start collecting. Probes RAPL (unless the mode is `Model`), takes the
    /// baseline readings, and logs once at info which power source was chosen
    /// and why. Never fails: problems surface from [`Collector::sample`].
    pub fn new(cfg: HostConfig) -> Self {
        let system = system::SystemStats::new();
        let (power, reason) = match cfg.power {
            HostPowerMode::Model => (
                PowerState::Model,
                "power = \"model\" configured".to_string(),
            ),
            mode @ (HostPowerMode::Auto | HostPowerMode::Rapl) => {
                match rapl::open_zones(&cfg.rapl_root) {
                    Ok((zones, at)) => {
                        let names: Vec<&str> = zones.iter().map(|z| z.label.as_str()).collect();
                        let reason = format!("RAPL package zones readable: {}", names.join(", "));
                        (PowerState::Rapl(RaplState::new(zones, at)), reason)
                    }
                    Err(why) if mode == HostPowerMode::Auto => (
                        PowerState::Model,
                        format!("RAPL not usable, falling back to the linear CPU model: {why}"),
                    ),
                    Err(why) => (PowerState::RaplUnavailable, why),
                }
            }
        };
        let c = Self {
            cfg,
            system,
            power,
            reason,
        };
        match c.power_source() {
            Some(source) => tracing::info!(
                collector = "host",
                source = source.as_str(),
                reason = %c.reason,
                idle_watts = c.cfg.idle_watts,
                max_watts = c.cfg.max_watts,
                "host power source chosen"
            ),
            None => tracing::info!(
                collector = "host",
                reason = %c.reason,
                "host power = \"rapl\" configured but RAPL is not readable; retrying every sample"
            ),
        }
        c
    }

    /// The power source in use, `None` while `Rapl` mode has no readable RAPL.
    pub fn power_source(&self) -> Option<HostPowerSource> {
        match self.power {
            PowerState::Model => Some(HostPowerSource::Model),
            PowerState::Rapl(_) => Some(HostPowerSource::Rapl),
            PowerState::RaplUnavailable => None,
        }
    }

    /// Why the current power source was chosen (or why RAPL is unavailable),
    /// in words for the startup log.
    pub fn power_source_reason(&self) -> &str {
        &self.reason
    }

    /// RAPL power and energy for this sample (`None` in model mode), or why
    /// there are none.
    fn sample_rapl(&mut self) -> Result<Option<PowerSample>, SampleError> {
        match &mut self.power {
            PowerState::Model => Ok(None),
            PowerState::RaplUnavailable => match rapl::open_zones(&self.cfg.rapl_root) {
                Ok((zones, at)) => {
                    let names: Vec<&str> = zones.iter().map(|z| z.label.as_str()).collect();
                    self.reason = format!("RAPL package zones readable: {}", names.join(", "));
                    tracing::info!(collector = "host", source = "rapl", reason = %self.reason, "RAPL became readable");
                    let st = RaplState::new(zones, at);
                    let counter = st.counter();
                    self.power = PowerState::Rapl(st);
                    // Baseline only: no interval to derive power from yet.
                    Ok(Some(PowerSample {
                        source: HostPowerSource::Rapl,
                        power: None,
                        energy_counter: Some(counter),
                    }))
                }
                Err(why) => {
                    self.reason.clone_from(&why);
                    // `power = "rapl"` was asked for explicitly: an unreadable
                    // counter is an error (counted, not ready), not "absent".
                    Err(SampleError::Failed(why))
                }
            },
            PowerState::Rapl(st) if st.stale => {
                let (zones, at) = rapl::open_zones(&self.cfg.rapl_root).map_err(|why| {
                    SampleError::Failed(format!("RAPL zones not back yet: {why}"))
                })?;
                // Summing fewer sockets than before would under-report silently.
                if let Some(missing) = st
                    .zones
                    .iter()
                    .find(|old| !zones.iter().any(|z| z.path == old.path))
                {
                    return Err(SampleError::Failed(format!(
                        "RAPL zone {} not back yet",
                        missing.label
                    )));
                }
                st.zones = zones;
                st.last_read = at;
                st.stale = false;
                // Fresh baseline after a gap of unknown energy: report no
                // counter and no power for this interval rather than a zero.
                Ok(Some(PowerSample {
                    source: HostPowerSource::Rapl,
                    power: None,
                    energy_counter: None,
                }))
            }
            PowerState::Rapl(st) => {
                let now = Instant::now();
                let cur = rapl::read_all(&st.zones).map_err(|e| {
                    if e.zone_gone() {
                        st.stale = true;
                    }
                    SampleError::Failed(e.to_string())
                })?;
                let dt = now.saturating_duration_since(st.last_read).as_secs_f64();
                st.last_read = now;
                let Some(delta_uj) = rapl::advance(&mut st.zones, &cur) else {
                    // A counter reset: the interval's energy is unknown.
                    // The running total restarts from 0, so the engine sees
                    // its counter go back (counted as a host counter reset)
                    // and, with no power either, leaves the interval
                    // unaccounted instead of booking a bogus wrap.
                    st.cumulative_uj = 0;
                    return Ok(Some(PowerSample {
                        source: HostPowerSource::Rapl,
                        power: None,
                        energy_counter: Some(st.counter()),
                    }));
                };
                st.cumulative_uj = st.cumulative_uj.saturating_add(delta_uj);
                Ok(Some(PowerSample {
                    source: HostPowerSource::Rapl,
                    power: (dt > 0.0).then(|| Watts(delta_uj as f64 / 1e6 / dt)),
                    energy_counter: Some(st.counter()),
                }))
            }
        }
    }
}

/// The power half of a reading.
struct PowerSample {
    source: HostPowerSource,
    power: Option<Watts>,
    energy_counter: Option<Joules>,
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    fn sample(&mut self, out: &mut Vec<Reading>) -> Result<(), SampleError> {
        // RAPL first: it is the timing-sensitive read. On failure the CPU
        // interval simply stretches to the next successful sample.
        let rapl = self.sample_rapl()?;
        let (cpu_utilization, memory_used_bytes) = self.system.sample();
        let power = rapl.unwrap_or_else(|| PowerSample {
            source: HostPowerSource::Model,
            // Unknown utilisation (first sample too soon, or no /proc/stat):
            // no power rather than a guess.
            power: cpu_utilization.map(|u| self.cfg.model_power(u)),
            energy_counter: None,
        });
        out.push(Reading::Host(HostReading {
            cpu_utilization,
            memory_used_bytes,
            source: power.source,
            power: power.power,
            energy_counter: power.energy_counter,
        }));
        Ok(())
    }
}
