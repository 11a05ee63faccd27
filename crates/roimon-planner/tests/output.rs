//! The plan's JSON has exactly the contract's keys and the table a person
//! reads names the currency and aligns its columns.

mod common;

use common::inst;
use roimon_planner::{SolveOptions, solve, to_json, to_table};

const FILE: &str = r#"
hours = 10.0
currency = "CHF"
[energy]
price_per_kwh = 0.2
pue = 1.5
[[gpu]]
type = "H100"
count = 4
cost_per_hour = 2.0
idle_watts = 100.0
[[gpu]]
type = "L4"
count = 2
cost_per_hour = 0.5
idle_watts = 20.0
[[workload]]
name = "search/chat"
demand_tokens_per_second = 10000.0
value_per_million_tokens = 10.0
  [workload.on.H100]
  tokens_per_second = 3000.0
  joules_per_token = 0.4
[[workload]]
name = "ads/rank"
demand_tokens_per_second = 800.0
value_per_million_tokens = 2.0
  [workload.on.L4]
  tokens_per_second = 500.0
  joules_per_token = 0.2
"#;

#[test]
fn json_has_the_contracts_keys() {
    let i = inst(FILE);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    let j = to_json(&i, &p);
    let mut keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "status",
        "objective",
        "objective_value",
        "currency",
        "hours",
        "value",
        "cost",
        "cost_energy",
        "cost_gpus",
        "profit",
        "roi",
        "energy_kwh",
        "power_kw",
        "emissions_kg",
        "gap",
        "solve_seconds",
        "allocation",
        "unserved",
        "binding",
        "coefficients",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(j["status"], "optimal");
    assert_eq!(j["objective"], "profit");
    assert_eq!(j["currency"], "CHF");
    assert!(j["emissions_kg"].is_null());
    let a = j["allocation"].as_array().unwrap();
    assert_eq!(a.len(), 2);
    let row = a.iter().find(|r| r["workload"] == "search/chat").unwrap();
    let mut rk: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    rk.sort_unstable();
    assert_eq!(
        rk,
        [
            "cost",
            "gpu",
            "gpus",
            "tokens_per_second",
            "value",
            "workload"
        ]
    );
    assert_eq!(row["gpu"], "H100");
    assert_eq!(row["gpus"], 4);
    // The rows add up to the totals.
    let v: f64 = a.iter().map(|r| r["value"].as_f64().unwrap()).sum();
    let c: f64 = a.iter().map(|r| r["cost"].as_f64().unwrap()).sum();
    assert!((v - j["value"].as_f64().unwrap()).abs() < 1e-6);
    assert!((c - j["cost"].as_f64().unwrap()).abs() < 1e-6);
    let u = j["unserved"].as_array().unwrap();
    assert_eq!(u.len(), 2);
    assert_eq!(u[0]["workload"], "search/chat");
    let coef = j["coefficients"].as_array().unwrap();
    let mut ck: Vec<&str> = coef[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    ck.sort_unstable();
    assert_eq!(ck, ["name", "samples", "source", "value", "window"]);
    assert!(
        coef.iter()
            .any(|c| c["name"] == "workload.ads/rank.on.L4.joules_per_token")
    );
}

#[test]
fn the_table_names_the_currency_and_aligns_columns() {
    let i = inst(FILE);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    let t = to_table(&i, &p);
    assert!(t.contains("value (CHF)"), "{t}");
    assert!(t.contains("profit"), "{t}");
    assert!(t.contains("Binding constraints:"), "{t}");
    assert!(t.contains("gpu.H100.cost_per_hour"), "{t}");
    // The allocation rows end at the same column (right-aligned cost).
    let rows: Vec<&str> = t
        .lines()
        .skip_while(|l| !l.starts_with("GPU type"))
        .take(3)
        .collect();
    assert_eq!(rows.len(), 3, "{t}");
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{rows:#?}");
}

#[test]
fn the_example_file_plans() {
    let text = include_str!("../../../config/plan.example.toml");
    let i = inst(text);
    assert_eq!(i.gpus.len(), 3);
    assert_eq!(i.workloads.len(), 4);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    assert_eq!(p.status, roimon_planner::Status::Optimal);
    common::check_feasible(&i, &p.allocation, None).unwrap();
    assert!(p.totals.profit > 0.0);
    // Every coefficient is listed, from the file.
    assert!(i.coefficients.iter().all(|c| c.source == "file"));
    println!("{}", to_table(&i, &p));
}
