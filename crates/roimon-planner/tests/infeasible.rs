//! Infeasible instances: the message names the floor that cannot be met and
//! what limits it (inventory, budget, power cap, emissions cap, minimum ROI).

mod common;

use common::inst;
use roimon_planner::{SolveOptions, infeasible_json, solve};

fn file(min_served: f64, extra: &str, carbon: &str) -> String {
    format!(
        r#"
hours = 10.0
currency = "EUR"
{extra}
[energy]
price_per_kwh = 0.2
pue = 1.5
{carbon}
[[gpu]]
type = "H100"
count = 4
cost_per_hour = 2.0
idle_watts = 100.0
[[workload]]
name = "search/chat"
demand_tokens_per_second = 50000.0
min_served = {min_served}
value_per_million_tokens = 10.0
  [workload.on.H100]
  tokens_per_second = 9000.0
  joules_per_token = 0.4
"#
    )
}

#[test]
fn a_floor_above_the_inventory_names_the_workload_and_its_types() {
    let i = inst(&file(0.95, "", ""));
    let e = solve(&i, &SolveOptions::default()).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains(
            "workload search/chat: min_served 0.95 needs 47500 tokens/s, but its GPU types can \
             serve at most 36000 (H100: 4 GPUs × 9000)"
        ),
        "{m}"
    );
    let j = infeasible_json(&i, &e);
    assert_eq!(j["status"], "infeasible");
    assert!(j["message"].as_str().unwrap().contains("search/chat"));
    // Every key of the contract is there, figures null and lists empty.
    for k in [
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
    ] {
        assert!(j.get(k).is_some_and(serde_json::Value::is_null), "{k}: {j}");
    }
    for k in ["allocation", "unserved", "binding"] {
        assert_eq!(j[k], serde_json::json!([]), "{k}");
    }
}

#[test]
fn floors_that_share_the_inventory_are_named_together() {
    let mut f = file(0.5, "", "");
    f.push_str(
        r#"
[[workload]]
name = "ads/rank"
demand_tokens_per_second = 20000.0
min_served = 0.5
value_per_million_tokens = 5.0
  [workload.on.H100]
  tokens_per_second = 9000.0
  joules_per_token = 0.4
"#,
    );
    // search/chat needs 25000 → 3 GPUs; ads/rank needs 10000 → 2 GPUs; 4 exist.
    let i = inst(&f);
    let m = solve(&i, &SolveOptions::default()).unwrap_err().to_string();
    assert!(m.contains("the floors of search/chat"), "{m}");
    assert!(m.contains("ads/rank"), "{m}");
    assert!(m.contains("H100: 4 GPUs"), "{m}");
}

#[test]
fn a_budget_below_the_floors_cost_says_what_they_cost() {
    // Floor 0.5 · 50000 = 25000 tokens/s → 3 GPUs: 3 · 2 · 10 = 60 EUR of
    // GPUs; energy (3 · 100 + 0.4 · 25000) W · 1.5 / 1000 · 10 h · 0.2 = 30.9.
    let i = inst(&file(0.5, "budget = 50.0", ""));
    let m = solve(&i, &SolveOptions::default()).unwrap_err().to_string();
    assert!(m.contains("budget 50 EUR"), "{m}");
    assert!(m.contains("costs at least 90.9 EUR"), "{m}");
}

#[test]
fn a_power_cap_below_the_floors_power_says_what_they_need() {
    // (3 · 100 + 0.4 · 25000) W · 1.5 = 15.45 kW.
    let i = inst(&file(0.5, "power_cap_kw = 10.0", ""));
    let m = solve(&i, &SolveOptions::default()).unwrap_err().to_string();
    assert!(m.contains("power_cap_kw 10"), "{m}");
    assert!(m.contains("needs at least 15.45 kW"), "{m}");
}

#[test]
fn an_emissions_cap_needs_a_carbon_intensity_and_names_the_floors_emissions() {
    let i = inst(&file(0.5, "", ""));
    let opts = SolveOptions {
        emissions_cap_kg: Some(10.0),
        ..SolveOptions::default()
    };
    let m = solve(&i, &opts).unwrap_err().to_string();
    assert!(m.contains("carbon_g_per_kwh"), "{m}");
    // 154.5 kWh · 400 g = 61.8 kg.
    let i = inst(&file(0.5, "", "carbon_g_per_kwh = 400.0"));
    let m = solve(&i, &opts).unwrap_err().to_string();
    assert!(m.contains("emissions_cap 10 kg"), "{m}");
    assert!(m.contains("emits at least 61.8 kg"), "{m}");
}

#[test]
fn a_minimum_roi_the_floors_cannot_reach_says_the_best() {
    // The floor forces 3 GPUs; value 25000 · 36000 · 0.01 / 1e6 ... per
    // 10 h: 25000 · 3600 · 10 · 0.05 / 1e6 = 45 EUR against 90.9 EUR cost.
    let f = file(0.5, "min_roi = 0.1", "").replace(
        "value_per_million_tokens = 10.0",
        "value_per_million_tokens = 0.05",
    );
    let i = inst(&f);
    let m = solve(&i, &SolveOptions::default()).unwrap_err().to_string();
    assert!(m.contains("min_roi 0.1"), "{m}");
    assert!(m.contains("the best ROI"), "{m}");
}

#[test]
fn budget_and_power_together_are_named_when_neither_alone_breaks_the_floors() {
    // Two types: A is cheap but power-hungry, B dear but frugal. The floor
    // 0.5 · 20000 = 10000 tokens/s needs 2 GPUs of either type.
    let f = r#"
hours = 10.0
currency = "EUR"
budget = 55.0
power_cap_kw = 1.0
[energy]
price_per_kwh = 0.0
pue = 1.0
[[gpu]]
type = "A"
count = 4
cost_per_hour = 1.0
idle_watts = 400.0
[[gpu]]
type = "B"
count = 4
cost_per_hour = 5.0
idle_watts = 50.0
[[workload]]
name = "t/w"
demand_tokens_per_second = 20000.0
min_served = 0.5
value_per_million_tokens = 1.0
  [workload.on.A]
  tokens_per_second = 5000.0
  joules_per_token = 0.0
  [workload.on.B]
  tokens_per_second = 5000.0
  joules_per_token = 0.0
"#;
    // A alone: 2 · 400 W = 0.8 kW ok, cost 20 ok — so make A too hungry:
    let f = f.replace("idle_watts = 400.0", "idle_watts = 600.0");
    // Now 2 A: 1.2 kW > 1.0 (power); 2 B: 2 · 5 · 10 = 100 EUR > 55; one of
    // each: 60 EUR > 55. Budget alone (2 A) or power alone (2 B) is fine.
    let i = inst(&f);
    let m = solve(&i, &SolveOptions::default()).unwrap_err().to_string();
    assert!(
        m.contains("budget 55 EUR and power_cap_kw 1 cannot all hold"),
        "{m}"
    );
}

#[test]
fn the_minimum_roi_message_gives_the_best_roi_meeting_the_floors() {
    // 3 GPUs serve up to 27000 tokens/s: V = 48.6, C = 60 + 33.3 = 93.3,
    // ROI = 48.6 / 93.3 − 1 = −0.479.
    let f = file(0.5, "min_roi = 0.1", "").replace(
        "value_per_million_tokens = 10.0",
        "value_per_million_tokens = 0.05",
    );
    let m = solve(&inst(&f), &SolveOptions::default())
        .unwrap_err()
        .to_string();
    assert!(m.contains("is -0.479"), "{m}");
}
