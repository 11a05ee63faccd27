//! Counter state across scrapes, built from the recorded captures with their
//! values advanced, reset or re-stamped: deltas are what was served, a
//! server restart counts the new values, never a negative, the first scrape
//! is a baseline, and saved state resumes where it stopped.

mod common;

use roimon_value::{Delta, Limits, Scrape, ServerKind, TargetState, read_scrape};

const V1: &str = "vllm-v1-engine-label-deepseek-v4-flash-subset.prom";
const MODEL: &str = "deepseek-v4-flash-vision-exp-ablit-dual";

/// Replace the value of every sample line starting with `prefix`.
fn set(text: &str, prefix: &str, value: &str) -> String {
    let mut hit = false;
    let out: Vec<String> = text
        .split('\n')
        .map(|l| {
            if l.starts_with(prefix) {
                hit = true;
                let (series, _) = l.rsplit_once(' ').unwrap();
                format!("{series} {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(hit, "no line starts with {prefix}");
    out.join("\n")
}

fn scrape(text: &str) -> Scrape {
    read_scrape(text.as_bytes(), ServerKind::Auto, "", Limits::default()).unwrap()
}

fn v1(text: &str, prompt: &str, hit: &str, gen_: &str, stop: &str) -> String {
    let t = set(text, "vllm:prompt_tokens_total{", prompt);
    let t = set(
        &t,
        &format!(
            "vllm:prompt_tokens_by_source_total{{engine=\"0\",model_name=\"{MODEL}\",source=\"local_cache_hit\"}}"
        ),
        hit,
    );
    let t = set(&t, "vllm:generation_tokens_total{", gen_);
    set(
        &t,
        "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\"",
        stop,
    )
}

fn delta(input: f64, cached: f64, output: f64, requests: f64) -> Delta {
    Delta {
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
        requests,
    }
}

#[test]
fn vllm_v1_baseline_advance_restart_and_resume() {
    let Some(body) = common::recorded(V1) else {
        return;
    };
    let t0 = String::from_utf8(body).unwrap();
    let mut st = TargetState::new();

    // First scrape: a baseline, nothing counted.
    let u = st.observe(&scrape(&t0));
    assert!(u.baseline && !u.restarted);
    assert_eq!(u.deltas[MODEL], Delta::default());

    // Traffic: +1,000 prompt tokens of which 600 cache hits, +50 out, +2 requests.
    let t1 = v1(&t0, "3676428.0", "3241816.0", "45045.0", "28.0");
    let u = st.observe(&scrape(&t1));
    assert!(!u.baseline && !u.restarted);
    assert_eq!(u.deltas[MODEL], delta(1_000.0, 600.0, 50.0, 2.0));
    assert_eq!(u.deltas[MODEL].uncached_input_tokens(), 400.0);

    // roimon restarts: the state is saved and loaded.
    let saved = serde_json::to_string(&st).unwrap();
    let mut st: TargetState = serde_json::from_str(&saved).unwrap();

    // Nothing served: zero deltas, not a baseline.
    let u = st.observe(&scrape(&t1));
    assert!(!u.baseline && !u.restarted);
    assert!(u.deltas[MODEL].is_zero());

    // The server restarts (new start time, counters from zero): the new
    // values are the delta.
    let t2 = v1(&t1, "120.0", "100.0", "9.0", "1.0");
    let t2 = set(&t2, "process_start_time_seconds ", "1.78886e+09");
    let u = st.observe(&scrape(&t2));
    assert!(u.restarted);
    assert_eq!(u.deltas[MODEL], delta(120.0, 100.0, 9.0, 1.0));

    // And counting goes on from there.
    let t3 = v1(&t2, "150.0", "110.0", "19.0", "2.0");
    let u = st.observe(&scrape(&t3));
    assert!(!u.restarted);
    assert_eq!(u.deltas[MODEL], delta(30.0, 10.0, 10.0, 1.0));
}

#[test]
fn a_new_start_time_with_higher_counters_is_still_a_restart() {
    let Some(body) = common::recorded(V1) else {
        return;
    };
    let t0 = String::from_utf8(body).unwrap();
    let mut st = TargetState::new();
    st.observe(&scrape(&t0));
    // Restarted and served more than before between two scrapes.
    let t1 = v1(&t0, "4000000.0", "3500000.0", "50000.0", "30.0");
    let t1 = set(&t1, "process_start_time_seconds ", "1.7888605e+09");
    let u = st.observe(&scrape(&t1));
    assert!(u.restarted);
    assert_eq!(
        u.deltas[MODEL],
        delta(4_000_000.0, 3_500_000.0, 50_000.0, 30.0)
    );
}

#[test]
fn tgi_counter_drop_without_start_time_is_a_restart() {
    let Some(body) = common::recorded("tgi-3.3.5-openhermes-mistral-7b-subset.prom") else {
        return;
    };
    let t0 = String::from_utf8(body).unwrap();
    let mut st = TargetState::new();
    assert!(st.observe(&scrape(&t0)).baseline);
    let t1 = set(&t0, "tgi_request_input_length_sum ", "700");
    let t1 = set(&t1, "tgi_request_generated_tokens_sum ", "3500");
    let t1 = set(&t1, "tgi_request_success ", "110");
    let u = st.observe(&scrape(&t1));
    assert_eq!(u.deltas[""], delta(38.0, 0.0, 77.0, 1.0));
    // Only the request counter drops: that counter was reset, and its new
    // value is its delta (never negative); the others count as usual.
    let t2 = set(&t1, "tgi_request_success ", "4");
    let t2 = set(&t2, "tgi_request_input_length_sum ", "800");
    let u = st.observe(&scrape(&t2));
    assert!(u.restarted);
    assert_eq!(u.deltas[""], delta(100.0, 0.0, 0.0, 4.0));
}

#[test]
fn one_engine_restarting_does_not_count_the_others_history_again() {
    let Some(body) = common::recorded(V1) else {
        return;
    };
    let t0 = String::from_utf8(body).unwrap();
    // A second engine of the same model, as vLLM V1 with two engines shows.
    let engine1 =
        |v: &str| format!("vllm:prompt_tokens_total{{engine=\"1\",model_name=\"{MODEL}\"}} {v}\n");
    // Right after engine 0's sample of the same family.
    let with = |text: &str, v: &str| {
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            out.push_str(line);
            if line.starts_with("vllm:prompt_tokens_total{engine=\"0\"") {
                out.push_str(&engine1(v));
            }
        }
        out
    };
    let mut st = TargetState::new();
    st.observe(&scrape(&with(&t0, "1000.0")));
    // Engine 0 serves 100 more prompt tokens; engine 1 restarts and has
    // served 10 since: 110, not engine 0's 3.6 M again.
    let t1 = v1(&t0, "3675528.0", "3241216.0", "44995.0", "26.0");
    let u = st.observe(&scrape(&with(&t1, "10.0")));
    assert!(u.restarted);
    assert_eq!(u.deltas[MODEL], delta(110.0, 0.0, 0.0, 0.0));
    // And both go on from there.
    let t2 = v1(&t0, "3675628.0", "3241216.0", "44995.0", "26.0");
    let u = st.observe(&scrape(&with(&t2, "15.0")));
    assert!(!u.restarted);
    assert_eq!(u.deltas[MODEL], delta(105.0, 0.0, 0.0, 0.0));
}

#[test]
fn vllm_v0_request_series_appearing_after_a_restart_counts_from_zero() {
    let Some(body) = common::recorded("vllm-0.4.3-v0-opt-125m.prom") else {
        return;
    };
    let t0 = String::from_utf8(body).unwrap();
    let m = "facebook/opt-125m";
    let mut st = TargetState::new();
    st.observe(&scrape(&t0));
    // V0 creates a finished_reason series only once it occurs: after a
    // restart with no finished request yet, there is none.
    let no_success: String = t0
        .split('\n')
        .filter(|l| !l.starts_with("vllm:request_success_total{"))
        .collect::<Vec<_>>()
        .join("\n");
    let t1 = set(&no_success, "vllm:prompt_tokens_total{", "3.0");
    let t1 = set(&t1, "vllm:generation_tokens_total{", "0.0");
    let t1 = set(&t1, "process_start_time_seconds ", "1.7181406e+09");
    let u = st.observe(&scrape(&t1));
    assert!(u.restarted);
    assert_eq!(u.deltas[m], delta(3.0, 0.0, 0.0, 0.0));
    // The first request finishes: its series appears at 1.
    let t2 = set(&t0, "vllm:prompt_tokens_total{", "8.0");
    let t2 = set(&t2, "vllm:generation_tokens_total{", "4.0");
    let t2 = set(&t2, "process_start_time_seconds ", "1.7181406e+09");
    let u = st.observe(&scrape(&t2));
    assert!(!u.restarted);
    assert_eq!(u.deltas[m], delta(5.0, 0.0, 4.0, 1.0));
}

#[test]
fn triton_requests_only() {
    let Some(body) = common::recorded("triton-2.38.0-t4-example-models-subset.prom") else {
        return;
    };
    let t0 = String::from_utf8(body).unwrap();
    let mut st = TargetState::new();
    st.observe(&scrape(&t0));
    let t1 = set(
        &t0,
        "nv_inference_request_success{model=\"densenet_onnx\"",
        "10",
    );
    let u = st.observe(&scrape(&t1));
    assert_eq!(u.deltas["densenet_onnx"], delta(0.0, 0.0, 0.0, 7.0));
    assert_eq!(u.total(), delta(0.0, 0.0, 0.0, 7.0));
}

#[test]
fn a_new_model_after_the_baseline_counts_from_zero() {
    let mut st = TargetState::new();
    let a = "vllm:prompt_tokens_total{model_name=\"a\"} 10\n";
    st.observe(&scrape(a));
    let ab = format!("{a}vllm:prompt_tokens_total{{model_name=\"b\"}} 4\n");
    let u = st.observe(&scrape(&ab));
    assert_eq!(u.deltas["a"], Delta::default());
    assert_eq!(u.deltas["b"].input_tokens, 4.0);
    // `a` missing from one scrape keeps its last value: no double count.
    let b = "vllm:prompt_tokens_total{model_name=\"b\"} 6\n";
    st.observe(&scrape(b));
    let u = st.observe(&scrape(&format!("{a}{b}")));
    assert!(!u.restarted);
    assert_eq!(u.deltas["a"], Delta::default());
}
