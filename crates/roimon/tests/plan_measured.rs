//! `roimon plan` with "measured" coefficients: a ledger filled through the
//! real engine, hour book and checkpoint, then the binary plans from it
//! (`--ledger FILE`, `--state-dir DIR`) and lists every coefficient with
//! source "ledger", its window and samples, at figures worked out by hand;
//! a window without data exits 2 naming the coefficient and the window.
//! Also: the real daemon on the fake NVML books each GPU's model and
//! GPU-seconds, and its open hour is no sample.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use roimon_core::{
    Engine, EngineConfig, FixedCosts, GpuReading, Joules, ModelDelta, Owner, PricePerKwh, Reading,
    Report, Seconds, ShareKey, Tariff, Tick, Watts,
};
use roimon_ledger::{HourBook, Ledger, Meta};
use std::path::Path;
use std::process::Command;

use common::BIN;

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
}

/// One node with one H100 (500 W) owned by search/chat, PUE 1.25, capex
/// 0.001/s, a static price; booked through the real engine, hour book and
/// ledger checkpoint.
struct Node {
    chat: Owner,
    engine: Engine,
    book: HourBook,
    ledger: Ledger,
    meta: Meta,
}

impl Node {
    fn new(path: &Path, price: f64) -> Self {
        let chat = Owner {
            team: "search".into(),
            workload: "chat".into(),
        };
        let cfg = EngineConfig {
            currency: "EUR".into(),
            pue: 1.25,
            tariff: Tariff::Static(PricePerKwh(price)),
            price_source: "static".into(),
            fixed: FixedCosts {
                capex_per_sec: 0.001,
                ..Default::default()
            },
            share_key: ShareKey::Equal,
            owners: [("GPU-h".to_string(), chat.clone())].into(),
            max_gap: Seconds(1e9),
        };
        Self {
            chat,
            engine: Engine::new(cfg, None),
            book: HourBook::resume(None, None),
            ledger: Ledger::open(path).unwrap(),
            meta: Meta {
                node: "n1".into(),
                price_source: "static".into(),
            },
        }
    }

    fn price(&mut self, p: f64) {
        self.engine.set_tariff(Tariff::Static(PricePerKwh(p)), None);
    }

    /// The GPU read `mono` seconds after 2026-12-01 00:00 at `wall`.
    fn tick(&mut self, wall: DateTime<Utc>, mono: f64) {
        self.book.observe(wall, self.engine.counters());
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
        self.engine.ingest(
            Tick { wall, mono },
            &[Report {
                collector: "nvml",
                outcome: Ok(vec![Reading::Gpu(g)]),
            }],
        );
    }

    /// `money` of value for `tokens` (half input, half output) at `wall`.
    fn value(&mut self, wall: DateTime<Utc>, money: f64, tokens: f64) {
        self.book.observe(wall, self.engine.counters());
        assert!(self.engine.book_value(
            &[(self.chat.clone(), 1.0)],
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
    }

    fn save(&mut self, wall: DateTime<Utc>) {
        self.ledger
            .save(self.engine.counters(), &self.book, &self.meta, wall)
            .unwrap();
        self.book.written();
    }
}

/// 2026-12-01 00:00 at 0.2 per kWh with 1.8 M tokens for 3.0, 01:00 at
/// 0.3 with 3.6 M tokens for 7.2; both hours closed (10-minute ticks).
fn fill(path: &Path) {
    let mut n = Node::new(path, 0.2);
    for i in 0..=13 {
        if i == 7 {
            n.price(0.3);
        }
        let wall = at(0) + Duration::minutes(10 * i);
        n.tick(wall, 600.0 * i as f64);
        match i {
            3 => n.value(wall, 3.0, 1.8e6),
            9 => n.value(wall, 7.2, 3.6e6),
            _ => {}
        }
        n.save(wall);
    }
}

const PLAN: &str = r#"hours = 720.0
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

fn plan(dir: &Path, plan: &str, args: &[&str]) -> std::process::Output {
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    Command::new(BIN)
        .arg("plan")
        .arg(&file)
        .args(args)
        .output()
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn measured_coefficients_come_from_the_ledger_with_their_window_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("n1.sqlite3");
    fill(&ledger);
    let window = [
        "--from",
        "2026-12-01T00:00:00Z",
        "--to",
        "2026-12-02T00:00:00Z",
    ];
    let mut args = vec!["--json", "--ledger", ledger.to_str().unwrap()];
    args.extend(window);
    let out = plan(dir.path(), PLAN, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let coefs = json["coefficients"].as_array().unwrap();
    let get = |name: &str| {
        coefs
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {coefs:?}"))
    };
    // By hand: 0.625 facility kWh an hour (500 W × 1.25); (0.625 × 0.2 +
    // 0.625 × 0.3) / 1.25 kWh; capex 3.6 an hour of the one GPU; hourly
    // token rates 500 and 1000 /s, P95 at rank 0.95: 975; 10.2 / 5.4 M
    // tokens; 5.4 M tokens / 7200 GPU-seconds; (500 − 100) W × 7200 s /
    // 5.4 M tokens.
    for (name, value) in [
        ("energy.price_per_kwh", 0.25),
        ("gpu.H100.cost_per_hour", 3.6),
        ("workload.search/chat.demand_tokens_per_second", 975.0),
        ("workload.search/chat.value_per_million_tokens", 10.2 / 5.4),
        ("workload.search/chat.on.H100.tokens_per_second", 750.0),
        (
            "workload.search/chat.on.H100.joules_per_token",
            2.88e6 / 5.4e6,
        ),
    ] {
        let c = get(name);
        assert_eq!(c["source"], "ledger", "{c}");
        assert_eq!(
            c["window"], "2026-12-01T00:00:00Z/2026-12-02T00:00:00Z",
            "{c}"
        );
        assert_eq!(c["samples"], 2, "{c}");
        let v = c["value"].as_f64().unwrap();
        assert!(close(v, value), "{name}: {v} != {value}");
    }
    assert_eq!(get("energy.pue")["source"], "file");

    // The daemon's state dir gives the same.
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::copy(&ledger, state.join("ledger.sqlite3")).unwrap();
    let mut args = vec!["--json", "--state-dir", state.to_str().unwrap()];
    args.extend(window);
    let out = plan(dir.path(), PLAN, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["coefficients"], json["coefficients"]);
}

#[test]
fn a_coefficient_without_data_exits_2_naming_it_and_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("n1.sqlite3");
    fill(&ledger);
    let l = ledger.to_str().unwrap();
    // A week with nothing booked.
    let out = plan(
        dir.path(),
        PLAN,
        &[
            "--ledger",
            l,
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-08T00:00:00Z",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("price_per_kwh")
            && stderr.contains(
                "no data in the ledger from 2026-11-01T00:00:00Z to 2026-11-08T00:00:00Z"
            ),
        "{stderr}"
    );
    // A GPU type the ledger never saw.
    let other = PLAN.replace("H100", "L40S");
    let out = plan(
        dir.path(),
        &other,
        &[
            "--ledger",
            l,
            "--from",
            "2026-12-01T00:00:00Z",
            "--to",
            "2026-12-02T00:00:00Z",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("L40S")
            && stderr.contains(
                "no GPU model matches type L40S; the models there: NVIDIA H100 80GB HBM3"
            )
            && stderr.contains("2026-12-01T00:00:00Z to 2026-12-02T00:00:00Z"),
        "{stderr}"
    );
    // A ledger in another currency than the file's.
    let usd = PLAN.replace("\"EUR\"", "\"USD\"");
    let out = plan(
        dir.path(),
        &usd,
        &[
            "--ledger",
            l,
            "--from",
            "2026-12-01T00:00:00Z",
            "--to",
            "2026-12-02T00:00:00Z",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("coefficient energy.price_per_kwh: the ledger's rows from 2026-12-01T00:00:00Z to 2026-12-02T00:00:00Z are in EUR, the file's currency is USD"),
        "{stderr}"
    );
    // No ledger at all.
    let out = plan(dir.path(), PLAN, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--state-dir DIR"), "{stderr}");
}

#[test]
fn the_daemon_books_the_gpu_model_and_gpu_seconds_and_its_open_hour_is_no_sample() {
    use roimon_fake_nvml::{FakeGpu, FakeNvml};
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    let uuid = FakeGpu::uuid_for(0);
    let cfg = tmp.path().join("roimon.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[sampling]
interval_secs = 0.05
[gpu]
source = "nvml"
nvml_library = "{nvml}"
[[gpu.owners]]
gpu_uuid = "{uuid}"
team = "search"
workload = "chat"
[host]
power = "model"
rapl_root = "{none}"
[price]
source = "static"
currency = "EUR"
price_per_kwh = 0.30
[server]
listen = "127.0.0.1:0"
[state]
dir = "{state}"
checkpoint_interval_secs = 0.1
"#,
            nvml = fake.library().display(),
            none = tmp.path().join("no-rapl").display(),
            state = state.display(),
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let d = common::Daemon::start(&cfg, &[]);
    let seconds = || -> f64 {
        let c = rusqlite::Connection::open_with_flags(
            common::ledger_path(&state),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.query_row(
            "SELECT COALESCE(SUM(gpu_seconds), 0) FROM ledger WHERE gpu_uuid = ?1",
            [&uuid],
            |r| r.get(0),
        )
        .unwrap()
    };
    while seconds() < 1.0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no GPU-seconds booked"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, _) = d.stop("TERM");
    assert!(status.success());
    let elapsed = started.elapsed().as_secs_f64();
    let c = rusqlite::Connection::open(common::ledger_path(&state)).unwrap();
    let (model, secs): (String, f64) = c
        .query_row(
            "SELECT MAX(gpu_model), SUM(gpu_seconds) FROM ledger WHERE gpu_uuid = ?1 \
             AND team = 'search' AND workload = 'chat'",
            [&uuid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(model, "NVIDIA H100 80GB HBM3");
    // Sampled time, never more than the daemon ran.
    assert!(secs >= 1.0 && secs <= elapsed, "{secs} s of {elapsed} s");
    let nulls: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM ledger WHERE gpu_uuid = 'value' AND gpu_seconds IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(nulls, 0);
    drop(c);
    // Only closed hours are samples, and the workload served nothing.
    let out = plan(
        tmp.path(),
        PLAN,
        &["--json", "--state-dir", state.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no data in the ledger from "), "{stderr}");
}

/// Eight days, hourly ticks, the price stepping up each day (0.10, 0.15,
/// … 0.45 per kWh) and 1 M tokens for 2.0 booked every day at 05:00.
fn fill_days(path: &Path) {
    let mut n = Node::new(path, 0.1);
    for i in 0..=(8 * 24) {
        let wall = at(0) + Duration::hours(i);
        if i % 24 == 0 {
            n.price(0.1 + 0.05 * (i / 24) as f64);
        }
        n.tick(wall, 3600.0 * i as f64);
        if i % 24 == 5 {
            n.value(wall, 2.0, 1e6);
        }
        n.save(wall);
    }
}

#[test]
fn a_measured_price_with_a_week_of_days_draws_the_monte_carlo_price_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let week = dir.path().join("week.sqlite3");
    fill_days(&week);
    let out = plan(
        dir.path(),
        PLAN,
        &[
            "--json",
            "--ledger",
            week.to_str().unwrap(),
            "--from",
            "2026-12-01T00:00:00Z",
            "--to",
            "2026-12-09T00:00:00Z",
            "--monte-carlo",
            "400",
            "--seed",
            "7",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mc = &j["monte_carlo"];
    assert_eq!(mc["price_source"], "days", "{mc}");
    let (p5, p50, p95) = (
        mc["profit_p5"].as_f64().unwrap(),
        mc["profit_p50"].as_f64().unwrap(),
        mc["profit_p95"].as_f64().unwrap(),
    );
    assert!(p5 <= p50 && p50 <= p95, "{mc}");

    // Two hours of ledger: fewer than 7 days, the price keeps its triangle.
    let short = dir.path().join("short.sqlite3");
    fill(&short);
    let out = plan(
        dir.path(),
        PLAN,
        &[
            "--json",
            "--ledger",
            short.to_str().unwrap(),
            "--from",
            "2026-12-01T00:00:00Z",
            "--to",
            "2026-12-02T00:00:00Z",
            "--monte-carlo",
            "50",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["monte_carlo"]["price_source"], "triangular");
}
