//! The tornado and the break-even: how the fixed plan's profit and ROI (and
//! the re-optimised profit) move as each parameter group is scaled down
//! and up with the others at base, and the group's scale at which the fixed
//! plan's profit crosses 0.

use super::scale::{Group, Layout, Range, fixed_allocation, fixed_totals};
use crate::model::{Allocation, Instance, Totals};
use std::collections::BTreeMap;

/// The scales searched for a break-even.
pub const BREAK_EVEN_MAX: f64 = 10.0;

/// How far each group moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Swing {
    /// Every coefficient by the factors `1 − swing` and `1 + swing`.
    Fixed(f64),
    /// A coefficient measured from the ledger with a P10/P90 moves to
    /// them; every other coefficient by `1 ∓ swing` (the given default).
    Measured(f64),
}

impl Swing {
    /// The ±swing used for coefficients without a measured spread.
    pub fn swing(self) -> f64 {
        match self {
            Swing::Fixed(s) | Swing::Measured(s) => s,
        }
    }
}

/// One row of the tornado.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The group moved.
    pub parameter: Group,
    /// The fixed plan's profit with every group at base (the tornado's
    /// centre line).
    pub base: f64,
    /// The group's low scale factor (the mean over its coefficients when
    /// measured spreads give each its own).
    pub low: f64,
    /// The group's high scale factor.
    pub high: f64,
    /// Fixed plan's profit at the low factor.
    pub profit_low: f64,
    /// Fixed plan's profit at the high factor.
    pub profit_high: f64,
    /// Fixed plan's ROI at the low factor.
    pub roi_low: f64,
    /// Fixed plan's ROI at the high factor.
    pub roi_high: f64,
    /// Profit of the plan solved again at the low factor (None when that
    /// instance is infeasible).
    pub profit_low_reoptimised: Option<f64>,
    /// Profit of the plan solved again at the high factor.
    pub profit_high_reoptimised: Option<f64>,
    /// The group's scale in [0, 10] at which the fixed plan's profit is 0,
    /// the one nearest 1 when there are several; None when none.
    pub break_even: Option<f64>,
    /// `"swing"`, `"measured"` (every coefficient of the group had a
    /// measured P10/P90) or `"mixed"`.
    pub swing_source: &'static str,
}

impl Row {
    /// Width of the fixed plan's profit range (the sort key).
    pub fn range(&self) -> f64 {
        (self.profit_high - self.profit_low).abs()
    }
}

/// The tornado of the plan `a` for `inst`, widest fixed-plan profit range
/// first (ties in the contract's group order). `spread` holds the measured
/// P10/P90 by coefficient name (used with [`Swing::Measured`] only);
/// `reoptimise` solves a scaled instance again and returns its totals
/// (None when infeasible); its 14 calls run on up to `threads` threads.
pub fn tornado(
    inst: &Instance,
    a: &Allocation,
    swing: Swing,
    spread: Option<&BTreeMap<String, (f64, f64)>>,
    threads: usize,
    reoptimise: &(dyn Fn(&Instance) -> Option<Totals> + Sync),
) -> Vec<Row> {
    let layout = Layout::of(inst);
    let spread = match swing {
        Swing::Measured(_) => spread,
        Swing::Fixed(_) => None,
    };
    let ranges = layout.ranges(inst, swing.swing(), spread);
    let base = fixed_totals(inst, inst, a).profit;

    // The 14 scenarios: (group, low?) with their factors.
    let mut scenarios = Vec::with_capacity(14);
    for group in Group::ALL {
        for low in [true, false] {
            let factors: Vec<f64> = layout
                .entries
                .iter()
                .zip(&ranges)
                .map(|(e, r)| match (e.group == group, low) {
                    (false, _) => 1.0,
                    (true, true) => r.low,
                    (true, false) => r.high,
                })
                .collect();
            scenarios.push((group, low, layout.scaled(inst, &factors)));
        }
    }
    let reopt = run_parallel(&scenarios, threads, |(_, _, s)| reoptimise(s));

    let mut rows: Vec<Row> = Group::ALL
        .iter()
        .enumerate()
        .map(|(gi, &group)| {
            let lo = &scenarios[2 * gi].2;
            let hi = &scenarios[2 * gi + 1].2;
            let t_lo = fixed_totals(inst, lo, a);
            let t_hi = fixed_totals(inst, hi, a);
            let own: Vec<&Range> = layout
                .entries
                .iter()
                .zip(&ranges)
                .filter(|(e, _)| e.group == group)
                .map(|(_, r)| r)
                .collect();
            let (low, high, source) = summarise(&own, swing.swing());
            Row {
                parameter: group,
                base,
                low,
                high,
                profit_low: t_lo.profit,
                profit_high: t_hi.profit,
                roi_low: t_lo.roi,
                roi_high: t_hi.roi,
                profit_low_reoptimised: reopt[2 * gi].map(|t| t.profit),
                profit_high_reoptimised: reopt[2 * gi + 1].map(|t| t.profit),
                break_even: break_even(inst, &layout, a, group),
                swing_source: source,
            }
        })
        .collect();
    rows.sort_by(|x, y| y.range().total_cmp(&x.range()));
    rows
}

/// The group's low/high factor (mean over its coefficients) and where the
/// range came from.
fn summarise(own: &[&Range], swing: f64) -> (f64, f64, &'static str) {
    if own.is_empty() {
        return ((1.0 - swing).max(0.0), 1.0 + swing, "swing");
    }
    #[allow(clippy::cast_precision_loss)]
    let n = own.len() as f64;
    let mean = |f: fn(&Range) -> f64| {
        let first = f(own[0]);
        if own.iter().all(|r| f(r) == first) {
            first
        } else {
            own.iter().map(|r| f(r)).sum::<f64>() / n
        }
    };
    let low = mean(|r| r.low);
    let high = mean(|r| r.high);
    let measured = own.iter().filter(|r| r.measured).count();
    let source = if measured == 0 {
        "swing"
    } else if measured == own.len() {
        "measured"
    } else {
        "mixed"
    };
    (low, high, source)
}

/// Runs `f` over `items` on up to `threads` scoped threads, results in order.
pub(crate) fn run_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// The fixed plan's profit with `group` at scale `k`.
pub fn profit_at(inst: &Instance, layout: &Layout, a: &Allocation, group: Group, k: f64) -> f64 {
    let scaled = layout.scaled(inst, &layout.group_at(group, k));
    fixed_totals(inst, &scaled, a).profit
}

/// The scale of `group` in [0, [`BREAK_EVEN_MAX`]] at which the fixed
/// plan's profit is 0, exactly: the profit is linear in the scale between
/// the breakpoints where a cap starts to bind (a cell's throughput
/// `k = s / (n · tokens_per_second)`, a workload's demand `k = Σ s / demand`),
/// so it is evaluated at 0, 1, 10 and every breakpoint and each sign change
/// is solved linearly. With several roots, the one nearest the base scale 1
/// (the lower on a tie); None when the profit has no root in the range.
pub fn break_even(inst: &Instance, layout: &Layout, a: &Allocation, group: Group) -> Option<f64> {
    let mut ks = vec![0.0, 1.0, BREAK_EVEN_MAX];
    match group {
        Group::TokensPerSecond => {
            for c in &a.cells {
                if let Some(p) = inst.pair(c.gpu, c.workload) {
                    let cap = f64::from(c.gpus) * p.tokens_per_second;
                    if cap > 0.0 && c.tokens_per_second > 0.0 {
                        ks.push(c.tokens_per_second / cap);
                    }
                }
            }
        }
        Group::DemandTokensPerSecond => {
            for (w, wl) in inst.workloads.iter().enumerate() {
                let served: f64 = a
                    .cells
                    .iter()
                    .filter(|c| c.workload == w)
                    .map(|c| c.tokens_per_second)
                    .sum();
                if wl.demand > 0.0 && served > 0.0 {
                    ks.push(served / wl.demand);
                }
            }
        }
        _ => {}
    }
    ks.retain(|k| (0.0..=1.0).contains(k) || *k == BREAK_EVEN_MAX);
    ks.sort_by(f64::total_cmp);
    ks.dedup();
    let mut scaled = inst.clone();
    let mut alloc = Allocation::default();
    let ps: Vec<f64> = ks
        .iter()
        .map(|&k| {
            layout.apply(inst, &layout.group_at(group, k), &mut scaled);
            fixed_allocation(inst, &scaled, a, &mut alloc);
            scaled.evaluate(&alloc).profit
        })
        .collect();
    let mut roots = Vec::new();
    for i in 0..ks.len() {
        if ps[i] == 0.0 {
            roots.push(ks[i]);
        }
        if i + 1 < ks.len() && ps[i] * ps[i + 1] < 0.0 {
            let (k0, k1, p0, p1) = (ks[i], ks[i + 1], ps[i], ps[i + 1]);
            roots.push((k0 + (k1 - k0) * p0 / (p0 - p1)).clamp(k0, k1));
        }
    }
    roots.into_iter().min_by(|x, y| {
        (x - 1.0)
            .abs()
            .total_cmp(&(y - 1.0).abs())
            .then(x.total_cmp(y))
    })
}
