//! Every recorded real capture parses, is recognised as its server, and
//! reads to exactly the figures shared/fixtures/inference/SOURCES.md
//! documents for it.

mod common;

use roimon_value::{
    Limits, MetricType, ModelCounters, Scrape, ServerKind, extract, prom, read_scrape,
};

/// Read a capture as `auto` and as its own kind; both must agree.
fn read(name: &str, kind: ServerKind) -> Option<Scrape> {
    let body = common::recorded(name)?;
    let auto = read_scrape(&body, ServerKind::Auto, "", Limits::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(auto.kind, kind, "{name} recognised as {}", auto.kind);
    let own = read_scrape(&body, kind, "", Limits::default()).unwrap();
    assert_eq!(auto, own);
    Some(auto)
}

fn counters(
    input: Option<f64>,
    cached: Option<f64>,
    output: Option<f64>,
    requests: Option<f64>,
) -> ModelCounters {
    ModelCounters {
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
        requests,
    }
}

#[test]
fn vllm_0_4_3_v0() {
    let Some(s) = read("vllm-0.4.3-v0-opt-125m.prom", ServerKind::Vllm) else {
        return;
    };
    assert_eq!(s.models.len(), 1);
    assert_eq!(
        s.models["facebook/opt-125m"],
        counters(Some(5.0), None, Some(7.0), Some(1.0))
    );
    assert_eq!(s.process_start_time, Some(1.7181405583e9));
}

#[test]
fn vllm_v1_engine_label_and_prefix_cache() {
    let Some(s) = read(
        "vllm-v1-engine-label-deepseek-v4-flash-subset.prom",
        ServerKind::Vllm,
    ) else {
        return;
    };
    assert_eq!(s.models.len(), 1);
    let m = s.models["deepseek-v4-flash-vision-exp-ablit-dual"];
    assert_eq!(
        m,
        counters(
            Some(3_675_428.0),
            Some(3_241_216.0),
            Some(44_995.0),
            Some(26.0)
        )
    );
    // Prompt tokens include cache hits: the rest is the by-source local_compute.
    assert_eq!(
        m.input_tokens.unwrap() - m.cached_input_tokens.unwrap(),
        434_212.0
    );
    assert_eq!(s.process_start_time, Some(1.78885983325e9));
}

#[test]
fn vllm_v1_created_gauges_are_their_own_families() {
    let Some(body) = common::recorded("vllm-v1-engine-label-deepseek-v4-flash-subset.prom") else {
        return;
    };
    let e = prom::parse(&body, Limits::default()).unwrap();
    let created = e.family("vllm:prompt_tokens_created").unwrap();
    assert_eq!(created.kind, MetricType::Gauge);
    assert_eq!(created.samples[0].value, 1.7888602775296042e9);
    assert_eq!(
        e.family("vllm:prompt_tokens_total").unwrap().kind,
        MetricType::Counter
    );
}

#[test]
fn tgi_3_3_5_tokens_from_histograms() {
    let Some(s) = read(
        "tgi-3.3.5-openhermes-mistral-7b-subset.prom",
        ServerKind::Tgi,
    ) else {
        return;
    };
    assert_eq!(s.models.len(), 1);
    assert_eq!(
        s.models[""],
        counters(Some(662.0), None, Some(3_423.0), Some(109.0))
    );
    assert_eq!(s.process_start_time, None);
}

#[test]
fn tgi_model_is_the_configured_name() {
    let Some(body) = common::recorded("tgi-3.3.5-openhermes-mistral-7b-subset.prom") else {
        return;
    };
    let s = read_scrape(&body, ServerKind::Tgi, "openhermes", Limits::default()).unwrap();
    assert_eq!(s.models.keys().collect::<Vec<_>>(), ["openhermes"]);
    let e = prom::parse(&body, Limits::default()).unwrap();
    assert_eq!(
        e.family("tgi_request_success").unwrap().kind,
        MetricType::Counter
    );
    assert_eq!(
        e.family("tgi_request_skipped_tokens").unwrap().kind,
        MetricType::Summary
    );
    assert!(e.family("tgi_request_failure").unwrap().help.is_none());
}

#[test]
fn triton_2_38_requests_per_model_no_tokens() {
    let Some(s) = read(
        "triton-2.38.0-t4-example-models-subset.prom",
        ServerKind::Triton,
    ) else {
        return;
    };
    assert_eq!(s.models.len(), 8);
    assert_eq!(
        s.models["densenet_onnx"],
        counters(None, None, None, Some(3.0))
    );
    for (name, m) in &s.models {
        if name != "densenet_onnx" {
            assert_eq!(*m, counters(None, None, None, Some(0.0)), "{name}");
        }
    }
    assert!(!s.reports_tokens());
    assert_eq!(s.process_start_time, None);
}

#[test]
fn sglang_exponent_values_and_sum_first_histograms() {
    let Some(s) = read("sglang-docs-llama-3.1-8b.prom", ServerKind::Sglang) else {
        return;
    };
    assert_eq!(s.models.len(), 1);
    assert_eq!(
        s.models["meta-llama/Llama-3.1-8B-Instruct"],
        counters(Some(8_128_902.0), None, Some(7_557_572.0), None)
    );
    assert_eq!(s.process_start_time, None);
}

#[test]
fn nim_1_0_0_unprefixed() {
    let Some(s) = read("nim-llm-1.0.0-llama-3.1-8b-instruct.prom", ServerKind::Nim) else {
        return;
    };
    assert_eq!(s.models.len(), 1);
    assert_eq!(
        s.models["meta/llama-3.1-8b-instruct"],
        counters(Some(109.0), None, Some(174.0), Some(5.0))
    );
    assert_eq!(s.process_start_time, Some(1.7303128549e9));
}

#[test]
fn llamacpp_tokens_no_request_counter() {
    let Some(s) = read(
        "llamacpp-ik_llama-fork-pr695-paste.prom",
        ServerKind::Llamacpp,
    ) else {
        return;
    };
    assert_eq!(s.models.len(), 1);
    // `llamacpp:requests_processing` is a gauge of requests in flight, not a
    // count of finished ones: no request figure.
    assert_eq!(
        s.models[""],
        counters(Some(6_886.0), None, Some(3_469.0), None)
    );
    assert_eq!(s.process_start_time, None);
}

#[test]
fn every_capture_parses_with_crlf_and_with_a_final_newline() {
    for name in common::ALL {
        let Some(body) = common::recorded(name) else {
            return;
        };
        let text = String::from_utf8(body).unwrap();
        let lf = read_scrape(text.as_bytes(), ServerKind::Auto, "", Limits::default()).unwrap();
        let crlf = text.replace('\n', "\r\n");
        let crlf = read_scrape(crlf.as_bytes(), ServerKind::Auto, "", Limits::default()).unwrap();
        assert_eq!(lf, crlf, "{name}");
        let nl = format!("{}\n", text.trim_end_matches('\n'));
        let nl = read_scrape(nl.as_bytes(), ServerKind::Auto, "", Limits::default()).unwrap();
        assert_eq!(lf, nl, "{name}");
    }
}

#[test]
fn a_wrong_kind_says_so() {
    let Some(body) = common::recorded("triton-2.38.0-t4-example-models-subset.prom") else {
        return;
    };
    let e = prom::parse(&body, Limits::default()).unwrap();
    let err = extract(&e, ServerKind::Vllm, "").unwrap_err();
    assert!(err.to_string().contains("vllm"), "{err}");
}
