//! The allocation as an integer programme (the contract's model, exactly):
//! profit and cost directly, ROI by Dinkelbach iterations over the same
//! programme, always under a time limit, and an infeasible instance
//! diagnosed by solving relaxed programmes until the conflict is named.

use crate::model::{Allocation, Cell, Instance, Objective, Totals};
use serde::Serialize;
use std::fmt;
use std::time::{Duration, Instant};

mod diagnose;
mod heuristic;

/// How to solve.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveOptions {
    /// Wall-clock limit for the whole solve (every programme it runs).
    pub time_limit: Duration,
    /// Optional: emissions_kg ≤ cap (needs a carbon intensity).
    pub emissions_cap_kg: Option<f64>,
    /// Overrides [`Instance::objective`] when set.
    pub objective: Option<Objective>,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            time_limit: Duration::from_secs(10),
            emissions_cap_kg: None,
            objective: None,
        }
    }
}

/// Whether the plan is proven optimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Proven optimal (gap 0).
    Optimal,
    /// Feasible; the time limit stopped the proof at [`Plan::gap`].
    Feasible,
}

/// A solved allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Optimal or feasible.
    pub status: Status,
    /// The cells with gpus > 0 (tokens may be 0 only where gpus are too).
    pub allocation: Allocation,
    /// The contract's totals of `allocation`.
    pub totals: Totals,
    /// Relative gap between the plan and the best bound (0 when optimal;
    /// infinite when no bound was proven).
    pub gap: f64,
    /// Wall-clock seconds spent.
    pub solve_seconds: f64,
    /// The constraints that hold with equality, e.g. `inventory H100`,
    /// `demand search/chat`, `floor search/chat`, `budget`, `power_cap_kw`,
    /// `min_roi`, `emissions_cap`.
    pub binding: Vec<String>,
    /// Per workload (index into [`Instance::workloads`]): demand not served
    /// (tokens/s), every workload listed.
    pub unserved: Vec<(usize, f64)>,
}

/// No allocation satisfies every constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Infeasible {
    /// Each conflict in words (which floor, what limits it).
    pub conflicts: Vec<String>,
}

impl fmt::Display for Infeasible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "infeasible: {}", self.conflicts.join("; "))
    }
}

impl std::error::Error for Infeasible {}

/// Relative tolerance of equalities (binding constraints, checks).
pub const TOL: f64 = 1e-6;

// ---------------------------------------------------------------------------
// The linear model, per hour.

/// One (GPU type, workload) pair with the per-hour coefficients of the
/// objective and the constraints.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    pub g: usize,
    pub w: usize,
    pub tps: f64,
    pub jpt: f64,
    /// Upper bound on GPUs: min(count, ⌈demand / tps⌉).
    pub ub: u32,
    /// Value per hour of one token/s: 3600 · vpm / 1e6.
    pub a: f64,
    /// Cost per hour of one GPU: cost_per_hour + idle · pue / 1000 · price.
    pub b: f64,
    /// Energy cost per hour of one token/s: jpt · pue / 1000 · price.
    pub c: f64,
    /// Idle watts per GPU.
    pub idle: f64,
}

/// The pairs worth a variable: the workload has demand, the type has GPUs
/// and serves tokens (any other GPU only adds cost).
pub(crate) fn columns(inst: &Instance) -> Vec<Col> {
    let mut cols = Vec::new();
    for (w, wl) in inst.workloads.iter().enumerate() {
        if wl.demand <= 0.0 {
            continue;
        }
        for p in &wl.on {
            let gpu = &inst.gpus[p.gpu];
            if p.tokens_per_second <= 0.0 || gpu.count == 0 {
                continue;
            }
            let need = (wl.demand / p.tokens_per_second).ceil();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let ub = if need >= f64::from(gpu.count) {
                gpu.count
            } else {
                need.max(1.0) as u32
            };
            cols.push(Col {
                g: p.gpu,
                w,
                tps: p.tokens_per_second,
                jpt: p.joules_per_token,
                ub,
                a: 3600.0 * wl.value_per_million_tokens / 1e6,
                b: gpu.cost_per_hour + gpu.idle_watts * inst.pue / 1000.0 * inst.price_per_kwh,
                c: p.joules_per_token * inst.pue / 1000.0 * inst.price_per_kwh,
                idle: gpu.idle_watts,
            });
        }
    }
    cols
}

/// What a programme optimises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Goal {
    /// max V − C.
    Profit,
    /// min C.
    Cost,
    /// max V − q · C (a Dinkelbach step; q is the ratio V / C).
    Param(f64),
    /// any feasible point.
    Feasible,
    /// min IT watts (power and emissions are proportional to it).
    Watts,
}

/// Which constraints a programme keeps (inventory, demand and the linking
/// of tokens to GPUs always hold).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    /// Per workload: keep its floor.
    pub floors: Vec<bool>,
    pub budget: Option<f64>,
    pub power_cap_kw: Option<f64>,
    pub emissions_cap_kg: Option<f64>,
    pub min_roi: Option<f64>,
    /// V ≥ q · C (keeps ROI-optimal points when maximising profit among them).
    pub ratio_floor: Option<f64>,
    /// Per column: GPUs fixed to this number (a neighbourhood of the search).
    pub fix: Option<Vec<Option<u32>>>,
}

impl Limits {
    fn all(inst: &Instance, opts: &SolveOptions) -> Self {
        Self {
            floors: vec![true; inst.workloads.len()],
            budget: inst.budget,
            power_cap_kw: inst.power_cap_kw,
            emissions_cap_kg: opts.emissions_cap_kg,
            min_roi: inst.min_roi,
            ratio_floor: None,
            fix: None,
        }
    }

    fn has_floor(&self, inst: &Instance) -> bool {
        inst.workloads
            .iter()
            .zip(&self.floors)
            .any(|(w, &on)| on && w.min_served * w.demand > 0.0)
    }
}

/// What one programme gave.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub n: Vec<u32>,
    pub s: Vec<f64>,
    pub optimal: bool,
    /// The best proven bound on the objective (per hour), when known.
    pub bound: Option<f64>,
}

/// Why one programme gave nothing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunError {
    Infeasible,
    /// The time limit came before any feasible point.
    Timeout,
    /// The backend failed (numerical trouble).
    Backend(String),
}

/// The backend, in one place: `good_lp` with `microlp`. Another backend is
/// a feature and a second body for this module away.
mod backend {
    use super::{Col, Goal, Instance, Limits, Run, RunError};
    use good_lp::{
        Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus, SolverModel,
        Variable, WithInitialSolution, WithTimeLimit, variable,
    };

    /// Builds and solves one programme. Variables: per column the GPUs `n`
    /// (integer) and the share of the workload's demand served `u` ∈ [0, 1]
    /// (tokens/s = u · demand; the scaling keeps coefficients near 1).
    pub(super) fn solve(
        inst: &Instance,
        cols: &[Col],
        limits: &Limits,
        goal: Goal,
        seconds: f64,
        warm: Option<&[(u32, f64)]>,
        relaxed: bool,
    ) -> Result<Run, RunError> {
        let mut vars = ProblemVariables::new();
        let mut n: Vec<Variable> = Vec::with_capacity(cols.len());
        let mut u: Vec<Variable> = Vec::with_capacity(cols.len());
        for col in cols {
            let fixed = limits.fix.as_ref().and_then(|f| f[n.len()]);
            let v = match fixed {
                Some(x) => variable().min(x).max(x),
                None => variable().min(0).max(col.ub),
            };
            n.push(vars.add(if relaxed { v } else { v.integer() }));
            let d = inst.workloads[col.w].demand;
            let cap = (col.tps * f64::from(col.ub) / d).min(1.0);
            u.push(vars.add(variable().min(0.0).max(cap)));
        }
        let demand = |k: usize| inst.workloads[cols[k].w].demand;
        // Per hour: value, cost, IT watts.
        let mut value = Expression::with_capacity(cols.len());
        let mut cost = Expression::with_capacity(2 * cols.len());
        let mut watts = Expression::with_capacity(2 * cols.len());
        for (k, col) in cols.iter().enumerate() {
            let d = demand(k);
            value.add_mul(col.a * d, u[k]);
            cost.add_mul(col.b, n[k]);
            cost.add_mul(col.c * d, u[k]);
            watts.add_mul(col.idle, n[k]);
            watts.add_mul(col.jpt * d, u[k]);
        }
        let unsolved = match goal {
            Goal::Profit => vars.maximise(value.clone() - cost.clone()),
            Goal::Cost => vars.minimise(cost.clone()),
            Goal::Param(q) => vars.maximise(value.clone() - q * cost.clone()),
            Goal::Feasible => vars.minimise(Expression::from(0.0)),
            Goal::Watts => vars.minimise(watts.clone()),
        };
        let mut model = unsolved
            .using(good_lp::microlp)
            .with_time_limit(seconds.max(0.0));
        if let Some(w) = warm {
            let mut init = Vec::with_capacity(2 * cols.len());
            for (k, &(gpus, tokens)) in w.iter().enumerate() {
                init.push((n[k], f64::from(gpus)));
                init.push((u[k], tokens / demand(k)));
            }
            model = model.with_initial_solution(init);
        }
        // Linking: tokens ≤ tps · n  ⇔  u · demand − tps · n ≤ 0.
        for (k, col) in cols.iter().enumerate() {
            let d = demand(k);
            model.add_constraint((d / col.tps * u[k] - n[k]).leq(0.0));
        }
        // The hull of one pair {0 ≤ s ≤ min(tps · n, demand), n integer}:
        // with demand = k · tps + r (0 < r < tps), the last GPU serves only
        // r, so s ≤ r · n + k · (tps − r). Valid for every integer point; it
        // cuts the relaxation's fractional last GPU (a much tighter bound).
        for (k_col, col) in cols.iter().enumerate() {
            let d = demand(k_col);
            let k = (d / col.tps).floor();
            let r = d - k * col.tps;
            if r > 1e-9 * col.tps && f64::from(col.ub) >= k + 1.0 {
                model.add_constraint((u[k_col] - (r / d) * n[k_col]).leq(k * (col.tps - r) / d));
            }
        }
        // Demand and floor per workload.
        let mut by_w: Vec<Vec<usize>> = vec![Vec::new(); inst.workloads.len()];
        for (k, col) in cols.iter().enumerate() {
            by_w[col.w].push(k);
        }
        for (w, ks) in by_w.iter().enumerate() {
            let sum: Expression = ks.iter().map(|&k| u[k]).sum();
            if ks.len() > 1 {
                model.add_constraint(sum.clone().leq(1.0));
            }
            let wl = &inst.workloads[w];
            if limits.floors[w] && wl.min_served > 0.0 && wl.demand > 0.0 {
                model.add_constraint(sum.geq(wl.min_served));
            }
        }
        // Inventory per type.
        let mut by_g: Vec<Vec<usize>> = vec![Vec::new(); inst.gpus.len()];
        for (k, col) in cols.iter().enumerate() {
            by_g[col.g].push(k);
        }
        for (g, ks) in by_g.iter().enumerate() {
            let most: u64 = ks.iter().map(|&k| u64::from(cols[k].ub)).sum();
            if most > u64::from(inst.gpus[g].count) {
                let sum: Expression = ks.iter().map(|&k| n[k]).sum();
                model.add_constraint(sum.leq(f64::from(inst.gpus[g].count)));
            }
        }
        if let Some(b) = limits.budget {
            model.add_constraint(cost.clone().leq(b / inst.hours));
        }
        if let Some(p) = limits.power_cap_kw {
            model.add_constraint(watts.clone().leq(p * 1000.0 / inst.pue));
        }
        if let Some(e) = limits.emissions_cap_kg {
            let carbon = inst.carbon_g_per_kwh.unwrap_or(0.0);
            if carbon > 0.0 {
                let w_max = e * 1e6 / (inst.hours * inst.pue * carbon);
                model.add_constraint(watts.clone().leq(w_max));
            }
        }
        if let Some(r) = limits.min_roi {
            model.add_constraint((value.clone() - (1.0 + r) * cost.clone()).geq(0.0));
        }
        if let Some(q) = limits.ratio_floor {
            model.add_constraint((value - q * cost).geq(0.0));
        }
        let sol = match model.solve() {
            Ok(s) => s,
            Err(ResolutionError::Infeasible) => return Err(RunError::Infeasible),
            Err(ResolutionError::Other(m)) if m.contains("Time limit") => {
                return Err(RunError::Timeout);
            }
            Err(e) => return Err(RunError::Backend(e.to_string())),
        };
        let optimal = matches!(sol.status(), SolutionStatus::Optimal);
        let mut out_n = Vec::with_capacity(cols.len());
        let mut out_s = Vec::with_capacity(cols.len());
        for (k, col) in cols.iter().enumerate() {
            let raw = sol.value(n[k]);
            let raw = if relaxed {
                (raw + 1e-6).floor()
            } else {
                raw.round()
            };
            let raw = raw.clamp(0.0, f64::from(col.ub));
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            out_n.push(raw as u32);
            out_s.push(sol.value(u[k]) * demand(k));
        }
        let inner = sol.into_inner();
        Ok(Run {
            n: out_n,
            s: out_s,
            optimal,
            bound: inner.stats().best_bound,
        })
    }
}

/// Snaps a programme's answer onto the contract's constraints: integral
/// GPUs, 0 ≤ tokens ≤ tps · n, Σ tokens ≤ demand, and tokens within a
/// tolerance of a bound set onto it.
pub(crate) fn clean(inst: &Instance, cols: &[Col], run: &Run) -> Allocation {
    let mut cells: Vec<Cell> = Vec::new();
    for (k, col) in cols.iter().enumerate() {
        let n = run.n[k];
        let cap = col.tps * f64::from(n);
        let mut s = run.s[k].clamp(0.0, cap);
        if (cap - s).abs() <= TOL * cap.max(1.0) * 1e-3 {
            s = cap;
        }
        if s <= 1e-9 * inst.workloads[col.w].demand.max(1.0) {
            s = 0.0;
        }
        if n > 0 || s > 0.0 {
            cells.push(Cell {
                gpu: col.g,
                workload: col.w,
                gpus: n,
                tokens_per_second: s,
            });
        }
    }
    // Σ tokens ≤ demand; within the tolerance of demand or floor: onto it.
    for (w, wl) in inst.workloads.iter().enumerate() {
        let served: f64 = cells
            .iter()
            .filter(|c| c.workload == w)
            .map(|c| c.tokens_per_second)
            .sum();
        if served <= 0.0 {
            continue;
        }
        let floor = wl.min_served * wl.demand;
        let target = if served > wl.demand || (wl.demand - served) <= 1e-9 * wl.demand {
            wl.demand
        } else if floor > 0.0 && (served - floor).abs() <= 1e-9 * wl.demand {
            floor
        } else {
            continue;
        };
        let f = target / served;
        for c in cells.iter_mut().filter(|c| c.workload == w) {
            let cap = inst
                .pair(c.gpu, c.workload)
                .map_or(0.0, |p| p.tokens_per_second)
                * f64::from(c.gpus);
            c.tokens_per_second = (c.tokens_per_second * f).min(cap);
        }
    }
    cells.sort_by_key(|c| (c.gpu, c.workload));
    Allocation { cells }
}

/// Tokens/s served per workload.
pub(crate) fn served(inst: &Instance, a: &Allocation) -> Vec<f64> {
    let mut s = vec![0.0; inst.workloads.len()];
    for c in &a.cells {
        s[c.workload] += c.tokens_per_second;
    }
    s
}

fn close(x: f64, y: f64) -> bool {
    (x - y).abs() <= TOL * x.abs().max(y.abs()).max(1e-9)
}

/// The constraints `a` meets with equality.
pub(crate) fn binding(
    inst: &Instance,
    opts: &SolveOptions,
    a: &Allocation,
    t: &Totals,
) -> Vec<String> {
    let mut out = Vec::new();
    for (g, gpu) in inst.gpus.iter().enumerate() {
        let used: u32 = a.cells.iter().filter(|c| c.gpu == g).map(|c| c.gpus).sum();
        if gpu.count > 0 && used >= gpu.count {
            out.push(format!("inventory {}", gpu.kind));
        }
    }
    let s = served(inst, a);
    for (w, wl) in inst.workloads.iter().enumerate() {
        if wl.demand > 0.0 && close(s[w], wl.demand) {
            out.push(format!("demand {}", wl.name));
        }
    }
    for (w, wl) in inst.workloads.iter().enumerate() {
        let floor = wl.min_served * wl.demand;
        if floor > 0.0 && close(s[w], floor) {
            out.push(format!("floor {}", wl.name));
        }
    }
    if let Some(b) = inst.budget {
        if close(t.cost, b) {
            out.push("budget".into());
        }
    }
    if let Some(p) = inst.power_cap_kw {
        if close(t.power_kw, p) {
            out.push("power_cap_kw".into());
        }
    }
    if let Some(r) = inst.min_roi {
        if t.cost > 0.0 && close(t.profit, r * t.cost) {
            out.push("min_roi".into());
        }
    }
    if let (Some(cap), Some(e)) = (opts.emissions_cap_kg, t.emissions_kg) {
        if close(e, cap) {
            out.push("emissions_cap".into());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The objectives.

/// The outcome of an objective's programmes.
struct Found {
    run: Run,
    optimal: bool,
    gap: f64,
    /// Best proven bound on the goal (per hour), when known.
    bound: Option<f64>,
}

fn remaining(deadline: Instant) -> f64 {
    deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64()
}

fn zero_warm(cols: &[Col], limits: &Limits, inst: &Instance) -> Option<Vec<(u32, f64)>> {
    // The empty allocation satisfies every limit but the floors.
    (!limits.has_floor(inst)).then(|| vec![(0, 0.0); cols.len()])
}

/// Whether a goal is minimised (its user-space objective is the negated
/// maximising form of the heuristic).
fn minimises(goal: Goal) -> bool {
    matches!(goal, Goal::Cost | Goal::Watts | Goal::Feasible)
}

/// One goal: a heuristic start; the branch and bound from it for part of
/// the time (enough to prove small instances optimal); when that does not
/// finish, large-neighbourhood search (free the GPUs of a few workloads,
/// keep the others, solve that smaller programme exactly) until the
/// deadline, and single-GPU moves to polish.
fn run_goal(
    inst: &Instance,
    cols: &[Col],
    limits: &Limits,
    goal: Goal,
    deadline: Instant,
) -> Result<Found, RunError> {
    use self::heuristic::{allocate, objective};
    // Starts: from scratch, and from the relaxation's GPUs rounded down.
    let relaxation = backend::solve(inst, cols, limits, goal, remaining(deadline), None, true);
    if matches!(relaxation, Err(RunError::Infeasible)) {
        return Err(RunError::Infeasible);
    }
    let mut start = allocate(inst, cols, limits, goal, None, deadline);
    if let Ok(r) = &relaxation {
        if let Some(x) = allocate(inst, cols, limits, goal, Some((&r.n, &r.s)), deadline) {
            if start
                .as_ref()
                .is_none_or(|y| objective(cols, goal, &x) > objective(cols, goal, y))
            {
                start = Some(x);
            }
        }
    }
    let relaxed_bound = relaxation.ok().and_then(|r| r.bound);
    let warm = start.clone().or_else(|| zero_warm(cols, limits, inst));
    let sense = if minimises(goal) { -1.0 } else { 1.0 };
    let to_run = |x: &[(u32, f64)]| Run {
        n: x.iter().map(|p| p.0).collect(),
        s: x.iter().map(|p| p.1).collect(),
        optimal: false,
        bound: None,
    };
    // The whole programme: all the time when it is no larger than one
    // neighbourhood, else 40 % of the time left.
    let share = if cols.len() <= FREE_COLUMNS { 1.0 } else { 0.4 };
    let whole = Instant::now() + Duration::from_secs_f64(remaining(deadline) * share);
    let (mut best, bound) = match backend::solve(
        inst,
        cols,
        limits,
        goal,
        remaining(whole),
        warm.as_deref(),
        false,
    ) {
        Ok(run) if run.optimal || matches!(goal, Goal::Feasible) => {
            return Ok(Found {
                optimal: true,
                gap: 0.0,
                bound: run.bound,
                run,
            });
        }
        Ok(run) => {
            let x: Vec<(u32, f64)> = run.n.iter().copied().zip(run.s.iter().copied()).collect();
            (x, run.bound.or(relaxed_bound))
        }
        Err(RunError::Timeout | RunError::Backend(_)) if start.is_some() => {
            (start.clone().unwrap_or_default(), relaxed_bound)
        }
        Err(e) => return Err(e),
    };
    if let Some(x) = start {
        if objective(cols, goal, &x) > objective(cols, goal, &best) {
            best = x;
        }
    }
    best = neighbourhoods(inst, cols, limits, goal, best, deadline);
    if let Some(x) = allocate(
        inst,
        cols,
        limits,
        goal,
        Some((
            &best.iter().map(|p| p.0).collect::<Vec<_>>(),
            &best.iter().map(|p| p.1).collect::<Vec<_>>(),
        )),
        deadline,
    ) {
        if objective(cols, goal, &x) > objective(cols, goal, &best) {
            best = x;
        }
    }
    let best_obj = objective(cols, goal, &best);
    let gap = match bound {
        Some(b) => {
            let user = sense * best_obj;
            (sense * (b - user)).max(0.0) / user.abs().max(1e-10)
        }
        None => f64::INFINITY,
    };
    Ok(Found {
        run: to_run(&best),
        optimal: gap <= 1e-9,
        gap,
        bound,
    })
}

/// Pairs whose GPUs one neighbourhood frees.
const FREE_COLUMNS: usize = 24;

/// Large-neighbourhood search: windows of workloads (in file order, then
/// grouped by their first GPU type) whose GPUs are freed while every other
/// pair keeps the incumbent's GPUs; each window's programme is solved
/// exactly (short limit) from the incumbent, and kept when it improves.
fn neighbourhoods(
    inst: &Instance,
    cols: &[Col],
    limits: &Limits,
    goal: Goal,
    mut best: Vec<(u32, f64)>,
    deadline: Instant,
) -> Vec<(u32, f64)> {
    use self::heuristic::objective;
    let nw = inst.workloads.len();
    let mut per_w = vec![0usize; nw];
    for c in cols {
        per_w[c.w] += 1;
    }
    let mut orders: Vec<Vec<usize>> = vec![(0..nw).collect()];
    let mut by_type: Vec<usize> = (0..nw).collect();
    let first_type = |w: usize| cols.iter().find(|c| c.w == w).map_or(usize::MAX, |c| c.g);
    by_type.sort_by_key(|&w| (first_type(w), w));
    orders.push(by_type);
    // Windows as sets of columns: runs of workloads in each order, then
    // every pair of GPU types (all their columns) when small enough.
    let mut windows: Vec<Vec<bool>> = Vec::new();
    for order in &orders {
        let mut i = 0;
        while i < order.len() {
            let mut win = Vec::new();
            let mut free = 0;
            let mut j = i;
            while j < order.len() && (win.is_empty() || free + per_w[order[j]] <= FREE_COLUMNS) {
                free += per_w[order[j]];
                win.push(order[j]);
                j += 1;
            }
            let step = (win.len() / 2).max(1);
            windows.push(cols.iter().map(|c| win.contains(&c.w)).collect());
            if j >= order.len() {
                break;
            }
            i += step;
        }
    }
    let ng = inst.gpus.len();
    for g1 in 0..ng {
        for g2 in g1 + 1..ng {
            let win: Vec<bool> = cols.iter().map(|c| c.g == g1 || c.g == g2).collect();
            let free = win.iter().filter(|&&f| f).count();
            if free > 1 && free <= FREE_COLUMNS && free < cols.len() {
                windows.push(win);
            }
        }
    }
    if windows.len() <= 1 {
        return best;
    }
    let mut since_improved = 0;
    let mut k = 0;
    while since_improved < windows.len() && remaining(deadline) > 0.0 {
        let win = &windows[k % windows.len()];
        k += 1;
        since_improved += 1;
        let mut lim = limits.clone();
        lim.fix = Some(
            cols.iter()
                .enumerate()
                .map(|(c, _)| (!win[c]).then_some(best[c].0))
                .collect(),
        );
        let slice = remaining(deadline).min(0.2);
        if let Ok(run) = backend::solve(inst, cols, &lim, goal, slice, Some(&best), false) {
            let x: Vec<(u32, f64)> = run.n.iter().copied().zip(run.s.iter().copied()).collect();
            let (o, b) = (objective(cols, goal, &x), objective(cols, goal, &best));
            if o > b + 1e-9 * b.abs().max(1.0) {
                best = x;
                since_improved = 0;
            }
        }
    }
    best
}

fn as_run(cols: &[Col], a: &Allocation) -> Run {
    let mut n = vec![0; cols.len()];
    let mut s = vec![0.0; cols.len()];
    for c in &a.cells {
        if let Some(k) = cols.iter().position(|x| x.g == c.gpu && x.w == c.workload) {
            n[k] = c.gpus;
            s[k] = c.tokens_per_second;
        }
    }
    Run {
        n,
        s,
        optimal: true,
        bound: None,
    }
}

/// max (V − C) / C by Dinkelbach: q ← V/C of the last answer, solve
/// max V − q·C, until that maximum is 0 (then no allocation beats q). The
/// ROI-optimal set is then searched once more for its most profitable
/// member (so equal ratios prefer the larger, more profitable deployment).
/// When every allocation with cost loses money and the empty allocation is
/// allowed, the empty allocation (ROI 0 by the contract's convention) wins.
fn solve_roi(
    inst: &Instance,
    cols: &[Col],
    limits: &Limits,
    deadline: Instant,
) -> Result<Found, RunError> {
    let mut q = 0.0_f64;
    let mut best: Option<(Run, f64)> = None; // run and its V/C
    let mut optimal = true;
    // The last step's parameter and bound on max V − q·C (per hour).
    let mut last: (f64, Option<f64>) = (0.0, None);
    for _ in 0..64 {
        // Each step gets a share of the time left (later steps are quicker).
        let step =
            (Instant::now() + Duration::from_secs_f64(remaining(deadline) * 0.35)).min(deadline);
        let f = run_goal(inst, cols, limits, Goal::Param(q), step)?;
        optimal &= f.optimal;
        last = (q, f.bound);
        let a = clean(inst, cols, &f.run);
        let t = inst.evaluate(&a);
        if t.cost <= 0.0 {
            if t.value > 0.0 {
                // Value at no cost: the ratio is unbounded; keep the most
                // valuable zero-cost allocation.
                return Ok(Found {
                    run: f.run,
                    optimal,
                    gap: 0.0,
                    bound: None,
                });
            }
            if best.is_none() {
                best = Some((f.run, 0.0));
            }
            break;
        }
        let ratio = t.value / t.cost;
        let f_val = t.value - q * t.cost;
        let improves = best.as_ref().is_none_or(|(_, r)| ratio > *r);
        if improves {
            best = Some((f.run, ratio));
        }
        if f_val <= 1e-9 * t.value.max(t.cost) || !improves || remaining(deadline) <= 0.0 {
            break;
        }
        q = ratio;
    }
    let Some((run, ratio)) = best else {
        return Err(RunError::Infeasible);
    };
    let a = clean(inst, cols, &run);
    let t = inst.evaluate(&a);
    // Not proven: bound the ratio by the last step, for x of the plan's
    // cost: V/C ≤ q + bound / C.
    let gap = if optimal || t.cost <= 0.0 {
        0.0
    } else {
        let per_hour = t.cost / inst.hours;
        last.1.map_or(f64::INFINITY, |b| {
            ((last.0 + b.max(0.0) / per_hour - ratio) / ratio).max(0.0)
        })
    };
    let optimal = optimal || gap <= 1e-9;
    let floors = limits.has_floor(inst);
    if t.cost > 0.0 && t.profit < 0.0 && !floors {
        // Every deployment loses money: nothing beats no allocation.
        return Ok(Found {
            run: as_run(cols, &Allocation::default()),
            optimal,
            gap,
            bound: None,
        });
    }
    if t.cost <= 0.0 {
        return Ok(Found {
            run,
            optimal,
            gap,
            bound: None,
        });
    }
    // Most profitable among the ROI-optimal allocations (the ROI is the
    // objective; this only chooses among equals).
    let mut lim = limits.clone();
    lim.ratio_floor = Some(ratio * (1.0 - 1e-9));
    if remaining(deadline) > 0.0 {
        if let Ok(f) = run_goal(inst, cols, &lim, Goal::Profit, deadline) {
            let a2 = clean(inst, cols, &f.run);
            let t2 = inst.evaluate(&a2);
            if t2.cost > 0.0 && t2.value / t2.cost >= ratio * (1.0 - 1e-7) && t2.profit >= t.profit
            {
                return Ok(Found {
                    run: f.run,
                    optimal,
                    gap,
                    bound: None,
                });
            }
        }
    }
    Ok(Found {
        run,
        optimal,
        gap,
        bound: None,
    })
}

/// Solves `inst` under `opts`: the allocation that maximises profit or ROI,
/// or minimises cost, subject to every constraint of the contract.
pub fn solve(inst: &Instance, opts: &SolveOptions) -> Result<Plan, Infeasible> {
    let started = Instant::now();
    let deadline = started + opts.time_limit;
    if opts.emissions_cap_kg.is_some() && inst.carbon_g_per_kwh.is_none() {
        return Err(Infeasible {
            conflicts: vec![
                "an emissions cap needs the carbon intensity (energy.carbon_g_per_kwh)".into(),
            ],
        });
    }
    if let Some(cap) = opts.emissions_cap_kg {
        if !cap.is_finite() || cap < 0.0 {
            return Err(Infeasible {
                conflicts: vec![format!("emissions cap {cap} kg must be ≥ 0")],
            });
        }
    }
    let objective = opts.objective.unwrap_or(inst.objective);
    let cols = columns(inst);
    let limits = Limits::all(inst, opts);
    let found = match objective {
        Objective::Profit => run_goal(inst, &cols, &limits, Goal::Profit, deadline),
        Objective::Cost => run_goal(inst, &cols, &limits, Goal::Cost, deadline),
        Objective::Roi => solve_roi(inst, &cols, &limits, deadline),
    };
    let found = match found {
        Ok(f) => f,
        Err(RunError::Infeasible) => {
            return Err(diagnose::diagnose(inst, opts, &cols, deadline));
        }
        Err(RunError::Timeout) => {
            return Err(Infeasible {
                conflicts: vec![format!(
                    "no allocation meeting the floors was found within the time limit of {} s \
                     (not proven infeasible; allow more time)",
                    opts.time_limit.as_secs_f64()
                )],
            });
        }
        Err(RunError::Backend(m)) => {
            return Err(Infeasible {
                conflicts: vec![format!("the solver failed: {m}")],
            });
        }
    };
    let allocation = clean(inst, &cols, &found.run);
    let totals = inst.evaluate(&allocation);
    let s = served(inst, &allocation);
    let unserved = inst
        .workloads
        .iter()
        .enumerate()
        .map(|(w, wl)| (w, (wl.demand - s[w]).max(0.0)))
        .collect();
    let binding = binding(inst, opts, &allocation, &totals);
    let (status, gap) = if found.optimal {
        (Status::Optimal, 0.0)
    } else {
        (Status::Feasible, found.gap.max(0.0))
    };
    Ok(Plan {
        status,
        allocation,
        totals,
        gap,
        solve_seconds: started.elapsed().as_secs_f64(),
        binding,
        unserved,
    })
}

/// Runs a goal with a floor-aware warm start (for the diagnosis).
pub(crate) fn run_limits(
    inst: &Instance,
    cols: &[Col],
    limits: &Limits,
    goal: Goal,
    deadline: Instant,
) -> Result<Run, RunError> {
    run_goal(inst, cols, limits, goal, deadline).map(|f| f.run)
}

/// The best ROI meeting `limits` (for the diagnosis), as (V/C) − 1.
pub(crate) fn best_roi(
    inst: &Instance,
    cols: &[Col],
    limits: &Limits,
    deadline: Instant,
) -> Option<f64> {
    let f = solve_roi(inst, cols, limits, deadline).ok()?;
    let t = inst.evaluate(&clean(inst, cols, &f.run));
    (t.cost > 0.0).then_some(t.roi)
}

/// The limits of `inst` under `opts`, every one kept (for the diagnosis).
pub(crate) fn all_limits(inst: &Instance, opts: &SolveOptions) -> Limits {
    Limits::all(inst, opts)
}
