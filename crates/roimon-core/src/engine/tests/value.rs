//! Tests of value booked per owner and the rolling windows that set it
//! against money.

use super::*;

#[test]
fn value_is_owned_like_cost_and_windows_set_it_against_unweighted_money() {
    let mut c = cfg(ShareKey::Equal);
    c.pue = 1.0;
    c.max_gap = Seconds(1000.0);
    c.fixed = FixedCosts {
        capex_per_sec: 0.01,
        ..Default::default()
    };
    let mut e = Engine::new(c, None);
    e.set_roi(
        &[("1h".into(), 3600)],
        crate::window::RoiWeights {
            benefit: [("precision".to_string(), 1.0)].into(),
            cost: [(Component::Capex, 0.5)].into(),
        },
        vec![Kpi {
            team: "search".into(),
            workload: "llm".into(),
            indicator: "precision".into(),
            score: 0.8,
            at: None,
        }],
    );
    e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
    // Tokens and money of one scrape, half to each of two owners.
    let (a, b) = (
        Owner {
            team: "search".into(),
            workload: "llm".into(),
        },
        Owner::unallocated(),
    );
    e.book_value(
        &[(a.clone(), 0.5), (b, 0.5)],
        "vllm-1",
        3.0,
        &[ModelDelta {
            model: "opt".into(),
            input_tokens: 1000.0,
            cached_input_tokens: 400.0,
            output_tokens: 2000.0,
            requests: 4.0,
        }],
    );
    // A pushed score replaces the configured one.
    e.set_kpi(Kpi {
        team: "search".into(),
        workload: "llm".into(),
        indicator: "precision".into(),
        score: 0.6,
        at: Some(t0()),
    });
    // An older score arriving later (a back-fill, a late retry) does not
    // replace it.
    e.set_kpi(Kpi {
        team: "search".into(),
        workload: "llm".into(),
        indicator: "precision".into(),
        score: 0.1,
        at: Some(t0() - Duration::hours(1)),
    });
    e.ingest(
        tick(100.0),
        &report(vec![gpu("GPU-a", Some(36_000.0), 360.0)]),
    );
    let k = e.counters();
    assert_eq!(k.value_total.total(), 3.0);
    let row = &k.value[&ValueKey {
        team: "search".into(),
        workload: "llm".into(),
        source: "vllm-1".into(),
    }];
    assert_eq!(row.value.total(), 1.5);
    assert_eq!(row.models["opt"].cached_input_tokens.total(), 200.0);
    let s = e.snapshot();
    assert_eq!(s.scores["precision"], 0.6);
    let w = &s.windows[0];
    // 100 s of capex (1.0) + 36 kJ at 0.20/kWh (0.002).
    assert!((w.cost - 1.002).abs() < 1e-12, "{}", w.cost);
    assert_eq!(w.value, 3.0);
    assert!((w.roi.unwrap() - (3.0 - 1.002) / 1.002).abs() < 1e-12);
    assert_eq!(w.tokens, 3000.0);
    assert!((w.cost_per_million_tokens.unwrap() - 1.002 / 3000.0 * 1e6).abs() < 1e-9);
    assert_eq!(w.tokens_per_joule, Some(3000.0 / 36_000.0));
    assert!((w.cost_per_request.unwrap() - 1.002 / 4.0).abs() < 1e-12);
    // Weighted: P = 0.6, C = 0.5 × capex + 1 × energy over 100 s, so
    // per hour of the window P / (C × 36).
    assert_eq!(w.span_secs, 100.0);
    assert!((w.weighted_cost - (0.5 + 0.002)).abs() < 1e-12);
    assert!((w.weighted_efficiency.unwrap() - 0.6 / (0.502 * 36.0)).abs() < 1e-12);
    let search = w.owners.iter().find(|o| o.team == "search").unwrap();
    assert_eq!(search.value, 1.5);
    assert_eq!(k.validate(t0() + Duration::hours(1)), Ok(()));
}

#[test]
fn a_score_pushed_for_an_owner_without_cost_here_does_not_move_the_node() {
    let mut c = cfg(ShareKey::Equal);
    c.pue = 1.0;
    c.max_gap = Seconds(1000.0);
    c.fixed = FixedCosts {
        capex_per_sec: 0.01,
        ..Default::default()
    };
    let mut e = Engine::new(c, None);
    e.set_roi(
        &[("5m".into(), 300), ("1h".into(), 3600)],
        crate::window::RoiWeights {
            benefit: [("precision".to_string(), 1.0)].into(),
            cost: BTreeMap::new(),
        },
        vec![Kpi {
            team: "search".into(),
            workload: "llm".into(),
            indicator: "precision".into(),
            score: 0.95,
            at: None,
        }],
    );
    // A steady GPU of search/llm for an hour: 0.01 a second of capex and
    // 100 W at 0.20/kWh.
    for s in (0..=3600).step_by(10) {
        let s = s as f64;
        e.ingest(tick(s), &report(vec![gpu("GPU-a", Some(100.0 * s), 100.0)]));
    }
    let before = e.snapshot();
    assert_eq!(before.scores["precision"], 0.95);
    // A team with no GPU on this node pushes a poor score.
    e.set_kpi(Kpi {
        team: "ads".into(),
        workload: "bid".into(),
        indicator: "precision".into(),
        score: 0.10,
        at: Some(t0()),
    });
    let s = e.snapshot();
    assert_eq!(s.scores["precision"], 0.95, "{:?}", s.scores);
    assert_eq!(
        s.windows[0].weighted_efficiency,
        before.windows[0].weighted_efficiency
    );
    // Per hour of the window, the 5 m and 1 h windows of a steady node
    // agree (before, P / C differed twelvefold).
    let (five, hour) = (&s.windows[0], &s.windows[1]);
    assert_eq!((five.window.as_str(), hour.window.as_str()), ("5m", "1h"));
    let (a, b) = (
        five.weighted_efficiency.unwrap(),
        hour.weighted_efficiency.unwrap(),
    );
    assert!((a - b).abs() < 1e-9 * b, "{a} vs {b}");
    // 0.01/s capex + 100 W × 0.20/kWh = 36.02 an hour.
    assert!((b - 0.95 / 36.02).abs() < 1e-9, "{b}");
    // Per owner: search/llm scores from its own score and cost; ads/bid
    // has no cost here and gets no figure.
    let search = hour.owners.iter().find(|o| o.team == "search").unwrap();
    assert_eq!(search.benefit_score, Some(0.95));
    assert!((search.weighted_efficiency.unwrap() - 0.95 / 36.02).abs() < 1e-9);
    assert!(hour.owners.iter().all(|o| o.team != "ads"));
}

/// An owner with cost but no value source of its own has no ROI (its
/// return is not measured), while an owner with one on the same node has:
/// a node with one inference server does not show every other owner as
/// losing all its money.
#[test]
fn an_owner_without_a_value_source_has_no_roi_beside_one_with() {
    let mut c = cfg(ShareKey::Equal);
    c.max_gap = Seconds(1000.0);
    let mut e = Engine::new(c, None);
    e.set_roi(
        &[("5m".into(), 300)],
        crate::window::RoiWeights::default(),
        vec![],
    );
    let gpus = |j: f64| {
        report(vec![
            gpu("GPU-a", Some(j), 100.0),
            gpu("GPU-b", Some(j), 100.0),
        ])
    };
    e.ingest(tick(0.0), &gpus(0.0));
    let search = Owner {
        team: "search".into(),
        workload: "llm".into(),
    };
    e.book_value(&[(search, 1.0)], "vllm-1", 3.0, &[]);
    e.ingest(tick(100.0), &gpus(10_000.0));
    let s = e.snapshot();
    let w = &s.windows[0];
    let find = |team: &str| w.owners.iter().find(|o| o.team == team).unwrap();
    let (valued, other) = (find("search"), find(&Owner::unallocated().team));
    assert!(other.cost > 0.0, "{other:?}");
    assert_eq!((other.roi, other.baseline_roi), (None, None));
    let want = (valued.value - valued.cost) / valued.cost;
    assert_eq!(valued.roi, Some(want));
    assert_eq!(valued.value, 3.0);
}
