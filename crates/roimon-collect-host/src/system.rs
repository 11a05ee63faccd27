//! The long-lived sysinfo handle: refreshes only CPU usage and RAM, and is
//! honest about when sysinfo's CPU figure is not a measurement of an interval.

use std::fmt;
use std::time::Instant;
use sysinfo::{MemoryRefreshKind, System};

/// CPU utilisation and memory in use, from one `sysinfo::System` kept across
/// samples (CPU usage is a difference between two `/proc/stat` reads).
pub(crate) struct SystemStats {
    /// `None` where sysinfo cannot run on this platform.
    sys: Option<System>,
    /// When sysinfo last really re-read CPU times (taken after the call, so
    /// it is never earlier than sysinfo's own timestamp).
    last_cpu_refresh: Instant,
    /// Utilisation over the last measured interval, 0..1.
    last_util: Option<f64>,
}

impl fmt::Debug for SystemStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemStats")
            .field("available", &self.sys.is_some())
            .field("last_util", &self.last_util)
            .finish_non_exhaustive()
    }
}

impl SystemStats {
    /// Create the handle and take the first CPU reading. That first reading
    /// yields only the average since boot, which is never reported.
    pub(crate) fn new() -> Self {
        // sysinfo 0.40: `System::new` returns a Result (Unsupported on
        // platforms it does not know; infallible on Linux).
        let sys = match System::new() {
            Ok(mut s) => {
                s.refresh_cpu_usage();
                Some(s)
            }
            Err(e) => {
                tracing::warn!(collector = "host", error = %e, "sysinfo unavailable: no CPU utilisation or memory figures");
                None
            }
        };
        Self {
            sys,
            last_cpu_refresh: Instant::now(),
            last_util: None,
        }
    }

    /// `(cpu_utilization 0..1, memory_used_bytes)` now.
    ///
    /// sysinfo silently keeps its old CPU figure when asked again within
    /// `MINIMUM_CPU_UPDATE_INTERVAL` (200 ms on Linux); then the utilisation
    /// of the last interval that was measured is repeated, and on the very
    /// first sample after construction (no interval yet) it is `None`.
    pub(crate) fn sample(&mut self) -> (Option<f64>, Option<u64>) {
        let Some(sys) = self.sys.as_mut() else {
            return (None, None);
        };
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        // sysinfo reports used = total − available, and 0 for both when
        // /proc/meminfo could not be read.
        let memory = (sys.total_memory() > 0).then(|| sys.used_memory());

        if self.last_cpu_refresh.elapsed() >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL {
            sys.refresh_cpu_usage();
            self.last_cpu_refresh = Instant::now();
            // No CPUs listed means /proc/stat was never readable: the global
            // figure is a default 0, not a measurement.
            if !sys.cpus().is_empty() {
                let u = f64::from(sys.global_cpu_usage()) / 100.0;
                self.last_util = u.is_finite().then(|| u.clamp(0.0, 1.0));
            }
        }
        (self.last_util, memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_too_soon_has_no_cpu_figure_and_a_later_one_does() {
        let mut s = SystemStats::new();
        let (util, mem) = s.sample();
        assert_eq!(util, None, "no interval measured yet");
        assert!(mem.is_some_and(|m| m > 0), "{mem:?}");
        std::thread::sleep(
            sysinfo::MINIMUM_CPU_UPDATE_INTERVAL + std::time::Duration::from_millis(20),
        );
        let (util, _) = s.sample();
        let u = util.expect("an interval of ≥ 200 ms was measured");
        assert!((0.0..=1.0).contains(&u), "{u}");
        // Asked again at once: sysinfo would not refresh; the same figure is repeated.
        let (again, _) = s.sample();
        assert_eq!(again, Some(u));
    }
}
