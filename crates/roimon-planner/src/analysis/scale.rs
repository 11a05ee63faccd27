//! The seven parameter groups the analysis moves, every scalable
//! coefficient of an instance laid out once, and the fixed plan: the same
//! GPUs and served tokens under scaled coefficients, the tokens capped at the
//! new capacity and the new demand.

use crate::model::{Allocation, Instance, Totals};
use std::collections::BTreeMap;
use std::fmt;

/// A parameter group: every coefficient of one kind, moved together by
/// one scale factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// `energy.price_per_kwh`.
    PricePerKwh,
    /// `energy.pue`.
    Pue,
    /// Every workload's `value_per_million_tokens`.
    ValuePerMillionTokens,
    /// Every workload's `demand_tokens_per_second`.
    DemandTokensPerSecond,
    /// Every GPU type's `cost_per_hour`.
    CostPerHour,
    /// Every pair's `joules_per_token`.
    JoulesPerToken,
    /// Every pair's `tokens_per_second`.
    TokensPerSecond,
}

impl Group {
    /// The seven groups in the contract's order.
    pub const ALL: [Group; 7] = [
        Group::PricePerKwh,
        Group::Pue,
        Group::ValuePerMillionTokens,
        Group::DemandTokensPerSecond,
        Group::CostPerHour,
        Group::JoulesPerToken,
        Group::TokensPerSecond,
    ];

    /// The contract's `parameter` name.
    pub fn name(self) -> &'static str {
        match self {
            Group::PricePerKwh => "price_per_kwh",
            Group::Pue => "pue",
            Group::ValuePerMillionTokens => "value_per_million_tokens",
            Group::DemandTokensPerSecond => "demand_tokens_per_second",
            Group::CostPerHour => "cost_per_hour",
            Group::JoulesPerToken => "joules_per_token",
            Group::TokensPerSecond => "tokens_per_second",
        }
    }

    fn index(self) -> usize {
        Group::ALL.iter().position(|g| *g == self).unwrap_or(0)
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which number of the instance one entry scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Price,
    Pue,
    Value(usize),
    Demand(usize),
    Cost(usize),
    /// (workload, index into its `on`).
    Jpt(usize, usize),
    /// (workload, index into its `on`).
    Tps(usize, usize),
}

/// One scalable coefficient.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its group.
    pub group: Group,
    /// Its coefficient name (as in the output's `coefficients`), e.g.
    /// `workload.search/chat.on.H100.tokens_per_second`.
    pub name: String,
    target: Target,
}

/// Every scalable coefficient of an instance, in a fixed order; a vector
/// of factors (one per entry) describes a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The entries.
    pub entries: Vec<Entry>,
}

impl Layout {
    /// The layout of `inst`: price, PUE, then per workload its value and
    /// demand, per GPU type its cost, per pair its energy and throughput.
    pub fn of(inst: &Instance) -> Layout {
        let mut entries = vec![
            Entry {
                group: Group::PricePerKwh,
                name: "energy.price_per_kwh".into(),
                target: Target::Price,
            },
            Entry {
                group: Group::Pue,
                name: "energy.pue".into(),
                target: Target::Pue,
            },
        ];
        for (w, wl) in inst.workloads.iter().enumerate() {
            entries.push(Entry {
                group: Group::ValuePerMillionTokens,
                name: format!("workload.{}.value_per_million_tokens", wl.name),
                target: Target::Value(w),
            });
            entries.push(Entry {
                group: Group::DemandTokensPerSecond,
                name: format!("workload.{}.demand_tokens_per_second", wl.name),
                target: Target::Demand(w),
            });
        }
        for (g, gpu) in inst.gpus.iter().enumerate() {
            entries.push(Entry {
                group: Group::CostPerHour,
                name: format!("gpu.{}.cost_per_hour", gpu.kind),
                target: Target::Cost(g),
            });
        }
        for (w, wl) in inst.workloads.iter().enumerate() {
            for (p, pair) in wl.on.iter().enumerate() {
                let kind = &inst.gpus[pair.gpu].kind;
                entries.push(Entry {
                    group: Group::JoulesPerToken,
                    name: format!("workload.{}.on.{kind}.joules_per_token", wl.name),
                    target: Target::Jpt(w, p),
                });
                entries.push(Entry {
                    group: Group::TokensPerSecond,
                    name: format!("workload.{}.on.{kind}.tokens_per_second", wl.name),
                    target: Target::Tps(w, p),
                });
            }
        }
        Layout { entries }
    }

    /// Factors of 1 everywhere (the base).
    pub fn ones(&self) -> Vec<f64> {
        vec![1.0; self.entries.len()]
    }

    /// Factors with `group` at `k` and every other group at 1.
    pub fn group_at(&self, group: Group, k: f64) -> Vec<f64> {
        self.entries
            .iter()
            .map(|e| if e.group == group { k } else { 1.0 })
            .collect()
    }

    /// Writes `base` with every entry multiplied by its factor into `out`
    /// (a clone of `base`; only the numbers change, nothing allocates).
    pub fn apply(&self, base: &Instance, factors: &[f64], out: &mut Instance) {
        for (e, &f) in self.entries.iter().zip(factors) {
            match e.target {
                Target::Price => out.price_per_kwh = base.price_per_kwh * f,
                Target::Pue => out.pue = base.pue * f,
                Target::Value(w) => {
                    out.workloads[w].value_per_million_tokens =
                        base.workloads[w].value_per_million_tokens * f;
                }
                Target::Demand(w) => out.workloads[w].demand = base.workloads[w].demand * f,
                Target::Cost(g) => out.gpus[g].cost_per_hour = base.gpus[g].cost_per_hour * f,
                Target::Jpt(w, p) => {
                    out.workloads[w].on[p].joules_per_token =
                        base.workloads[w].on[p].joules_per_token * f;
                }
                Target::Tps(w, p) => {
                    out.workloads[w].on[p].tokens_per_second =
                        base.workloads[w].on[p].tokens_per_second * f;
                }
            }
        }
    }

    /// A scaled copy of `base`.
    pub fn scaled(&self, base: &Instance, factors: &[f64]) -> Instance {
        let mut out = base.clone();
        self.apply(base, factors, &mut out);
        out
    }

    /// The (low, high) factor of every entry: `1 ∓ swing`, or for a
    /// coefficient with a measured spread in `spread` (P10, P90 keyed by
    /// coefficient name) the ratios P10 ÷ base and P90 ÷ base, clamped so
    /// that low ≤ 1 ≤ high. The flag says which entries took the measured
    /// spread.
    pub fn ranges(
        &self,
        base: &Instance,
        swing: f64,
        spread: Option<&BTreeMap<String, (f64, f64)>>,
    ) -> Vec<Range> {
        let ones = self.ones();
        let mut values = base.clone();
        self.apply(base, &ones, &mut values);
        self.entries
            .iter()
            .map(|e| {
                let v = self.value(&values, e);
                match spread.and_then(|s| s.get(&e.name)) {
                    Some(&(p10, p90)) if v > 0.0 && p10.is_finite() && p90.is_finite() => Range {
                        low: (p10 / v).clamp(0.0, 1.0),
                        high: (p90 / v).max(1.0),
                        measured: true,
                    },
                    _ => Range {
                        low: (1.0 - swing).max(0.0),
                        high: 1.0 + swing,
                        measured: false,
                    },
                }
            })
            .collect()
    }

    /// The base value of one entry.
    fn value(&self, inst: &Instance, e: &Entry) -> f64 {
        match e.target {
            Target::Price => inst.price_per_kwh,
            Target::Pue => inst.pue,
            Target::Value(w) => inst.workloads[w].value_per_million_tokens,
            Target::Demand(w) => inst.workloads[w].demand,
            Target::Cost(g) => inst.gpus[g].cost_per_hour,
            Target::Jpt(w, p) => inst.workloads[w].on[p].joules_per_token,
            Target::Tps(w, p) => inst.workloads[w].on[p].tokens_per_second,
        }
    }

    /// The group of each entry as an index into [`Group::ALL`].
    pub(crate) fn group_indices(&self) -> Vec<usize> {
        self.entries.iter().map(|e| e.group.index()).collect()
    }
}

/// The low and high factor of one coefficient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Factor at the low end (≤ 1).
    pub low: f64,
    /// Factor at the high end (≥ 1).
    pub high: f64,
    /// From the measured P10/P90 rather than ±swing.
    pub measured: bool,
}

/// The fixed plan's allocation under `scaled`: every cell keeps its GPUs
/// and its tokens, except that a cell whose throughput fell serves at most
/// `gpus · tokens_per_second` and a workload whose demand fell serves at
/// most its new demand (its cells cut in proportion). Caps apply only where
/// the coefficient fell, so the base (all factors 1) reproduces the plan
/// exactly. Writes into `out` (reused between draws).
pub fn fixed_allocation(base: &Instance, scaled: &Instance, a: &Allocation, out: &mut Allocation) {
    out.cells.clear();
    out.cells.extend_from_slice(&a.cells);
    for c in &mut out.cells {
        let (Some(b), Some(s)) = (base.pair(c.gpu, c.workload), scaled.pair(c.gpu, c.workload))
        else {
            continue;
        };
        if s.tokens_per_second < b.tokens_per_second {
            let cap = f64::from(c.gpus) * s.tokens_per_second;
            if c.tokens_per_second > cap {
                c.tokens_per_second = cap;
            }
        }
    }
    for (w, (bw, sw)) in base.workloads.iter().zip(&scaled.workloads).enumerate() {
        if sw.demand >= bw.demand {
            continue;
        }
        let served: f64 = out
            .cells
            .iter()
            .filter(|c| c.workload == w)
            .map(|c| c.tokens_per_second)
            .sum();
        if served > sw.demand && served > 0.0 {
            let k = sw.demand / served;
            for c in out.cells.iter_mut().filter(|c| c.workload == w) {
                c.tokens_per_second *= k;
            }
        }
    }
}

/// The fixed plan's totals under `scaled` (see [`fixed_allocation`]).
pub fn fixed_totals(base: &Instance, scaled: &Instance, a: &Allocation) -> Totals {
    let mut out = Allocation::default();
    fixed_allocation(base, scaled, a, &mut out);
    scaled.evaluate(&out)
}
