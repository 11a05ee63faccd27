//! Times the allocation solve on generated instances (8 GPU types × 50
//! workloads by default, every workload on every type) and prints status,
//! gap, objective and seconds per objective: the figures of BENCHMARKS.md.
//!
//!     cargo run --release -p roimon-planner --example plan_bench -- [TYPES WORKLOADS SEEDS LIMIT_S ON_TYPES]

use roimon_planner::model::{Gpu, Instance, Objective, Pair, Workload};
use roimon_planner::{SolveOptions, solve};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A small deterministic generator (no dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        let x = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        x
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// A realistic instance: GPU types from fast and dear to slow and cheap,
/// workloads with demand from 2k to 200k tokens/s, some with floors.
pub fn generate(types: usize, workloads: usize, on_types: usize, seed: u64) -> Instance {
    let mut r = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5);
    let mut gpus = Vec::new();
    for g in 0..types {
        let speed = r.range(0.3, 3.0);
        gpus.push((
            Gpu {
                kind: format!("T{g}"),
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                count: r.range(8.0, 64.0) as u32,
                cost_per_hour: 0.6 * speed * r.range(0.7, 1.4),
                idle_watts: r.range(30.0, 100.0),
            },
            speed,
        ));
    }
    let mut wls = Vec::new();
    for w in 0..workloads {
        let size = r.range(0.5, 2.0);
        // Each workload runs on `on_types` of the types (all by default).
        let first = (r.next() * types as f64) as usize;
        let on = gpus
            .iter()
            .enumerate()
            .filter(|(g, _)| (g + types - first) % types < on_types)
            .map(|(g, (_, speed))| Pair {
                gpu: g,
                tokens_per_second: (1500.0 * speed / size * r.range(0.8, 1.2)).round(),
                joules_per_token: (0.4 * size / speed.sqrt() * r.range(0.8, 1.2) * 1000.0).round()
                    / 1000.0,
            })
            .collect();
        wls.push(Workload {
            name: format!("team{}/w{w}", w % 7),
            demand: (r.range(1000.0, 20000.0)).round(),
            min_served: if r.next() < 0.2 { 0.5 } else { 0.0 },
            value_per_million_tokens: (r.range(0.1, 1.5) * 100.0).round() / 100.0,
            on,
        });
    }
    Instance {
        hours: 720.0,
        currency: "EUR".into(),
        objective: Objective::Profit,
        min_roi: None,
        budget: None,
        power_cap_kw: None,
        price_per_kwh: 0.25,
        pue: 1.3,
        carbon_g_per_kwh: Some(350.0),
        gpus: gpus.into_iter().map(|(g, _)| g).collect(),
        workloads: wls,
        coefficients: vec![],
        spread: BTreeMap::new(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    #[allow(clippy::cast_possible_truncation)]
    let (types, workloads) = (arg(0, 8) as usize, arg(1, 50) as usize);
    let seeds = arg(2, 5);
    #[allow(clippy::cast_possible_truncation)]
    let on_types = arg(4, types as u64) as usize;
    #[allow(clippy::cast_precision_loss)]
    let limit = Duration::from_secs_f64(arg(3, 10) as f64);
    println!(
        "{types} GPU types × {workloads} workloads, each on {on_types} types, time limit {limit:?}"
    );
    for seed in 0..seeds {
        let base = generate(types, workloads, on_types, seed);
        for (name, objective, tweak) in [
            ("profit", Objective::Profit, 0),
            ("profit+limits", Objective::Profit, 1),
            ("cost", Objective::Cost, 0),
            ("roi", Objective::Roi, 0),
        ] {
            if std::env::var("ONLY").is_ok_and(|o| o != name) {
                continue;
            }
            let mut inst = base.clone();
            inst.objective = objective;
            if tweak == 1 {
                inst.budget = Some(150_000.0);
                inst.power_cap_kw = Some(60.0);
                inst.min_roi = Some(0.2);
            }
            if let Ok(dir) = std::env::var("DUMP") {
                dump(&inst, &format!("{dir}/seed{seed}-{name}.json"));
            }
            let t0 = Instant::now();
            let r = solve(
                &inst,
                &SolveOptions {
                    time_limit: limit,
                    ..SolveOptions::default()
                },
            );
            let secs = t0.elapsed().as_secs_f64();
            match r {
                Ok(p) => println!(
                    "seed {seed} {name:<14} {:?} gap {:.2e} profit {:.6} roi {:.6} cost {:.6} gpus {} in {secs:.3} s",
                    p.status,
                    p.gap,
                    p.totals.profit,
                    p.totals.roi,
                    p.totals.cost,
                    p.allocation.cells.iter().map(|c| c.gpus).sum::<u32>()
                ),
                Err(e) => println!("seed {seed} {name:<14} {e} in {secs:.3} s"),
            }
        }
    }
}

/// Writes the instance as JSON (for checking against another solver).
fn dump(i: &Instance, path: &str) {
    let j = serde_json::json!({
        "hours": i.hours, "price": i.price_per_kwh, "pue": i.pue,
        "budget": i.budget, "power_cap_kw": i.power_cap_kw, "min_roi": i.min_roi,
        "objective": format!("{:?}", i.objective).to_lowercase(),
        "gpus": i.gpus.iter().map(|g| serde_json::json!({
            "count": g.count, "cost": g.cost_per_hour, "idle": g.idle_watts})).collect::<Vec<_>>(),
        "workloads": i.workloads.iter().map(|w| serde_json::json!({
            "demand": w.demand, "min_served": w.min_served, "vpm": w.value_per_million_tokens,
            "on": w.on.iter().map(|p| serde_json::json!({
                "gpu": p.gpu, "tps": p.tokens_per_second, "jpt": p.joules_per_token})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(path, j.to_string()).expect("dump written");
}
