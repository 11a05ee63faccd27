//! The analysis on plans the solver returns: re-optimised tornado ends and
//! a two-point front worked out by hand, the front's endpoints and
//! non-dominance on a larger instance, and the error without a carbon
//! intensity.

mod common;

use common::{check_feasible, inst, near};
use roimon_planner::analysis::pareto::dominates;
use roimon_planner::analysis::sensitivity::Swing;
use roimon_planner::analysis::{self, Group, ParetoError};
use roimon_planner::{SolveOptions, solve};

/// 10 h at 1.0/kWh, PUE 1, 500 g/kWh; H100 at 1.0/h, 100 W idle; one
/// workload of 1000 tok/s worth 2 per M, 1000 tok/s per GPU, `jpt` J/token.
fn one(jpt: f64, carbon: bool) -> String {
    format!(
        r#"
hours = 10.0
currency = "EUR"
[energy]
price_per_kwh = 1.0
pue = 1.0
{carbon}
[[gpu]]
type = "H100"
count = 4
cost_per_hour = 1.0
idle_watts = 100.0
[[workload]]
name = "search/chat"
demand_tokens_per_second = 1000.0
value_per_million_tokens = 2.0
  [workload.on.H100]
  tokens_per_second = 1000.0
  joules_per_token = {jpt}
"#,
        carbon = if carbon {
            "carbon_g_per_kwh = 500.0"
        } else {
            ""
        }
    )
}

#[test]
fn reoptimised_ends_follow_the_closed_form() {
    let i = inst(&one(0.4, true));
    let opts = SolveOptions::default();
    let plan = solve(&i, &opts).expect("feasible");
    // One GPU serving all 1000 tok/s: value 72, GPUs 10, 0.5 kW · 10 h = 5
    // kWh → profit 57.
    assert!(near(plan.totals.profit, 57.0, 1e-9), "{:?}", plan.totals);
    let rows = analysis::sensitivity(&i, &plan, Swing::Fixed(0.2), &opts);
    let row = |g: Group| rows.iter().find(|r| r.parameter == g).unwrap();
    let p = row(Group::PricePerKwh);
    assert!(near(p.base, 57.0, 1e-9));
    assert!(near(p.profit_high, 56.0, 1e-9) && near(p.profit_low, 58.0, 1e-9));
    assert!(near(p.profit_high_reoptimised.unwrap(), 56.0, 1e-6));
    // price: 62 − 5k = 0 at k = 12.4 → beyond 10.
    assert_eq!(p.break_even, None);
    // Demand ×0.8: both serve 800 tok/s: 57.6 − 10 − 4.2 = 43.4.
    let d = row(Group::DemandTokensPerSecond);
    assert!(near(d.profit_low, 43.4, 1e-9));
    assert!(near(d.profit_low_reoptimised.unwrap(), 43.4, 1e-6));
    // Demand ×1.2: the fixed plan stays at 57; re-optimised, two GPUs serve
    // 1200 tok/s: 86.4 − 20 − 6.8 = 59.6.
    assert!(near(d.profit_high, 57.0, 1e-9));
    assert!(
        near(d.profit_high_reoptimised.unwrap(), 59.6, 1e-6),
        "{d:?}"
    );
}

#[test]
fn a_two_point_front_by_hand() {
    // No energy per token: one GPU emits 100 W · 10 h = 1 kWh → 0.5 kg
    // whatever it serves, so below 0.5 kg only the empty plan fits.
    let i = inst(&one(0.0, true));
    let front = analysis::pareto(&i, &SolveOptions::default(), 11, None).expect("a front");
    assert_eq!(front.len(), 2, "{front:?}");
    assert!(near(front[0].emissions_kg, 0.0, 1e-9) && near(front[0].profit, 0.0, 1e-9));
    // 72 − 10 − 1 = 61.
    assert!(near(front[1].emissions_kg, 0.5, 1e-9));
    assert!(near(front[1].profit, 61.0, 1e-9));
    assert_eq!(front[1].allocation.cells.len(), 1);
    assert_eq!(front[1].allocation.cells[0].gpus, 1);
    let json = analysis::pareto_json(&i, &front);
    for k in [
        "profit",
        "emissions_kg",
        "roi",
        "cost",
        "allocation",
        "binding",
    ] {
        assert!(json[1].get(k).is_some(), "missing {k}");
    }
    assert_eq!(json[1]["allocation"][0]["gpu"], "H100");
}

#[test]
fn the_front_needs_a_carbon_intensity() {
    let i = inst(&one(0.4, false));
    let e = analysis::pareto(&i, &SolveOptions::default(), 11, None).unwrap_err();
    assert_eq!(e, ParetoError::NoCarbon);
    assert!(e.to_string().contains("energy.carbon_g_per_kwh"));
}

#[test]
fn the_front_runs_from_the_least_emitting_to_the_most_profitable_plan() {
    // Two types: the A100 is cheaper per GPU but burns more energy per
    // token; a floor forces some service, so the least-emitting plan is
    // not empty.
    let text = r#"
hours = 24.0
currency = "EUR"
[energy]
price_per_kwh = 0.3
pue = 1.2
carbon_g_per_kwh = 400.0
[[gpu]]
type = "H100"
count = 3
cost_per_hour = 2.5
idle_watts = 80.0
[[gpu]]
type = "A100"
count = 6
cost_per_hour = 0.8
idle_watts = 60.0
[[workload]]
name = "a/chat"
demand_tokens_per_second = 9000.0
min_served = 0.5
value_per_million_tokens = 6.0
  [workload.on.H100]
  tokens_per_second = 3000.0
  joules_per_token = 0.1
  [workload.on.A100]
  tokens_per_second = 1500.0
  joules_per_token = 0.35
[[workload]]
name = "b/batch"
demand_tokens_per_second = 4000.0
value_per_million_tokens = 3.0
  [workload.on.A100]
  tokens_per_second = 2000.0
  joules_per_token = 0.3
"#;
    let i = inst(text);
    let opts = SolveOptions::default();
    let front = analysis::pareto(&i, &opts, 11, None).expect("a front");
    assert!(front.len() >= 2, "{front:?}");
    let best = solve(
        &i,
        &SolveOptions {
            objective: Some(roimon_planner::Objective::Profit),
            ..opts.clone()
        },
    )
    .unwrap();
    let last = front.last().unwrap();
    assert!(near(last.profit, best.totals.profit, 1e-6));
    // The floor of 4500 tok/s costs emissions: the first point is not empty.
    assert!(front[0].emissions_kg > 0.0);
    for (k, a) in front.iter().enumerate() {
        check_feasible(&i, &a.allocation, None).unwrap();
        let t = i.evaluate(&a.allocation);
        assert!(near(t.profit, a.profit, 1e-9));
        for b in &front[k + 1..] {
            assert!(!dominates(a, b) && !dominates(b, a));
            assert!(b.emissions_kg > a.emissions_kg && b.profit > a.profit);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// On small random instances the solver's front is pairwise
    /// non-dominated, every point feasible, and it ends at the most
    /// profitable plan.
    #[test]
    fn solved_fronts_are_non_dominated(
        count in 1u32..4,
        idle in 20.0f64..150.0,
        jpt in 0.0f64..0.8,
        value in 0.5f64..6.0,
        demand in 500.0f64..5000.0,
        floor in 0.0f64..0.6,
        points in 2usize..8,
    ) {
        let text = format!(
            r#"
hours = 24.0
currency = "EUR"
[energy]
price_per_kwh = 0.3
pue = 1.2
carbon_g_per_kwh = 400.0
[[gpu]]
type = "H100"
count = {count}
cost_per_hour = 1.5
idle_watts = {idle}
[[gpu]]
type = "L4"
count = 4
cost_per_hour = 0.4
idle_watts = 30.0
[[workload]]
name = "a/chat"
demand_tokens_per_second = {demand}
min_served = {floor}
value_per_million_tokens = {value}
  [workload.on.H100]
  tokens_per_second = 2000.0
  joules_per_token = {jpt}
  [workload.on.L4]
  tokens_per_second = 600.0
  joules_per_token = 0.5
"#
        );
        let i = inst(&text);
        let opts = SolveOptions::default();
        let Ok(best) = solve(&i, &opts) else { return Ok(()); };
        let front = analysis::pareto(&i, &opts, points, Some(&best)).expect("a front");
        proptest::prop_assert!(!front.is_empty());
        for (k, a) in front.iter().enumerate() {
            proptest::prop_assert!(check_feasible(&i, &a.allocation, None).is_ok());
            for b in &front[k + 1..] {
                proptest::prop_assert!(!dominates(a, b) && !dominates(b, a));
            }
        }
        proptest::prop_assert!(near(front.last().unwrap().profit, best.totals.profit, 1e-6));
    }
}
