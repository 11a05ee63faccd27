//! The host collector failing and recovering, seen through the engine: the
//! collector is marked down and its error counted while RAPL cannot be read,
//! no energy is booked for the failed tick, and once it reads again the
//! energy across the gap is booked once, and the collector is up again.

mod common;

use common::*;
use roimon_collect_host::{HostCollector, HostPowerMode};
use roimon_core::{
    Collector, Engine, EngineConfig, FixedCosts, HostPowerSource, PricePerKwh, Report, Seconds,
    ShareKey, Snapshot, Tariff, Tick,
};
use std::fs;

fn engine() -> Engine {
    let cfg = EngineConfig {
        currency: "EUR".into(),
        pue: 1.0,
        tariff: Tariff::Static(PricePerKwh(0.36)),
        price_source: "static".into(),
        fixed: FixedCosts {
            capex_per_sec: 0.0,
            maintenance_per_sec: 0.0,
            staff_per_sec: 0.0,
        },
        share_key: ShareKey::Equal,
        owners: Default::default(),
        max_gap: Seconds(5.0),
    };
    let mut e = Engine::new(cfg, None);
    e.register_collector("host");
    e
}

/// Sample the collector once and account it as the tick at `secs`.
fn tick(e: &mut Engine, c: &mut HostCollector, secs: i64) -> Snapshot {
    let mut out = Vec::new();
    let outcome = c.sample(&mut out).map(|()| out);
    let wall = chrono::DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap();
    e.ingest(
        Tick {
            wall,
            mono: secs as f64,
        },
        &[Report {
            collector: "host",
            outcome,
        }],
    );
    e.snapshot()
}

/// (up, errors, RAPL host joules) as the exporter would publish them.
fn host_state(s: &Snapshot) -> (bool, u64, f64) {
    (
        s.collectors["host"].up,
        s.counters
            .collector_errors
            .get("host")
            .copied()
            .unwrap_or(0),
        s.counters
            .host_energy_joules
            .get(&HostPowerSource::Rapl)
            .map_or(0.0, |a| a.total()),
    )
}

#[test]
fn a_failing_host_collector_is_down_counted_and_recovers_without_losing_energy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    two_package_tree(root);
    let mut c = HostCollector::new(config(root, HostPowerMode::Auto));
    let mut e = engine();

    // Baseline, then 2 J on package 0 over one second.
    assert_eq!(host_state(&tick(&mut e, &mut c, 0)), (true, 0, 0.0));
    set_energy(root, "intel-rapl:0", 3_000_000);
    let s = tick(&mut e, &mut c, 1);
    assert_eq!(host_state(&s), (true, 0, 2.0));
    let h = s.host.as_ref().expect("a host reading");
    assert_eq!(h.source, HostPowerSource::Rapl);
    assert_eq!(h.energy_counter.map(|j| j.0), Some(2.0));

    // Package 1 unreadable for two ticks: down, one error per failed sample,
    // no energy booked (package 0 still advances meanwhile).
    fs::write(root.join("intel-rapl:1/energy_uj"), "garbage\n").unwrap();
    set_energy(root, "intel-rapl:0", 4_000_000);
    assert_eq!(host_state(&tick(&mut e, &mut c, 2)), (false, 1, 2.0));
    assert_eq!(host_state(&tick(&mut e, &mut c, 3)), (false, 2, 2.0));

    // Readable again: up, the error count stays, and the 1 J + 0.5 J drawn
    // across the gap is booked once, priced once (0.36 per kWh = 1e-7 per J).
    set_energy(root, "intel-rapl:1", 5_000_000 + 500_000);
    let s = tick(&mut e, &mut c, 4);
    assert_eq!(host_state(&s), (true, 2, 3.5));
    assert_eq!(
        s.host.as_ref().unwrap().energy_counter.map(|j| j.0),
        Some(3.5)
    );
    let cost: f64 = s.counters.cost.values().map(|a| a.total()).sum();
    assert!((cost - 3.5e-7).abs() < 1e-15, "{cost}");
    assert_eq!(
        s.counters
            .unaccounted_seconds
            .get("host")
            .map(|a| a.total()),
        None,
        "a 3 s interval is within max_gap: covered, not unaccounted"
    );

    // And it stays up on the next ordinary sample.
    set_energy(root, "intel-rapl:0", 4_250_000);
    assert_eq!(host_state(&tick(&mut e, &mut c, 5)), (true, 2, 3.75));
}

#[test]
fn rapl_mode_without_rapl_is_down_and_counted_until_rapl_appears() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("powercap");
    let mut c = HostCollector::new(config(&root, HostPowerMode::Rapl));
    let mut e = engine();
    assert_eq!(host_state(&tick(&mut e, &mut c, 0)), (false, 1, 0.0));
    let s = tick(&mut e, &mut c, 1);
    assert_eq!(host_state(&s), (false, 2, 0.0));
    assert!(s.host.is_none(), "no reading to show: {:?}", s.host);

    fs::create_dir(&root).unwrap();
    two_package_tree(&root);
    // First readable sample: a baseline, no energy yet.
    assert_eq!(host_state(&tick(&mut e, &mut c, 2)), (true, 2, 0.0));
    set_energy(&root, "intel-rapl:1", 5_000_000 + 125_000);
    assert_eq!(host_state(&tick(&mut e, &mut c, 3)), (true, 2, 0.125));
}
