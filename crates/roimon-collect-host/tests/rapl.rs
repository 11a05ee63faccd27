//! The RAPL path against a fake powercap tree: which zones are summed, exact
//! deltas, wraps, and that failures never corrupt the running total.

mod common;

use common::*;
use roimon_collect_host::{HostCollector, HostPowerMode, rapl_zones};
use roimon_core::{HostPowerSource, Joules, SampleError};
use std::fs;
use std::time::Instant;

#[test]
fn rapl_zones_lists_only_top_level_package_zones_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    zone(root, "intel-rapl:10", "package-10", 0, MAX_RANGE);
    // Server memory is its own subzone, not part of the package: counted.
    zone(root, "intel-rapl:1:1", "dram", 0, MAX_RANGE);
    let zones = rapl_zones(root);
    assert_eq!(
        zones,
        vec![
            root.join("intel-rapl:0"),
            root.join("intel-rapl:1"),
            root.join("intel-rapl:1:0"),
            root.join("intel-rapl:1:1"),
            root.join("intel-rapl:10")
        ]
    );
}

#[test]
fn rapl_zones_finds_amd_zones_and_nothing_under_a_missing_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    zone(root, "amd-rapl:0", "package-0", 0, MAX_RANGE);
    zone(root, "amd-rapl:0:0", "core", 0, MAX_RANGE);
    assert_eq!(rapl_zones(root), vec![root.join("amd-rapl:0")]);
    assert!(rapl_zones(&root.join("nope")).is_empty());
}

#[test]
fn auto_picks_rapl_and_sums_exactly_the_package_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    let mut c = HostCollector::new(config(root, HostPowerMode::Auto));
    assert_eq!(c.power_source(), Some(HostPowerSource::Rapl));
    assert!(
        c.power_source_reason().contains("package-1"),
        "{}",
        c.power_source_reason()
    );

    // Nothing moved since the baseline taken at construction.
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.source, HostPowerSource::Rapl);
    assert_eq!(h.energy_counter, Some(Joules(0.0)));
    assert_eq!(h.power.map(|p| p.0), Some(0.0));

    // Packages advance by 1.5 J and 2.25 J; core/uncore subzones, psys and
    // the MMIO duplicate advance by far more and must not be counted.
    set_energy(root, "intel-rapl:0", 1_000_000 + 1_500_000);
    set_energy(root, "intel-rapl:1", 5_000_000 + 2_250_000);
    set_energy(root, "intel-rapl:0:0", 700_000 + 90_000_000);
    set_energy(root, "intel-rapl:0:1", 300_000 + 90_000_000);
    // DRAM advances by 0.25 J and is counted.
    set_energy(root, "intel-rapl:1:0", 2_000_000 + 250_000);
    set_energy(root, "intel-rapl:2", 9_000_000 + 90_000_000);
    set_energy(root, "intel-rapl-mmio:0", 1_000_000 + 90_000_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(4.0)));
    // Its exact value is checked against the clock in the next test.
    let p = h.power.expect("power from the counter delta").0;
    assert!(p.is_finite() && p > 0.0, "{p}");
    assert!(h.memory_used_bytes.is_some_and(|m| m > 0), "{h:?}");

    // And once more: the counter is cumulative.
    set_energy(root, "intel-rapl:0", 2_500_000 + 250_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(4.25)));
}

#[test]
fn power_is_the_delta_over_the_elapsed_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    let before = Instant::now();
    let mut c = HostCollector::new(config(root, HostPowerMode::Rapl));
    let after_new = Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(100));
    set_energy(root, "intel-rapl:0", 1_000_000 + 10_000_000);
    let before_sample = Instant::now();
    let h = sample_host(&mut c).unwrap();
    let after_sample = Instant::now();
    // The collector's dt lies between (before_sample − after_new) and
    // (after_sample − before).
    let dt_min = before_sample.duration_since(after_new).as_secs_f64();
    let dt_max = after_sample.duration_since(before).as_secs_f64();
    let p = h.power.unwrap().0;
    assert!(
        p <= 10.0 / dt_min && p >= 10.0 / dt_max,
        "{p} not in [{}, {}]",
        10.0 / dt_max,
        10.0 / dt_min
    );
    assert_eq!(h.energy_counter, Some(Joules(10.0)));
}

#[test]
fn a_wrap_across_max_energy_range_is_unwrapped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    set_energy(root, "intel-rapl:0", MAX_RANGE - 1_000_000);
    let mut c = HostCollector::new(config(root, HostPowerMode::Rapl));
    // Package 0 wraps: 1 J to the top, then 0.5 J past zero. Package 1 +0.25 J.
    set_energy(root, "intel-rapl:0", 500_000);
    set_energy(root, "intel-rapl:1", 5_000_000 + 250_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(1.75)));
    assert!(h.power.unwrap().0 > 0.0);
    // Then normal counting continues from the wrapped value.
    set_energy(root, "intel-rapl:0", 1_500_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(2.75)));
}

#[test]
fn a_failed_read_is_an_error_and_the_next_sample_covers_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    let mut c = HostCollector::new(config(root, HostPowerMode::Auto));
    set_energy(root, "intel-rapl:0", 2_000_000);
    assert_eq!(
        sample_host(&mut c).unwrap().energy_counter,
        Some(Joules(1.0))
    );

    // One zone unreadable this time (package 0 did advance meanwhile).
    set_energy(root, "intel-rapl:0", 3_000_000);
    fs::write(root.join("intel-rapl:1/energy_uj"), "garbage\n").unwrap();
    match sample_err(&mut c) {
        SampleError::Failed(m) => {
            assert!(m.contains("intel-rapl:1") && m.contains("energy_uj"), "{m}")
        }
        other => panic!("{other:?}"),
    }

    // Readable again: both zones' energy across the gap, nothing lost or doubled.
    set_energy(root, "intel-rapl:0", 4_000_000);
    set_energy(root, "intel-rapl:1", 5_000_000 + 500_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(1.0 + 2.0 + 0.5)));
    assert!(h.power.unwrap().0 > 0.0);
}

#[test]
fn a_zone_that_disappears_fails_and_comes_back_on_a_fresh_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    let mut c = HostCollector::new(config(root, HostPowerMode::Auto));
    set_energy(root, "intel-rapl:1", 5_000_000 + 3_000_000);
    assert_eq!(
        sample_host(&mut c).unwrap().energy_counter,
        Some(Joules(3.0))
    );

    // The driver is unloaded: package 1 vanishes.
    fs::rename(root.join("intel-rapl:1"), root.join("gone")).unwrap();
    match sample_err(&mut c) {
        SampleError::Failed(m) => assert!(
            m.contains("intel-rapl:1") && m.contains("disappeared"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // Still gone: package 0 alone is not summed in its place.
    match sample_err(&mut c) {
        SampleError::Failed(m) => {
            assert!(m.contains("intel-rapl:1") && m.contains("not back"), "{m}")
        }
        other => panic!("{other:?}"),
    }

    // Back, with its counter restarted near zero (a naive wrap would add
    // ~262 kJ here). The first sample back only takes a new baseline.
    fs::rename(root.join("gone"), root.join("intel-rapl:1")).unwrap();
    set_energy(root, "intel-rapl:1", 100);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.source, HostPowerSource::Rapl);
    assert_eq!(h.energy_counter, None);
    assert_eq!(h.power, None);

    // Counting resumes on top of the total from before the gap.
    set_energy(root, "intel-rapl:0", 1_000_000 + 500_000);
    set_energy(root, "intel-rapl:1", 100 + 1_000_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(3.0 + 1.5)));
}

#[test]
fn auto_with_unreadable_energy_falls_back_to_the_model() {
    // A directory where energy_uj should be: unreadable even as root, like a
    // root-only energy_uj is for an unprivileged daemon.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    fs::remove_file(root.join("intel-rapl:1/energy_uj")).unwrap();
    fs::create_dir(root.join("intel-rapl:1/energy_uj")).unwrap();
    let mut c = HostCollector::new(config(root, HostPowerMode::Auto));
    assert_eq!(c.power_source(), Some(HostPowerSource::Model));
    let why = c.power_source_reason();
    assert!(
        why.contains("intel-rapl:1") && why.contains("energy_uj"),
        "{why}"
    );
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.source, HostPowerSource::Model);
    assert_eq!(h.energy_counter, None);
}

#[test]
fn model_mode_ignores_a_readable_rapl_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    let mut c = HostCollector::new(config(root, HostPowerMode::Model));
    assert_eq!(c.power_source(), Some(HostPowerSource::Model));
    set_energy(root, "intel-rapl:0", 50_000_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.source, HostPowerSource::Model);
    assert_eq!(h.energy_counter, None);
    // Even a broken tree does not matter to it.
    fs::remove_dir_all(root.join("intel-rapl:0")).unwrap();
    assert_eq!(sample_host(&mut c).unwrap().source, HostPowerSource::Model);
}

#[test]
fn rapl_mode_starts_counting_once_rapl_appears() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("powercap");
    let mut c = HostCollector::new(config(&root, HostPowerMode::Rapl));
    assert_eq!(c.power_source(), None);
    assert!(matches!(sample_err(&mut c), SampleError::Failed(_)));

    fs::create_dir(&root).unwrap();
    two_package_tree(&root);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(c.power_source(), Some(HostPowerSource::Rapl));
    assert_eq!(
        (h.source, h.energy_counter, h.power),
        (HostPowerSource::Rapl, Some(Joules(0.0)), None)
    );
    set_energy(&root, "intel-rapl:1", 5_000_000 + 125_000);
    assert_eq!(
        sample_host(&mut c).unwrap().energy_counter,
        Some(Joules(0.125))
    );
}

/// A RAPL register that restarts (a package reset, a driver reload) is not
/// read as a wrap of ~262 kJ: the running total restarts from 0 (the engine
/// counts a host counter reset) and no power is derived for that interval.
#[test]
fn a_counter_reset_is_not_read_as_a_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    let mut c = HostCollector::new(config(root, HostPowerMode::Rapl));
    sample_host(&mut c).unwrap();
    set_energy(root, "intel-rapl:0", 1_000_000 + 3_000_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(3.0)));
    // Package 0 restarts from almost zero.
    set_energy(root, "intel-rapl:0", 10);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(0.0)), "{h:?}");
    assert_eq!(h.power, None, "no power derived from a reset");
    // Then measured normally again, from the new baseline.
    set_energy(root, "intel-rapl:0", 10 + 2_000_000);
    let h = sample_host(&mut c).unwrap();
    assert_eq!(h.energy_counter, Some(Joules(2.0)));
    assert!(h.power.is_some_and(|p| p.0 < 1e6));
}
