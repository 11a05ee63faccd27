//! Scenario selection: which subset of a scenario file's rows to fund, as an
//! exact 0/1 programme (`good_lp` with the pure-Rust `microlp` backend).
//! Benefit, value and profit are linear; the portfolio's weighted efficiency
//! Σ P / Σ w·C is a ratio and is solved exactly by Dinkelbach iterations,
//! each a 0/1 programme, never by a bare ratio.

use good_lp::{Expression, ProblemVariables, Solution, SolverModel, Variable, microlp, variable};
use serde::Deserialize;
use std::fmt;

/// What the selection maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Maximize {
    /// Σ P (benefit score).
    #[default]
    Benefit,
    /// Σ V (money produced).
    Value,
    /// Σ (V − M).
    Profit,
    /// Σ P / Σ w·C (weighted efficiency of the portfolio).
    Efficiency,
}

impl Maximize {
    /// The name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Maximize::Benefit => "benefit",
            Maximize::Value => "value",
            Maximize::Profit => "profit",
            Maximize::Efficiency => "efficiency",
        }
    }
}

/// `[select]` of a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectSpec {
    /// Σ money of the chosen scenarios ≤ budget (none: no limit).
    pub budget: Option<f64>,
    /// The objective.
    #[serde(default)]
    pub maximize: Maximize,
    /// At least this many scenarios.
    pub min_count: Option<u32>,
    /// At most this many scenarios.
    pub max_count: Option<u32>,
}

/// One scenario as the selection sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its name.
    pub name: String,
    /// P = Σ w · score.
    pub benefit: f64,
    /// M = Σ cost, unweighted (money spent).
    pub money: f64,
    /// C = Σ w · cost.
    pub weighted_cost: f64,
    /// V, the money it produces, when given.
    pub value: Option<f64>,
}

/// The chosen subset and its sums.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Indices of the chosen rows, ascending (file order).
    pub chosen: Vec<usize>,
    /// Σ P.
    pub benefit: f64,
    /// Σ M.
    pub money: f64,
    /// Σ w·C.
    pub weighted_cost: f64,
    /// Σ V, when every row has a value.
    pub value: Option<f64>,
    /// Σ (V − M), when every row has a value.
    pub profit: Option<f64>,
    /// Σ P / Σ w·C, when something is chosen.
    pub efficiency: Option<f64>,
}

/// Why there is no selection.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectError {
    /// A figure of the file is unusable; `key` is a dotted path
    /// (`select.budget`, `scenario[2].value`) for `roimon_config::locate`.
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No subset meets the constraints; the message names which conflict.
    Infeasible(String),
    /// The solver failed (a bug or a time limit, never expected here).
    Solver(String),
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Invalid { key, message } => write!(f, "{key}: {message}"),
            SelectError::Infeasible(m) => write!(f, "infeasible: {m}"),
            SelectError::Solver(m) => write!(f, "solver: {m}"),
        }
    }
}

impl std::error::Error for SelectError {}

/// The sums of the subset `chosen` (indices into `rows`).
pub fn sums(rows: &[Row], chosen: Vec<usize>) -> Selection {
    let mut benefit = 0.0;
    let mut money = 0.0;
    let mut weighted_cost = 0.0;
    let mut value = 0.0;
    for &i in &chosen {
        benefit += rows[i].benefit;
        money += rows[i].money;
        weighted_cost += rows[i].weighted_cost;
        value += rows[i].value.unwrap_or(0.0);
    }
    let all_valued = rows.iter().all(|r| r.value.is_some());
    let value = all_valued.then_some(value + 0.0);
    Selection {
        benefit: benefit + 0.0,
        money: money + 0.0,
        weighted_cost: weighted_cost + 0.0,
        profit: value.map(|v| v - money + 0.0),
        value,
        efficiency: (!chosen.is_empty() && weighted_cost > 0.0).then(|| benefit / weighted_cost),
        chosen,
    }
}

/// The objective's figure of a selection (what is maximised).
pub fn objective_of(s: &Selection, by: Maximize) -> f64 {
    match by {
        Maximize::Benefit => s.benefit,
        Maximize::Value => s.value.unwrap_or(f64::NEG_INFINITY),
        Maximize::Profit => s.profit.unwrap_or(f64::NEG_INFINITY),
        Maximize::Efficiency => s.efficiency.unwrap_or(f64::NEG_INFINITY),
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> SelectError {
    SelectError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Check the spec and the rows; returns the effective (min, max) counts.
fn check(rows: &[Row], spec: &SelectSpec) -> Result<(usize, usize), SelectError> {
    if let Some(b) = spec.budget {
        if !(b.is_finite() && b >= 0.0) {
            return Err(invalid(
                "select.budget",
                format!("must be a finite number ≥ 0, got {b}"),
            ));
        }
    }
    for (i, r) in rows.iter().enumerate() {
        let figures = [
            ("benefit", r.benefit),
            ("money", r.money),
            ("weighted cost", r.weighted_cost),
        ];
        for (what, v) in figures {
            if !v.is_finite() {
                return Err(invalid(
                    format!("scenario[{i}].name"),
                    format!("scenario `{}`: its {what} is not a finite number", r.name),
                ));
            }
        }
        if matches!(spec.maximize, Maximize::Value | Maximize::Profit) && r.value.is_none() {
            return Err(invalid(
                format!("scenario[{i}].value"),
                format!(
                    "maximize = \"{}\" needs a `value` on every scenario; `{}` has none",
                    spec.maximize.as_str(),
                    r.name
                ),
            ));
        }
        if spec.maximize == Maximize::Efficiency && r.weighted_cost <= 0.0 {
            return Err(invalid(
                format!("scenario[{i}].cost"),
                format!(
                    "maximize = \"efficiency\" needs a weighted cost > 0 on every scenario; `{}` has {}",
                    r.name, r.weighted_cost
                ),
            ));
        }
    }
    let n = rows.len();
    let min = spec.min_count.map_or(0, |m| m as usize);
    let max = spec.max_count.map_or(n, |m| (m as usize).min(n));
    if let (Some(lo), Some(hi)) = (spec.min_count, spec.max_count) {
        if lo > hi {
            return Err(invalid(
                "select.min_count",
                format!("min_count {lo} is larger than max_count {hi}"),
            ));
        }
    }
    Ok((min, max))
}

/// Why no subset fits, in words, if none does (checked before solving, so
/// the message names the conflicting constraints).
fn conflict(rows: &[Row], spec: &SelectSpec, min: usize, max: usize) -> Option<String> {
    let n = rows.len();
    if min > n {
        return Some(format!(
            "min_count {min} is more than the {n} scenarios in the file"
        ));
    }
    let need = if spec.maximize == Maximize::Efficiency {
        min.max(1)
    } else {
        min
    };
    if need > max {
        return Some(format!(
            "maximize = \"efficiency\" needs at least one scenario, but max_count is {max}"
        ));
    }
    let budget = spec.budget?;
    let mut by_money: Vec<usize> = (0..n).collect();
    by_money.sort_by(|&a, &b| rows[a].money.total_cmp(&rows[b].money));
    let cheapest = &by_money[..need];
    let money: f64 = cheapest.iter().map(|&i| rows[i].money).sum();
    (money > budget).then(|| {
        let names: Vec<&str> = cheapest.iter().map(|&i| rows[i].name.as_str()).collect();
        format!(
            "the budget {budget} is below the money of every selection of at least {need} scenario(s): the cheapest ({}) costs {money}",
            names.join(", ")
        )
    })
}

/// A 0/1 programme: maximise Σ coef·x under the budget and counts.
fn solve_01(
    rows: &[Row],
    coef: &[f64],
    spec: &SelectSpec,
    min: usize,
    max: usize,
) -> Result<Vec<usize>, SelectError> {
    let mut vars = ProblemVariables::new();
    let x: Vec<Variable> = rows.iter().map(|_| vars.add(variable().binary())).collect();
    let objective: Expression = x.iter().zip(coef).map(|(v, c)| *c * *v).sum();
    let count: Expression = x.iter().map(|v| Expression::from(*v)).sum();
    #[allow(clippy::cast_precision_loss)]
    let (lo, hi) = (min as f64, max as f64);
    let mut model = vars
        .maximise(objective)
        .using(microlp)
        .with(count.clone().geq(lo))
        .with(count.leq(hi));
    if let Some(b) = spec.budget {
        let money: Expression = x.iter().zip(rows).map(|(v, r)| r.money * *v).sum();
        model = model.with(money.leq(b));
    }
    let sol = model.solve().map_err(|e| match e {
        good_lp::ResolutionError::Infeasible => {
            SelectError::Infeasible("no selection meets the budget and the counts".into())
        }
        other => SelectError::Solver(other.to_string()),
    })?;
    Ok(x.iter()
        .enumerate()
        .filter(|(_, v)| sol.value(**v) > 0.5)
        .map(|(i, _)| i)
        .collect())
}

/// Choose the subset of `rows` that maximises `spec.maximize` under the
/// budget and the counts, exactly.
pub fn select(rows: &[Row], spec: &SelectSpec) -> Result<Selection, SelectError> {
    let (min, max) = check(rows, spec)?;
    if let Some(why) = conflict(rows, spec, min, max) {
        return Err(SelectError::Infeasible(why));
    }
    let chosen = match spec.maximize {
        Maximize::Benefit => {
            let c: Vec<f64> = rows.iter().map(|r| r.benefit).collect();
            solve_01(rows, &c, spec, min, max)?
        }
        Maximize::Value => {
            let c: Vec<f64> = rows.iter().map(|r| r.value.unwrap_or(0.0)).collect();
            solve_01(rows, &c, spec, min, max)?
        }
        Maximize::Profit => {
            let c: Vec<f64> = rows
                .iter()
                .map(|r| r.value.unwrap_or(0.0) - r.money)
                .collect();
            solve_01(rows, &c, spec, min, max)?
        }
        Maximize::Efficiency => dinkelbach(rows, spec, min.max(1), max)?,
    };
    Ok(sums(rows, chosen))
}

/// max Σ P / Σ C over non-empty feasible subsets (C > 0): Dinkelbach's
/// method. Start from any feasible subset with ratio λ; solve
/// max Σ (P − λ·C)·x; if the optimum is ≤ 0 (to a rounding), λ is the
/// maximum ratio; else the optimum's own ratio is a strictly larger λ. There
/// are finitely many subsets, so it ends (in practice in a few steps).
fn dinkelbach(
    rows: &[Row],
    spec: &SelectSpec,
    min: usize,
    max: usize,
) -> Result<Vec<usize>, SelectError> {
    let ratio = |s: &[usize]| {
        let p: f64 = s.iter().map(|&i| rows[i].benefit).sum();
        let c: f64 = s.iter().map(|&i| rows[i].weighted_cost).sum();
        p / c
    };
    let zeros = vec![0.0; rows.len()];
    let mut best = solve_01(rows, &zeros, spec, min, max)?;
    let mut lambda = ratio(&best);
    // A subset never repeats with a larger λ: at most 2^n steps; a cap of
    // a thousand is never reached on real files.
    for _ in 0..1000 {
        let c: Vec<f64> = rows
            .iter()
            .map(|r| r.benefit - lambda * r.weighted_cost)
            .collect();
        let next = solve_01(rows, &c, spec, min, max)?;
        let f: f64 = next.iter().map(|&i| c[i]).sum();
        let scale: f64 = rows
            .iter()
            .map(|r| r.benefit.abs() + (lambda * r.weighted_cost).abs())
            .sum::<f64>()
            .max(1e-300);
        let r = ratio(&next);
        if f <= 1e-12 * scale || r <= lambda {
            return Ok(best);
        }
        best = next;
        lambda = r;
    }
    Err(SelectError::Solver(
        "Dinkelbach iterations did not settle".into(),
    ))
}

/// Every subset, for tests and for checking small files: the best by the
/// objective under the constraints (ties: the first subset in mask order).
pub fn exhaustive(rows: &[Row], spec: &SelectSpec) -> Result<Selection, SelectError> {
    let (min, max) = check(rows, spec)?;
    let n = rows.len();
    assert!(n <= 24, "exhaustive search over {n} rows");
    let need = if spec.maximize == Maximize::Efficiency {
        min.max(1)
    } else {
        min
    };
    let mut best: Option<(f64, Selection)> = None;
    for mask in 0u32..(1u32 << n) {
        let k = mask.count_ones() as usize;
        if k < need || k > max {
            continue;
        }
        let chosen: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let s = sums(rows, chosen);
        if spec.budget.is_some_and(|b| s.money > b) {
            continue;
        }
        let v = objective_of(&s, spec.maximize);
        if best.as_ref().is_none_or(|b| v > b.0) {
            best = Some((v, s));
        }
    }
    best.map(|b| b.1).ok_or_else(|| {
        SelectError::Infeasible(
            conflict(rows, spec, min, max)
                .unwrap_or_else(|| "no selection meets the budget and the counts".into()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Weights of the README's example (benefit; cost).
    const WB: [f64; 4] = [0.3, 0.2, 0.25, 0.25];
    const WC: [f64; 4] = [0.3, 0.2, 0.25, 0.25];

    /// Eight data rows: scores for precision, coverage, satisfaction,
    /// growth; costs for server, maintenance, energy, staff; a value.
    fn eight() -> Vec<Row> {
        let data: [(&str, [f64; 4], [f64; 4], f64); 8] = [
            (
                "case-4.2",
                [0.95, 0.85, 0.90, 0.80],
                [500.0, 100.0, 50.0, 5000.0],
                6200.0,
            ),
            (
                "case-4.3",
                [0.98, 0.90, 0.92, 0.85],
                [1000.0, 100.0, 50.0, 5000.0],
                2000.0,
            ),
            (
                "small-model",
                [0.80, 0.70, 0.75, 0.60],
                [200.0, 50.0, 30.0, 2500.0],
                3100.0,
            ),
            (
                "large-model",
                [0.99, 0.95, 0.93, 0.90],
                [3000.0, 400.0, 300.0, 8000.0],
                14000.0,
            ),
            (
                "edge-cache",
                [0.85, 0.60, 0.80, 0.50],
                [800.0, 80.0, 20.0, 1500.0],
                2900.0,
            ),
            (
                "batch-night",
                [0.90, 0.40, 0.70, 0.45],
                [300.0, 60.0, 10.0, 1200.0],
                1500.0,
            ),
            (
                "multilingual",
                [0.92, 0.98, 0.88, 0.75],
                [1500.0, 200.0, 120.0, 6000.0],
                9000.0,
            ),
            (
                "distilled",
                [0.88, 0.80, 0.85, 0.70],
                [400.0, 70.0, 25.0, 3000.0],
                4000.0,
            ),
        ];
        data.iter()
            .map(|(name, b, c, v)| Row {
                name: (*name).into(),
                benefit: b.iter().zip(WB).map(|(s, w)| s * w).sum(),
                money: c.iter().sum(),
                weighted_cost: c.iter().zip(WC).map(|(s, w)| s * w).sum(),
                value: Some(*v),
            })
            .collect()
    }

    fn spec(budget: f64, by: Maximize) -> SelectSpec {
        SelectSpec {
            budget: Some(budget),
            maximize: by,
            min_count: Some(1),
            max_count: Some(8),
        }
    }

    fn same(a: &Selection, b: &Selection, by: Maximize) {
        let (x, y) = (objective_of(a, by), objective_of(b, by));
        assert!(
            (x - y).abs() <= 1e-9 * x.abs().max(1.0),
            "{by:?}: solver {x} {:?} vs exhaustive {y} {:?}",
            a.chosen,
            b.chosen
        );
    }

    #[test]
    fn the_eight_rows_under_a_budget_match_every_subset() {
        let rows = eight();
        let all = [
            Maximize::Benefit,
            Maximize::Value,
            Maximize::Profit,
            Maximize::Efficiency,
        ];
        for budget in [5000.0, 12_000.0, 20_000.0, 30_000.0, 1e9] {
            for by in all {
                let s = spec(budget, by);
                let got = select(&rows, &s).unwrap();
                let want = exhaustive(&rows, &s).unwrap();
                same(&got, &want, by);
                assert!(got.money <= budget);
                assert!(!got.chosen.is_empty());
            }
        }
        // By hand: a portfolio's P/C is never above its best row's, so
        // efficiency picks the single best row (batch-night: 0.6375 / 404.5).
        let s = select(&rows, &spec(20_000.0, Maximize::Efficiency)).unwrap();
        let best_single = rows
            .iter()
            .enumerate()
            .max_by(|a, b| {
                (a.1.benefit / a.1.weighted_cost).total_cmp(&(b.1.benefit / b.1.weighted_cost))
            })
            .unwrap()
            .0;
        assert_eq!(s.chosen, vec![best_single]);
        assert_eq!(rows[best_single].name, "batch-night");
        // Without a budget, every row adds benefit: all eight.
        let s = select(
            &rows,
            &SelectSpec {
                budget: None,
                ..SelectSpec::default()
            },
        )
        .unwrap();
        assert_eq!(s.chosen, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn a_budget_below_every_allowed_subset_is_infeasible_and_says_why() {
        let rows = eight();
        let mut s = spec(3000.0, Maximize::Benefit);
        s.min_count = Some(2);
        let e = select(&rows, &s).unwrap_err();
        let SelectError::Infeasible(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("budget 3000"), "{m}");
        assert!(m.contains("batch-night, edge-cache"), "{m}");
        assert!(exhaustive(&rows, &s).is_err());
        // Efficiency needs one row; max_count 0 rules it out.
        let mut s = spec(1e9, Maximize::Efficiency);
        s.min_count = None;
        s.max_count = Some(0);
        assert!(matches!(select(&rows, &s), Err(SelectError::Infeasible(_))));
        // Value without values is an error naming the row.
        let mut rows = eight();
        rows[3].value = None;
        let e = select(&rows, &spec(1e9, Maximize::Profit)).unwrap_err();
        assert!(
            matches!(&e, SelectError::Invalid { key, .. } if key == "scenario[3].value"),
            "{e:?}"
        );
        let mut s = spec(1e9, Maximize::Benefit);
        s.min_count = Some(3);
        s.max_count = Some(2);
        assert!(matches!(
            select(&rows, &s),
            Err(SelectError::Invalid { key, .. }) if key == "select.min_count"
        ));
        s = spec(f64::NAN, Maximize::Benefit);
        assert!(matches!(
            select(&rows, &s),
            Err(SelectError::Invalid { key, .. }) if key == "select.budget"
        ));
    }

    fn arb_rows() -> impl Strategy<Value = Vec<Row>> {
        proptest::collection::vec((0u32..100, 1u32..50, 1u32..50, 0u32..80), 1..9).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (p, m, c, val))| Row {
                    name: format!("s{i}"),
                    benefit: f64::from(p) / 100.0,
                    money: f64::from(m),
                    weighted_cost: f64::from(c) / 4.0,
                    value: Some(f64::from(val)),
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random small instances: the 0/1 programme's optimum equals the
        /// best of every subset, for every objective.
        #[test]
        fn random_instances_match_exhaustive_64_cases(
            rows in arb_rows(),
            budget in 0u32..200,
            lo in 0u32..3,
            extra in 0u32..9,
        ) {
            for by in [Maximize::Benefit, Maximize::Value, Maximize::Profit, Maximize::Efficiency] {
                let s = SelectSpec {
                    budget: Some(f64::from(budget)),
                    maximize: by,
                    min_count: Some(lo),
                    max_count: Some(lo + extra),
                };
                match (select(&rows, &s), exhaustive(&rows, &s)) {
                    (Ok(a), Ok(b)) => {
                        let (x, y) = (objective_of(&a, by), objective_of(&b, by));
                        prop_assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0),
                            "{by:?}: {x} {:?} vs {y} {:?}", a.chosen, b.chosen);
                        prop_assert!(a.money <= f64::from(budget));
                        prop_assert!(a.chosen.len() >= lo as usize);
                        prop_assert!(a.chosen.len() <= (lo + extra) as usize);
                    }
                    (Err(SelectError::Infeasible(_)), Err(SelectError::Infeasible(_))) => {}
                    (a, b) => prop_assert!(false, "{by:?}: {a:?} vs {b:?}"),
                }
            }
        }
    }
}
