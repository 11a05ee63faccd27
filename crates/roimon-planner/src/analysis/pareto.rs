//! The Pareto front of profit against emissions by the ε-constraint method:
//! the most profitable plan under each of evenly spaced emissions caps
//! between the least-emitting plan and the most profitable one, dominated
//! points dropped.

use crate::model::{Allocation, Instance};

/// One plan of the front.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The emissions cap it was solved under (None: uncapped or the
    /// least-emitting plan).
    pub cap_kg: Option<f64>,
    /// Profit over the period.
    pub profit: f64,
    /// Emissions over the period (kg CO2e).
    pub emissions_kg: f64,
    /// Its ROI.
    pub roi: f64,
    /// Its cost.
    pub cost: f64,
    /// Its allocation.
    pub allocation: Allocation,
    /// The constraints that bind (as the solver names them).
    pub binding: Vec<String>,
}

/// Relative tolerance under which two profits or emissions count as equal
/// (the solver's own tolerance is far coarser than this is fine).
const TOL: f64 = 1e-7;

fn eq_tol(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * a.abs().max(b.abs()).max(1.0)
}

/// Whether `a` dominates `b`: no more emissions, no less profit, and
/// better in one of them (beyond the tolerance).
pub fn dominates(a: &Point, b: &Point) -> bool {
    let e_le = a.emissions_kg <= b.emissions_kg || eq_tol(a.emissions_kg, b.emissions_kg);
    let p_ge = a.profit >= b.profit || eq_tol(a.profit, b.profit);
    let strictly = (a.emissions_kg < b.emissions_kg && !eq_tol(a.emissions_kg, b.emissions_kg))
        || (a.profit > b.profit && !eq_tol(a.profit, b.profit));
    e_le && p_ge && strictly
}

/// The non-dominated points of `points`, by emissions ascending (so profit
/// ascending too); of points equal in both, the first is kept.
pub fn non_dominated(mut points: Vec<Point>) -> Vec<Point> {
    points.retain(|p| p.profit.is_finite() && p.emissions_kg.is_finite());
    points.sort_by(|a, b| {
        a.emissions_kg
            .total_cmp(&b.emissions_kg)
            .then(b.profit.total_cmp(&a.profit))
    });
    let mut out: Vec<Point> = Vec::new();
    for p in points {
        let keep = match out.last() {
            None => true,
            Some(last) => p.profit > last.profit && !eq_tol(p.profit, last.profit),
        };
        if keep {
            // A later point with (about) the same emissions and more profit
            // replaces the last one.
            if let Some(last) = out.last() {
                if eq_tol(last.emissions_kg, p.emissions_kg) {
                    out.pop();
                }
            }
            out.push(p);
        }
    }
    out
}

/// The emissions caps of the front: `points` evenly spaced values from
/// `least` to `most` (both included; one value when `points` is 1 or the
/// two are equal).
pub fn caps(least: f64, most: f64, points: usize) -> Vec<f64> {
    if points <= 1 || eq_tol(least, most) {
        return vec![most.max(least)];
    }
    #[allow(clippy::cast_precision_loss)]
    let n = (points - 1) as f64;
    (0..points)
        .map(|i| {
            #[allow(clippy::cast_precision_loss)]
            let t = i as f64 / n;
            least + (most - least) * t
        })
        .collect()
}

/// The front from the least-emitting and the most profitable plans and a
/// solver of "maximise profit with emissions ≤ cap" (None when infeasible),
/// run on up to `threads` threads. The caps are loosened by a relative
/// 1e-9 so that the least-emitting plan's own emissions stay feasible.
pub fn front(
    least: Point,
    most: Point,
    points: usize,
    threads: usize,
    max_profit_under: &(dyn Fn(f64) -> Option<Point> + Sync),
) -> Vec<Point> {
    let caps = caps(least.emissions_kg, most.emissions_kg, points);
    let inner: Vec<f64> = caps
        .iter()
        .copied()
        .filter(|c| !eq_tol(*c, most.emissions_kg))
        .collect();
    let solved = super::sensitivity::run_parallel(&inner, threads, |&cap| {
        max_profit_under(cap * (1.0 + 1e-9) + 1e-9).map(|mut p| {
            p.cap_kg = Some(cap);
            p
        })
    });
    let mut all = vec![least, most];
    all.extend(solved.into_iter().flatten());
    non_dominated(all)
}

/// A point from an instance and an allocation evaluated with it.
pub fn point(inst: &Instance, allocation: Allocation, binding: Vec<String>) -> Point {
    let t = inst.evaluate(&allocation);
    Point {
        cap_kg: None,
        profit: t.profit,
        emissions_kg: t.emissions_kg.unwrap_or(0.0),
        roi: t.roi,
        cost: t.cost,
        allocation,
        binding,
    }
}
