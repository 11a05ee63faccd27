//! A plan as the contract's JSON and as a table a person reads: the
//! allocation, unserved demand, totals, binding constraints and every
//! coefficient with where it came from.

use crate::model::{Instance, Objective};
use crate::solve::{Infeasible, Plan, Status};
use serde_json::{Value, json};
use std::fmt::Write as _;

fn objective_name(o: Objective) -> &'static str {
    match o {
        Objective::Profit => "profit",
        Objective::Roi => "roi",
        Objective::Cost => "cost",
    }
}

/// A float for JSON: non-finite numbers become null.
fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// The objective the plan was solved for: the instance's, unless the plan's
/// totals say otherwise is unknowable here, so the instance's.
fn objective_value(o: Objective, plan: &Plan) -> f64 {
    match o {
        Objective::Profit => plan.totals.profit,
        Objective::Roi => plan.totals.roi,
        Objective::Cost => plan.totals.cost,
    }
}

/// A sentence for a plan that allocates nothing under the ROI objective.
fn note(inst: &Instance, plan: &Plan) -> Option<String> {
    (inst.objective == Objective::Roi && plan.allocation.cells.is_empty()).then(|| {
        "no allocation: every deployment with a cost has a negative ROI (or none \
         earns anything), so the best ROI is that of allocating nothing (0 by convention)"
            .to_string()
    })
}

/// The contract's `--json` object (other parts add `sensitivity`,
/// `monte_carlo`, `pareto`).
pub fn to_json(inst: &Instance, plan: &Plan) -> Value {
    to_json_for(inst, plan, inst.objective)
}

/// [`to_json`] for a plan solved with an objective other than the
/// instance's (`SolveOptions::objective`).
pub fn to_json_for(inst: &Instance, plan: &Plan, objective: Objective) -> Value {
    let t = &plan.totals;
    let allocation: Vec<Value> = plan
        .allocation
        .cells
        .iter()
        .filter(|c| c.gpus > 0)
        .map(|c| {
            json!({
                "gpu": inst.gpus[c.gpu].kind,
                "workload": inst.workloads[c.workload].name,
                "gpus": c.gpus,
                "tokens_per_second": num(c.tokens_per_second),
                "value": num(inst.cell_value(c)),
                "cost": num(inst.cell_cost(c)),
            })
        })
        .collect();
    let unserved: Vec<Value> = plan
        .unserved
        .iter()
        .map(|&(w, s)| json!({"workload": inst.workloads[w].name, "tokens_per_second": num(s)}))
        .collect();
    let mut out = json!({
        "status": match plan.status { Status::Optimal => "optimal", Status::Feasible => "feasible" },
        "objective": objective_name(objective),
        "objective_value": num(objective_value(objective, plan)),
        "currency": inst.currency,
        "hours": num(inst.hours),
        "value": num(t.value),
        "cost": num(t.cost),
        "cost_energy": num(t.cost_energy),
        "cost_gpus": num(t.cost_gpus),
        "profit": num(t.profit),
        "roi": num(t.roi),
        "energy_kwh": num(t.energy_kwh),
        "power_kw": num(t.power_kw),
        "emissions_kg": t.emissions_kg.map_or(Value::Null, num),
        "gap": num(plan.gap),
        "solve_seconds": num(plan.solve_seconds),
        "allocation": allocation,
        "unserved": unserved,
        "binding": plan.binding,
        "coefficients": coefficients_json(inst),
    });
    if let (Some(n), Some(o)) = (note(inst, plan), out.as_object_mut()) {
        o.insert("note".into(), json!(n));
    }
    out
}

fn coefficients_json(inst: &Instance) -> Vec<Value> {
    inst.coefficients
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "value": num(c.value),
                "source": c.source,
                "window": c.window,
                "samples": c.samples,
            })
        })
        .collect()
}

/// The JSON of an infeasible instance: status, the conflicts and a message.
pub fn infeasible_json(inst: &Instance, inf: &Infeasible) -> Value {
    json!({
        "status": "infeasible",
        "objective": objective_name(inst.objective),
        "currency": inst.currency,
        "hours": num(inst.hours),
        "message": inf.to_string(),
        "conflicts": inf.conflicts,
        "coefficients": coefficients_json(inst),
        // The contract's figures exist in every answer; there is no plan.
        "value": Value::Null,
        "cost": Value::Null,
        "cost_energy": Value::Null,
        "cost_gpus": Value::Null,
        "profit": Value::Null,
        "roi": Value::Null,
        "energy_kwh": Value::Null,
        "power_kw": Value::Null,
        "emissions_kg": Value::Null,
        "gap": Value::Null,
        "solve_seconds": Value::Null,
        "allocation": [],
        "unserved": [],
        "binding": [],
    })
}

/// Money with two decimals.
fn money(x: f64) -> String {
    format!("{x:.2}")
}

/// A number with at most `d` decimals, no trailing zeros.
fn short(x: f64, d: usize) -> String {
    let s = format!("{x:.d$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Rows as aligned columns: the first `left` columns left, the others right.
fn columns(head: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = width[i] - c.chars().count();
            if i > 0 {
                l.push_str("  ");
            }
            if i < left {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            } else {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            }
        }
        l.trim_end().to_string()
    };
    let mut out = line(head.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The plan as text: status, allocation, unserved demand, totals, binding
/// constraints and coefficients.
pub fn to_table(inst: &Instance, plan: &Plan) -> String {
    let cur = &inst.currency;
    let t = &plan.totals;
    let mut out = String::new();
    let status = match plan.status {
        Status::Optimal => "optimal".to_string(),
        Status::Feasible => format!(
            "feasible (gap {}, time limit reached)",
            if plan.gap.is_finite() {
                format!("{:.2} %", plan.gap * 100.0)
            } else {
                "unknown".into()
            }
        ),
    };
    let _ = writeln!(
        out,
        "Plan for {} h, objective {}: {status}, solved in {:.3} s",
        short(inst.hours, 3),
        objective_name(inst.objective),
        plan.solve_seconds
    );
    if let Some(n) = note(inst, plan) {
        let _ = writeln!(out, "Note: {n}");
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = plan
        .allocation
        .cells
        .iter()
        .filter(|c| c.gpus > 0)
        .map(|c| {
            vec![
                inst.gpus[c.gpu].kind.clone(),
                inst.workloads[c.workload].name.clone(),
                c.gpus.to_string(),
                short(c.tokens_per_second, 2),
                money(inst.cell_value(c)),
                money(inst.cell_cost(c)),
            ]
        })
        .collect();
    let vh = format!("value ({cur})");
    let ch = format!("cost ({cur})");
    if rows.is_empty() {
        out.push_str("Allocation: none\n");
    } else {
        out.push_str("Allocation\n");
        out.push_str(&columns(
            &["GPU type", "workload", "GPUs", "tokens/s", &vh, &ch],
            &rows,
            2,
        ));
    }
    let unserved: Vec<Vec<String>> = plan
        .unserved
        .iter()
        .map(|&(w, s)| {
            let wl = &inst.workloads[w];
            vec![
                wl.name.clone(),
                short(wl.demand, 2),
                short(s, 2),
                if wl.demand > 0.0 {
                    format!("{:.1} %", (wl.demand - s) / wl.demand * 100.0)
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    if !unserved.is_empty() {
        out.push_str("\nDemand\n");
        out.push_str(&columns(
            &["workload", "demand tokens/s", "unserved tokens/s", "served"],
            &unserved,
            1,
        ));
    }
    out.push_str("\nTotals\n");
    let mut totals = vec![
        vec!["value".into(), format!("{} {cur}", money(t.value))],
        vec!["cost".into(), format!("{} {cur}", money(t.cost))],
        vec!["  energy".into(), format!("{} {cur}", money(t.cost_energy))],
        vec!["  GPUs".into(), format!("{} {cur}", money(t.cost_gpus))],
        vec!["profit".into(), format!("{} {cur}", money(t.profit))],
        vec!["ROI".into(), format!("{:.2} %", t.roi * 100.0)],
        vec![
            "facility energy".into(),
            format!("{} kWh", short(t.energy_kwh, 3)),
        ],
        vec![
            "facility power".into(),
            format!("{} kW", short(t.power_kw, 3)),
        ],
    ];
    totals.push(vec![
        "emissions".into(),
        t.emissions_kg
            .map_or("- (no carbon intensity)".into(), |e| {
                format!("{} kg CO2e", short(e, 3))
            }),
    ]);
    for r in &totals {
        let _ = writeln!(out, "  {:<16} {:>20}", r[0], r[1]);
    }
    let _ = writeln!(
        out,
        "\nBinding constraints: {}",
        if plan.binding.is_empty() {
            "none".to_string()
        } else {
            plan.binding.join(", ")
        }
    );
    if !inst.coefficients.is_empty() {
        out.push_str("\nCoefficients\n");
        let rows: Vec<Vec<String>> = inst
            .coefficients
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.source.clone(),
                    short(c.value, 6),
                    c.window.clone().unwrap_or_else(|| "-".into()),
                    c.samples.map_or("-".into(), |s| s.to_string()),
                ]
            })
            .collect();
        out.push_str(&columns(
            &["name", "source", "value", "window", "samples"],
            &rows,
            2,
        ));
    }
    out
}
