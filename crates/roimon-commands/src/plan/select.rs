//! `roimon plan FILE` on a scenario file with `[select]`: the subset of its
//! scenarios that maximises benefit, value, profit or weighted efficiency
//! under the money budget and the count bounds (an exact 0/1 programme in
//! `roimon_planner::select`), as a table or as the contract's JSON.

use roimon_config::{ConfigError, locate};
use roimon_planner::select::{self, Row, SelectError, SelectSpec, Selection};
use std::process::ExitCode;

/// Run the selection of the scenario file text `src` read from `file`.
pub fn main(src: &str, file: &str, json: bool) -> ExitCode {
    let e = match crate::scenario::evaluate_src(src, file) {
        Ok(e) => e,
        Err(e) => return crate::config_error(&e),
    };
    for w in &e.warnings {
        eprintln!("warning: {w}");
    }
    let spec = e.select.unwrap_or_default();
    let rows: Vec<Row> = e
        .results
        .iter()
        .zip(&e.values)
        .map(|(r, v)| Row {
            name: r.name.clone(),
            benefit: r.benefit_score,
            money: r.money_cost,
            weighted_cost: r.cost,
            value: *v,
        })
        .collect();
    match select::select(&rows, &spec) {
        Ok(s) => {
            if json {
                crate::outln!("{}", to_json(&rows, &spec, &s));
            } else {
                crate::out!("{}", to_table(&rows, &spec, &s));
            }
            ExitCode::SUCCESS
        }
        Err(SelectError::Invalid { key, message }) => crate::config_error(&ConfigError {
            file: file.to_string(),
            line: locate(src, &key),
            key: Some(key),
            message,
        }),
        Err(SelectError::Infeasible(why)) => {
            if json {
                crate::outln!("{}", infeasible_json(&spec, &why));
            }
            eprintln!("error: infeasible: {why}");
            ExitCode::from(1)
        }
        Err(e @ SelectError::Solver(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The contract's JSON: `{"status", "selected": [names in file order],
/// "benefit", "money", "weighted_cost", "value", "profit", "efficiency"}`,
/// plus `maximize` and `budget`.
pub fn to_json(rows: &[Row], spec: &SelectSpec, s: &Selection) -> serde_json::Value {
    let names: Vec<&str> = s.chosen.iter().map(|&i| rows[i].name.as_str()).collect();
    serde_json::json!({
        "status": "optimal",
        "maximize": spec.maximize.as_str(),
        "budget": spec.budget,
        "selected": names,
        "benefit": s.benefit,
        "money": s.money,
        "weighted_cost": s.weighted_cost,
        "value": s.value,
        "profit": s.profit,
        "efficiency": s.efficiency,
    })
}

/// The JSON of an infeasible selection: every figure null, the reason in
/// `conflicts`.
pub fn infeasible_json(spec: &SelectSpec, why: &str) -> serde_json::Value {
    serde_json::json!({
        "status": "infeasible",
        "maximize": spec.maximize.as_str(),
        "budget": spec.budget,
        "selected": [],
        "benefit": null,
        "money": null,
        "weighted_cost": null,
        "value": null,
        "profit": null,
        "efficiency": null,
        "conflicts": [why],
    })
}

/// A readable table: every scenario, whether chosen, and the totals.
pub fn to_table(rows: &[Row], spec: &SelectSpec, s: &Selection) -> String {
    let mut out = format!(
        "maximize {} · budget {}\n{:<3} {:<24} {:>12} {:>14} {:>14} {:>14}\n",
        spec.maximize.as_str(),
        spec.budget.map_or("none".to_string(), |b| format!("{b}")),
        "",
        "scenario",
        "benefit P",
        "money M",
        "weighted C",
        "value V"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    for (i, r) in rows.iter().enumerate() {
        let mark = if s.chosen.contains(&i) { "[x]" } else { "[ ]" };
        out.push_str(&format!(
            "{mark:<3} {:<24} {:>12.4} {:>14.2} {:>14.2} {:>14}\n",
            r.name,
            r.benefit,
            r.money,
            r.weighted_cost,
            opt(r.value)
        ));
    }
    out.push_str(&format!(
        "{:<3} {:<24} {:>12.4} {:>14.2} {:>14.2} {:>14}\n",
        "",
        "selected",
        s.benefit,
        s.money,
        s.weighted_cost,
        opt(s.value)
    ));
    out.push_str(&format!(
        "profit Σ(V − M) {} · efficiency Σ P / Σ w·C {}\n",
        opt(s.profit),
        s.efficiency.map_or("-".to_string(), |e| format!("{e:.6e}"))
    ));
    out
}
