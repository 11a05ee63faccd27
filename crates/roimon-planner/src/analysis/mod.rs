//! The analysis of a plan (issue "sensitivity, Pareto front and pictures"):
//! how its profit moves with each parameter group (tornado, break-even),
//! its distribution under random parameters (Monte Carlo), and what profit
//! costs in emissions (Pareto front); the contract's JSON of each.
//!
//! - `scale`: the seven parameter groups, scaled instances, the fixed plan.
//! - `sensitivity`: the tornado and the break-even.
//! - `monte_carlo`: the generator, triangular draws, nearest-rank percentiles.
//! - `pareto`: the ε-constraint front and non-dominance.

pub mod monte_carlo;
pub mod pareto;
pub mod scale;
pub mod sensitivity;

pub use scale::Group;

use crate::model::{Allocation, Instance};
use serde_json::{Value, json};

/// The contract's `sensitivity` array (plus `swing_source` per row).
pub fn sensitivity_json(rows: &[sensitivity::Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "parameter": r.parameter.name(),
                    "base": r.base,
                    "low": r.low,
                    "high": r.high,
                    "profit_low": r.profit_low,
                    "profit_high": r.profit_high,
                    "roi_low": r.roi_low,
                    "roi_high": r.roi_high,
                    "profit_low_reoptimised": r.profit_low_reoptimised,
                    "profit_high_reoptimised": r.profit_high_reoptimised,
                    "break_even": r.break_even,
                    "swing_source": r.swing_source,
                })
            })
            .collect(),
    )
}

/// The contract's `monte_carlo` object (plus `price_source`).
pub fn monte_carlo_json(m: &monte_carlo::MonteCarlo) -> Value {
    json!({
        "draws": m.draws,
        "seed": m.seed,
        "profit_p5": m.profit_p5,
        "profit_p50": m.profit_p50,
        "profit_p95": m.profit_p95,
        "roi_p5": m.roi_p5,
        "roi_p50": m.roi_p50,
        "roi_p95": m.roi_p95,
        "p_profit_below_0": m.p_profit_below_0,
        "p_roi_below_min": m.p_roi_below_min,
        "price_source": m.price_source,
    })
}

/// An allocation as the contract's `allocation` rows (pairs with gpus > 0).
pub fn allocation_json(inst: &Instance, a: &Allocation) -> Value {
    Value::Array(
        a.cells
            .iter()
            .filter(|c| c.gpus > 0)
            .map(|c| {
                json!({
                    "gpu": inst.gpus[c.gpu].kind,
                    "workload": inst.workloads[c.workload].name,
                    "gpus": c.gpus,
                    "tokens_per_second": c.tokens_per_second,
                    "value": inst.cell_value(c),
                    "cost": inst.cell_cost(c),
                })
            })
            .collect(),
    )
}

/// The contract's `pareto` array.
pub fn pareto_json(inst: &Instance, front: &[pareto::Point]) -> Value {
    Value::Array(
        front
            .iter()
            .map(|p| {
                json!({
                    "profit": p.profit,
                    "emissions_kg": p.emissions_kg,
                    "roi": p.roi,
                    "cost": p.cost,
                    "cap_kg": p.cap_kg,
                    "allocation": allocation_json(inst, &p.allocation),
                    "binding": p.binding,
                })
            })
            .collect(),
    )
}
