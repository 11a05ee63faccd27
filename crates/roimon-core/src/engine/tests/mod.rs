//! The engine's tests, by what they exercise; this file holds the
//! fixtures they share (a configuration, ticks, readings, row checks).

use super::*;
use crate::cost::Component;
use crate::price::Basis;
use crate::reading::HostPowerSource;
use crate::reading::{GpuReading, Reading, SampleError};
use crate::units::{Accumulator, Joules};
use crate::units::{PricePerKwh, Watts};
use chrono::Duration;
use chrono::TimeZone;
use proptest::prelude::*;

fn cfg(share_key: ShareKey) -> EngineConfig {
    let mut owners = HashMap::new();
    owners.insert(
        "GPU-a".to_string(),
        Owner {
            team: "search".into(),
            workload: "llm".into(),
        },
    );
    EngineConfig {
        currency: "EUR".into(),
        pue: 1.5,
        tariff: Tariff::Static(PricePerKwh(0.20)),
        price_source: "static".into(),
        fixed: FixedCosts {
            capex_per_sec: 0.01,
            maintenance_per_sec: 0.002,
            staff_per_sec: 0.001,
        },
        share_key,
        owners,
        max_gap: Seconds(5.0),
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

fn tick(s: f64) -> Tick {
    Tick {
        wall: t0() + Duration::milliseconds((s * 1000.0) as i64),
        mono: s,
    }
}

fn gpu(uuid: &str, counter_j: Option<f64>, power: f64) -> Reading {
    Reading::Gpu(GpuReading {
        index: 0,
        uuid: uuid.into(),
        name: "Test GPU".into(),
        power: Some(Watts(power)),
        energy_counter: counter_j.map(Joules),
        utilization: Some(0.5),
        memory_used_bytes: Some(1),
        memory_total_bytes: Some(2),
        temperature_celsius: Some(50.0),
        power_limit: Some(Watts(700.0)),
        processes: None,
    })
}

fn host(counter_j: f64) -> Reading {
    Reading::Host(HostReading {
        cpu_utilization: Some(0.25),
        memory_used_bytes: Some(1 << 30),
        source: HostPowerSource::Rapl,
        power: Some(Watts(100.0)),
        energy_counter: Some(Joules(counter_j)),
    })
}

fn report(readings: Vec<Reading>) -> Vec<Report> {
    vec![Report {
        collector: "nvml",
        outcome: Ok(readings),
    }]
}

/// The one row of `uuid` (tests that do not change owners).
fn only_row<'a>(c: &'a Counters, uuid: &str) -> &'a Row {
    let mut it = c.rows.iter().filter(|(k, _)| k.gpu_uuid == uuid);
    let (_, r) = it.next().expect("a row for the GPU");
    assert!(it.next().is_none(), "one row per GPU without owner changes");
    r
}

fn total(m: &BTreeMap<Component, Accumulator>) -> f64 {
    m.values().map(|a| a.total()).sum()
}

fn with_owner(mut c: EngineConfig, uuid: &str, team: &str) -> EngineConfig {
    c.owners.insert(
        uuid.to_string(),
        Owner {
            team: team.into(),
            workload: "w".into(),
        },
    );
    c
}

/// Σ over rows of every attributed figure equals the node's.
fn assert_rows_add_up(c: &Counters) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12);
    for comp in Component::ALL {
        let node = c.cost.get(&comp).map_or(0.0, Accumulator::total);
        let rows: f64 = c
            .rows
            .values()
            .filter_map(|r| r.cost.get(&comp))
            .map(Accumulator::total)
            .sum();
        assert!(close(node, rows), "{comp:?}: node {node} rows {rows}");
        let node = c.credit.get(&comp).map_or(0.0, Accumulator::total);
        let rows: f64 = c
            .rows
            .values()
            .filter_map(|r| r.credit.get(&comp))
            .map(Accumulator::total)
            .sum();
        assert!(
            close(node, rows),
            "credit {comp:?}: node {node} rows {rows}"
        );
    }
    let rows: f64 = c
        .rows
        .values()
        .map(|r| r.facility_energy_joules.total())
        .sum();
    assert!(close(c.facility_energy_joules.total(), rows));
}

fn share(team: &str, share: f64, rule: &str) -> OwnerShare {
    OwnerShare {
        owner: Owner {
            team: team.into(),
            workload: "w".into(),
        },
        share,
        rule: rule.into(),
    }
}

mod counters;
mod ingest;
mod owner;
mod props;
mod value;
