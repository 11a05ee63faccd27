//! What a hostile or broken server's counters may book: deltas above a
//! plausible rate are refused and the state does not advance past them,
//! reset storms stop booking resets, models and labels are capped, and no
//! figure is ever infinite or NaN — whatever the body says.

use roimon_value::{
    Bounds, Delta, Limits, Rejection, Scrape, ServerKind, TargetState, read_scrape,
};

fn scrape(text: &str) -> Scrape {
    read_scrape(text.as_bytes(), ServerKind::Auto, "", Limits::default()).unwrap()
}

fn vllm(prompt: f64) -> String {
    format!("vllm:prompt_tokens_total{{model_name=\"m\"}} {prompt:e}\n")
}

fn finite(d: &Delta) -> bool {
    [
        d.input_tokens,
        d.cached_input_tokens,
        d.output_tokens,
        d.requests,
    ]
    .iter()
    .all(|v| v.is_finite() && *v >= 0.0)
}

/// Feed `texts` one per `step` seconds; the updates.
fn feed(
    st: &mut TargetState,
    texts: &[String],
    step: f64,
    b: &Bounds,
) -> Vec<roimon_value::Update> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| st.observe_at(&scrape(t), Some(1e9 + i as f64 * step), b))
        .collect()
}

#[test]
fn a_counter_jumping_to_1e308_is_refused_and_every_figure_stays_finite() {
    let mut st = TargetState::new();
    let b = Bounds::default();
    let texts: Vec<String> = [100.0, 1e308, 0.0, 1e308, 50.0]
        .into_iter()
        .map(vllm)
        .collect();
    let u = feed(&mut st, &texts, 1.0, &b);
    for x in &u {
        assert!(finite(&x.total()), "{x:?}");
    }
    // 100 → 1e308: refused, counted; the state stays at 100.
    assert_eq!(u[1].total().input_tokens, 0.0);
    assert_eq!(u[1].rejected[&Rejection::TokensRate], 1);
    // → 0: below the kept 100, a reset to 0 (nothing to book).
    assert!(u[2].restarted);
    assert_eq!(u[2].total().input_tokens, 0.0);
    assert!(u[2].rejected.is_empty());
    // → 1e308 again: refused; → 50: 50 served since the 0.
    assert_eq!(u[3].rejected[&Rejection::TokensRate], 1);
    assert_eq!(u[4].total().input_tokens, 50.0);
    // The saved state holds only finite counters and resumes as it was.
    assert!(st.models()["m"].input_tokens.unwrap().is_finite());
    let json = serde_json::to_string(&st).unwrap();
    let back: TargetState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
}

#[test]
fn two_models_near_the_largest_number_sum_to_a_finite_total() {
    let body = "vllm:prompt_tokens_total{model_name=\"a\",engine=\"0\"} 1e308\n\
                vllm:prompt_tokens_total{model_name=\"a\",engine=\"1\"} 1e308\n\
                vllm:prompt_tokens_total{model_name=\"b\"} 1e308\n";
    let s = scrape(body);
    assert!(s.models["a"].input_tokens.unwrap().is_finite());
    let mut st = TargetState::new();
    let b = Bounds::default();
    st.observe_at(
        &scrape("vllm:prompt_tokens_total{model_name=\"a\",engine=\"0\"} 1\n"),
        Some(1e9),
        &b,
    );
    let u = st.observe_at(&s, Some(1e9 + 15.0), &b);
    assert!(finite(&u.total()));
    assert_eq!(u.total(), Delta::default());
    assert_eq!(u.rejected[&Rejection::TokensRate], 3);
    let json = serde_json::to_string(&st).unwrap();
    let back: TargetState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st, "{json}");
}

#[test]
fn a_u64_wrap_is_refused_for_as_long_as_it_stays() {
    let mut st = TargetState::new();
    let b = Bounds::default();
    let mut texts = vec![vllm(1000.0)];
    texts.extend((0..20).map(|_| vllm(1.8e19)));
    let u = feed(&mut st, &texts, 15.0, &b);
    for x in &u[1..] {
        assert_eq!(x.total().input_tokens, 0.0);
        assert_eq!(x.rejected[&Rejection::TokensRate], 1);
    }
    // A plausible jump is booked, judged over the whole time since the
    // last booked scrape.
    let mut st = TargetState::new();
    let b = Bounds {
        max_tokens_per_second: 10.0,
        ..Bounds::default()
    };
    let texts: Vec<String> = [0.0, 500.0, 500.0].into_iter().map(vllm).collect();
    let u = feed(&mut st, &texts, 15.0, &b);
    assert_eq!(
        u[1].rejected[&Rejection::TokensRate],
        1,
        "500 in 15 s at 10/s"
    );
    assert_eq!(
        u[2].rejected[&Rejection::TokensRate],
        1,
        "500 in 30 s at 10/s"
    );
    let u = st.observe_at(&scrape(&vllm(500.0)), Some(1e9 + 60.0), &b);
    assert_eq!(u.total().input_tokens, 500.0, "500 in 60 s at 10/s");
}

#[test]
fn many_series_each_below_the_rate_are_judged_by_their_sum() {
    let b = Bounds {
        max_tokens_per_second: 100.0,
        max_requests_per_second: 10.0,
        ..Bounds::default()
    };
    let body = |v: f64| -> String {
        (0..20)
            .map(|e| format!("vllm:prompt_tokens_total{{model_name=\"m\",engine=\"{e}\"}} {v}\nvllm:request_success_total{{model_name=\"m\",engine=\"{e}\",finished_reason=\"stop\"}} 1\n"))
            .collect()
    };
    let mut st = TargetState::new();
    let u = feed(&mut st, &[body(0.0), body(90.0)], 1.0, &b);
    // 20 × 90 = 1800 tokens in a second against 100/s: all refused.
    assert_eq!(u[1].total().input_tokens, 0.0);
    assert_eq!(u[1].rejected[&Rejection::TokensRate], 20);
    assert!(!u[1].rejected.contains_key(&Rejection::RequestsRate));
}

#[test]
fn a_counter_going_down_every_scrape_becomes_a_reset_storm() {
    let mut st = TargetState::new();
    let b = Bounds::default();
    let texts: Vec<String> = (0..40).map(|i| vllm(1e6 - i as f64 * 1000.0)).collect();
    let u = feed(&mut st, &texts, 1.0, &b);
    let booked: f64 = u.iter().map(|x| x.total().input_tokens).sum();
    // The first few resets are believed, then none.
    assert!(booked <= 3.0 * 1e6, "{booked}");
    assert!(u[39].suspect && st.suspect());
    assert_eq!(u[39].total().input_tokens, 0.0);
    let storm: u64 = u
        .iter()
        .map(|x| x.rejected.get(&Rejection::ResetStorm).copied().unwrap_or(0))
        .sum();
    assert_eq!(storm, 39 - 3);
    // Normal increases still count while suspect.
    let t = 1e9 + 40.0;
    let u = st.observe_at(&scrape(&vllm(961_000.0 + 10.0)), Some(t), &b);
    assert!(u.suspect);
    assert_eq!(u.total().input_tokens, 10.0);
    // An hour without a reset: stable again, its resets count.
    let u = st.observe_at(&scrape(&vllm(961_020.0)), Some(t + 3601.0), &b);
    assert!(!u.suspect && !st.suspect());
    assert_eq!(u.total().input_tokens, 10.0);
    let u = st.observe_at(&scrape(&vllm(7.0)), Some(t + 3602.0), &b);
    assert!(u.restarted && !u.suspect);
    assert_eq!(u.total().input_tokens, 7.0);
}

#[test]
fn a_process_start_time_changing_every_scrape_becomes_a_reset_storm() {
    let mut st = TargetState::new();
    let b = Bounds::default();
    let texts: Vec<String> = (0..25)
        .map(|i| {
            format!(
                "{}process_start_time_seconds {}\n",
                vllm(5e6),
                1.7e9 + i as f64
            )
        })
        .collect();
    let u = feed(&mut st, &texts, 1.0, &b);
    let booked: f64 = u.iter().map(|x| x.total().input_tokens).sum();
    assert!(booked <= 3.0 * 5e6, "{booked}");
    assert!(u[24].suspect);
    assert_eq!(
        u.iter()
            .map(|x| x.rejected.get(&Rejection::ResetStorm).copied().unwrap_or(0))
            .sum::<u64>(),
        24 - 3
    );
}

#[test]
fn new_model_names_every_scrape_never_pass_max_models() {
    let mut st = TargetState::new();
    let b = Bounds::default();
    let mut booked = std::collections::BTreeSet::new();
    for round in 0..10 {
        let body: String = (0..2000)
            .map(|i| format!("vllm:prompt_tokens_total{{model_name=\"m-{round}-{i}\"}} 5\n"))
            .collect();
        let u = st.observe_at(&scrape(&body), Some(1e9 + round as f64 * 15.0), &b);
        booked.extend(u.deltas.keys().cloned());
        let over = if round == 0 { 2000 - 64 } else { 2000 };
        assert_eq!(u.rejected[&Rejection::TooManyModels], over);
    }
    assert_eq!(booked.len(), 64);
    assert_eq!(st.models().len(), 64);
    // The state stays small: 64 models, a few series each.
    assert!(
        serde_json::to_string(&st).unwrap().len() < 64 * 200,
        "state grew"
    );
    // A configured cap applies too.
    let mut st = TargetState::new();
    let b = Bounds {
        max_models: 2,
        ..Bounds::default()
    };
    let body = "vllm:prompt_tokens_total{model_name=\"a\"} 1\nvllm:prompt_tokens_total{model_name=\"b\"} 1\nvllm:prompt_tokens_total{model_name=\"c\"} 1\n";
    let u = st.observe_at(&scrape(body), Some(1e9), &b);
    assert_eq!(u.deltas.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(u.rejected[&Rejection::TooManyModels], 1);
}

#[test]
fn a_label_over_128_bytes_is_counted_never_booked() {
    let long = "x".repeat(100_000);
    let body = format!(
        "vllm:prompt_tokens_total{{model_name=\"ok\"}} 1\nvllm:prompt_tokens_total{{model_name=\"{long}\"}} 1\nvllm:generation_tokens_total{{model_name=\"ok\",engine=\"{}\"}} 1\n",
        "e".repeat(129)
    );
    let s = scrape(&body);
    assert_eq!(s.refused_long_labels, 2);
    let mut st = TargetState::new();
    let u = st.observe_at(&s, Some(1e9), &Bounds::default());
    assert_eq!(u.rejected[&Rejection::LabelTooLong], 2);
    assert_eq!(u.deltas.keys().collect::<Vec<_>>(), ["ok"]);
    let json = serde_json::to_string(&st).unwrap();
    assert!(json.len() < 1000, "{} bytes", json.len());
    // 128 bytes is still a model name.
    let name = "y".repeat(128);
    let s = scrape(&format!(
        "vllm:prompt_tokens_total{{model_name=\"{name}\"}} 1\n"
    ));
    assert_eq!(s.refused_long_labels, 0);
    assert!(s.models.contains_key(&name));
}
