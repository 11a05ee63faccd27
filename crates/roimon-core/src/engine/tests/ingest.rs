//! Tests of a tick: energy, pricing, PUE, fixed costs, gaps, collector
//! failures, resumes and the host's gauges.

use super::*;

#[test]
fn rows_carry_gpu_and_host_energy_and_the_priced_seconds() {
    let mut e = Engine::new(cfg(ShareKey::Energy), None);
    e.ingest(
        tick(0.0),
        &report(vec![
            gpu("GPU-a", Some(1000.0), 300.0),
            gpu("GPU-b", Some(0.0), 100.0),
            host(0.0),
        ]),
    );
    e.ingest(
        tick(4.0),
        &report(vec![
            gpu("GPU-a", Some(4000.0), 300.0),
            gpu("GPU-b", Some(1000.0), 100.0),
            host(1000.0),
        ]),
    );
    let c = e.counters();
    let a = only_row(c, "GPU-a");
    assert_eq!(a.gpu_energy_joules.total(), 3000.0);
    // By energy: 3/4 of the host's 1000 J.
    assert!((a.host_energy_joules.total() - 750.0).abs() < 1e-9);
    let host_rows: f64 = c.rows.values().map(|r| r.host_energy_joules.total()).sum();
    assert!((host_rows - 1000.0).abs() < 1e-9);
    // A static price covers every second.
    assert_eq!(c.priced_seconds["source"].total(), 4.0);
    assert!(!c.priced_seconds.contains_key("fallback"));
}

#[test]
fn energy_cost_pue_and_attribution_exact() {
    let mut e = Engine::new(cfg(ShareKey::Energy), None);
    e.ingest(
        tick(0.0),
        &report(vec![
            gpu("GPU-a", Some(1000.0), 300.0),
            gpu("GPU-b", Some(0.0), 100.0),
            host(0.0),
        ]),
    );
    // 4 s later: GPU-a used 3000 J, GPU-b 1000 J, host 1000 J.
    e.ingest(
        tick(4.0),
        &report(vec![
            gpu("GPU-a", Some(4000.0), 300.0),
            gpu("GPU-b", Some(1000.0), 100.0),
            host(1000.0),
        ]),
    );
    let c = e.counters();
    assert_eq!(c.gpu_energy_joules["GPU-a"].total(), 3000.0);
    assert_eq!(c.host_energy_joules[&HostPowerSource::Rapl].total(), 1000.0);
    assert!((c.facility_energy_joules.total() - 5000.0 * 1.5).abs() < 1e-9);
    // Energy cost: 7500 J = 7500/3.6e6 kWh at 0.20.
    let energy_cost = 7500.0 / 3.6e6 * 0.20;
    assert!((c.cost[&Component::Energy].total() - energy_cost).abs() < 1e-15);
    assert!((c.cost[&Component::Capex].total() - 0.04).abs() < 1e-12);
    // By energy: GPU-a gets 3/4 of the host share and of fixed costs.
    let a = &only_row(c, "GPU-a").cost;
    let a_energy = (3000.0 * 1.5 + 0.75 * 1000.0 * 1.5) / 3.6e6 * 0.20;
    assert!((a[&Component::Energy].total() - a_energy).abs() < 1e-15);
    assert!((a[&Component::Capex].total() - 0.03).abs() < 1e-12);
    // Attribution sums to the node total.
    let gpus: f64 = c.rows.values().map(|r| total(&r.cost)).sum();
    assert!((gpus - total(&c.cost)).abs() < 1e-12);
    // Owners: configured and unallocated.
    let s = e.snapshot();
    assert_eq!(s.gpus["GPU-a"].owner.team, "search");
    assert_eq!(s.gpus["GPU-b"].owner, Owner::unallocated());
    assert!((s.cost_rate_per_sec[&Component::Capex] - 0.01).abs() < 1e-12);
    assert!((s.facility_power_watts - 1875.0).abs() < 1e-9);
}

#[test]
fn no_gpu_node_books_everything_to_none() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    e.ingest(tick(0.0), &report(vec![host(0.0)]));
    e.ingest(tick(2.0), &report(vec![host(200.0)]));
    let c = e.counters();
    let keys: Vec<_> = c.rows.keys().collect();
    assert_eq!(keys, vec![&RowKey::new(NO_GPU, &Owner::unallocated())]);
    assert!((total(&only_row(c, NO_GPU).cost) - total(&c.cost)).abs() < 1e-15);
}

#[test]
fn lost_gpu_counts_unaccounted_time_and_recovers() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
    e.ingest(tick(1.0), &report(vec![gpu("GPU-a", Some(100.0), 100.0)]));
    let fault = || Reading::DeviceFault {
        device: "GPU-a".into(),
        message: "GPU is lost".into(),
    };
    for s in 2..=10 {
        e.ingest(tick(f64::from(s)), &report(vec![fault()]));
    }
    assert_eq!(e.counters().collector_errors["nvml"], 9);
    let s = e.snapshot();
    assert!(!s.gpus["GPU-a"].present);
    assert!(!s.collectors["nvml"].up);
    // Lost since t=1; counted once past the 5 s gap threshold: up to t=10.
    assert!((e.counters().unaccounted_seconds["GPU-a"].total() - 9.0).abs() < 1e-9);
    // Back at t=11 with a counter that moved a lot: not filled in.
    e.ingest(tick(11.0), &report(vec![gpu("GPU-a", Some(5000.0), 100.0)]));
    assert!((e.counters().unaccounted_seconds["GPU-a"].total() - 10.0).abs() < 1e-9);
    assert_eq!(e.counters().gpu_energy_joules["GPU-a"].total(), 100.0);
    e.ingest(tick(12.0), &report(vec![gpu("GPU-a", Some(5100.0), 100.0)]));
    assert_eq!(e.counters().gpu_energy_joules["GPU-a"].total(), 200.0);
    assert!(e.snapshot().collectors["nvml"].up);
}

#[test]
fn failed_collector_counts_errors_and_fixed_costs_continue() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    e.register_collector("nvml");
    assert!(!e.ready());
    let failed = vec![Report {
        collector: "nvml",
        outcome: Err(SampleError::Failed("boom".into())),
    }];
    e.ingest(tick(0.0), &failed);
    e.ingest(tick(4.0), &failed);
    assert_eq!(e.counters().collector_errors["nvml"], 2);
    assert!((e.counters().cost[&Component::Capex].total() - 0.04).abs() < 1e-12);
    assert!(!e.ready());
    e.ingest(tick(5.0), &report(vec![]));
    assert!(e.ready());
}

#[test]
fn resume_continues_counters_and_accrues_downtime_fixed_costs() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
    e.ingest(tick(4.0), &report(vec![gpu("GPU-a", Some(1000.0), 100.0)]));
    let saved = e.counters().clone();
    // Restart 100 s later, driver counter reset to a small value.
    let mut e2 = Engine::new(cfg(ShareKey::Equal), Some(saved));
    let later = Tick {
        wall: t0() + Duration::seconds(104),
        mono: 0.0,
    };
    e2.ingest(later, &report(vec![gpu("GPU-a", Some(5.0), 100.0)]));
    assert_eq!(e2.counters().gpu_energy_joules["GPU-a"].total(), 1000.0);
    assert!((e2.counters().cost[&Component::Capex].total() - 1.04).abs() < 1e-9);
    // The 100 s of downtime are visible as unaccounted time for the GPU.
    assert!((e2.counters().unaccounted_seconds["GPU-a"].total() - 100.0).abs() < 1e-9);

    // A restart where NVML has not come up yet: the known GPU keeps the
    // fixed costs, nothing lands on the `none` row.
    let saved = e2.counters().clone();
    let mut e3 = Engine::new(cfg(ShareKey::Equal), Some(saved));
    e3.ingest(
        Tick {
            wall: t0() + Duration::seconds(110),
            mono: 0.0,
        },
        &[Report {
            collector: "nvml",
            outcome: Err(SampleError::Failed("not yet".into())),
        }],
    );
    assert!(!e3.counters().rows.keys().any(|k| k.gpu_uuid == NO_GPU));
    assert!((only_row(e3.counters(), "GPU-a").cost[&Component::Capex].total() - 1.10).abs() < 1e-9);
}

#[test]
fn negative_price_becomes_credit_not_a_falling_counter() {
    let mut c = cfg(ShareKey::Equal);
    c.tariff = Tariff::Slots {
        slots: vec![crate::price::Slot {
            start: t0(),
            end: t0() + Duration::hours(1),
            price: PricePerKwh(-0.10),
        }],
        fallback: PricePerKwh(0.2),
        last_known: false,
    };
    c.fixed = FixedCosts::default();
    c.max_gap = Seconds(1000.0);
    let mut e = Engine::new(c, None);
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
    e.ingest(
        tick(400.0),
        &report(vec![gpu("GPU-a", Some(3.6e6), 9000.0)]),
    );
    let c = e.counters();
    assert!(
        c.cost
            .get(&Component::Energy)
            .is_none_or(|a| a.total() == 0.0)
    );
    assert!((c.credit[&Component::Energy].total() - 0.15).abs() < 1e-12);
}

#[test]
fn a_new_schedule_prices_from_the_next_tick_and_the_snapshot_says_what_it_rests_on() {
    let mut c = cfg(ShareKey::Equal);
    c.fixed = FixedCosts::default();
    c.pue = 1.0;
    c.max_gap = Seconds(10_000.0);
    let mut e = Engine::new(c, None);
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 3600.0)]));
    // 1 kWh at the static 0.20.
    e.ingest(
        tick(1000.0),
        &report(vec![gpu("GPU-a", Some(3.6e6), 3600.0)]),
    );
    // A fetched schedule: 0.50 for the first 20 s after t0, nothing after.
    e.set_tariff(
        Tariff::Slots {
            slots: vec![crate::price::Slot {
                start: t0(),
                end: t0() + Duration::seconds(2000),
                price: PricePerKwh(0.50),
            }],
            fallback: PricePerKwh(0.30),
            last_known: false,
        },
        Some(t0() - Duration::seconds(100)),
    );
    e.note_source("price", true);
    // 1000 s..3000 s: 1 kWh, half in the slot (0.50), half after it (fallback 0.30).
    e.ingest(
        tick(3000.0),
        &report(vec![gpu("GPU-a", Some(7.2e6), 3600.0)]),
    );
    let energy = e.counters().cost[&Component::Energy].total();
    assert!((energy - (0.20 + 0.25 + 0.15)).abs() < 1e-12, "{energy}");
    let snap = e.snapshot();
    assert_eq!(snap.price.basis, Basis::Fallback);
    assert!(snap.price.fallback);
    assert_eq!(snap.price.price_per_kwh, 0.30);
    assert_eq!(snap.price.age_seconds, 3100.0);
    assert_eq!(snap.price.known_until, Some(t0() + Duration::seconds(2000)));
    // A failing feed counts errors without blocking readiness.
    e.note_source("price", false);
    e.note_source("price", false);
    assert_eq!(e.counters().collector_errors["price"], 2);
    assert!(!e.snapshot().collectors["price"].up);
    assert!(e.ready());
}

#[test]
fn emissions_follow_facility_energy_and_are_attributed_like_cost() {
    let mut c = cfg(ShareKey::Energy);
    c.fixed = FixedCosts::default();
    c.max_gap = Seconds(10_000.0);
    let mut e = Engine::new(c, None);
    // 300 g/kWh for the first 1000 s, then 600 g/kWh; 50 EUR per tonne.
    e.set_carbon(Some(Carbon {
        intensity: Tariff::Slots {
            slots: vec![
                crate::price::Slot {
                    start: t0(),
                    end: t0() + Duration::seconds(1000),
                    price: PricePerKwh(300.0),
                },
                crate::price::Slot {
                    start: t0() + Duration::seconds(1000),
                    end: t0() + Duration::hours(1),
                    price: PricePerKwh(600.0),
                },
            ],
            fallback: PricePerKwh(0.0),
            last_known: true,
        },
        price_per_tonne: 50.0,
        source: "test".into(),
        fetched_at: Some(t0()),
    }));
    e.ingest(
        tick(0.0),
        &report(vec![
            gpu("GPU-a", Some(0.0), 1e5),
            gpu("GPU-b", Some(0.0), 1e5),
            host(0.0),
        ]),
    );
    // 2000 s: GPU-a 2.4e6 J, GPU-b 1.2e6 J, host 0.4e6 J; × PUE 1.5 = 6e6 J
    // facility = 5/3 kWh, half at 300 g and half at 600 g → 750 g.
    e.ingest(
        tick(2000.0),
        &report(vec![
            gpu("GPU-a", Some(2.4e6), 1e5),
            gpu("GPU-b", Some(1.2e6), 1e5),
            host(0.4e6),
        ]),
    );
    let k = e.counters();
    let total = k.emissions_grams.total();
    assert!((total - 750.0).abs() < 1e-9, "{total}");
    let by_gpu: f64 = k.rows.values().map(|r| r.emissions_grams.total()).sum();
    assert!((by_gpu - total).abs() < 1e-9);
    // GPU-a: its own 3.6e6 J facility + 2/3 of the host's 0.6e6 J = 4e6 J = 500 g.
    assert!((only_row(k, "GPU-a").emissions_grams.total() - 500.0).abs() < 1e-9);
    // Carbon cost: 750 g × 50 EUR/t = 0.0375 EUR, on the node and the rows.
    let carbon = k.cost[&Component::Carbon].total();
    assert!((carbon - 0.0375).abs() < 1e-12, "{carbon}");
    let rows: f64 = k
        .rows
        .values()
        .filter_map(|r| r.cost.get(&Component::Carbon))
        .map(|a| a.total())
        .sum();
    assert!((rows - carbon).abs() < 1e-12);
    let v = e.snapshot().carbon.unwrap();
    assert_eq!(v.grams_per_kwh, 600.0);
    assert_eq!(v.basis, Basis::Source);
    assert_eq!(v.age_seconds, 2000.0);
}

#[test]
fn power_and_rates_after_a_short_failure_cover_the_span_not_one_tick() {
    let mut c = cfg(ShareKey::Equal);
    c.max_gap = Seconds(10.0);
    let mut e = Engine::new(c, None);
    e.ingest(
        tick(0.0),
        &report(vec![gpu("GPU-a", Some(0.0), 100.0), host(0.0)]),
    );
    e.ingest(
        tick(1.0),
        &report(vec![gpu("GPU-a", Some(100.0), 100.0), host(100.0)]),
    );
    let failed = vec![Report {
        collector: "nvml",
        outcome: Err(SampleError::Failed("timeout".into())),
    }];
    e.ingest(tick(2.0), &failed);
    e.ingest(tick(3.0), &failed);
    // Back at 4 s: 300 J over the 3 s since the last reading (100 W).
    e.ingest(
        tick(4.0),
        &report(vec![gpu("GPU-a", Some(400.0), 100.0), host(400.0)]),
    );
    let s = e.snapshot();
    // (100 W GPU + 100 W host) × PUE 1.5, not 3 s of energy over 1 s.
    assert!(
        (s.facility_power_watts - 300.0).abs() < 1e-9,
        "{}",
        s.facility_power_watts
    );
    let energy_rate = 300.0 / 3.6e6 * 0.20;
    assert!((s.cost_rate_per_sec[&Component::Energy] - energy_rate).abs() < 1e-15);
    assert!((s.cost_rate_per_sec[&Component::Capex] - 0.01).abs() < 1e-15);
}

#[test]
fn host_gauges_clear_while_the_host_collector_fails() {
    let mut e = Engine::new(cfg(ShareKey::Equal), None);
    let host_report = |r: Result<Vec<Reading>, SampleError>| {
        vec![Report {
            collector: "host",
            outcome: r,
        }]
    };
    e.ingest(tick(0.0), &host_report(Ok(vec![host(0.0)])));
    assert!(e.snapshot().host.is_some());
    e.ingest(
        tick(1.0),
        &host_report(Err(SampleError::Failed("sysfs gone".into()))),
    );
    assert_eq!(e.snapshot().host, None);
    e.ingest(tick(2.0), &host_report(Ok(vec![host(100.0)])));
    assert!(e.snapshot().host.is_some());
}

#[test]
fn a_host_counter_reset_is_counted_and_its_derived_power_is_not_booked() {
    let mut c = cfg(ShareKey::Equal);
    c.fixed = FixedCosts::default();
    let mut e = Engine::new(c, None);
    let rapl = |counter: f64, watts: f64| {
        Reading::Host(HostReading {
            cpu_utilization: Some(0.25),
            memory_used_bytes: Some(1 << 30),
            source: HostPowerSource::Rapl,
            power: Some(Watts(watts)),
            energy_counter: Some(Joules(counter)),
        })
    };
    let hr = |r: Reading| {
        vec![Report {
            collector: "host",
            outcome: Ok(vec![r]),
        }]
    };
    e.ingest(tick(0.0), &hr(rapl(1000.0, 100.0)));
    e.ingest(tick(1.0), &hr(rapl(1100.0, 100.0)));
    // A reset read as a wrap: the collector derives ~131 kW from it.
    e.ingest(tick(2.0), &hr(rapl(131_072.0 + 1100.0, 131_072.0)));
    let c = e.counters();
    assert_eq!(c.host_counter_resets[&HostPowerSource::Rapl], 1);
    assert_eq!(c.host_energy_joules[&HostPowerSource::Rapl].total(), 100.0);
    assert!((c.unaccounted_seconds["host"].total() - 1.0).abs() < 1e-12);
}

#[test]
fn owners_that_match_no_gpu_are_listed_once_gpus_are_seen() {
    let mut c = cfg(ShareKey::Equal);
    c.owners.insert("gpu-A".into(), Owner::unallocated());
    let mut e = Engine::new(c, None);
    assert!(e.snapshot().unmatched_owners.is_empty(), "nothing seen yet");
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 1.0)]));
    assert_eq!(e.snapshot().unmatched_owners, vec!["gpu-A".to_string()]);
}

#[test]
fn the_gpus_cost_rates_add_up_to_the_node_rate_by_their_share() {
    let mut e = Engine::new(cfg(ShareKey::Energy), None);
    e.ingest(
        tick(0.0),
        &report(vec![
            gpu("GPU-a", Some(1000.0), 300.0),
            gpu("GPU-b", Some(0.0), 100.0),
            host(0.0),
        ]),
    );
    e.ingest(
        tick(4.0),
        &report(vec![
            gpu("GPU-a", Some(4000.0), 300.0),
            gpu("GPU-b", Some(1000.0), 100.0),
            host(1000.0),
        ]),
    );
    let s = e.snapshot();
    let node: f64 = s.cost_rate_per_sec.values().sum();
    let gpus: f64 = s.gpu_cost_rate_per_sec.values().sum();
    assert!(node > 0.0);
    assert!((gpus - node).abs() < 1e-15, "{gpus} vs {node}");
    // GPU-a: its own 3000 J and 3/4 of the host's 1000 J over 4 s, and 3/4
    // of the fixed costs' 0.013/s.
    let a = (3000.0 * 1.5 + 0.75 * 1000.0 * 1.5) / 3.6e6 * 0.20 / 4.0 + 0.75 * 0.013;
    assert!((s.gpu_cost_rate_per_sec["GPU-a"] - a).abs() < 1e-15);
}
