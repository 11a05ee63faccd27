//! Property tests: rows add up to the node totals whatever owners,
//! prices and restarts do.

use super::*;

fn shares_strategy() -> impl Strategy<Value = Vec<(u8, f64)>> {
    proptest::collection::vec((0u8..4, 0.0f64..1.0), 0..4)
}

proptest! {
    #[test]
    fn owners_by_process_changing_every_tick_keep_rows_adding_up(
        steps in proptest::collection::vec((0.1f64..3.0, 0.0f64..800.0, shares_strategy(), shares_strategy(), any::<bool>()), 1..40)
    ) {
        let teams = ["a", "b", "c", "idle"];
        let mut e = Engine::new(cfg(ShareKey::Energy), None);
        let (mut t, mut counter, mut host_j) = (0.0, 0.0, 0.0);
        e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), 1.0), gpu("GPU-b", None, 1.0), host(0.0)]));
        let mut prev = e.counters().clone();
        for (dt, watts, sa, sb, negative) in steps {
            let to = |v: &[(u8, f64)]| v.iter().map(|(i, w)| share(teams[usize::from(*i)], *w, "rule:x")).collect::<Vec<_>>();
            e.set_attribution("GPU-a", to(&sa));
            e.set_attribution("GPU-b", to(&sb));
            if negative { e.set_tariff(Tariff::Static(PricePerKwh(-0.05)), None); } else { e.set_tariff(Tariff::Static(PricePerKwh(0.2)), None); }
            t += dt; counter += watts * dt; host_j += 50.0 * dt;
            e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), watts), gpu("GPU-b", None, watts / 3.0), host(host_j)]));
            let c = e.counters();
            assert_rows_add_up(c);
            prop_assert_eq!(c.validate(t0() + Duration::days(1)), Ok(()));
            let node_d = total(&c.cost) - total(&prev.cost);
            let rows_d: f64 = c.rows.iter().map(|(k, r)| r.cost_total() - prev.rows.get(k).map_or(0.0, Row::cost_total)).sum();
            prop_assert!((node_d - rows_d).abs() <= 1e-9 * node_d.abs().max(1e-9), "node {node_d} rows {rows_d}");
            for (k, r) in &prev.rows {
                prop_assert!(c.rows[k].cost_total() >= r.cost_total());
            }
            prev = c.clone();
        }
    }
}

#[derive(Debug, Clone)]
enum Life {
    Run {
        dt: f64,
        watts: f64,
    },
    /// Stop for `down` seconds and restart with GPU-a owned by `team`,
    /// GPU-b present or not, and a price that may be negative.
    Restart {
        down: f64,
        team: u8,
        b_present: bool,
    },
    NegativePrice,
}

fn life() -> impl Strategy<Value = Life> {
    prop_oneof![
        6 => (0.1f64..3.0, 0.0f64..2000.0).prop_map(|(dt, watts)| Life::Run { dt, watts }),
        2 => (0.0f64..100.0, 0u8..3, any::<bool>()).prop_map(|(down, team, b_present)| Life::Restart { down, team, b_present }),
        1 => Just(Life::NegativePrice),
    ]
}

proptest! {
    #[test]
    fn owners_changing_across_restarts_keep_every_interval_adding_up(steps in proptest::collection::vec(life(), 1..40)) {
        let teams = ["vision", "nlp", "unallocated"];
        let mk = |team: usize, negative: bool| {
            let mut c = cfg(ShareKey::Energy);
            if team < 2 { c = with_owner(c, "GPU-a", teams[team]); } else { c.owners.remove("GPU-a"); }
            if negative { c.tariff = Tariff::Static(PricePerKwh(-0.05)); }
            c
        };
        let (mut team, mut negative, mut b_present) = (0usize, false, true);
        let mut e = Engine::new(mk(team, negative), None);
        let (mut wall, mut mono, mut counter, mut host_j) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let at = |wall: f64, mono: f64| Tick { wall: t0() + Duration::microseconds((wall * 1e6) as i64), mono };
        let readings = |counter: f64, host_j: f64, b: bool, watts: f64| {
            let mut v = vec![gpu("GPU-a", Some(counter), watts), host(host_j)];
            if b { v.push(gpu("GPU-b", None, watts / 2.0)); }
            v
        };
        e.ingest(at(wall, mono), &report(readings(counter, host_j, b_present, 100.0)));
        let mut prev = e.counters().clone();
        for s in steps {
            match s {
                Life::Run { dt, watts } => {
                    wall += dt; mono += dt; counter += watts * dt; host_j += 50.0 * dt;
                    e.ingest(at(wall, mono), &report(readings(counter, host_j, b_present, watts)));
                }
                Life::Restart { down, team: t, b_present: b } => {
                    team = usize::from(t); b_present = b;
                    wall += down; mono = 0.0; counter += 10.0 * down;
                    e = Engine::new(mk(team, negative), Some(e.counters().clone()));
                    e.ingest(at(wall, mono), &report(readings(counter, host_j, b_present, 100.0)));
                }
                Life::NegativePrice => {
                    negative = !negative;
                    e = Engine::new(mk(team, negative), Some(e.counters().clone()));
                }
            }
            let c = e.counters();
            assert_rows_add_up(c);
            prop_assert_eq!(c.validate(t0() + Duration::days(1)), Ok(()));
            // Over this interval: Σ_rows Δ == Δ node, and no row shrank.
            let node_d: f64 = Component::ALL.iter().map(|k| c.cost.get(k).map_or(0.0, Accumulator::total) - prev.cost.get(k).map_or(0.0, Accumulator::total)).sum();
            let rows_d: f64 = c.rows.iter().map(|(k, r)| r.cost_total() - prev.rows.get(k).map_or(0.0, Row::cost_total)).sum();
            prop_assert!((node_d - rows_d).abs() <= 1e-9 * node_d.abs().max(1e-9), "node {node_d} rows {rows_d}");
            for (k, r) in &prev.rows {
                prop_assert!(c.rows[k].cost_total() >= r.cost_total());
                // Rows of owners not in force do not move.
                let current = k.team == teams[team] || k.gpu_uuid != "GPU-a";
                if !current { prop_assert_eq!(&c.rows[k], r); }
            }
            prev = c.clone();
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Normal { dt: f64, watts: f64 },
    Reset { dt: f64 },
    Gap { dt: f64 },
    Lost { dt: f64 },
    NoCounter { dt: f64, watts: f64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0.1f64..3.0, 0.0f64..1000.0).prop_map(|(dt, watts)| Step::Normal { dt, watts }),
        1 => (0.1f64..3.0).prop_map(|dt| Step::Reset { dt }),
        1 => (6.0f64..100.0).prop_map(|dt| Step::Gap { dt }),
        1 => (0.1f64..10.0).prop_map(|dt| Step::Lost { dt }),
        1 => (0.1f64..3.0, 0.0f64..1000.0).prop_map(|(dt, watts)| Step::NoCounter { dt, watts }),
    ]
}

proptest! {
    #[test]
    fn counters_never_go_backwards_and_attribution_adds_up(steps in proptest::collection::vec(step(), 1..60)) {
        let mut e = Engine::new(cfg(ShareKey::Energy), None);
        let mut t = 0.0;
        let mut counter = 1.0e6;
        e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), 100.0), gpu("GPU-b", None, 50.0), host(0.0)]));
        let mut prev = e.counters().clone();
        let mut host_j = 0.0;
        for s in steps {
            let readings = match s {
                Step::Normal { dt, watts } => { t += dt; counter += watts * dt; host_j += 100.0 * dt; vec![gpu("GPU-a", Some(counter), watts), gpu("GPU-b", None, watts), host(host_j)] }
                Step::Reset { dt } => { t += dt; counter = 10.0; vec![gpu("GPU-a", Some(counter), 100.0), gpu("GPU-b", None, 1.0)] }
                Step::Gap { dt } => { t += dt; counter += 500.0 * dt; vec![gpu("GPU-a", Some(counter), 500.0)] }
                Step::Lost { dt } => { t += dt; vec![Reading::DeviceFault { device: "GPU-a".into(), message: "lost".into() }] }
                Step::NoCounter { dt, watts } => { t += dt; vec![gpu("GPU-a", None, watts)] }
            };
            e.ingest(tick(t), &report(readings));
            let c = e.counters();
            for (k, v) in &c.gpu_energy_joules { prop_assert!(v.total() >= prev.gpu_energy_joules.get(k).map_or(0.0, |a| a.total())); }
            prop_assert!(c.facility_energy_joules.total() >= prev.facility_energy_joules.total());
            for comp in Component::ALL {
                let now = c.cost.get(&comp).map_or(0.0, |a| a.total());
                let before = prev.cost.get(&comp).map_or(0.0, |a| a.total());
                prop_assert!(now >= before);
            }
            for (k, v) in &c.unaccounted_seconds { prop_assert!(v.total() >= prev.unaccounted_seconds.get(k).map_or(0.0, |a| a.total())); }
            // Unaccounted time never exceeds elapsed time.
            for v in c.unaccounted_seconds.values() { prop_assert!(v.total() <= t + 1e-9); }
            let gpus: f64 = c.rows.values().map(|r| total(&r.cost)).sum();
            prop_assert!((gpus - total(&c.cost)).abs() <= 1e-9 * total(&c.cost).max(1.0));
            prev = c.clone();
        }
        // Fixed costs are exactly rate × elapsed time, whatever happened.
        prop_assert!((e.counters().cost[&Component::Capex].total() - 0.01 * t).abs() < 1e-9);
    }

    #[test]
    fn costs_over_consecutive_windows_add_up(dts in proptest::collection::vec(0.1f64..4.0, 2..40), split in 1usize..39) {
        // Cost observed at a mid-point plus cost after it equals the total.
        let mut e = Engine::new(cfg(ShareKey::Equal), None);
        let (mut t, mut counter) = (0.0, 0.0);
        e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), 200.0)]));
        let split = split.min(dts.len() - 1);
        let mut at_split = 0.0;
        for (i, dt) in dts.iter().enumerate() {
            t += dt; counter += 200.0 * dt;
            e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), 200.0)]));
            if i + 1 == split { at_split = total(&e.counters().cost); }
        }
        let whole = total(&e.counters().cost);
        let expected = 200.0 * t * 1.5 / 3.6e6 * 0.20 + (0.01 + 0.002 + 0.001) * t;
        prop_assert!((whole - expected).abs() < 1e-9 * expected.max(1.0));
        prop_assert!(at_split <= whole);
    }
}
