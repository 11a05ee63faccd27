//! Shared helpers of the planner's tests: an instance from TOML text with
//! every coefficient given, and the contract's constraints checked on a plan.

#![allow(dead_code)]

use roimon_planner::model::{Allocation, Instance};
use roimon_planner::{PlanFile, resolve};

/// Resolves TOML text whose coefficients are all given.
pub fn inst(toml_text: &str) -> Instance {
    let file: PlanFile = toml::from_str(toml_text).expect("test file parses");
    resolve(&file, &mut |k| Err(format!("{} not given", k.name()))).expect("test file resolves")
}

/// Relative closeness.
pub fn near(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

/// Every constraint of the contract's model holds for `a` (with a relative
/// tolerance), including the optional limits and the emissions cap.
pub fn check_feasible(
    i: &Instance,
    a: &Allocation,
    emissions_cap: Option<f64>,
) -> Result<(), String> {
    let tol = 1e-6;
    let mut used = vec![0u64; i.gpus.len()];
    let mut served = vec![0.0; i.workloads.len()];
    for c in &a.cells {
        let p = i
            .pair(c.gpu, c.workload)
            .ok_or_else(|| format!("cell on a pair not listed: {c:?}"))?;
        if c.tokens_per_second < 0.0 {
            return Err(format!("negative tokens {c:?}"));
        }
        if c.tokens_per_second > p.tokens_per_second * f64::from(c.gpus) * (1.0 + tol) + 1e-9 {
            return Err(format!("tokens above tps·n {c:?}"));
        }
        used[c.gpu] += u64::from(c.gpus);
        served[c.workload] += c.tokens_per_second;
    }
    for (g, gpu) in i.gpus.iter().enumerate() {
        if used[g] > u64::from(gpu.count) {
            return Err(format!("inventory {} exceeded", gpu.kind));
        }
    }
    for (w, wl) in i.workloads.iter().enumerate() {
        if served[w] > wl.demand * (1.0 + tol) + 1e-9 {
            return Err(format!("demand {} exceeded", wl.name));
        }
        if served[w] < wl.min_served * wl.demand * (1.0 - tol) - 1e-9 {
            return Err(format!(
                "floor {} missed: {} < {}",
                wl.name,
                served[w],
                wl.min_served * wl.demand
            ));
        }
    }
    let t = i.evaluate(a);
    let scale = t.value.abs().max(t.cost.abs()).max(1.0);
    if let Some(b) = i.budget {
        if t.cost > b + tol * scale {
            return Err(format!("budget exceeded: {} > {b}", t.cost));
        }
    }
    if let Some(p) = i.power_cap_kw {
        if t.power_kw > p * (1.0 + tol) + 1e-9 {
            return Err(format!("power cap exceeded: {} > {p}", t.power_kw));
        }
    }
    if let Some(r) = i.min_roi {
        if t.profit < r * t.cost - tol * scale {
            return Err(format!("min_roi missed: {} < {}", t.profit, r * t.cost));
        }
    }
    if let (Some(cap), Some(e)) = (emissions_cap, t.emissions_kg) {
        if e > cap * (1.0 + tol) + 1e-9 {
            return Err(format!("emissions cap exceeded: {e} > {cap}"));
        }
    }
    Ok(())
}

use good_lp::{Expression, Solution, SolverModel, variable, variables};
use proptest::prelude::*;
use roimon_planner::model::{Cell, Gpu, Objective, Pair, Workload};
use std::collections::BTreeMap;

/// What `serve` optimises for fixed GPUs.
#[derive(Debug, Clone, Copy)]
pub enum Aim {
    /// max V − C.
    Profit,
    /// min C.
    Cost,
    /// max V − q · C.
    Param(f64),
}

/// The (gpu, workload) pairs of an instance, in a fixed order.
pub fn pairs(i: &Instance) -> Vec<(usize, usize, f64)> {
    let mut v = Vec::new();
    for (w, wl) in i.workloads.iter().enumerate() {
        for p in &wl.on {
            v.push((p.gpu, w, p.tokens_per_second));
        }
    }
    v
}

/// For fixed GPUs per pair, the best tokens/s as a plain LP (every limit of
/// the model kept), or `None` when no tokens meet the constraints.
pub fn serve(i: &Instance, n: &[u32], aim: Aim, emissions_cap: Option<f64>) -> Option<Allocation> {
    let ps = pairs(i);
    let mut used = vec![0u64; i.gpus.len()];
    for (k, &(g, _, _)) in ps.iter().enumerate() {
        used[g] += u64::from(n[k]);
    }
    if used
        .iter()
        .zip(&i.gpus)
        .any(|(u, g)| *u > u64::from(g.count))
    {
        return None;
    }
    let mut vars = variables!();
    let s: Vec<_> = ps
        .iter()
        .enumerate()
        .map(|(k, &(_, _, tps))| vars.add(variable().min(0.0).max(tps * f64::from(n[k]))))
        .collect();
    let mut value = Expression::from(0.0);
    let mut cost = Expression::from(0.0);
    let mut watts = Expression::from(0.0);
    for (k, &(g, w, _)) in ps.iter().enumerate() {
        let p = i.pair(g, w).unwrap();
        let gpu = &i.gpus[g];
        let nf = f64::from(n[k]);
        value += s[k] * (3600.0 * i.hours * i.workloads[w].value_per_million_tokens / 1e6);
        watts += s[k] * p.joules_per_token + gpu.idle_watts * nf;
        cost += gpu.cost_per_hour * nf * i.hours;
    }
    let energy_cost = watts.clone() * (i.pue / 1000.0 * i.hours * i.price_per_kwh);
    cost += energy_cost;
    let obj = match aim {
        Aim::Profit => value.clone() - cost.clone(),
        Aim::Cost => Expression::from(0.0) - cost.clone(),
        Aim::Param(q) => value.clone() - q * cost.clone(),
    };
    let mut m = vars.maximise(obj).using(good_lp::microlp);
    for (w, wl) in i.workloads.iter().enumerate() {
        let sum: Expression = ps
            .iter()
            .enumerate()
            .filter(|(_, p)| p.1 == w)
            .map(|(k, _)| s[k])
            .sum();
        m.add_constraint(sum.clone().leq(wl.demand));
        m.add_constraint(sum.geq(wl.min_served * wl.demand));
    }
    if let Some(b) = i.budget {
        m.add_constraint(cost.clone().leq(b));
    }
    if let Some(p) = i.power_cap_kw {
        m.add_constraint((watts.clone() * (i.pue / 1000.0)).leq(p));
    }
    if let (Some(e), Some(c)) = (emissions_cap, i.carbon_g_per_kwh) {
        m.add_constraint((watts.clone() * (i.pue / 1000.0 * i.hours * c / 1000.0)).leq(e));
    }
    if let Some(r) = i.min_roi {
        m.add_constraint((value.clone() - (1.0 + r) * cost.clone()).geq(0.0));
    }
    let sol = m.solve().ok()?;
    let cells = ps
        .iter()
        .enumerate()
        .filter(|(k, _)| n[*k] > 0)
        .map(|(k, &(g, w, _))| Cell {
            gpu: g,
            workload: w,
            gpus: n[k],
            tokens_per_second: sol.value(s[k]).max(0.0),
        })
        .collect();
    Some(Allocation { cells })
}

/// Every GPU vector of the instance (within the inventory).
pub fn all_n(i: &Instance) -> Vec<Vec<u32>> {
    let ps = pairs(i);
    let mut out = vec![vec![]];
    for &(g, _, _) in &ps {
        let mut next = Vec::new();
        for v in &out {
            for k in 0..=i.gpus[g].count {
                let mut x: Vec<u32> = v.clone();
                x.push(k);
                next.push(x);
            }
        }
        out = next;
    }
    out.into_iter()
        .filter(|n| {
            let mut used = vec![0u32; i.gpus.len()];
            for (k, &(g, _, _)) in ps.iter().enumerate() {
                used[g] += n[k];
            }
            used.iter().zip(&i.gpus).all(|(u, g)| *u <= g.count)
        })
        .collect()
}

/// The best ROI for fixed GPUs: Dinkelbach over `serve`'s LPs.
pub fn best_ratio(i: &Instance, n: &[u32], em: Option<f64>) -> Option<(f64, Allocation)> {
    let mut a = serve(i, n, Aim::Profit, em)?;
    for _ in 0..100 {
        let t = i.evaluate(&a);
        if t.cost <= 0.0 {
            return None;
        }
        let q = t.value / t.cost;
        let b = serve(i, n, Aim::Param(q), em)?;
        let tb = i.evaluate(&b);
        if tb.value - q * tb.cost <= 1e-9 * tb.value.max(tb.cost).max(1.0) {
            return Some((q - 1.0, a));
        }
        a = b;
    }
    let t = i.evaluate(&a);
    Some((t.roi, a))
}

/// A random small instance (types ≤ `max_t`, workloads ≤ `max_w`, GPUs per
/// type ≤ `max_count`), with limits drawn or left out.
pub fn instance(max_t: usize, max_w: usize, max_count: u32) -> impl Strategy<Value = Instance> {
    let gpu = (1..=max_count, 0.2f64..6.0, 10.0f64..120.0);
    let work = (
        0.0f64..9000.0,
        prop_oneof![Just(0.0), Just(0.3), Just(0.7)],
        0.05f64..4.0,
        proptest::collection::vec((any::<bool>(), 400.0f64..3500.0, 0.02f64..1.0), max_t),
    );
    (
        proptest::collection::vec(gpu, 1..=max_t),
        proptest::collection::vec(work, 1..=max_w),
        (1.0f64..48.0, 0.02f64..0.6, 1.0f64..1.7),
        (
            proptest::option::of(50.0f64..3000.0),
            proptest::option::of(0.5f64..12.0),
            proptest::option::of(-0.5f64..3.0),
            proptest::option::of(100.0f64..800.0),
        ),
    )
        .prop_map(
            |(gs, ws, (hours, price, pue), (budget, power, min_roi, carbon))| {
                let gpus: Vec<Gpu> = gs
                    .iter()
                    .enumerate()
                    .map(|(k, &(count, cost, idle))| Gpu {
                        kind: format!("G{k}"),
                        count,
                        cost_per_hour: (cost * 100.0).round() / 100.0,
                        idle_watts: idle.round(),
                    })
                    .collect();
                let workloads = ws
                    .iter()
                    .enumerate()
                    .map(|(k, (demand, ms, vpm, on))| Workload {
                        name: format!("t/w{k}"),
                        demand: demand.round(),
                        min_served: *ms,
                        value_per_million_tokens: (vpm * 100.0).round() / 100.0,
                        on: on
                            .iter()
                            .enumerate()
                            .filter(|(g, (runs, _, _))| *g < gpus.len() && (*runs || *g == 0))
                            .map(|(g, &(_, tps, jpt))| Pair {
                                gpu: g,
                                tokens_per_second: tps.round(),
                                joules_per_token: (jpt * 100.0).round() / 100.0,
                            })
                            .collect(),
                    })
                    .collect();
                Instance {
                    hours: hours.round(),
                    currency: "EUR".into(),
                    objective: Objective::Profit,
                    min_roi: min_roi.map(|r| (r * 10.0).round() / 10.0),
                    budget: budget.map(f64::round),
                    power_cap_kw: power.map(|p| (p * 10.0).round() / 10.0),
                    price_per_kwh: (price * 100.0).round() / 100.0,
                    pue: (pue * 100.0).round() / 100.0,
                    carbon_g_per_kwh: carbon.map(f64::round),
                    gpus,
                    workloads,
                    coefficients: vec![],
                    spread: BTreeMap::new(),
                }
            },
        )
}
