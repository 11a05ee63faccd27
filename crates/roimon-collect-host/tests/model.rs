//! Without RAPL: the Auto fallback to the linear CPU model, Rapl mode failing
//! (counted as an error), and the CPU/memory figures every host reading carries.

mod common;

use common::*;
use roimon_collect_host::{HostCollector, HostConfig, HostPowerMode};
use roimon_core::{Collector, HostPowerSource, SampleError, Watts};
use std::time::Duration;

/// Longer than sysinfo's minimum CPU refresh interval (200 ms on Linux).
const CPU_INTERVAL: Duration = Duration::from_millis(250);

fn assert_model_reading(c: &mut HostCollector, cfg: &HostConfig) {
    std::thread::sleep(CPU_INTERVAL);
    let h = sample_host(c).unwrap();
    assert_eq!(h.source, HostPowerSource::Model);
    assert_eq!(h.energy_counter, None);
    let u = h
        .cpu_utilization
        .expect("a ≥ 200 ms CPU interval was measured");
    assert!((0.0..=1.0).contains(&u), "{u}");
    let p = h.power.expect("model power").0;
    let want = cfg.idle_watts + (cfg.max_watts - cfg.idle_watts) * u;
    assert!((p - want).abs() < 1e-9, "{p} vs {want}");
    assert!((cfg.idle_watts..=cfg.max_watts).contains(&p), "{p}");
}

#[test]
fn auto_on_a_nonexistent_root_falls_back_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir.path().join("no-powercap-here"), HostPowerMode::Auto);
    let mut c = HostCollector::new(cfg.clone());
    assert_eq!(c.name(), "host");
    assert_eq!(c.power_source(), Some(HostPowerSource::Model));
    assert!(
        c.power_source_reason().contains("no-powercap-here"),
        "{}",
        c.power_source_reason()
    );
    assert_model_reading(&mut c, &cfg);
    assert_model_reading(&mut c, &cfg);
}

#[test]
fn auto_on_an_empty_root_falls_back_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    // Only non-package zones: nothing to sum.
    zone(dir.path(), "intel-rapl:0", "psys", 0, MAX_RANGE);
    let cfg = config(dir.path(), HostPowerMode::Auto);
    let mut c = HostCollector::new(cfg.clone());
    assert_eq!(c.power_source(), Some(HostPowerSource::Model));
    assert!(
        c.power_source_reason()
            .contains("no top-level RAPL package zones"),
        "{}",
        c.power_source_reason()
    );
    assert_model_reading(&mut c, &cfg);
}

#[test]
fn rapl_mode_on_a_nonexistent_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = HostCollector::new(config(&dir.path().join("nope"), HostPowerMode::Rapl));
    assert_eq!(c.power_source(), None);
    for _ in 0..2 {
        match sample_err(&mut c) {
            SampleError::Failed(m) => assert!(m.contains("nope"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn memory_is_reported_and_an_immediate_first_sample_has_no_cpu_figure() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = HostCollector::new(config(&dir.path().join("nope"), HostPowerMode::Model));
    let h = sample_host(&mut c).unwrap();
    assert!(h.memory_used_bytes.is_some_and(|m| m > 0), "{h:?}");
    // No CPU interval of ≥ 200 ms measured yet: no utilisation, so no model power.
    assert_eq!(h.cpu_utilization, None);
    assert_eq!(h.power, None);
}

#[test]
fn model_power_is_linear_and_clamped() {
    let cfg = HostConfig::default();
    assert_eq!(cfg.rapl_root, std::path::Path::new("/sys/class/powercap"));
    assert_eq!(cfg.power, HostPowerMode::Auto);
    assert_eq!(cfg.model_power(0.0), Watts(100.0));
    assert_eq!(cfg.model_power(0.5), Watts(250.0));
    assert_eq!(cfg.model_power(1.0), Watts(400.0));
    assert_eq!(cfg.model_power(1.7), Watts(400.0));
    assert_eq!(cfg.model_power(-0.2), Watts(100.0));
    assert_eq!(cfg.model_power(f64::NAN), Watts(100.0));
}
