//! The analysis against figures worked out by hand on a plan whose profit
//! is linear in each parameter (tornado ends, break-evens, a Monte Carlo at
//! swing 0), properties of the Monte Carlo and the front, and the pictures
//! parsed back as XML.

use proptest::prelude::*;
use roimon_planner::analysis::monte_carlo::{self, Options, SplitMix64, percentile, triangular};
use roimon_planner::analysis::pareto::{Point, dominates, non_dominated};
use roimon_planner::analysis::sensitivity::{Row, Swing, tornado};
use roimon_planner::analysis::{Group, monte_carlo_json, sensitivity_json};
use roimon_planner::model::{Allocation, Cell, Gpu, Instance, Objective, Pair, Workload};
use std::collections::BTreeMap;

/// 10 h; price 1.0/kWh, PUE 1; one H100 type (1.0/h, 100 W idle); one
/// workload (demand 1000 tok/s, value 2 per M) at 1000 tok/s per GPU and
/// 0.4 J/token. The plan: 2 GPUs serving 500 tok/s.
///
/// value = 500 · 3600 · 10 · 2 / 1e6 = 36; GPUs = 2 · 1 · 10 = 20;
/// IT = 2 · 100 + 0.4 · 500 = 400 W → 4 kWh → 4; profit = 12, ROI = 0.5.
fn hand() -> (Instance, Allocation) {
    let inst = Instance {
        hours: 10.0,
        currency: "EUR".into(),
        objective: Objective::Profit,
        min_roi: None,
        budget: None,
        power_cap_kw: None,
        price_per_kwh: 1.0,
        pue: 1.0,
        carbon_g_per_kwh: Some(500.0),
        gpus: vec![Gpu {
            kind: "H100".into(),
            count: 4,
            cost_per_hour: 1.0,
            idle_watts: 100.0,
        }],
        workloads: vec![Workload {
            name: "search/chat".into(),
            demand: 1000.0,
            min_served: 0.0,
            value_per_million_tokens: 2.0,
            on: vec![Pair {
                gpu: 0,
                tokens_per_second: 1000.0,
                joules_per_token: 0.4,
            }],
        }],
        coefficients: vec![],
        spread: BTreeMap::new(),
    };
    let plan = Allocation {
        cells: vec![Cell {
            gpu: 0,
            workload: 0,
            gpus: 2,
            tokens_per_second: 500.0,
        }],
    };
    (inst, plan)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn row(rows: &[Row], g: Group) -> &Row {
    rows.iter()
        .find(|r| r.parameter == g)
        .expect("every group has a row")
}

fn no_reopt(_: &Instance) -> Option<roimon_planner::model::Totals> {
    None
}

#[test]
fn tornado_ends_and_break_evens_follow_the_closed_form() {
    let (inst, plan) = hand();
    let rows = tornado(&inst, &plan, Swing::Fixed(0.2), None, 1, &no_reopt);
    assert_eq!(rows.len(), 7);
    // profit(price k) = 36 − 20 − 4k = 16 − 4k: 12.8 and 11.2, zero at k = 4.
    let p = row(&rows, Group::PricePerKwh);
    assert!(close(p.base, 12.0));
    assert!(close(p.low, 0.8) && close(p.high, 1.2));
    assert!(close(p.profit_low, 12.8), "{p:?}");
    assert!(close(p.profit_high, 11.2), "{p:?}");
    assert!(close(p.roi_low, 12.8 / 23.2));
    assert!(close(p.roi_high, 11.2 / 24.8));
    assert!(close(p.break_even.unwrap(), 4.0), "{p:?}");
    assert_eq!(p.swing_source, "swing");
    // PUE multiplies the same energy: the same figures.
    let u = row(&rows, Group::Pue);
    assert!(close(u.profit_low, 12.8) && close(u.break_even.unwrap(), 4.0));
    // value: 36k − 24 → 4.8 / 19.2, zero at 2/3.
    let v = row(&rows, Group::ValuePerMillionTokens);
    assert!(close(v.profit_low, 4.8) && close(v.profit_high, 19.2));
    assert!(close(v.break_even.unwrap(), 2.0 / 3.0));
    // GPU cost: 32 − 20k → 16 / 8, zero at 1.6.
    let c = row(&rows, Group::CostPerHour);
    assert!(close(c.profit_low, 16.0) && close(c.profit_high, 8.0));
    assert!(close(c.break_even.unwrap(), 1.6));
    // energy per token: IT = 200 + 200k W → 14 − 2k: 12.4 / 11.6, zero at 7.
    let j = row(&rows, Group::JoulesPerToken);
    assert!(close(j.profit_low, 12.4) && close(j.profit_high, 11.6));
    assert!(close(j.break_even.unwrap(), 7.0));
    // demand: ±20 % never caps 500 of 1000 tok/s; below k = 0.5 the plan
    // serves 1000k: 72k − 4k − 22 = 68k − 22, zero at 22/68.
    let d = row(&rows, Group::DemandTokensPerSecond);
    assert!(close(d.profit_low, 12.0) && close(d.profit_high, 12.0));
    assert!(close(d.break_even.unwrap(), 22.0 / 68.0), "{d:?}");
    // throughput: capacity 2000k caps below k = 0.25: 144k − 8k − 22,
    // zero at 22/136.
    let t = row(&rows, Group::TokensPerSecond);
    assert!(close(t.profit_low, 12.0) && close(t.profit_high, 12.0));
    assert!(close(t.break_even.unwrap(), 22.0 / 136.0), "{t:?}");
    // Widest first: value 14.4, cost 8, price 1.6, PUE 1.6, energy 0.8, 0, 0.
    let order: Vec<&str> = rows.iter().map(|r| r.parameter.name()).collect();
    assert_eq!(
        order,
        [
            "value_per_million_tokens",
            "cost_per_hour",
            "price_per_kwh",
            "pue",
            "joules_per_token",
            "demand_tokens_per_second",
            "tokens_per_second"
        ]
    );
    assert!(rows.iter().all(|r| r.profit_low_reoptimised.is_none()));
}

#[test]
fn break_even_is_null_when_the_profit_never_crosses_zero_up_to_ten() {
    let (mut inst, plan) = hand();
    // GPUs free, price 0.5: profit(price k) = 36 − 2k, zero only at k = 18.
    inst.gpus[0].cost_per_hour = 0.0;
    inst.price_per_kwh = 0.5;
    let rows = tornado(&inst, &plan, Swing::Fixed(0.2), None, 1, &no_reopt);
    assert_eq!(row(&rows, Group::PricePerKwh).break_even, None);
    assert!(close(row(&rows, Group::PricePerKwh).profit_low, 36.0 - 1.6));
    // At price 1.0: 36 − 4k, zero at k = 9, inside the range.
    inst.price_per_kwh = 1.0;
    let rows = tornado(&inst, &plan, Swing::Fixed(0.2), None, 1, &no_reopt);
    assert!(close(
        row(&rows, Group::PricePerKwh).break_even.unwrap(),
        9.0
    ));
}

#[test]
fn reoptimised_profits_come_from_the_scaled_instances_in_order() {
    let (inst, plan) = hand();
    // A stand-in solver that reports the scaled price as the profit.
    let reopt = |s: &Instance| {
        Some(roimon_planner::model::Totals {
            profit: s.price_per_kwh * 100.0 + s.gpus[0].cost_per_hour,
            ..Default::default()
        })
    };
    let rows = tornado(&inst, &plan, Swing::Fixed(0.25), None, 3, &reopt);
    let p = row(&rows, Group::PricePerKwh);
    assert!(close(p.profit_low_reoptimised.unwrap(), 76.0));
    assert!(close(p.profit_high_reoptimised.unwrap(), 126.0));
    let c = row(&rows, Group::CostPerHour);
    assert!(close(c.profit_low_reoptimised.unwrap(), 100.75));
    assert!(close(c.profit_high_reoptimised.unwrap(), 101.25));
}

#[test]
fn measured_swing_uses_the_p10_p90_and_says_so() {
    let (inst, plan) = hand();
    let mut spread = BTreeMap::new();
    spread.insert("energy.price_per_kwh".to_string(), (0.5, 1.5));
    let rows = tornado(
        &inst,
        &plan,
        Swing::Measured(0.2),
        Some(&spread),
        1,
        &no_reopt,
    );
    let p = row(&rows, Group::PricePerKwh);
    assert!(close(p.low, 0.5) && close(p.high, 1.5));
    assert!(close(p.profit_low, 14.0) && close(p.profit_high, 10.0));
    assert_eq!(p.swing_source, "measured");
    assert_eq!(row(&rows, Group::Pue).swing_source, "swing");
    // A fixed swing ignores the spread.
    let rows = tornado(&inst, &plan, Swing::Fixed(0.2), Some(&spread), 1, &no_reopt);
    let p = row(&rows, Group::PricePerKwh);
    assert!(close(p.low, 0.8) && p.swing_source == "swing");
    let json = sensitivity_json(&rows);
    let keys: Vec<&String> = json[0].as_object().unwrap().keys().collect();
    for k in [
        "parameter",
        "base",
        "low",
        "high",
        "profit_low",
        "profit_high",
        "roi_low",
        "roi_high",
        "profit_low_reoptimised",
        "profit_high_reoptimised",
        "break_even",
    ] {
        assert!(keys.iter().any(|x| *x == k), "missing {k}");
    }
}

#[test]
fn monte_carlo_at_swing_zero_reports_the_base_everywhere() {
    let (mut inst, plan) = hand();
    inst.min_roi = Some(0.6);
    let o = Options {
        draws: 1000,
        seed: 7,
        swing: 0.0,
        spread: None,
        daily_prices: None,
    };
    let m = monte_carlo::run(&inst, &plan, &o);
    let base = inst.evaluate(&plan);
    for v in [m.profit_p5, m.profit_p50, m.profit_p95] {
        assert_eq!(v, base.profit);
    }
    for v in [m.roi_p5, m.roi_p50, m.roi_p95] {
        assert_eq!(v, base.roi);
    }
    assert_eq!(m.p_profit_below_0, 0.0);
    assert_eq!(m.p_roi_below_min, Some(1.0));
    assert_eq!(m.price_source, "triangular");
    let j = monte_carlo_json(&m);
    assert_eq!(j["draws"], 1000);
    assert_eq!(j["seed"], 7);
    inst.min_roi = None;
    assert!(monte_carlo_json(&monte_carlo::run(&inst, &plan, &o))["p_roi_below_min"].is_null());
}

#[test]
fn monte_carlo_draws_the_price_from_seven_days_or_more() {
    let (inst, plan) = hand();
    // Every day at 5.0/kWh: profit 16 − 4 · 5 = −4 in every draw.
    let days = [5.0; 7];
    let o = Options {
        draws: 200,
        seed: 1,
        swing: 0.0,
        spread: None,
        daily_prices: Some(&days),
    };
    let m = monte_carlo::run(&inst, &plan, &o);
    assert!(close(m.profit_p5, -4.0) && close(m.profit_p95, -4.0));
    assert_eq!(m.p_profit_below_0, 1.0);
    assert_eq!(m.price_source, "days");
    // Six days are not enough: the triangle (here swing 0) is used.
    let o = Options {
        daily_prices: Some(&days[..6]),
        ..o
    };
    let m = monte_carlo::run(&inst, &plan, &o);
    assert!(close(m.profit_p50, 12.0));
    assert_eq!(m.price_source, "triangular");
    // Two kinds of day: both outcomes appear, nothing else.
    let days = [0.0, 0.0, 0.0, 8.0, 8.0, 8.0, 8.0];
    let o = Options {
        draws: 2000,
        daily_prices: Some(&days),
        ..o
    };
    let m = monte_carlo::run(&inst, &plan, &o);
    assert!(
        m.profits
            .iter()
            .all(|p| close(*p, 16.0) || close(*p, -16.0))
    );
    assert!(
        m.p_profit_below_0 > 0.45 && m.p_profit_below_0 < 0.70,
        "{m:?}"
    );
}

#[test]
fn nearest_rank_percentiles_by_hand() {
    let v: Vec<f64> = (1..=20).map(f64::from).collect();
    assert_eq!(percentile(&v, 5.0), 1.0);
    assert_eq!(percentile(&v, 50.0), 10.0);
    assert_eq!(percentile(&v, 95.0), 19.0);
    assert_eq!(percentile(&v, 100.0), 20.0);
    assert_eq!(percentile(&[3.0], 5.0), 3.0);
}

#[test]
fn splitmix64_matches_the_reference_sequence() {
    // Reference values of SplitMix64 seeded with 1234567.
    let mut r = SplitMix64::new(1_234_567);
    assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
    assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
}

proptest! {
    #[test]
    fn monte_carlo_is_ordered_and_reproducible(seed in any::<u64>(), swing in 0.0f64..0.9, draws in 1usize..400) {
        let (inst, plan) = hand();
        let o = Options { draws, seed, swing, spread: None, daily_prices: None };
        let a = monte_carlo::run(&inst, &plan, &o);
        let b = monte_carlo::run(&inst, &plan, &o);
        prop_assert_eq!(&a, &b);
        prop_assert!(a.profit_p5 <= a.profit_p50 && a.profit_p50 <= a.profit_p95);
        prop_assert!(a.roi_p5 <= a.roi_p50 && a.roi_p50 <= a.roi_p95);
        prop_assert!((0.0..=1.0).contains(&a.p_profit_below_0));
        prop_assert_eq!(a.profits.len(), draws);
    }

    #[test]
    fn triangular_stays_in_its_range(u in 0.0f64..1.0, swing in 0.0f64..1.0) {
        let x = triangular(u, 1.0 - swing, 1.0, 1.0 + swing);
        prop_assert!(x >= 1.0 - swing - 1e-12 && x <= 1.0 + swing + 1e-12);
    }

    #[test]
    fn the_front_is_non_dominated_and_covers_every_point(
        pts in proptest::collection::vec((-100.0f64..100.0, 0.0f64..50.0), 1..40)
    ) {
        let all: Vec<Point> = pts.iter().map(|&(profit, e)| Point {
            cap_kg: None, profit, emissions_kg: e, roi: 0.0, cost: 0.0,
            allocation: Allocation::default(), binding: vec![],
        }).collect();
        let front = non_dominated(all.clone());
        prop_assert!(!front.is_empty());
        for a in &front {
            for b in &front {
                prop_assert!(!dominates(a, b));
            }
        }
        for p in &all {
            prop_assert!(front.iter().any(|f| dominates(f, p) || (f.profit == p.profit && f.emissions_kg == p.emissions_kg)));
        }
    }
}

#[test]
fn the_same_seed_reproduces_and_another_differs() {
    let (inst, plan) = hand();
    let o = Options {
        draws: 500,
        seed: 42,
        swing: 0.3,
        spread: None,
        daily_prices: None,
    };
    let a = monte_carlo::run(&inst, &plan, &o);
    let b = monte_carlo::run(&inst, &plan, &o);
    let c = monte_carlo::run(&inst, &plan, &Options { seed: 43, ..o });
    assert_eq!(a, b);
    assert_ne!(a.profits, c.profits);
    assert!(a.profit_p5 < 12.0 && a.profit_p95 > 12.0);
}

#[test]
fn the_three_pictures_parse_back_as_svg_with_titled_axes() {
    let (inst, plan) = hand();
    let rows = tornado(&inst, &plan, Swing::Fixed(0.2), None, 1, &no_reopt);
    let o = Options {
        draws: 500,
        seed: 3,
        swing: 0.5,
        spread: None,
        daily_prices: None,
    };
    let m = monte_carlo::run(&inst, &plan, &o);
    let pt = |profit: f64, e: f64| Point {
        cap_kg: None,
        profit,
        emissions_kg: e,
        roi: 0.1,
        cost: 1.0,
        allocation: Allocation::default(),
        binding: vec!["emissions <cap> & \"quoted\"".into()],
    };
    let front = vec![pt(0.0, 0.0), pt(12.0, 2.0)];
    let pictures = [
        roimon_planner::svg::tornado(&rows, "EUR", 10.0),
        roimon_planner::svg::monte_carlo(&m, "EUR", 10.0),
        roimon_planner::svg::pareto(&front, Some((2.0, 12.0)), "EUR", 10.0),
    ];
    let wanted = [
        [
            "Profit of the fixed plan over the period (EUR)",
            "break-even ×4.000",
        ],
        [
            "Profit of the fixed plan over the period (EUR)",
            "Draws per bin",
        ],
        [
            "Emissions over the period (kg CO2e)",
            "Profit over the period (EUR)",
        ],
    ];
    for (svg, texts) in pictures.iter().zip(wanted) {
        let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let all: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        for t in texts {
            assert!(all.contains(&t), "{t:?} not in {all:?}");
        }
    }
    assert!(pictures[1].contains("P50 "));
    assert!(pictures[2].contains("chosen plan"));
}

#[test]
fn a_group_of_several_coefficients_reports_the_swing_exactly() {
    let (mut inst, plan) = hand();
    let mut second = inst.workloads[0].clone();
    second.name = "ads/rank".into();
    inst.workloads.push(second.clone());
    inst.workloads.push(second);
    let rows = tornado(&inst, &plan, Swing::Fixed(0.2), None, 1, &no_reopt);
    for r in &rows {
        assert_eq!((r.low, r.high), (0.8, 1.2), "{r:?}");
    }
}

#[test]
fn degenerate_analyses_still_draw_valid_pictures() {
    let (inst, plan) = hand();
    // Swing 0: every draw equal; one draw only; a one-point front without
    // a chosen plan; a currency that needs escaping.
    for draws in [1, 100] {
        let o = Options {
            draws,
            seed: 0,
            swing: 0.0,
            spread: None,
            daily_prices: None,
        };
        let m = monte_carlo::run(&inst, &plan, &o);
        let svg = roimon_planner::svg::monte_carlo(&m, "<€>", 10.0);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert!(doc.descendants().any(|n| n.text() == Some("Draws per bin")));
    }
    let rows = tornado(&inst, &plan, Swing::Fixed(0.0), None, 1, &no_reopt);
    roxmltree::Document::parse(&roimon_planner::svg::tornado(&rows, "&", 1.0)).unwrap();
    let one = Point {
        cap_kg: None,
        profit: -5.0,
        emissions_kg: 0.0,
        roi: -1.0,
        cost: 5.0,
        allocation: Allocation::default(),
        binding: vec![],
    };
    roxmltree::Document::parse(&roimon_planner::svg::pareto(&[one], None, "EUR", 1.0)).unwrap();
    roxmltree::Document::parse(&roimon_planner::svg::pareto(&[], None, "EUR", 1.0)).unwrap();
}
