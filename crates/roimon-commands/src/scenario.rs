//! `roimon roi --scenario FILE`: the weighted model (benefit score P, weighted
//! cost C, P/C) and financial ROI on the unweighted money over a scenario
//! file, printed as a table or as JSON, ranked by weighted efficiency or by
//! financial ROI (`--rank-by`).

use roimon_config::{ConfigError, locate, parse_toml, read_file};
use roimon_core::roi::{self, RoiError, Scenario, ScenarioResult, Weights};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

/// What `roimon roi --rank-by` orders the scenarios by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RankBy {
    /// Weighted efficiency P/C, highest first (the default).
    #[default]
    Efficiency,
    /// Financial ROI (V - M)/M, highest first; scenarios without `value`
    /// after those with it.
    Roi,
}

impl From<RankBy> for roi::RankBy {
    fn from(r: RankBy) -> Self {
        match r {
            RankBy::Efficiency => roi::RankBy::Efficiency,
            RankBy::Roi => roi::RankBy::Roi,
        }
    }
}

/// `roimon roi`: print the ranked scenarios (exit 0), or the error naming
/// the file, line and key (exit 2). Weights that do not sum to 1 are warned
/// about on stderr and evaluated as given.
pub fn main(path: &Path, json: bool, rank_by: RankBy) -> ExitCode {
    match evaluate_file_ranked(path, rank_by) {
        Ok((results, warnings)) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            if json {
                crate::outln!("{}", to_json(&results));
            } else {
                crate::out!("{}", to_table(&results));
            }
            ExitCode::SUCCESS
        }
        Err(e) => crate::config_error(&e),
    }
}

/// How far from 1 a sum of weights may be before it is warned about.
const WEIGHT_SUM_TOLERANCE: f64 = 1e-9;

/// A warning for each set of weights that does not sum to 1 (the benefit
/// weights always; the cost weights where given: without them every cost
/// weighs 1 by definition).
fn weight_sum_warnings(file: &str, w: &FileWeights) -> Vec<String> {
    let mut out = Vec::new();
    let sets = [("benefit", Some(&w.benefit)), ("cost", w.cost.as_ref())];
    for (kind, set) in sets {
        let Some(set) = set else { continue };
        let sum: f64 = set.values().sum();
        if sum.is_finite() && (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
            out.push(format!(
                "{file}: weights.{kind} sum to {sum}, not 1; evaluated as given"
            ));
        }
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    weights: FileWeights,
    #[serde(default)]
    scenario: Vec<FileScenario>,
    /// `[select]`: what `roimon plan` chooses among the scenarios (ignored
    /// by `roimon roi`).
    select: Option<roimon_planner::select::SelectSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeights {
    benefit: BTreeMap<String, f64>,
    cost: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: String,
    benefit: BTreeMap<String, f64>,
    cost: BTreeMap<String, f64>,
    value: Option<f64>,
}

/// Evaluate a scenario file, ranked by `rank_by`, with the warnings about
/// its weights.
pub fn evaluate_file_ranked(
    path: &Path,
    rank_by: RankBy,
) -> Result<(Vec<ScenarioResult>, Vec<String>), ConfigError> {
    let src = read_file(path)?;
    let file = path.display().to_string();
    let e = evaluate_src(&src, &file)?;
    let mut results = e.results;
    roi::rank(&mut results, rank_by.into());
    Ok((results, e.warnings))
}

/// A scenario file evaluated (in file order), with what selection needs.
#[derive(Debug)]
pub struct Evaluated {
    /// Each scenario's figures, in file order.
    pub results: Vec<ScenarioResult>,
    /// Each scenario's `value`, in file order.
    pub values: Vec<Option<f64>>,
    /// `[select]`, when the file has one.
    pub select: Option<roimon_planner::select::SelectSpec>,
    /// Warnings about the weights.
    pub warnings: Vec<String>,
}

/// Evaluate the scenario file text `src` read from `file`.
pub fn evaluate_src(src: &str, file: &str) -> Result<Evaluated, ConfigError> {
    let src = src.to_string();
    let file = file.to_string();
    let f: File = parse_toml(&src, &file)?;
    let select = f.select;
    let values: Vec<Option<f64>> = f.scenario.iter().map(|s| s.value).collect();
    let warnings = weight_sum_warnings(&file, &f.weights);
    let weights = Weights {
        benefit: f.weights.benefit,
        cost: f.weights.cost,
    };
    let scenarios: Vec<Scenario> = f
        .scenario
        .into_iter()
        .map(|s| Scenario {
            name: s.name,
            benefit: s.benefit,
            cost: s.cost,
            value: s.value,
        })
        .collect();
    let results = roi::evaluate(&weights, &scenarios).map_err(|e| {
        let key = match &e {
            RoiError::Unweighted {
                kind, indicator, ..
            }
            | RoiError::Missing {
                kind, indicator, ..
            } => Some(format!("{kind}.{indicator}")),
            RoiError::NegativeCost { indicator, .. } => Some(format!("cost.{indicator}")),
            RoiError::ScoreOutOfRange { indicator, .. } => Some(format!("benefit.{indicator}")),
            _ => None,
        };
        // Point at the scenario's table in the file.
        let scenario_idx = match &e {
            RoiError::Unweighted { scenario, .. }
            | RoiError::Missing { scenario, .. }
            | RoiError::NegativeCost { scenario, .. }
            | RoiError::ScoreOutOfRange { scenario, .. }
            | RoiError::ZeroCost { scenario }
            | RoiError::NotFinite { scenario, .. } => {
                scenarios.iter().position(|s| &s.name == scenario)
            }
            RoiError::BadWeight { .. } | RoiError::Empty => None,
        };
        if let RoiError::BadWeight {
            kind, indicator, ..
        } = &e
        {
            return ConfigError {
                file: file.clone(),
                line: locate(&src, &format!("weights.{kind}")),
                key: Some(format!("weights.{kind}.{indicator}")),
                message: e.to_string(),
            };
        }
        let line = scenario_idx.and_then(|i| locate(&src, &format!("scenario[{i}].name")));
        ConfigError {
            file: file.clone(),
            line,
            key: key.map(|k| match scenario_idx {
                Some(i) => format!("scenario[{i}].{k}"),
                None => k,
            }),
            message: e.to_string(),
        }
    })?;
    Ok(Evaluated {
        results,
        values,
        select,
        warnings,
    })
}

/// The JSON document of the contract.
pub fn to_json(results: &[ScenarioResult]) -> serde_json::Value {
    serde_json::json!({ "scenarios": results })
}

/// A readable table.
pub fn to_table(results: &[ScenarioResult]) -> String {
    let mut out = format!(
        "{:<4} {:<24} {:>12} {:>14} {:>20} {:>14} {:>12}\n",
        "rank",
        "scenario",
        "benefit P",
        "weighted C",
        "weighted eff. P/C",
        "money M",
        "ROI (V-M)/M"
    );
    let mut sorted: Vec<&ScenarioResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.rank);
    for r in sorted {
        let roi = r.roi.map_or("-".to_string(), |v| format!("{v:.4}"));
        out.push_str(&format!(
            "{:<4} {:<24} {:>12.4} {:>14.2} {:>20.4e} {:>14.2} {:>12}\n",
            r.rank, r.name, r.benefit_score, r.cost, r.weighted_efficiency, r.money_cost, roi
        ));
    }
    out
}

/// Scenario files are outside input: arbitrary text and mutated examples
/// never panic, and every error names the file.
#[cfg(test)]
mod survives_any_input {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = include_str!("../../../config/scenario.example.toml");

    fn run(text: &[u8]) -> Result<Vec<ScenarioResult>, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, text).unwrap();
        evaluate_file_ranked(&p, RankBy::default()).map(|(r, _)| r)
    }

    #[test]
    fn the_example_evaluates() {
        assert!(run(EXAMPLE.as_bytes()).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_64_cases(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            if let Err(e) = run(&bytes) {
                prop_assert!(e.to_string().contains("s.toml"), "{e}");
            }
        }

        #[test]
        fn mutated_example_64_cases(at in 0usize..4096, with in "[ -~\n]") {
            let mut s = EXAMPLE.to_string();
            let mut at = at % s.len();
            while !s.is_char_boundary(at) { at -= 1; }
            s.replace_range(at..at + s[at..].chars().next().map_or(0, char::len_utf8), &with);
            if let Err(e) = run(s.as_bytes()) {
                prop_assert!(e.to_string().contains("s.toml"), "{e}");
            }
        }
    }
}
