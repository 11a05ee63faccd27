//! A fake `/sys/class/powercap` tree in a tempdir, shared by the integration tests.

#![allow(dead_code)] // each test binary uses a different subset

use roimon_collect_host::{HostCollector, HostConfig, HostPowerMode};
use roimon_core::{Collector, HostReading, Reading, SampleError};
use std::fs;
use std::path::{Path, PathBuf};

/// The usual Intel `max_energy_range_uj`.
pub const MAX_RANGE: u64 = 262_143_328_850;

/// Write one zone directory `root/dir` with `name`, `energy_uj`, `max_energy_range_uj`.
pub fn zone(root: &Path, dir: &str, name: &str, energy_uj: u64, max_range_uj: u64) -> PathBuf {
    let p = root.join(dir);
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("name"), format!("{name}\n")).unwrap();
    fs::write(p.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
    fs::write(p.join("max_energy_range_uj"), format!("{max_range_uj}\n")).unwrap();
    p
}

/// Overwrite a zone's `energy_uj`.
pub fn set_energy(root: &Path, dir: &str, energy_uj: u64) {
    fs::write(root.join(dir).join("energy_uj"), format!("{energy_uj}\n")).unwrap();
}

/// Two packages, core/uncore subzones (not counted) and a dram subzone (counted) (as /sys/class/powercap lists
/// them, side by side with the packages), a psys domain, an MMIO duplicate of
/// package 0 and the `intel-rapl` control-type directory: only the two
/// packages may be summed.
pub fn two_package_tree(root: &Path) {
    zone(root, "intel-rapl:0", "package-0", 1_000_000, MAX_RANGE);
    zone(root, "intel-rapl:1", "package-1", 5_000_000, MAX_RANGE);
    zone(root, "intel-rapl:0:0", "core", 700_000, MAX_RANGE);
    zone(root, "intel-rapl:0:1", "uncore", 300_000, 65_712_999_613);
    // Server memory: its own subzone, not inside the package figure; counted.
    zone(root, "intel-rapl:1:0", "dram", 2_000_000, 65_712_999_613);
    zone(root, "intel-rapl:2", "psys", 9_000_000, MAX_RANGE);
    zone(root, "intel-rapl-mmio:0", "package-0", 1_000_000, MAX_RANGE);
    fs::create_dir_all(root.join("intel-rapl")).unwrap();
    fs::write(root.join("intel-rapl").join("enabled"), "1\n").unwrap();
}

pub fn config(root: &Path, power: HostPowerMode) -> HostConfig {
    HostConfig {
        rapl_root: root.to_path_buf(),
        power,
        idle_watts: 120.0,
        max_watts: 520.0,
    }
}

/// One sample, which must be exactly one host reading.
pub fn sample_host(c: &mut HostCollector) -> Result<HostReading, SampleError> {
    let mut out = Vec::new();
    c.sample(&mut out)?;
    assert_eq!(out.len(), 1, "{out:?}");
    match out.pop() {
        Some(Reading::Host(h)) => Ok(h),
        other => panic!("expected a host reading, got {other:?}"),
    }
}

/// A sample that must fail, producing nothing.
pub fn sample_err(c: &mut HostCollector) -> SampleError {
    let mut out = Vec::new();
    let e = c.sample(&mut out).expect_err("sample should fail");
    assert!(out.is_empty(), "{out:?}");
    e
}
