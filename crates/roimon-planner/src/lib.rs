//! roimon's planner: pure decisions over the ledger's measured figures (no
//! tokio, no HTTP, no clock). The binary reads files and the ledger and
//! prints; everything that decides lives here.
//!
//! - allocation: `model` (the file, the instance, the contract's totals),
//!   `resolve` (checks and measured coefficients), `solve` (a MILP with
//!   `good_lp` and the pure-Rust `microlp` backend, under a time limit: the
//!   only clock the crate reads), `output` (JSON and table).
//! - `select`: scenario selection, a 0/1 programme.
//! - `window`: the cheapest start of a deferrable job in a price schedule.
//! - `analysis`: tornado, break-even, Monte Carlo, Pareto front, SVG.

pub mod analysis;
pub mod model;
pub mod output;
pub mod resolve;
pub mod select;
pub mod solve;
pub mod svg;
pub mod window;

pub use output::{infeasible_json, to_json, to_table};
pub use resolve::{CoefKey, Measured, ResolveError, resolve};
pub use solve::{Infeasible, Plan, SolveOptions, Status, solve};

pub use model::{
    Allocation, Cell, Coef, Coefficient, Gpu, Instance, Objective, Pair, PlanFile, Totals, Workload,
};
