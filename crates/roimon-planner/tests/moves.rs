//! Property: a plan meets every constraint of the contract's model, and no
//! single-GPU move (add one, remove one, move one between pairs), with the
//! tokens re-served optimally, improves its objective.

mod common;

use common::{Aim, check_feasible, instance, pairs, serve};
use proptest::prelude::*;
use roimon_planner::model::Objective;
use roimon_planner::{SolveOptions, Status, solve};
use std::time::Duration;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn no_single_gpu_move_improves_the_plan(
        i in instance(3, 3, 4),
        obj in prop_oneof![Just(Objective::Profit), Just(Objective::Cost)],
        cap_share in proptest::option::of(0.2f64..1.2),
    ) {
        // An emissions cap as a share of what serving everything would emit.
        let em = cap_share.and_then(|f| i.carbon_g_per_kwh.map(|c| {
            let watts: f64 = i.workloads.iter().map(|w| w.demand * 0.5).sum::<f64>() + 200.0;
            f * watts * i.pue / 1000.0 * i.hours * c / 1000.0
        }));
        let opts = SolveOptions {
            time_limit: Duration::from_secs(20),
            emissions_cap_kg: em,
            objective: Some(obj),
        };
        let Ok(p) = solve(&i, &opts) else { return Ok(()); };
        prop_assert_eq!(p.status, Status::Optimal);
        prop_assert_eq!(p.gap, 0.0);
        let r = check_feasible(&i, &p.allocation, em);
        prop_assert!(r.is_ok(), "{:?}", r);
        let score = |t: &roimon_planner::Totals| match obj {
            Objective::Cost => -t.cost,
            _ => t.profit,
        };
        let aim = if obj == Objective::Cost { Aim::Cost } else { Aim::Profit };
        let mine = score(&p.totals);
        let ps = pairs(&i);
        let mut n = vec![0u32; ps.len()];
        for c in &p.allocation.cells {
            let k = ps.iter().position(|x| x.0 == c.gpu && x.1 == c.workload).unwrap();
            n[k] = c.gpus;
        }
        let mut moves: Vec<Vec<u32>> = Vec::new();
        for a in 0..ps.len() {
            let mut up = n.clone();
            up[a] += 1;
            moves.push(up);
            if n[a] > 0 {
                let mut down = n.clone();
                down[a] -= 1;
                moves.push(down.clone());
                for b in 0..ps.len() {
                    if b != a {
                        let mut mv = down.clone();
                        mv[b] += 1;
                        moves.push(mv);
                    }
                }
            }
        }
        for m in moves {
            if let Some(a) = serve(&i, &m, aim, em) {
                let t = i.evaluate(&a);
                prop_assert!(
                    score(&t) <= mine + 1e-6 * mine.abs().max(1.0),
                    "move to {m:?} gives {} > {mine}", score(&t)
                );
            }
        }
    }
}
