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
