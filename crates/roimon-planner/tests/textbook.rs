//! Textbook instances solved by hand (the worked examples of
//! docs/planner.md): the solver must find the same allocation and totals.

mod common;

use common::{inst, near};
use roimon_planner::{SolveOptions, Status, solve};

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
