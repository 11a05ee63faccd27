//! Value prices applied to served tokens and requests, with figures worked
//! out by hand (the recorded captures' counters as deltas).

use roimon_value::{Delta, Prices};
use std::collections::BTreeMap;

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

/// The vLLM V1 capture's counters, as if served since the last scrape.
fn v1() -> Delta {
    Delta {
        input_tokens: 3_675_428.0,
        cached_input_tokens: 3_241_216.0,
        output_tokens: 44_995.0,
        requests: 26.0,
    }
}

fn prices() -> Prices {
    Prices {
        input_per_million: 0.5,
        output_per_million: 1.5,
        cached_input_per_million: Some(0.125),
        per_request: 0.01,
        per_model: BTreeMap::new(),
    }
}

#[test]
fn cached_tokens_at_the_cached_price() {
    // 434,212 × 0.5 + 3,241,216 × 0.125 + 44,995 × 1.5 = 217,106 + 405,152
    // + 67,492.5 = 689,750.5 per million = 0.6897505; + 26 × 0.01 = 0.26.
    close(prices().value("m", &v1()).0, 0.949_750_5);
}

#[test]
fn cached_tokens_at_the_input_price_when_no_cached_price() {
    let p = Prices {
        cached_input_per_million: None,
        ..prices()
    };
    // 3,675,428 × 0.5 + 44,995 × 1.5 = 1,905,206.5 per million; + 0.26.
    close(p.value("m", &v1()).0, 2.165_206_5);
}

#[test]
fn per_model_prices_replace_the_defaults() {
    let mut p = prices();
    p.per_model.insert(
        "big".into(),
        Prices {
            input_per_million: 2.0,
            output_per_million: 4.0,
            ..Prices::default()
        },
    );
    p.validate().unwrap();
    // TGI capture: 662 × 2 + 3,423 × 4 = 15,016 per million; requests free.
    let tgi = Delta {
        input_tokens: 662.0,
        cached_input_tokens: 0.0,
        output_tokens: 3_423.0,
        requests: 109.0,
    };
    close(p.value("big", &tgi).0, 0.015_016);
    // Other models: 662 × 0.5 + 3,423 × 1.5 = 5,465.5 per million + 1.09.
    close(p.value("small", &tgi).0, 1.095_465_5);
}

#[test]
fn requests_only() {
    // Triton capture: 3 requests at 0.05.
    let p = Prices {
        per_request: 0.05,
        ..Prices::default()
    };
    let d = Delta {
        requests: 3.0,
        ..Delta::default()
    };
    close(p.value("densenet_onnx", &d).0, 0.15);
}

#[test]
fn bad_prices_are_refused_naming_the_key() {
    let p = Prices {
        output_per_million: -1.0,
        ..prices()
    };
    assert!(
        p.validate()
            .unwrap_err()
            .to_string()
            .contains("output_per_million")
    );
    let mut p = prices();
    p.per_model.insert(
        "x".into(),
        Prices {
            cached_input_per_million: Some(f64::NAN),
            ..Prices::default()
        },
    );
    let e = p.validate().unwrap_err().to_string();
    assert!(
        e.contains("per_model.\"x\".cached_input_per_million"),
        "{e}"
    );
}

#[test]
fn prices_read_from_toml_like_json() {
    let p: Prices = serde_json::from_str(
        r#"{"input_per_million":0.5,"output_per_million":1.5,"per_model":{"m":{"per_request":1.0}}}"#,
    )
    .unwrap();
    assert_eq!(p.cached_input_per_million, None);
    assert_eq!(p.for_model("m").per_request, 1.0);
    assert!(serde_json::from_str::<Prices>(r#"{"input":1}"#).is_err());
}
