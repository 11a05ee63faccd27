//! RAPL powercap energy counters: which zones to sum, how to read them, and the
//! wrap-safe arithmetic that turns a wrapping µJ register into a running total.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Top-level zone directory prefixes. `intel-rapl-mmio:N` is deliberately not
/// here: on client parts it duplicates the MSR package domain, and summing
/// both would double-count the package.
const ZONE_PREFIXES: [&str; 2] = ["intel-rapl:", "amd-rapl:"];

/// Energy consumed between two readings of one RAPL zone, in µJ.
///
/// The kernel's `energy_uj` counts up to `max_energy_range_uj` and then starts
/// again from zero, so a reading smaller than the previous one means exactly
/// one wrap happened: `max_range_uj − prev_uj + cur_uj`. The result is correct
/// as long as less than `max_range_uj` was consumed between the two readings
/// (at 200 W and the usual 262 kJ range: about 20 minutes).
///
/// A `prev_uj` above `max_range_uj` (a corrupt reading) cannot underflow: that
/// part of the sum saturates at zero.
pub fn rapl_delta(prev_uj: u64, cur_uj: u64, max_range_uj: u64) -> u64 {
    if cur_uj >= prev_uj {
        cur_uj - prev_uj
    } else {
        max_range_uj.saturating_sub(prev_uj).saturating_add(cur_uj)
    }
}

/// `Some((prefix index, N, 0))` for `intel-rapl:N` / `amd-rapl:N`,
/// `Some((prefix index, N, M + 1))` for a subzone `intel-rapl:N:M`, `None`
/// for anything else.
fn zone_key(file_name: &str) -> Option<(usize, u64, u64)> {
    ZONE_PREFIXES.iter().enumerate().find_map(|(k, prefix)| {
        let rest = file_name.strip_prefix(prefix)?;
        let num = |t: &str| {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u64>().ok())
                .flatten()
        };
        match rest.split_once(':') {
            None => Some((k, num(rest)?, 0)),
            Some((n, m)) => Some((k, num(n)?, num(m)?.checked_add(1)?)),
        }
    })
}

/// The RAPL zones to sum under `root` (normally `/sys/class/powercap`): the
/// top-level *package* zones `intel-rapl:N` / `amd-rapl:N` whose `name`
/// starts with `package` (so `psys` and similar platform domains are left
/// out), plus the `dram` subzones `intel-rapl:N:M` (on servers memory is not
/// part of the package figure). Other subzones (`core`, `uncore`) are parts
/// of a package and would double-count. Sorted by prefix, `N`, then `M`.
/// RAPL is CPU and memory only, not the whole box's wall power.
///
/// Only the world-readable `name` file is opened; whether `energy_uj` is
/// readable is not checked here. A missing or unreadable `root` yields an
/// empty list.
pub fn rapl_zones(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<((usize, u64), u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let key = zone_key(entry.file_name().to_str()?)?;
            let path = entry.path();
            let name = fs::read_to_string(path.join("name")).ok()?;
            let name = name.trim();
            let wanted = if key.2 == 0 {
                name.starts_with("package")
            } else {
                name == "dram"
            };
            wanted.then_some(((key.0, key.1), key.2, path))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, _, path)| path).collect()
}

/// One package zone being followed.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    /// Its directory.
    pub(crate) path: PathBuf,
    /// For messages: `intel-rapl:0 (package-0)`.
    pub(crate) label: String,
    /// `max_energy_range_uj`: where `energy_uj` wraps.
    pub(crate) max_range_uj: u64,
    /// The last successfully read `energy_uj`.
    pub(crate) last_uj: u64,
}

/// A read of one zone's file failed.
#[derive(Debug)]
pub(crate) struct ZoneReadError {
    label: String,
    file: PathBuf,
    err: io::Error,
}

impl ZoneReadError {
    /// The zone (or its file) is gone: the driver was unloaded or the zone
    /// renumbered, and when it comes back its counter will have restarted, so
    /// the old baseline must not be used again.
    pub(crate) fn zone_gone(&self) -> bool {
        self.err.kind() == io::ErrorKind::NotFound
    }
}

impl fmt::Display for ZoneReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.zone_gone() {
            write!(
                f,
                "RAPL zone {} disappeared: {}: {}",
                self.label,
                self.file.display(),
                self.err
            )
        } else {
            write!(
                f,
                "RAPL zone {}: cannot read {}: {}",
                self.label,
                self.file.display(),
                self.err
            )?;
            if self.err.kind() == io::ErrorKind::PermissionDenied {
                f.write_str(
                    " (energy_uj is root-only on kernels patched for CVE-2020-8694; \
                     run as root or grant read access to it)",
                )?;
            }
            Ok(())
        }
    }
}

/// Read a sysfs file holding one unsigned integer.
fn read_u64(path: &Path) -> io::Result<u64> {
    let text = fs::read_to_string(path)?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected an unsigned integer, got {:?}: {e}", text.trim()),
        )
    })
}

fn read_zone_file(label: &str, dir: &Path, file: &str) -> Result<u64, ZoneReadError> {
    let path = dir.join(file);
    read_u64(&path).map_err(|err| ZoneReadError {
        label: label.to_string(),
        file: path,
        err,
    })
}

fn zone_label(path: &Path) -> String {
    let dir = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match fs::read_to_string(path.join("name")) {
        Ok(name) => format!("{dir} ({})", name.trim()),
        Err(_) => dir,
    }
}

/// Discover the package zones under `root` and take a baseline reading of
/// each. Every discovered package zone must be readable: summing only some
/// sockets would silently under-report the host. `Err` says why RAPL cannot be
/// used, in words fit for a log line.
pub(crate) fn open_zones(root: &Path) -> Result<(Vec<Zone>, Instant), String> {
    let paths = rapl_zones(root);
    if paths.is_empty() {
        return Err(match fs::read_dir(root) {
            Err(e) => format!(
                "cannot list {}: {e} (no powercap/RAPL driver?)",
                root.display()
            ),
            Ok(_) => format!(
                "no top-level RAPL package zones (intel-rapl:N or amd-rapl:N named package-*) under {}",
                root.display()
            ),
        });
    }
    let now = Instant::now();
    let mut zones = Vec::with_capacity(paths.len());
    for path in paths {
        let label = zone_label(&path);
        let max_range_uj =
            read_zone_file(&label, &path, "max_energy_range_uj").map_err(|e| e.to_string())?;
        let last_uj = read_zone_file(&label, &path, "energy_uj").map_err(|e| e.to_string())?;
        zones.push(Zone {
            path,
            label,
            max_range_uj,
            last_uj,
        });
    }
    Ok((zones, now))
}

/// Read every zone's `energy_uj`, all or nothing: on error no zone's state
/// has been touched.
pub(crate) fn read_all(zones: &[Zone]) -> Result<Vec<u64>, ZoneReadError> {
    zones
        .iter()
        .map(|z| read_zone_file(&z.label, &z.path, "energy_uj"))
        .collect()
}

/// Whether a reading that went down from `prev_uj` to `cur_uj` is a counter
/// reset (the register restarted, e.g. after a reboot of the package or a
/// driver reload) rather than a wrap: read as a wrap it would mean more than
/// half the range was consumed in one interval (at 200 W and the usual
/// 262 kJ range, ten minutes), while a real wrap starts near the top.
pub fn is_reset(prev_uj: u64, cur_uj: u64, max_range_uj: u64) -> bool {
    cur_uj < prev_uj && rapl_delta(prev_uj, cur_uj, max_range_uj) > max_range_uj / 2
}

/// Advance every zone to its new reading `cur[i]` and return the energy
/// consumed since the previous readings, summed over zones, in µJ; `None`
/// when a zone's counter reset (the interval's energy is unknown; every
/// baseline moves on).
pub(crate) fn advance(zones: &mut [Zone], cur: &[u64]) -> Option<u64> {
    debug_assert_eq!(zones.len(), cur.len());
    let mut reset = false;
    let sum = zones
        .iter_mut()
        .zip(cur)
        .fold(0u64, |sum, (zone, &now_uj)| {
            reset |= is_reset(zone.last_uj, now_uj, zone.max_range_uj);
            let d = rapl_delta(zone.last_uj, now_uj, zone.max_range_uj);
            zone.last_uj = now_uj;
            sum.saturating_add(d)
        });
    (!reset).then_some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delta_without_wrap_is_the_difference() {
        assert_eq!(rapl_delta(1_000, 1_000, 10_000), 0);
        assert_eq!(rapl_delta(1_000, 4_500, 10_000), 3_500);
        assert_eq!(rapl_delta(0, 9_999, 10_000), 9_999);
    }

    #[test]
    fn delta_across_a_wrap_adds_the_rest_of_the_range() {
        assert_eq!(rapl_delta(9_000, 500, 10_000), 1_500);
        assert_eq!(rapl_delta(9_999, 0, 10_000), 1);
        // The usual Intel range, wrapping just past the top.
        let max = 262_143_328_850;
        assert_eq!(rapl_delta(max - 1_000_000, 500_000, max), 1_500_000);
    }

    #[test]
    fn delta_with_a_corrupt_previous_reading_does_not_underflow() {
        assert_eq!(rapl_delta(20_000, 5, 10_000), 5);
        assert_eq!(rapl_delta(u64::MAX, 0, u64::MAX), 0);
    }

    #[test]
    fn zone_key_reads_zones_and_subzones() {
        assert_eq!(zone_key("intel-rapl:0"), Some((0, 0, 0)));
        assert_eq!(zone_key("intel-rapl:12"), Some((0, 12, 0)));
        assert_eq!(zone_key("amd-rapl:1"), Some((1, 1, 0)));
        assert_eq!(zone_key("intel-rapl:0:2"), Some((0, 0, 3)));
        for no in [
            "intel-rapl",
            "intel-rapl:",
            "intel-rapl:0:",
            "intel-rapl:0:0:1",
            "intel-rapl-mmio:0",
            "intel-rapl:x",
            "dtpm",
        ] {
            assert_eq!(zone_key(no), None, "{no}");
        }
    }

    fn zone(max_range_uj: u64, last_uj: u64) -> Zone {
        Zone {
            path: PathBuf::from("/nonexistent"),
            label: "test".into(),
            max_range_uj,
            last_uj,
        }
    }

    #[test]
    fn advance_sums_zones_and_moves_baselines() {
        let mut zones = vec![zone(10_000, 9_000), zone(50_000, 100)];
        assert_eq!(advance(&mut zones, &[1_000, 400]), Some(2_000 + 300));
        assert_eq!(zones[0].last_uj, 1_000);
        assert_eq!(zones[1].last_uj, 400);
        assert_eq!(advance(&mut zones, &[1_000, 400]), Some(0));
    }

    #[test]
    fn a_reset_is_not_read_as_a_wrap() {
        // From near the top to near zero: a wrap.
        assert!(!is_reset(9_900, 50, 10_000));
        // From the middle back to near zero: a reset (as a wrap it would be
        // 95 % of the range in one interval).
        assert!(is_reset(1_000, 500, 10_000));
        assert!(!is_reset(1_000, 1_000, 10_000));
        let mut zones = vec![zone(10_000, 3_000), zone(50_000, 100)];
        assert_eq!(advance(&mut zones, &[10, 400]), None);
        // Baselines moved on: the next interval is measured again.
        assert_eq!(advance(&mut zones, &[110, 500]), Some(200));
    }

    proptest! {
        /// Whatever the range, start and increments (each at most half the
        /// range: more in one interval is read as a counter reset), the
        /// running total built from wrapped readings never goes down and
        /// always equals the true energy consumed.
        #[test]
        fn running_total_is_monotonic_and_exact(
            max in 1u64..=u64::from(u32::MAX) * 1_000,
            start_frac in 0.0f64..1.0,
            fracs in proptest::collection::vec(0.0f64..0.5, 0..200),
        ) {
            let start = ((max as f64 * start_frac) as u64).min(max - 1);
            let mut zones = vec![zone(max, start)];
            let mut register = start;
            let mut truth: u128 = 0;
            let mut total: u64 = 0;
            for f in fracs {
                let inc = ((max as f64 * f) as u64).min(max / 2);
                truth += u128::from(inc);
                register = ((u128::from(register) + u128::from(inc)) % u128::from(max)) as u64;
                let before = total;
                total += advance(&mut zones, &[register]).expect("not a reset");
                prop_assert!(total >= before);
                prop_assert_eq!(u128::from(total), truth);
            }
        }

        /// Several zones with different ranges: the sum of per-zone truths.
        #[test]
        fn running_total_over_several_zones_is_exact(
            ranges in proptest::collection::vec(1_000u64..1_000_000, 1..4),
            steps in proptest::collection::vec(proptest::collection::vec(0u64..1_000, 4), 0..100),
        ) {
            let mut zones: Vec<Zone> = ranges.iter().map(|&m| zone(m, m / 2)).collect();
            let mut regs: Vec<u64> = ranges.iter().map(|&m| m / 2).collect();
            let mut truth: u64 = 0;
            let mut total: u64 = 0;
            for step in steps {
                for (i, r) in regs.iter_mut().enumerate() {
                    let inc = step[i] % (ranges[i] / 2);
                    truth += inc;
                    *r = (*r + inc) % ranges[i];
                }
                total += advance(&mut zones, &regs).expect("not a reset");
                prop_assert_eq!(total, truth);
            }
        }
    }
}
