//! The ledger as a finance user meets it: the real binary on the fake NVML,
//! its wall clock sped up (libfaketime) so hours pass in seconds, owners
//! changing across restarts, killed with SIGKILL fifty times at random
//! moments; then `roimon report --verify` passes, hours are contiguous and
//! unique, and a monthly CSV per team adds up to the node's counters.
//! Also: the ledger is readable beside a running daemon, `GET
//! /api/v1/report` answers like the CLI, and budget gauges are exported.

mod common;

use common::*;
use roimon_fake_nvml::{FakeGpu, FakeNvml};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const G0: &str = "GPU-00000000-0000-0000-0000-000000000000";
const G1: &str = "GPU-00000000-0000-0000-0000-000000000001";

fn config(dir: &Path, nvml: &Path, state: &Path, teams: (&str, &str), extra: &str) -> PathBuf {
    let cfg = format!(
        r#"
[sampling]
interval_secs = 0.05
[gpu]
source = "nvml"
nvml_library = "{nvml}"
[[gpu.owners]]
gpu_uuid = "{G0}"
team = "{t0}"
workload = "w"
[[gpu.owners]]
gpu_uuid = "{G1}"
team = "{t1}"
workload = "w"
[host]
power = "model"
rapl_root = "{none}"
[facility]
pue = 1.3
[price]
source = "static"
currency = "EUR"
price_per_kwh = 0.30
[costs]
purchase = 315576.0
depreciation_years = 1.0
[server]
listen = "127.0.0.1:0"
[state]
dir = "{state}"
checkpoint_interval_secs = 0.1
[node]
name = "node-7"
{extra}
"#,
        nvml = nvml.display(),
        none = dir.join("no-rapl").display(),
        state = state.display(),
        t0 = teams.0,
        t1 = teams.1,
    );
    let path = dir.join("roimon.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn gpus() -> Vec<FakeGpu> {
    (0..2)
        .map(|i| {
            let mut g = FakeGpu::new(i);
            g.power_mw = 300_000 + 100_000 * i;
            g
        })
        .collect()
}

/// A small deterministic generator (the seed is printed for reruns).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn roimon(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

fn last_wall(state: &Path) -> Option<chrono::DateTime<chrono::Utc>> {
    let (_, c) = stored_checkpoint(state)?;
    let v: serde_json::Value = serde_json::from_str(&c).ok()?;
    v["last_wall"].as_str()?.parse().ok()
}

fn query_i64(state: &Path, sql: &str) -> Vec<i64> {
    let c = rusqlite::Connection::open_with_flags(
        ledger_path(state),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut st = c.prepare(sql).unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn fifty_kill_9s_leave_no_missing_duplicated_or_partial_hour() {
    let Some(lib) = faketime() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = FakeNvml::new(&gpus()).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    // Owners change at every restart.
    let owners = [
        ("search", "vision"),
        ("vision", "search"),
        ("search", "search"),
    ];
    // Start a little before a real hour boundary; the clock runs 10,000× (an hour in 0.36 s).
    let mut start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let t0 = Instant::now();
    for round in 0..50 {
        let cfg = config(tmp.path(), &fake.library(), &state, owners[round % 3], "");
        if let Some(w) = last_wall(&state) {
            start = start.max(w + chrono::Duration::seconds(2));
        }
        let ft = format!("@{} x10000", start.format("%Y-%m-%d %H:%M:%S"));
        let mut d = Daemon::start_env(
            &cfg,
            &[],
            &[
                ("LD_PRELOAD", lib),
                ("FAKETIME", &ft),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
                ("TZ", "UTC"),
            ],
        );
        std::thread::sleep(Duration::from_millis(rng.next() % 400));
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(240), "took too long");
    }
    // The state must resume (nothing torn), and the books must reconcile.
    let out = roimon(&["report", "--verify", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK"));
    let hours = query_i64(
        &state,
        "SELECT DISTINCT hour_start FROM ledger WHERE kind = 'hour' ORDER BY 1",
    );
    assert!(
        hours.len() >= 3,
        "the clock crossed too few hours: {hours:?}"
    );
    for w in hours.windows(2) {
        assert_eq!(
            w[1] - w[0],
            3600,
            "hours missing between {} and {}",
            w[0],
            w[1]
        );
    }
    let dups = query_i64(
        &state,
        "SELECT COUNT(*) FROM ledger WHERE kind = 'hour' GROUP BY hour_start, node, gpu_uuid, team, workload HAVING COUNT(*) > 1",
    );
    assert!(dups.is_empty(), "duplicated hour rows: {dups:?}");
    // Every hour holds both GPUs (fixed costs accrue to each every tick).
    let partial = query_i64(
        &state,
        "SELECT hour_start FROM ledger WHERE kind = 'hour' GROUP BY hour_start HAVING COUNT(DISTINCT gpu_uuid) < 2",
    );
    assert!(partial.is_empty(), "hours missing a GPU: {partial:?}");
    let open = query_i64(
        &state,
        "SELECT COUNT(DISTINCT hour_start) FROM ledger WHERE closed = 0",
    );
    assert!(open[0] <= 1);
    // The report over everything equals the counters.
    let (_, counters) = stored_checkpoint(&state).unwrap();
    let c: serde_json::Value = serde_json::from_str(&counters).unwrap();
    let node_cost: f64 = c["cost"]
        .as_object()
        .unwrap()
        .values()
        .map(|a| a["sum"].as_f64().unwrap() + a["comp"].as_f64().unwrap_or(0.0))
        .sum();
    let from = chrono::DateTime::from_timestamp(hours[0], 0)
        .unwrap()
        .to_rfc3339();
    let to = chrono::DateTime::from_timestamp(hours[hours.len() - 1] + 3600, 0)
        .unwrap()
        .to_rfc3339();
    let out = roimon(&[
        "report",
        "--state-dir",
        state.to_str().unwrap(),
        "--from",
        &from,
        "--to",
        &to,
        "--by",
        "team,hour",
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = j["totals"]["cost_total"].as_f64().unwrap();
    assert!(
        (total - node_cost).abs() <= 1e-9 * node_cost,
        "{total} vs {node_cost}"
    );
    let teams: std::collections::BTreeSet<&str> = j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["team"].as_str().unwrap())
        .collect();
    // (Before NVML's first answer on a new state, the node's cost goes to
    // `none`/unallocated.)
    assert!(
        teams.contains("search") && teams.contains("vision"),
        "{teams:?}"
    );
    assert!(
        teams
            .iter()
            .all(|t| ["search", "vision", "unallocated"].contains(t))
    );
}

#[test]
fn a_running_daemon_serves_its_ledger_and_budgets() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = FakeNvml::new(&gpus()).unwrap();
    let cfg = config(
        tmp.path(),
        &fake.library(),
        &state,
        ("search", "vision"),
        "[[budget]]\nteam = \"search\"\nmonthly = 12000.0\n[[budget]]\nteam = \"vision\"\nworkload = \"w\"\nmonthly = 10.0\n",
    );
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("budget spend", |m| {
        value(
            m,
            "roimon_budget_spent{team=\"search\",workload=\"\",currency=\"EUR\"}",
        )
        .unwrap_or(0.0)
            > 0.0
    });
    assert_eq!(
        value(
            &m,
            "roimon_budget_monthly{team=\"search\",workload=\"\",currency=\"EUR\"}"
        ),
        Some(12000.0)
    );
    let spent = value(
        &m,
        "roimon_budget_spent{team=\"vision\",workload=\"w\",currency=\"EUR\"}",
    )
    .unwrap();
    let forecast = value(
        &m,
        "roimon_budget_forecast{team=\"vision\",workload=\"w\",currency=\"EUR\"}",
    )
    .unwrap();
    assert!(spent > 0.0 && forecast > spent, "{spent} {forecast}");
    promtool_check_metrics(&m);
    // Readable beside the daemon, as an operator would with sqlite3.
    let v = query_i64(&state, "SELECT COUNT(*) FROM ledger WHERE closed = 0");
    assert!(v[0] >= 2, "open rows {v:?}");
    // Pushed value lands in the ledger's value row of its owner.
    let (st, body) = http_post(
        &d.addr,
        "/api/v2/write",
        &[],
        b"roimon_value,team=search,workload=w amount=12.5",
    );
    assert_eq!(st, 204, "{body}");
    let mut value_row = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let (_, j) = d.get("/api/v1/report?by=team,gpu&format=json");
        let j: serde_json::Value = serde_json::from_str(&j).unwrap();
        if let Some(r) = j["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["gpu"] == "value" && r["team"] == "search")
        {
            value_row = r.clone();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(value_row["value"], 12.5, "{value_row}");
    assert_eq!(value_row["cost_total"], 0.0);
    // HTTP and CLI give the same CSV shape; the totals equal the node.
    let (st, csv) = d.get("/api/v1/report?by=team&format=csv");
    assert_eq!(st, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("period_start,period_end,team,energy_kwh,"),
        "{csv}"
    );
    assert!(lines.last().unwrap().starts_with("TOTAL,"), "{csv}");
    let (st, j) = d.get("/api/v1/report?by=team,workload&format=json");
    assert_eq!(st, 200, "{j}");
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(j["currency"], "EUR");
    assert_eq!(j["by"], serde_json::json!(["team", "workload"]));
    let (st, body) = d.get("/api/v1/report?by=colour");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("colour"));
    let (st, page) = d.get("/");
    assert_eq!(st, 200);
    assert!(
        page.contains("/api/v1/report?"),
        "the status page links statements"
    );
    let out = roimon(&[
        "report",
        "--state-dir",
        state.to_str().unwrap(),
        "--by",
        "team",
        "--format",
        "csv",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, log) = d.stop("TERM");
    assert_eq!(status.code(), Some(0), "{log:?}");
    let out = roimon(&["report", "--verify", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A forged closed row is refused by the database itself.
    ledger_sql(&state, "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, currency, price_source, written_at, cost_capex) VALUES (0, 'x', 'g', 't', 'w', 'correction', 1, 'EUR', 'static', 'now', 5.0)").unwrap();
    let out = roimon(&["report", "--verify", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cost_capex of gpu_uuid=g team=t workload=w")
    );
    // Usage errors exit 2.
    let out = roimon(&[
        "report",
        "--state-dir",
        state.to_str().unwrap(),
        "--from",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    // Also with --verify: a bad flag is not silently ignored.
    let out = roimon(&[
        "report",
        "--verify",
        "--state-dir",
        state.to_str().unwrap(),
        "--format",
        "bogus",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// A state dir whose ledger holds this month's first hour for teams
/// `search` (1.5 EUR, 0.25 credit) and `vision` (2 EUR), and a config
/// naming it with budgets for both.
fn statement_state(dir: &Path) -> (PathBuf, PathBuf) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let l = roimon_ledger::Ledger::open(&state.join(roimon_ledger::FILE)).unwrap();
    let (start, _) = roimon_ledger::report::month_bounds(chrono::Utc::now(), chrono_tz::UTC);
    let hour = start.timestamp();
    l.connection()
        .execute_batch(&format!(
            "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, \
             currency, price_source, written_at, cost_energy, credit, requests) VALUES \
             ({hour}, 'node-7', 'GPU-1', 'search', 'chat', 'hour', 1, 'EUR', 'static', 'now', 1.5, 0.25, 0), \
             ({hour}, 'node-7', 'value', 'search', 'chat', 'hour', 1, 'EUR', 'static', 'now', 0, 0, 7), \
             ({hour}, 'node-7', 'GPU-2', 'vision', 'w', 'hour', 1, 'EUR', 'static', 'now', 2.0, 0, 0);"
        ))
        .unwrap();
    drop(l);
    let cfg = dir.join("roimon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = \"{}\"\n[report]\ntimezone = \"UTC\"\n\
             [[budget]]\nteam = \"search\"\nmonthly = 12000.0\n\
             [[budget]]\nteam = \"vision\"\nworkload = \"w\"\nmonthly = 10.0\n",
            state.display()
        ),
    )
    .unwrap();
    (state, cfg)
}

#[test]
fn an_unknown_team_exits_1_naming_the_teams_of_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = statement_state(dir.path());
    let out = roimon(&[
        "report",
        "--state-dir",
        state.to_str().unwrap(),
        "--team",
        "nosuchteam",
        "--format",
        "csv",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "no zero statement");
    assert!(err.contains("\"nosuchteam\""), "{err}");
    assert!(err.contains("search, vision"), "{err}");
    // A known team gets its statement: requests, net cost and ROI after
    // the currency, and the running month ends now.
    let out = roimon(&[
        "report",
        "--state-dir",
        state.to_str().unwrap(),
        "--team",
        "search",
        "--by",
        "team",
        "--format",
        "csv",
    ]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].ends_with(",tokens,currency,requests,net_cost,roi"),
        "{csv}"
    );
    assert!(
        lines[1].ends_with(",1.500000,0.250000,0.000,0.000000,0,EUR,7,1.250000,-1.000000"),
        "{csv}"
    );
    let out = roimon(&[
        "report",
        "--state-dir",
        state.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["complete"], false, "{j}");
    assert_ne!(j["period_end"], j["to"], "{j}");
    let out = roimon(&["report", "--state-dir", state.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().last().unwrap().starts_with("to date: "),
        "{table}"
    );
    // `--month` with `--from` is a usage error.
    let out = roimon(&[
        "report",
        "--state-dir",
        state.to_str().unwrap(),
        "--month",
        "2026-11",
        "--from",
        "2026-11-02",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn report_budgets_prints_the_months_budgets_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cfg) = statement_state(dir.path());
    let cfg = cfg.to_str().unwrap();
    let out = roimon(&["report", "--config", cfg, "--budgets", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{csv}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "team,workload,monthly,spent,forecast,currency");
    assert!(
        lines[1].starts_with("search,,12000.000000,1.250000,"),
        "{csv}"
    );
    assert!(lines[1].ends_with(",EUR"), "{csv}");
    assert!(
        lines[2].starts_with("vision,w,10.000000,2.000000,"),
        "{csv}"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    let out = roimon(&["report", "--config", cfg, "--budgets", "--format", "json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    assert_eq!(j["month"], month.as_str());
    assert_eq!(j["budgets"][0]["team"], "search");
    assert_eq!(j["budgets"][0]["spent"], 1.25);
    assert!(j["budgets"][1]["forecast"].as_f64().unwrap() >= 2.0);
    let out = roimon(&["report", "--config", cfg, "--budgets"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("team "), "{table}");
    assert!(
        table
            .lines()
            .last()
            .unwrap()
            .starts_with(&format!("{month} to date as of ")),
        "{table}"
    );
    // --budgets is not a report: grouping flags are refused.
    let out = roimon(&["report", "--config", cfg, "--budgets", "--by", "team"]);
    assert_eq!(out.status.code(), Some(2));
}
