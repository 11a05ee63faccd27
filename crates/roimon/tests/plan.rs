//! `roimon plan` run as a user runs it: the contract's exit codes (0 found,
//! 1 infeasible or no window, 2 file/flag/coefficient error) and JSON keys
//! for an allocation file, a scenario file with `[select]`, and
//! `roimon plan window` over a kept schedule and a static tariff.
// Test scenarios read top to bottom: a long test is one story, not split.
#![allow(clippy::too_many_lines)]

use std::path::Path;
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_roimon");

fn roimon(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_remove("ROIMON_CONFIG")
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stdout_json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const ALLOCATION: &str = r#"hours = 10.0
currency = "EUR"
[energy]
price_per_kwh = 0.2
pue = 1.5
[[gpu]]
type = "H100"
count = 4
cost_per_hour = 2.0
idle_watts = 100.0
[[workload]]
name = "search/chat"
demand_tokens_per_second = 10000.0
min_served = 0.0
value_per_million_tokens = 10.0
  [workload.on.H100]
  tokens_per_second = 3000.0
  joules_per_token = 0.4
"#;

#[test]
fn an_allocation_file_is_planned_with_the_contract_keys() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.toml", ALLOCATION);
    let o = roimon(&["plan", &f, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = stdout_json(&o);
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
    ] {
        assert!(j.get(k).is_some(), "{k} missing: {j}");
    }
    assert_eq!(j["status"], "optimal");
    // Four GPUs serve all 10 000 tokens/s: 3600 EUR of value, 80 EUR of
    // GPUs and 66 kWh at 0.2 EUR.
    assert_eq!(j["allocation"][0]["gpus"], 4);
    assert!((j["value"].as_f64().unwrap() - 3600.0).abs() < 1e-6, "{j}");
    assert!((j["cost"].as_f64().unwrap() - 93.2).abs() < 1e-6, "{j}");
    assert_eq!(j["coefficients"][0]["source"], "file");
    let o = roimon(&["plan", &f]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("search/chat"));
}

#[test]
fn a_reader_that_goes_away_early_ends_the_command_quietly() {
    // `roimon plan FILE | head -0`: the reader is gone before the plan is
    // written. The answer is cut short, which is the reader's choice; the
    // command exits 0 without a panic (before: 101, "failed printing to
    // stdout: Broken pipe").
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.toml", ALLOCATION);
    for args in [vec!["plan", f.as_str()], vec!["plan", f.as_str(), "--json"]] {
        let mut child = std::process::Command::new(BIN)
            .args(&args)
            .env_remove("ROIMON_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 0, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn an_infeasible_allocation_exits_1_and_still_prints_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let text = ALLOCATION
        .replace("count = 4", "count = 1")
        .replace("min_served = 0.0", "min_served = 0.9");
    let f = write(dir.path(), "a.toml", &text);
    let o = roimon(&["plan", &f, "--json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(j["status"], "infeasible");
    assert!(stderr(&o).contains("search/chat"), "{}", stderr(&o));
    let o = roimon(&["plan", &f]);
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
}

#[test]
fn file_flag_and_coefficient_errors_exit_2_naming_what() {
    let dir = tempfile::tempdir().unwrap();
    // A bad number names file:line:key.
    let f = write(
        dir.path(),
        "bad.toml",
        &ALLOCATION.replace("tokens_per_second = 3000.0", "tokens_per_second = -3.0"),
    );
    let o = roimon(&["plan", &f]);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains("bad.toml:17") && e.contains("workload[0].on.H100.tokens_per_second"),
        "{e}"
    );
    // An unknown key.
    let f = write(
        dir.path(),
        "unknown.toml",
        &format!("{ALLOCATION}colour = 1\n"),
    );
    let o = roimon(&["plan", &f]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("colour"), "{}", stderr(&o));
    // "measured" without a ledger names the coefficient and the need.
    let f = write(
        dir.path(),
        "m.toml",
        &ALLOCATION.replace("price_per_kwh = 0.2", "price_per_kwh = \"measured\""),
    );
    let o = roimon(&["plan", &f, "--json"]);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains("energy.price_per_kwh") && e.contains("ledger"),
        "{e}"
    );
    assert!(o.stdout.is_empty());
    // Flags.
    let ok = write(dir.path(), "ok.toml", ALLOCATION);
    for args in [
        vec!["plan", &ok, "--time-limit", "0"],
        vec!["plan", &ok, "--time-limit", "nan"],
        vec!["plan", &ok, "--from", "yesterday"],
        vec![
            "plan",
            &ok,
            "--from",
            "2026-01-02T00:00:00Z",
            "--to",
            "2026-01-01T00:00:00Z",
        ],
        vec!["plan", "/nonexistent/plan.toml"],
        vec!["plan"],
    ] {
        let o = roimon(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
    }
}

const SCENARIOS: &str = r#"[weights]
benefit = { precision = 0.3, coverage = 0.2, satisfaction = 0.25, growth = 0.25 }
cost    = { server = 0.3, maintenance = 0.2, energy = 0.25, staff = 0.25 }

[select]
budget = 12000.0
maximize = "benefit"
min_count = 1

[[scenario]]
name    = "case-4.2"
benefit = { precision = 0.95, coverage = 0.85, satisfaction = 0.9, growth = 0.8 }
cost    = { server = 500, maintenance = 100, energy = 50, staff = 5000 }
value   = 6200.0

[[scenario]]
name    = "case-4.3"
benefit = { precision = 0.98, coverage = 0.9, satisfaction = 0.92, growth = 0.85 }
cost    = { server = 1000, maintenance = 100, energy = 50, staff = 5000 }
value   = 2000.0

[[scenario]]
name    = "small"
benefit = { precision = 0.8, coverage = 0.7, satisfaction = 0.75, growth = 0.6 }
cost    = { server = 200, maintenance = 50, energy = 30, staff = 2500 }
value   = 3100.0
"#;

#[test]
fn a_scenario_file_with_select_chooses_a_subset() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "s.toml", SCENARIOS);
    let o = roimon(&["plan", &f, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = stdout_json(&o);
    for k in [
        "status",
        "selected",
        "benefit",
        "money",
        "weighted_cost",
        "value",
        "profit",
        "efficiency",
    ] {
        assert!(j.get(k).is_some(), "{k} missing: {j}");
    }
    // 12 000 buys the two cases (11 800) or one case and the small one;
    // the two cases have the most benefit (0.88 + 0.9165).
    assert_eq!(j["status"], "optimal");
    assert_eq!(j["selected"], serde_json::json!(["case-4.2", "case-4.3"]));
    assert!((j["benefit"].as_f64().unwrap() - 1.7965).abs() < 1e-12);
    assert_eq!(j["money"], 11800.0);
    assert_eq!(j["value"], 8200.0);
    assert_eq!(j["profit"], -3600.0);
    // Profit: case-4.2 (+550) and small (+320).
    let f = write(
        dir.path(),
        "p.toml",
        &SCENARIOS.replace("maximize = \"benefit\"", "maximize = \"profit\""),
    );
    let j = stdout_json(&roimon(&["plan", &f, "--json"]));
    assert_eq!(j["selected"], serde_json::json!(["case-4.2", "small"]));
    // The same file still works for `roimon roi`.
    let o = roimon(&["roi", "--scenario", &f]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A budget below every scenario with min_count 1: exit 1, JSON says so.
    let f = write(
        dir.path(),
        "i.toml",
        &SCENARIOS.replace("budget = 12000.0", "budget = 100.0"),
    );
    let o = roimon(&["plan", &f, "--json"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout_json(&o)["status"], "infeasible");
    assert!(stderr(&o).contains("budget 100"), "{}", stderr(&o));
    // A misspelt key in [select]: exit 2 naming it and its line.
    let f = write(
        dir.path(),
        "k.toml",
        &SCENARIOS.replace("min_count = 1", "min_cnt = 1"),
    );
    let o = roimon(&["plan", &f]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("k.toml:8") && stderr(&o).contains("min_cnt"),
        "{}",
        stderr(&o)
    );
}

/// A kept schedule of quarter hours on 2026-03-29 (Berlin's 23-hour
/// day), cheapest from 01:15 to 02:15 UTC.
fn kept_schedule(dir: &Path) {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-03-28T23:00:00Z")
        .unwrap()
        .to_utc();
    let slots: Vec<serde_json::Value> = (0..23 * 4)
        .map(|i| {
            let p = if (9..13).contains(&i) { 0.05 } else { 0.3 };
            let s = t0 + chrono::Duration::minutes(15 * i);
            serde_json::json!({
                "start": s.to_rfc3339(),
                "end": (s + chrono::Duration::minutes(15)).to_rfc3339(),
                "market_per_kwh": p,
                "price_per_kwh": p,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "source": "awattar", "identity": "x", "fetched_at": "2026-03-28T12:00:00Z",
        "schedule": {"currency": "EUR", "slots": slots, "adjustments": {"adders": [], "vat": 0.0}},
    });
    std::fs::write(dir.join("prices.json"), doc.to_string()).unwrap();
}

#[test]
fn plan_window_finds_the_cheapest_hour_of_a_kept_schedule() {
    let dir = tempfile::tempdir().unwrap();
    kept_schedule(dir.path());
    let sd = dir.path().display().to_string();
    let after = "2026-03-28T23:00:00Z";
    let o = roimon(&[
        "plan",
        "window",
        "--hours",
        "1",
        "--kwh",
        "2",
        "--after",
        after,
        "--state-dir",
        &sd,
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = stdout_json(&o);
    for k in [
        "start",
        "end",
        "energy_kwh",
        "cost",
        "avg_price_per_kwh",
        "currency",
        "emissions_kg",
        "cost_now",
        "cost_worst",
        "saving_vs_now",
    ] {
        assert!(j.get(k).is_some(), "{k} missing: {j}");
    }
    assert_eq!(j["start"], "2026-03-29T01:15:00Z");
    assert_eq!(j["end"], "2026-03-29T02:15:00Z");
    assert!((j["cost"].as_f64().unwrap() - 0.1).abs() < 1e-12, "{j}");
    assert!((j["cost_now"].as_f64().unwrap() - 0.6).abs() < 1e-12, "{j}");
    assert!(
        (j["saving_vs_now"].as_f64().unwrap() - 0.5).abs() < 1e-12,
        "{j}"
    );
    assert_eq!(j["emissions_kg"], serde_json::Value::Null);
    assert_eq!(j["currency"], "EUR");
    // The table names the start.
    let o = roimon(&[
        "plan",
        "window",
        "--hours",
        "1",
        "--kwh",
        "2",
        "--after",
        after,
        "--state-dir",
        &sd,
    ]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("2026-03-29T01:15:00Z"));
    // Longer than the 23 known hours: exit 1, naming the schedule's end.
    let o = roimon(&[
        "plan",
        "window",
        "--hours",
        "24",
        "--kwh",
        "2",
        "--after",
        after,
        "--state-dir",
        &sd,
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("ends at 2026-03-29T22:00:00Z"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout_json(&o)["status"], "no_window");
    // With the carbon feed's kept intensity (hourly, cleanest 05:00–06:00
    // UTC): by carbon moves the job there, by cost reports its emissions.
    let carbon: Vec<serde_json::Value> = (0..23)
        .map(|i| {
            let s = chrono::DateTime::parse_from_rfc3339("2026-03-28T23:00:00Z").unwrap()
                + chrono::Duration::hours(i);
            serde_json::json!({
                "start": s.to_rfc3339(),
                "end": (s + chrono::Duration::hours(1)).to_rfc3339(),
                "market_per_kwh": if i == 6 { 40.0 } else { 400.0 },
                "price_per_kwh": if i == 6 { 40.0 } else { 400.0 },
            })
        })
        .collect();
    let doc = serde_json::json!({
        "source": "uk", "identity": "x", "fetched_at": "2026-03-28T12:00:00Z",
        "schedule": {"currency": "gCO2e", "slots": carbon, "adjustments": {"adders": [], "vat": 0.0}},
    });
    std::fs::write(dir.path().join("carbon.json"), doc.to_string()).unwrap();
    let o = roimon(&[
        "plan",
        "window",
        "--hours",
        "1",
        "--kwh",
        "2",
        "--after",
        after,
        "--state-dir",
        &sd,
        "--by",
        "carbon",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(j["start"], "2026-03-29T05:00:00Z", "{j}");
    assert!(
        (j["emissions_kg"].as_f64().unwrap() - 0.08).abs() < 1e-12,
        "{j}"
    );
    assert!((j["cost"].as_f64().unwrap() - 0.6).abs() < 1e-12, "{j}");
    assert_eq!(j["by"], "carbon");
    let o = roimon(&[
        "plan",
        "window",
        "--hours",
        "1",
        "--kwh",
        "2",
        "--after",
        after,
        "--state-dir",
        &sd,
        "--json",
    ]);
    let j = stdout_json(&o);
    assert_eq!(j["start"], "2026-03-29T01:15:00Z");
    assert!(
        (j["emissions_kg"].as_f64().unwrap() - 0.8).abs() < 1e-12,
        "{j}"
    );
    std::fs::remove_file(dir.path().join("carbon.json")).unwrap();
    // Bad flags, carbon without a carbon schedule, no schedule: exit 2.
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().display().to_string();
    for args in [
        vec!["--hours", "0", "--kwh", "1"],
        vec!["--hours", "169", "--kwh", "1"],
        vec!["--hours", "1", "--kwh", "-1"],
        vec!["--hours", "1", "--kwh", "1", "--after", "today"],
        vec!["--hours", "1", "--kwh", "1", "--by", "carbon"],
        vec!["--hours", "1", "--kwh", "1", "--by", "wind"],
    ] {
        let mut a = vec!["plan", "window", "--state-dir", &sd];
        a.extend(args.iter());
        let o = roimon(&a);
        assert_eq!(code(&o), 2, "{a:?}: {}", stderr(&o));
    }
    let o = roimon(&[
        "plan",
        "window",
        "--hours",
        "1",
        "--kwh",
        "1",
        "--state-dir",
        &empty,
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("prices.json"), "{}", stderr(&o));
}

#[test]
fn plan_window_on_a_static_tariff_starts_at_after() {
    let o = roimon(&[
        "plan",
        "window",
        "--hours",
        "2",
        "--kwh",
        "3",
        "--after",
        "2026-01-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = stdout_json(&o);
    assert_eq!(j["start"], "2026-01-01T00:00:00Z");
    assert_eq!(j["saving_vs_now"], 0.0);
    // The built-in price is 0.25 per kWh.
    assert!((j["cost"].as_f64().unwrap() - 0.75).abs() < 1e-12, "{j}");
}
