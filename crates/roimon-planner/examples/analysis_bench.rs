//! Timings of the analysis on the 8 GPU types × 50 workloads instance (the
//! issue's speed targets: tornado with re-optimisation ≤ 15 s, 10,000
//! Monte Carlo draws ≤ 1 s, an 11-point front ≤ 10 s). Run with
//! `cargo run --release -p roimon-planner --example analysis_bench`.

use roimon_planner::analysis::monte_carlo::{self, Options};
use roimon_planner::analysis::sensitivity::Swing;
use roimon_planner::analysis::{self};
use roimon_planner::model::{Gpu, Instance, Objective, Pair, Workload};
use roimon_planner::{SolveOptions, solve};
use std::collections::BTreeMap;
use std::time::Instant;

/// A fixed pseudo-random 8 × 50 instance (same numbers on every run).
fn instance() -> Instance {
    let mut state: u64 = 0x5EED;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        let v = (state >> 11) as f64 / (1u64 << 53) as f64;
        v
    };
    let gpus: Vec<Gpu> = (0..8)
        .map(|g| Gpu {
            kind: format!("G{g}"),
            count: 8 + (next() * 24.0) as u32,
            cost_per_hour: 0.6 + next() * 3.0,
            idle_watts: 50.0 + next() * 80.0,
        })
        .collect();
    let workloads: Vec<Workload> = (0..50)
        .map(|w| {
            let mut on = Vec::new();
            for g in 0..8 {
                if next() < 0.5 {
                    on.push(Pair {
                        gpu: g,
                        tokens_per_second: 500.0 + next() * 4000.0,
                        joules_per_token: 0.05 + next() * 0.4,
                    });
                }
            }
            if on.is_empty() {
                on.push(Pair {
                    gpu: w % 8,
                    tokens_per_second: 1500.0,
                    joules_per_token: 0.2,
                });
            }
            Workload {
                name: format!("team{}/w{w}", w % 7),
                demand: 1000.0 + next() * 12000.0,
                min_served: if next() < 0.3 { 0.3 } else { 0.0 },
                value_per_million_tokens: 0.5 + next() * 4.0,
                on,
            }
        })
        .collect();
    Instance {
        hours: 720.0,
        currency: "EUR".into(),
        objective: Objective::Profit,
        min_roi: Some(0.1),
        budget: None,
        power_cap_kw: Some(60.0),
        price_per_kwh: 0.25,
        pue: 1.3,
        carbon_g_per_kwh: Some(350.0),
        gpus,
        workloads,
        coefficients: vec![],
        spread: BTreeMap::new(),
    }
}

fn main() {
    let inst = instance();
    let opts = SolveOptions::default();
    let t = Instant::now();
    let plan = match solve(&inst, &opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("the bench instance is infeasible: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "base solve: {:.2} s ({:?}, profit {:.0} EUR, gap {:.2e}), {} threads",
        t.elapsed().as_secs_f64(),
        plan.status,
        plan.totals.profit,
        plan.gap,
        analysis::threads()
    );

    let t = Instant::now();
    let rows = analysis::sensitivity(&inst, &plan, Swing::Fixed(0.2), &opts);
    let solved = rows
        .iter()
        .flat_map(|r| [r.profit_low_reoptimised, r.profit_high_reoptimised])
        .filter(Option::is_some)
        .count();
    println!(
        "tornado with re-optimisation (7 groups × 2 solves): {:.2} s (target ≤ 15 s); widest: {}; {solved} of 14 re-solved",
        t.elapsed().as_secs_f64(),
        rows[0].parameter
    );

    let t = Instant::now();
    let m = monte_carlo::run(
        &inst,
        &plan.allocation,
        &Options {
            draws: 10_000,
            seed: 1,
            swing: 0.2,
            spread: None,
            daily_prices: None,
        },
    );
    println!(
        "Monte Carlo, 10,000 draws: {:.3} s (target ≤ 1 s); P5/P50/P95 profit {:.0}/{:.0}/{:.0} EUR",
        t.elapsed().as_secs_f64(),
        m.profit_p5,
        m.profit_p50,
        m.profit_p95
    );

    let t = Instant::now();
    match analysis::pareto(&inst, &opts, 11, Some(&plan)) {
        Ok(front) => println!(
            "Pareto front, 11 caps: {:.2} s (target ≤ 10 s); {} non-dominated points",
            t.elapsed().as_secs_f64(),
            front.len()
        ),
        Err(e) => println!("Pareto front failed: {e}"),
    }
}
