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

use crate::model::{Allocation, Instance, Objective};
use crate::solve::{Infeasible, Plan, SolveOptions, solve};
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

/// Threads for the solves of an analysis: the machine's parallelism.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The options of each solve of a batch that runs in `phases` rounds
/// (one after another) sharing the wall-clock budget `opts.time_limit`:
/// each gets `time_limit / phases`, so the batch ends in about one time
/// limit whatever the machine.
pub fn share(opts: &SolveOptions, phases: usize) -> SolveOptions {
    #[allow(clippy::cast_precision_loss)]
    let phases = phases.max(1) as f64;
    SolveOptions {
        time_limit: opts.time_limit.div_f64(phases),
        ..opts.clone()
    }
}

/// Rounds needed for `jobs` parallel solves on [`threads`] threads.
pub fn rounds(jobs: usize) -> usize {
    jobs.div_ceil(threads())
}

/// The tornado of `plan` (solved for `inst` under `opts`): each of the 14
/// scaled instances is solved again for the re-optimised profits, the 14
/// solves sharing `opts.time_limit` in rounds over the threads (see
/// [`share`]); the measured spreads
/// are the instance's own (`Instance::spread`).
pub fn sensitivity(
    inst: &Instance,
    plan: &Plan,
    swing: sensitivity::Swing,
    opts: &SolveOptions,
) -> Vec<sensitivity::Row> {
    let each = share(opts, rounds(14));
    let reoptimise = |s: &Instance| solve(s, &each).ok().map(|p| p.totals);
    sensitivity::tornado(
        inst,
        &plan.allocation,
        swing,
        Some(&inst.spread),
        threads(),
        &reoptimise,
    )
}

/// Why no front was drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum ParetoError {
    /// The instance has no carbon intensity (exit 2).
    NoCarbon,
    /// No plan meets the constraints (exit 1).
    Infeasible(Infeasible),
}

impl std::fmt::Display for ParetoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParetoError::NoCarbon => f.write_str(
                "--pareto carbon needs the carbon intensity: set energy.carbon_g_per_kwh \
                 (a number, or \"measured\" with a ledger that holds it)",
            ),
            ParetoError::Infeasible(i) => write!(f, "no Pareto front: {i}"),
        }
    }
}

impl std::error::Error for ParetoError {}

/// The Pareto front of profit against emissions (ε-constraint): the
/// least-emitting plan that meets every constraint (minimum IT watts, then
/// the most profitable at that emission), the most profitable plan, and the
/// most profitable plan under `points` evenly spaced emissions caps between
/// them; dominated points dropped, emissions ascending. Every programme
/// maximises profit whatever the instance's objective. The whole front
/// shares `opts.time_limit`: the most profitable plan (when not given) gets
/// a third of it, the least-emitting programme what it needs of the rest
/// (it usually proves optimality early), and the capped programmes split
/// what is left in rounds over the threads (at least a tenth of the limit
/// each). `most`: the most profitable plan when already solved (the plan
/// itself when the objective is profit).
pub fn pareto(
    inst: &Instance,
    opts: &SolveOptions,
    points: usize,
    most: Option<&Plan>,
) -> Result<Vec<pareto::Point>, ParetoError> {
    if inst.carbon_g_per_kwh.is_none() {
        return Err(ParetoError::NoCarbon);
    }
    let started = std::time::Instant::now();
    let profit = SolveOptions {
        objective: Some(Objective::Profit),
        emissions_cap_kg: None,
        ..opts.clone()
    };
    let to_point = |p: Plan, cap: Option<f64>| pareto::Point {
        cap_kg: cap,
        profit: p.totals.profit,
        emissions_kg: p.totals.emissions_kg.unwrap_or(0.0),
        roi: p.totals.roi,
        cost: p.totals.cost,
        allocation: p.allocation,
        binding: p.binding,
    };
    let most = match most {
        Some(p) => p.clone(),
        None => solve(inst, &share(&profit, 3)).map_err(ParetoError::Infeasible)?,
    };
    let most = to_point(most, None);
    // 5 % of the limit is left for building the programmes and joining.
    let budget = opts.time_limit.mul_f64(0.95);
    let left = |floor: f64| {
        let left = budget.saturating_sub(started.elapsed());
        left.max(opts.time_limit.mul_f64(floor))
    };
    let least = least_emitting(
        inst,
        &SolveOptions {
            time_limit: left(0.3),
            ..profit.clone()
        },
    );
    let each = SolveOptions {
        time_limit: left(0.1),
        ..profit.clone()
    };
    let each = share(&each, rounds(points.saturating_sub(1)));
    let capped = |cap: f64| {
        let o = SolveOptions {
            emissions_cap_kg: Some(cap),
            ..each.clone()
        };
        solve(inst, &o).ok().map(|p| to_point(p, Some(cap)))
    };
    // The cap at the least emission is among the front's caps: the most
    // profitable plan at that emission replaces this one there.
    let least = least.map_or_else(
        || most.clone(),
        |(a, e)| {
            let t = inst.evaluate(&a);
            let binding = crate::solve::binding(inst, &profit, &a, &t);
            let mut p = pareto::point(inst, a, binding);
            p.cap_kg = Some(e);
            p
        },
    );
    Ok(pareto::front(least, most, points, threads(), &capped))
}

/// The allocation with the least IT watts (so the least energy and
/// emissions) meeting every constraint, with its emissions; None when the
/// programme gives nothing within the time limit.
fn least_emitting(inst: &Instance, opts: &SolveOptions) -> Option<(Allocation, f64)> {
    let deadline = std::time::Instant::now() + opts.time_limit;
    let cols = crate::solve::columns(inst);
    let limits = crate::solve::all_limits(inst, opts);
    let run =
        crate::solve::run_limits(inst, &cols, &limits, crate::solve::Goal::Watts, deadline).ok()?;
    let a = crate::solve::clean(inst, &cols, &run);
    let e = inst.evaluate(&a).emissions_kg?;
    Some((a, e))
}
