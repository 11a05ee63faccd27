//! Textbook instances solved by hand (the worked examples of
//! docs/planner.md): the solver must find the same allocation and totals.

mod common;

use common::{inst, near};
use roimon_planner::{Objective, SolveOptions, Status, solve};

const ONE_TYPE: &str = r#"
hours = 10.0
currency = "EUR"
[energy]
price_per_kwh = 0.2
pue = 1.5
[[gpu]]
type = "H100"
count = 4
cost_per_hour = 2.0
idle_watts = 100.0
[[workload]]
name = "search/chat"
demand_tokens_per_second = 10000.0
value_per_million_tokens = 10.0
  [workload.on.H100]
  tokens_per_second = 3000.0
  joules_per_token = 0.4
"#;

#[test]
fn one_type_serves_all_demand_on_four_gpus() {
    let i = inst(ONE_TYPE);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    assert_eq!(p.status, Status::Optimal);
    assert_eq!(p.allocation.cells.len(), 1);
    assert_eq!(p.allocation.cells[0].gpus, 4);
    assert!(near(p.allocation.cells[0].tokens_per_second, 10000.0, 1e-9));
    // Per hour: 10000 · 0.0036 · 10 = 360 value; 4 · 2.03 + 10000 · 0.00012 = 9.32 cost.
    assert!(near(p.totals.profit, 3506.8, 1e-9), "{}", p.totals.profit);
    assert!(
        p.binding.contains(&"demand search/chat".to_string()),
        "{:?}",
        p.binding
    );
    assert!(
        p.binding.contains(&"inventory H100".to_string()),
        "{:?}",
        p.binding
    );
}

/// Two types, no energy cost (price 0): per token net, A (4000 tokens/s for
/// 3/h) earns 0.0036 − 3/4000 = 0.00285, B (1000 for 1/h) 0.0026.
const TWO_TYPES: &str = r#"
hours = 1.0
currency = "EUR"
[energy]
price_per_kwh = 0.0
pue = 1.0
[[gpu]]
type = "A"
count = 2
cost_per_hour = 3.0
idle_watts = 0.0
[[gpu]]
type = "B"
count = 10
cost_per_hour = 1.0
idle_watts = 0.0
[[workload]]
name = "t/w"
demand_tokens_per_second = 10000.0
min_served = 0.5
value_per_million_tokens = 1.0
  [workload.on.A]
  tokens_per_second = 4000.0
  joules_per_token = 0.0
  [workload.on.B]
  tokens_per_second = 1000.0
  joules_per_token = 0.0
"#;

fn gpus_of(p: &roimon_planner::Plan, g: usize) -> u32 {
    p.allocation
        .cells
        .iter()
        .filter(|c| c.gpu == g)
        .map(|c| c.gpus)
        .sum()
}

#[test]
fn two_types_profit_fills_the_better_type_then_the_other() {
    let i = inst(TWO_TYPES);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    assert_eq!((gpus_of(&p, 0), gpus_of(&p, 1)), (2, 2));
    // 2 · (14.4 − 3) + 2 · (3.6 − 1) = 28.
    assert!(near(p.totals.profit, 28.0, 1e-9), "{}", p.totals.profit);
    assert_eq!(p.binding, vec!["inventory A", "demand t/w"]);
}

#[test]
fn two_types_cost_meets_the_floor_at_least_cost() {
    let i = inst(TWO_TYPES);
    let opts = SolveOptions {
        objective: Some(Objective::Cost),
        ..SolveOptions::default()
    };
    let p = solve(&i, &opts).unwrap();
    // Floor 5000: 2 A cost 6, 5 B cost 5, 1 A + 1 B cost 4 (exactly 5000).
    assert_eq!((gpus_of(&p, 0), gpus_of(&p, 1)), (1, 1));
    assert!(near(p.totals.cost, 4.0, 1e-9));
    assert!(
        p.binding.contains(&"floor t/w".to_string()),
        "{:?}",
        p.binding
    );
}

/// One type of 10 GPUs at 1/h; X earns 3.6/h per GPU (ROI 2.6) for 3 GPUs
/// of demand, Y 1.8/h per GPU (ROI 0.8) for 10.
const ROI: &str = r#"
hours = 1.0
currency = "EUR"
objective = "roi"
[energy]
price_per_kwh = 0.0
pue = 1.0
[[gpu]]
type = "L4"
count = 10
cost_per_hour = 1.0
idle_watts = 0.0
[[workload]]
name = "t/x"
demand_tokens_per_second = 3000.0
value_per_million_tokens = 1.0
  [workload.on.L4]
  tokens_per_second = 1000.0
  joules_per_token = 0.0
[[workload]]
name = "t/y"
demand_tokens_per_second = 10000.0
value_per_million_tokens = 0.5
  [workload.on.L4]
  tokens_per_second = 1000.0
  joules_per_token = 0.0
"#;

#[test]
fn roi_takes_the_best_ratio_at_its_most_profitable_size() {
    let i = inst(ROI);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    // 1, 2 or 3 GPUs on X all give ROI 2.6; the largest is chosen.
    assert!(near(p.totals.roi, 2.6, 1e-9), "{}", p.totals.roi);
    assert_eq!(p.allocation.cells.len(), 1);
    assert_eq!(p.allocation.cells[0].workload, 0);
    assert_eq!(p.allocation.cells[0].gpus, 3);
    assert!(near(p.totals.profit, 7.8, 1e-9));
    // Profit instead: X 3 GPUs (2.6 each) and Y the other 7 (0.8 each).
    let opts = SolveOptions {
        objective: Some(Objective::Profit),
        ..SolveOptions::default()
    };
    let p = solve(&i, &opts).unwrap();
    assert!(near(p.totals.profit, 13.4, 1e-9), "{}", p.totals.profit);
}

#[test]
fn roi_with_every_deployment_losing_money_allocates_nothing() {
    let f = ROI
        .replace(
            "value_per_million_tokens = 1.0",
            "value_per_million_tokens = 0.2",
        )
        .replace(
            "value_per_million_tokens = 0.5",
            "value_per_million_tokens = 0.1",
        );
    let i = inst(&f);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    assert!(p.allocation.cells.is_empty());
    assert_eq!(p.totals.roi, 0.0);
    let j = roimon_planner::to_json(&i, &p);
    assert!(j["note"].as_str().unwrap().starts_with("no allocation"));
    assert!(roimon_planner::to_table(&i, &p).contains("Note: no allocation"));
}

#[test]
fn a_budget_limits_the_profit_plan() {
    let f = ROI.replace(
        "objective = \"roi\"",
        "objective = \"profit\"\nbudget = 5.0",
    );
    let i = inst(&f);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    // 5 GPUs: X 3 (2.6 each) and Y 2 (0.8 each).
    assert!(near(p.totals.profit, 9.4, 1e-9), "{}", p.totals.profit);
    assert!(p.binding.contains(&"budget".to_string()), "{:?}", p.binding);
}

#[test]
fn a_power_cap_trims_the_tokens_of_the_last_gpus() {
    let f = ONE_TYPE.replace(
        "currency = \"EUR\"",
        "currency = \"EUR\"\npower_cap_kw = 5.0",
    );
    let i = inst(&f);
    let p = solve(&i, &SolveOptions::default()).unwrap();
    // IT watts ≤ 5000 / 1.5: 3 GPUs serving (3333.33 − 300) / 0.4 tokens/s.
    assert_eq!(p.allocation.cells[0].gpus, 3);
    assert!(near(
        p.allocation.cells[0].tokens_per_second,
        7_583.333_333,
        1e-6
    ));
    assert!(near(p.totals.profit, 2660.0, 1e-6), "{}", p.totals.profit);
    assert!(near(p.totals.power_kw, 5.0, 1e-9));
    assert_eq!(p.binding, vec!["power_cap_kw"]);
}
