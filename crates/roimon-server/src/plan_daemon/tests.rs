//! Tests of the daemon's planner: its state and endpoints before a plan,
//! a plan of given coefficients served with the contract's keys and
//! pictures, an infeasible file, a failing or panicking re-plan that keeps
//! the last good plan as stale, and the thread's first run.

use super::*;
use crate::router::{AppState, router};
use axum::Router;
use axum::http::{StatusCode, header};
use http_body_util::BodyExt;

/// One H100 type (4 of them, 2 per hour, 100 W idle) and one workload of
/// 20 000 tokens/s worth 1 per million tokens, 10 000 tokens/s per GPU at
/// 0.1 J per token; 0.2 per kWh, PUE 1, 300 g/kWh, one hour. The best plan
/// by hand: 2 GPUs serving all 20 000 tokens/s; value 72, energy
/// (200 W + 2000 W) × 1 h = 2.2 kWh = 0.44, GPUs 4, profit 67.56.
const FILE: &str = "hours = 1.0\ncurrency = \"EUR\"\nobjective = \"profit\"\n\n\
[energy]\nprice_per_kwh = 0.2\npue = 1.0\ncarbon_g_per_kwh = 300.0\n\n\
[[gpu]]\ntype = \"H100\"\ncount = 4\ncost_per_hour = 2.0\nidle_watts = 100.0\n\n\
[[workload]]\nname = \"search/chat\"\ndemand_tokens_per_second = 20000.0\nmin_served = 0.5\n\
value_per_million_tokens = 1.0\n  [workload.on.H100]\n  tokens_per_second = 10000.0\n  joules_per_token = 0.1\n";

fn cfg() -> PlanCfg {
    PlanCfg {
        time_limit_secs: 5.0,
        ..PlanCfg::default()
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-07T02:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn app_state() -> Arc<AppState> {
    let c = roimon_config::Config::builtin();
    let engine = roimon_core::Engine::new(c.engine_config(), None);
    Arc::new(AppState::new(
        engine.snapshot(),
        "0",
        std::time::Duration::from_secs(60),
    ))
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String, String) {
    let req = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let mut app = app.clone();
    let resp = tower_service::Service::call(&mut app, req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, ct, String::from_utf8(bytes.to_vec()).unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[tokio::test]
async fn the_plan_is_404_with_a_json_error_before_the_first_plan_and_without_plan() {
    let st = app_state();
    let app = router(st.clone());
    let (status, ct, body) = get(&app, "/api/v1/plan").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ct, "application/json");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "no plan: the configuration has no [plan] file");
    let (status, _, body) = get(&app, "/api/v1/plan/tornado.svg").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, _, metrics) = get(&app, "/metrics").await;
    assert!(!metrics.contains("roimon_plan_runs_total"), "{metrics}");

    st.set_plan(Arc::new(PlanState::new("/etc/roimon/plan.toml".into())));
    let (status, _, body) = get(&app, "/api/v1/plan").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "no plan yet: the first run has not finished");
    assert_eq!(st.plan_state().unwrap().summary(), None);
    let (_, _, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics.contains("roimon_plan_runs_total{result=\"ok\"} 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_plan_of_given_coefficients_is_served_with_the_contract_keys_and_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.toml");
    std::fs::write(&file, FILE).unwrap();
    let st = app_state();
    let p = Arc::new(PlanState::new(file.clone()));
    st.set_plan(p.clone());
    p.record(plan_once(&cfg(), &file, dir.path(), now()));
    let app = router(st.clone());
    let (status, ct, body) = get(&app, "/api/v1/plan").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ct, "application/json");
    let v: Value = serde_json::from_str(&body).unwrap();
    for k in [
        "status",
        "objective",
        "currency",
        "hours",
        "value",
        "cost",
        "cost_energy",
        "cost_gpus",
        "profit",
        "roi",
        "energy_kwh",
        "power_kw",
        "emissions_kg",
        "gap",
        "solve_seconds",
        "allocation",
        "unserved",
        "binding",
        "coefficients",
        "sensitivity",
        "monte_carlo",
        "pareto",
        "planned_at",
        "file",
        "stale",
    ] {
        assert!(v.get(k).is_some(), "no {k} in {v}");
    }
    assert_eq!(v["status"], "optimal");
    assert_eq!(v["planned_at"], "2026-12-07T02:00:00Z");
    assert_eq!(v["file"], file.display().to_string());
    assert_eq!(v["stale"], false);
    assert!(v.get("last_error").is_none());
    assert!(close(v["value"].as_f64().unwrap(), 72.0), "{v}");
    assert!(close(v["cost_energy"].as_f64().unwrap(), 0.44), "{v}");
    assert!(close(v["cost_gpus"].as_f64().unwrap(), 4.0), "{v}");
    assert!(close(v["profit"].as_f64().unwrap(), 67.56), "{v}");
    assert!(close(v["emissions_kg"].as_f64().unwrap(), 0.66), "{v}");
    assert_eq!(
        v["allocation"],
        json!([{"gpu": "H100", "workload": "search/chat", "gpus": 2,
                "tokens_per_second": 20000.0, "value": v["allocation"][0]["value"],
                "cost": v["allocation"][0]["cost"]}])
    );
    assert_eq!(v["monte_carlo"]["draws"], DRAWS);
    assert_eq!(v["monte_carlo"]["seed"], SEED);
    assert!(
        v["coefficients"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["source"] == "file")
    );
    for name in PICTURES {
        let (status, ct, svg) = get(&app, &format!("/api/v1/plan/{name}")).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(ct, "image/svg+xml", "{name}");
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
    }
    let s = p.summary().unwrap();
    assert_eq!(s.status, "optimal");
    assert_eq!(s.planned_at, now());
    assert!(close(s.profit.unwrap(), 67.56));
    assert!(close(s.roi.unwrap(), 67.56 / 4.44));
    assert!(!s.stale);
    assert_eq!(
        s.svg_urls,
        [
            "/api/v1/plan/monte-carlo.svg",
            "/api/v1/plan/pareto.svg",
            "/api/v1/plan/tornado.svg"
        ]
    );
    let (_, _, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics.contains("roimon_plan_runs_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_carbon_or_svg_the_missing_pictures_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.toml");
    std::fs::write(&file, FILE.replace("carbon_g_per_kwh = 300.0\n", "")).unwrap();
    let st = app_state();
    let p = Arc::new(PlanState::new(file.clone()));
    st.set_plan(p.clone());
    p.record(plan_once(&cfg(), &file, dir.path(), now()));
    let app = router(st.clone());
    assert_eq!(
        get(&app, "/api/v1/plan/tornado.svg").await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/api/v1/plan/pareto.svg").await.0,
        StatusCode::NOT_FOUND
    );
    let no_svg = PlanCfg {
        svg: false,
        ..cfg()
    };
    p.record(plan_once(&no_svg, &file, dir.path(), now()));
    assert_eq!(
        get(&app, "/api/v1/plan/tornado.svg").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, _, body) = get(&app, "/api/v1/plan").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v.get("sensitivity").is_none() && v["status"] == "optimal",
        "{v}"
    );
    assert!(p.summary().unwrap().svg_urls.is_empty());
}

#[tokio::test]
async fn a_failing_replan_keeps_the_last_good_plan_as_stale_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.toml");
    std::fs::write(&file, FILE).unwrap();
    let st = app_state();
    let p = Arc::new(PlanState::new(file.clone()));
    st.set_plan(p.clone());
    let app = router(st.clone());
    p.record(plan_once(&cfg(), &file, dir.path(), now()));
    // The file broken: a negative period, named file:line:key.
    std::fs::write(&file, FILE.replace("hours = 1.0", "hours = -1.0")).unwrap();
    let later = now() + chrono::Duration::hours(1);
    let r = plan_once(&cfg(), &file, dir.path(), later);
    let e = r.as_ref().unwrap_err().clone();
    assert!(
        e.starts_with(&format!("{}:1: key `hours`", file.display())),
        "{e}"
    );
    p.record(r);
    let (status, _, body) = get(&app, "/api/v1/plan").await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stale"], true);
    assert_eq!(v["last_error"], e);
    assert_eq!(v["planned_at"], "2026-12-07T02:00:00Z");
    assert!(close(v["profit"].as_f64().unwrap(), 67.56));
    assert_eq!(
        get(&app, "/api/v1/plan/tornado.svg").await.0,
        StatusCode::OK
    );
    let s = p.summary().unwrap();
    assert!(s.stale);
    assert_eq!(s.last_error.as_deref(), Some(e.as_str()));

    // A measured price without a ledger in the state dir: the coefficient
    // and the window are named; still the same stale plan.
    std::fs::write(
        &file,
        FILE.replace("price_per_kwh = 0.2", "price_per_kwh = \"measured\""),
    )
    .unwrap();
    let e = plan_once(&cfg(), &file, dir.path(), later).unwrap_err();
    assert!(e.contains("price_per_kwh"), "{e}");
    assert!(e.contains("ledger"), "{e}");
    p.record(Err(e.clone()));
    // A panic in a run is an error like any other.
    p.record(guarded(|| panic!("solver bug")));
    let (_, _, body) = get(&app, "/api/v1/plan").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stale"], true);
    assert_eq!(
        v["last_error"],
        "the planner failed unexpectedly: solver bug"
    );
    let (_, _, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics.contains("roimon_plan_runs_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roimon_plan_runs_total{result=\"error\"} 3\n"),
        "{metrics}"
    );

    // Mended: fresh again, no last_error.
    std::fs::write(&file, FILE).unwrap();
    p.record(plan_once(&cfg(), &file, dir.path(), later));
    let (_, _, body) = get(&app, "/api/v1/plan").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stale"], false);
    assert!(v.get("last_error").is_none());
    assert_eq!(v["planned_at"], "2026-12-07T03:00:00Z");
}

#[tokio::test]
async fn an_error_before_any_plan_is_404_naming_it_and_an_infeasible_file_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.toml");
    let st = app_state();
    let p = Arc::new(PlanState::new(file.clone()));
    st.set_plan(p.clone());
    let app = router(st.clone());
    p.record(guarded(|| plan_once(&cfg(), &file, dir.path(), now())));
    let (status, _, body) = get(&app, "/api/v1/plan").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: Value = serde_json::from_str(&body).unwrap();
    let e = v["error"].as_str().unwrap();
    assert!(
        e.starts_with("no plan yet: the last run failed: ") && e.contains("cannot read"),
        "{e}"
    );
    // Every GPU needed and only one there: no plan, and that is the answer.
    std::fs::write(
        &file,
        FILE.replace("min_served = 0.5", "min_served = 1.0")
            .replace("count = 4", "count = 1"),
    )
    .unwrap();
    p.record(plan_once(&cfg(), &file, dir.path(), now()));
    let (status, _, body) = get(&app, "/api/v1/plan").await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "infeasible");
    assert!(
        v["message"].as_str().unwrap().contains("search/chat"),
        "{v}"
    );
    assert_eq!(v["stale"], false);
    assert_eq!(p.summary().unwrap().profit, None);
    assert_eq!(
        get(&app, "/api/v1/plan/tornado.svg").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        p.figures(),
        PlanFigures {
            ok: 0,
            infeasible: 1,
            error: 1
        }
    );
}

#[test]
fn the_thread_plans_at_once_and_ends_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.toml");
    std::fs::write(&file, FILE).unwrap();
    let p = Arc::new(PlanState::new(file.clone()));
    let no_svg = PlanCfg {
        svg: false,
        ..cfg()
    };
    let stop = start(&no_svg, file, dir.path().to_path_buf(), p.clone()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while p.summary().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = p.summary().expect("a plan within a minute");
    assert_eq!(s.status, "optimal");
    assert!(close(s.profit.unwrap(), 67.56));
    drop(stop);
    assert_eq!(p.figures().ok, 1);
}

/// The ledger of `crates/roimon/tests/plan_measured.rs`, filled the same
/// way (the real engine, hour book and ledger): one H100 of search/chat,
/// 2026-12-01 00:00 and 01:00 closed.
mod ledger {
    use chrono::{DateTime, Duration, TimeZone, Utc};
    use roimon_core::{
        Engine, EngineConfig, FixedCosts, GpuReading, Joules, ModelDelta, Owner, PricePerKwh,
        Reading, Report, Seconds, ShareKey, Tariff, Tick, Watts,
    };
    use roimon_ledger::{HourBook, Ledger, Meta};
    use std::path::Path;

    pub fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    /// One node, one H100 (500 W) owned by search/chat, PUE 1.25, capex
    /// 0.001/s; 2026-12-01 00:00 at 0.2 per kWh with 1.8 M tokens for 3.0,
    /// 01:00 at 0.3 with 3.6 M tokens for 7.2; both hours closed.
    pub fn fill(path: &Path) {
        let chat = Owner {
            team: "search".into(),
            workload: "chat".into(),
        };
        let cfg = EngineConfig {
            currency: "EUR".into(),
            pue: 1.25,
            tariff: Tariff::Static(PricePerKwh(0.2)),
            price_source: "static".into(),
            fixed: FixedCosts {
                capex_per_sec: 0.001,
                ..Default::default()
            },
            share_key: ShareKey::Equal,
            owners: [("GPU-h".to_string(), chat.clone())].into(),
            max_gap: Seconds(1e9),
        };
        let mut engine = Engine::new(cfg, None);
        let mut book = HourBook::resume(None, None);
        let mut ledger = Ledger::open(path).unwrap();
        let meta = Meta {
            node: "n1".into(),
            price_source: "static".into(),
        };
        let mut save = |e: &Engine, b: &mut HourBook, wall: DateTime<Utc>| {
            ledger.save(e.counters(), b, &meta, wall).unwrap();
            b.written();
        };
        let tick = |e: &mut Engine, b: &mut HourBook, i: i64| {
            let wall = at(0) + Duration::minutes(10 * i);
            b.observe(wall, e.counters());
            let mono = 600.0 * i as f64;
            let g = GpuReading {
                index: 0,
                uuid: "GPU-h".into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                power: Some(Watts(500.0)),
                energy_counter: Some(Joules(500.0 * mono)),
                utilization: None,
                memory_used_bytes: None,
                memory_total_bytes: None,
                temperature_celsius: None,
                power_limit: None,
                processes: None,
            };
            e.ingest(
                Tick { wall, mono },
                &[Report {
                    collector: "nvml",
                    outcome: Ok(vec![Reading::Gpu(g)]),
                }],
            );
            wall
        };
        let value = |e: &mut Engine, b: &mut HourBook, wall, money, tokens: f64| {
            b.observe(wall, e.counters());
            assert!(e.book_value(
                &[(chat.clone(), 1.0)],
                "push",
                money,
                &[ModelDelta {
                    model: "m".into(),
                    input_tokens: tokens * 0.5,
                    output_tokens: tokens * 0.5,
                    requests: 1.0,
                    ..Default::default()
                }],
            ));
        };
        for i in 0..=13 {
            if i == 7 {
                engine.set_tariff(Tariff::Static(PricePerKwh(0.3)), None);
            }
            let wall = tick(&mut engine, &mut book, i);
            match i {
                3 => value(&mut engine, &mut book, wall, 3.0, 1.8e6),
                9 => value(&mut engine, &mut book, wall, 7.2, 3.6e6),
                _ => {}
            }
            save(&engine, &mut book, wall);
        }
    }

    pub const PLAN: &str = r#"hours = 720.0
currency = "EUR"
objective = "profit"

[energy]
price_per_kwh = "measured"
pue = 1.25

[[gpu]]
type = "H100"
count = 4
cost_per_hour = "measured"
idle_watts = 100.0

[[workload]]
name = "search/chat"
demand_tokens_per_second = "measured"
value_per_million_tokens = "measured"
  [workload.on.H100]
  tokens_per_second = "measured"
  joules_per_token = "measured"
"#;
}

/// With `window_days = 1` ending 2026-12-02 00:00, the daemon's run reads
/// the ledger in its own state dir and gets every measured coefficient as
/// `roimon plan --state-dir` does over that day (figures by hand in
/// `tests/plan_measured.rs`), source "ledger" with window and samples.
#[test]
fn measured_coefficients_come_from_the_ledger_in_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    ledger::fill(&dir.path().join(roimon_ledger::FILE));
    let file = dir.path().join("plan.toml");
    std::fs::write(&file, ledger::PLAN).unwrap();
    let day = PlanCfg {
        window_days: 1,
        svg: false,
        ..cfg()
    };
    let end = ledger::at(0) + chrono::Duration::days(1);
    let o = plan_once(&day, &file, dir.path(), end).unwrap();
    let coefs = o.doc["coefficients"].as_array().unwrap();
    for (name, value) in [
        ("energy.price_per_kwh", 0.25),
        ("gpu.H100.cost_per_hour", 3.6),
        ("workload.search/chat.demand_tokens_per_second", 975.0),
        ("workload.search/chat.on.H100.tokens_per_second", 750.0),
    ] {
        let c = coefs
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {coefs:?}"));
        assert_eq!(c["source"], "ledger", "{c}");
        assert_eq!(
            c["window"], "2026-12-01T00:00:00Z/2026-12-02T00:00:00Z",
            "{c}"
        );
        assert_eq!(c["samples"], 2, "{c}");
        assert!(close(c["value"].as_f64().unwrap(), value), "{c}");
    }
    // The week before holds nothing: the run fails naming the coefficient
    // and the window.
    let e = plan_once(&day, &file, dir.path(), ledger::at(0)).unwrap_err();
    assert!(
        e.contains("price_per_kwh")
            && e.contains(
                "no data in the ledger from 2026-11-30T00:00:00Z to 2026-12-01T00:00:00Z"
            ),
        "{e}"
    );
}
