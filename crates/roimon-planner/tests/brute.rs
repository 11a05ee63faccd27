//! The solver against exhaustive search on tiny instances: every GPU vector
//! within the inventory, tokens by a plain LP for each; the optimum (profit,
//! cost, ROI) must be the same, and infeasible exactly when nothing fits.

mod common;

use common::{Aim, all_n, best_ratio, check_feasible, instance, serve};
use proptest::prelude::*;
use roimon_planner::model::Objective;
use roimon_planner::{SolveOptions, Status, solve};
use std::time::Duration;

fn opts(o: Objective) -> SolveOptions {
    SolveOptions {
        time_limit: Duration::from_secs(20),
        emissions_cap_kg: None,
        objective: Some(o),
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn profit_and_cost_match_exhaustive_search(i in instance(3, 2, 3)) {
        for (obj, aim) in [(Objective::Profit, Aim::Profit), (Objective::Cost, Aim::Cost)] {
            let mut best: Option<f64> = None;
            for n in all_n(&i) {
                if let Some(a) = serve(&i, &n, aim, None) {
                    let t = i.evaluate(&a);
                    let v = if matches!(obj, Objective::Cost) { -t.cost } else { t.profit };
                    if best.is_none_or(|b| v > b) { best = Some(v); }
                }
            }
            match (solve(&i, &opts(obj)), best) {
                (Ok(p), Some(b)) => {
                    prop_assert_eq!(p.status, Status::Optimal);
                    prop_assert!(check_feasible(&i, &p.allocation, None).is_ok(),
                        "{:?}", check_feasible(&i, &p.allocation, None));
                    let v = if matches!(obj, Objective::Cost) { -p.totals.cost } else { p.totals.profit };
                    prop_assert!(rel(v, b) < 1e-6, "{obj:?}: solver {v} exhaustive {b}");
                }
                (Err(e), None) => prop_assert!(!e.conflicts.is_empty()),
                (Ok(p), None) => prop_assert!(false, "solver found {:?} where nothing fits", p.totals),
                (Err(e), Some(b)) => prop_assert!(false, "solver: {e}; exhaustive found {b}"),
            }
        }
    }

    #[test]
    fn roi_matches_exhaustive_search(i in instance(3, 2, 3)) {
        let mut best: Option<f64> = None; // best ROI of an allocation with a cost
        let mut empty_ok = false;
        for n in all_n(&i) {
            if n.iter().all(|&x| x == 0) {
                empty_ok = serve(&i, &n, Aim::Profit, None).is_some();
                continue;
            }
            if let Some((r, _)) = best_ratio(&i, &n, None) {
                if best.is_none_or(|b| r > b) { best = Some(r); }
            }
        }
        // The empty allocation has ROI 0 by the contract's convention.
        let expected = match (best, empty_ok) {
            (Some(r), true) => Some(r.max(0.0)),
            (Some(r), false) => Some(r),
            (None, true) => Some(0.0),
            (None, false) => None,
        };
        match (solve(&i, &opts(Objective::Roi)), expected) {
            (Ok(p), Some(r)) => {
                prop_assert!(check_feasible(&i, &p.allocation, None).is_ok());
                prop_assert_eq!(p.status, Status::Optimal);
                prop_assert!((p.totals.roi - r).abs() < 1e-6 * r.abs().max(1.0),
                    "solver ROI {} exhaustive {r}", p.totals.roi);
            }
            (Err(_), None) => {}
            (Ok(p), None) => prop_assert!(false, "solver found {:?} where nothing fits", p.totals),
            (Err(e), Some(r)) => prop_assert!(false, "solver: {e}; exhaustive ROI {r}"),
        }
    }
}
