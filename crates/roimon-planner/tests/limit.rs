//! The time limit is honoured on a large instance: the solver returns a
//! feasible plan whose status and gap agree (optimal ⇔ gap 0).

mod common;

use common::check_feasible;
use roimon_planner::model::{Gpu, Instance, Objective, Pair, Workload};
use roimon_planner::{SolveOptions, Status, solve, to_json};
use std::collections::BTreeMap;
use std::time::Duration;

fn big() -> Instance {
    let mut x: u64 = 7;
    let mut r = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        let v = (x >> 11) as f64 / (1u64 << 53) as f64;
        v
    };
    let gpus: Vec<Gpu> = (0..8)
        .map(|g| Gpu {
            kind: format!("T{g}"),
            count: 10 + (r() * 40.0) as u32,
            cost_per_hour: 0.5 + 3.0 * r(),
            idle_watts: 30.0 + 70.0 * r(),
        })
        .collect();
    let workloads = (0..50)
        .map(|w| Workload {
            name: format!("t/w{w}"),
            demand: (1000.0 + 19000.0 * r()).round(),
            min_served: if w % 5 == 0 { 0.3 } else { 0.0 },
            value_per_million_tokens: 0.1 + 1.4 * r(),
            on: (0..8)
                .map(|g| Pair {
                    gpu: g,
                    tokens_per_second: (500.0 + 4000.0 * r()).round(),
                    joules_per_token: 0.05 + 0.5 * r(),
                })
                .collect(),
        })
        .collect();
    Instance {
        hours: 720.0,
        currency: "EUR".into(),
        objective: Objective::Profit,
        min_roi: None,
        budget: None,
        power_cap_kw: None,
        price_per_kwh: 0.25,
        pue: 1.3,
        carbon_g_per_kwh: None,
        gpus,
        workloads,
        coefficients: vec![],
        spread: BTreeMap::new(),
    }
}

#[test]
fn a_short_time_limit_returns_a_feasible_plan_with_a_consistent_gap() {
    let i = big();
    let p = solve(
        &i,
        &SolveOptions {
            time_limit: Duration::from_millis(200),
            ..SolveOptions::default()
        },
    )
    .unwrap();
    check_feasible(&i, &p.allocation, None).unwrap();
    match p.status {
        Status::Optimal => assert_eq!(p.gap, 0.0),
        Status::Feasible => assert!(p.gap > 0.0, "{}", p.gap),
    }
    assert!(p.totals.profit > 0.0);
    let j = to_json(&i, &p);
    assert_eq!(
        j["status"],
        if p.status == Status::Optimal {
            "optimal"
        } else {
            "feasible"
        }
    );
}
