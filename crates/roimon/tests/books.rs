//! Books that survive anything: the real binary on a fake NVML, through owner
//! changes across restarts, GPUs disappearing, disk faults, a deleted state
//! dir, a second daemon, forged checkpoints, a hung GPU and systemd's
//! notification socket. Every number is read from `/metrics` as a scraper
//! would; every wait is bounded.

mod common;

use common::*;
use roimon_fake_nvml::{FakeGpu, FakeNvml};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const G0: &str = "GPU-00000000-0000-0000-0000-000000000000";
const G1: &str = "GPU-00000000-0000-0000-0000-000000000001";

/// A config on the fake NVML with `owners` (uuid, team) and the model host.
fn config(dir: &Path, nvml: &Path, state: &Path, owners: &[(&str, &str)], extra: &str) -> PathBuf {
    let mut owners_toml = String::new();
    for (uuid, team) in owners {
        owners_toml.push_str(&format!(
            "[[gpu.owners]]\ngpu_uuid = \"{uuid}\"\nteam = \"{team}\"\nworkload = \"w\"\n"
        ));
    }
    let cfg = format!(
        r#"
[sampling]
interval_secs = 0.1

[gpu]
source = "nvml"
nvml_library = "{nvml}"
{owners_toml}
[host]
power = "model"
rapl_root = "{none}"

[facility]
pue = 1.5

[price]
source = "static"
currency = "EUR"
price_per_kwh = 0.30

[costs]
purchase = 315576.0
depreciation_years = 1.0
maintenance_per_year = 31557.6

[server]
listen = "127.0.0.1:0"

[state]
dir = "{state}"
checkpoint_interval_secs = 0.3
{extra}
"#,
        nvml = nvml.display(),
        none = dir.join("no-rapl").display(),
        state = state.display(),
    );
    let path = dir.join("roimon.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn gpus(n: u32) -> Vec<FakeGpu> {
    (0..n)
        .map(|i| {
            let mut g = FakeGpu::new(i);
            g.power_mw = 200_000 + 100_000 * i;
            g
        })
        .collect()
}

/// Every sample of `name` by its label set.
fn series(m: &str, name: &str) -> BTreeMap<String, f64> {
    m.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            let (n, labels) = s.split_once('{').unwrap_or((s, ""));
            let labels = labels.strip_suffix('}').unwrap_or(labels);
            (n == name).then(|| (labels.to_string(), v.parse().unwrap()))
        })
        .collect()
}

/// Check one scrape interval as a scraper sees it: a new attributed series
/// starts at 0; no series goes backwards; and the rows' increase equals the
/// node's to 1e-9 relative. Returns the node's increase.
fn check_interval(prev: &str, cur: &str, what: &str) -> f64 {
    let mut node_d = 0.0;
    for (k, v) in series(cur, "roimon_cost_total") {
        let before = series(prev, "roimon_cost_total")
            .get(&k)
            .copied()
            .unwrap_or(0.0);
        assert!(
            v >= before,
            "{what}: roimon_cost_total{{{k}}} went backwards {before} -> {v}"
        );
        node_d += v - before;
    }
    let before_rows = series(prev, "roimon_gpu_cost_total");
    let mut rows_d = 0.0;
    for (k, v) in series(cur, "roimon_gpu_cost_total") {
        match before_rows.get(&k) {
            Some(b) => {
                assert!(v >= *b, "{what}: row {k} went backwards {b} -> {v}");
                rows_d += v - b;
            }
            None => assert_eq!(v, 0.0, "{what}: new row {k} did not start at 0"),
        }
    }
    for k in before_rows.keys() {
        assert!(
            series(cur, "roimon_gpu_cost_total").contains_key(k),
            "{what}: row {k} disappeared"
        );
    }
    let tol = 1e-9 * node_d.abs().max(rows_d.abs()).max(1e-12);
    assert!(
        (node_d - rows_d).abs() <= tol,
        "{what}: rows grew {rows_d}, node {node_d}"
    );
    node_d
}

/// Scrape `n` times, `every` apart, checking each interval; returns the scrapes.
fn scrapes(d: &Daemon, n: usize, every: Duration, last: &mut String, what: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let m = d.metrics();
        if !last.is_empty() {
            check_interval(last, &m, &format!("{what} scrape {i}"));
        }
        *last = m.clone();
        out.push(m);
        std::thread::sleep(every);
    }
    out
}

fn row(team: &str, uuid: &str, component: &str) -> String {
    format!(
        "gpu_uuid=\"{uuid}\",team=\"{team}\",workload=\"w\",component=\"{component}\",currency=\"EUR\""
    )
}

#[test]
fn owner_changes_across_restarts_keep_every_interval_adding_up() {
    let tmp = tempfile::tempdir().unwrap();
    let nvml_dir = tmp.path().join("nvml");
    let state = tmp.path().join("state");
    let fake = FakeNvml::in_dir(&nvml_dir, &gpus(2)).unwrap();
    let mut last = String::new();
    let every = Duration::from_millis(150);

    // 1. GPU 0 belongs to vision, GPU 1 to nobody.
    let cfg = config(tmp.path(), &fake.library(), &state, &[(G0, "vision")], "");
    let d = Daemon::start(&cfg, &[]);
    d.wait_metrics("GPU 0 costs accrue", |m| {
        series(m, "roimon_gpu_cost_total")
            .get(&row("vision", G0, "energy"))
            .copied()
            .unwrap_or(0.0)
            > 0.0
    });
    scrapes(&d, 12, every, &mut last, "phase 1");
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));

    // 2. Restart with GPU 0 moved to nlp and GPU 1 given to vision.
    let cfg = config(
        tmp.path(),
        &fake.library(),
        &state,
        &[(G0, "nlp"), (G1, "vision")],
        "",
    );
    let d = Daemon::start(&cfg, &[]);
    let phase2 = scrapes(&d, 16, every, &mut last, "phase 2");
    let vision_g0 = row("vision", G0, "capex");
    let frozen = series(&phase2[0], "roimon_gpu_cost_total")[&vision_g0];
    for m in &phase2 {
        assert_eq!(
            series(m, "roimon_gpu_cost_total")[&vision_g0],
            frozen,
            "the past owner's row stops growing"
        );
    }
    let end2 = phase2.last().unwrap();
    let nlp = series(end2, "roimon_gpu_cost_total")[&row("nlp", G0, "capex")];
    assert!(nlp > 0.0, "the new owner's row grows");
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));

    // 3. GPU 1 is gone from the node and GPU 0 has no owner any more.
    let fake = FakeNvml::in_dir(&nvml_dir, &gpus(1)).unwrap();
    let cfg = config(tmp.path(), &fake.library(), &state, &[], "");
    let d = Daemon::start(&cfg, &[]);
    let phase3 = scrapes(&d, 12, every, &mut last, "phase 3");
    let end = phase3.last().unwrap();
    let rows = series(end, "roimon_gpu_cost_total");
    for team in ["vision", "nlp", "unallocated"] {
        assert!(
            rows.keys().any(|k| k.contains(&format!("team=\"{team}\""))),
            "{team}'s rows are still exported"
        );
    }
    // The absent GPU's row (vision, G1) is still there and no longer grows.
    let g1 = row("vision", G1, "capex");
    assert_eq!(
        series(&phase3[0], "roimon_gpu_cost_total")[&g1],
        series(end, "roimon_gpu_cost_total")[&g1]
    );

    // The summary lists every money row and its rows add up to its totals.
    let (_, body) = d.get("/api/v1/summary");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert!(rows.len() >= 5, "{rows:?}");
    let sum: f64 = rows
        .iter()
        .map(|r| r["cost"]["total"].as_f64().unwrap())
        .sum();
    let total = v["totals"]["cost"]["total"].as_f64().unwrap();
    assert!((sum - total).abs() <= 1e-9 * total, "{sum} vs {total}");
    assert!(
        rows.iter()
            .any(|r| r["gpu_uuid"] == G1 && r["present"] == false)
    );
    promtool_check_metrics(end);
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
}

/// Only `/metrics` holds new rows at 0 until a scrape has carried them:
/// with nobody scraping, the summary and the status page show the booked
/// figures within seconds (not after the 2 minutes the hold may last),
/// never ahead of the disk; and the first scrape still sees every new row
/// at 0.
#[test]
fn the_summary_is_live_while_nothing_scrapes_and_metrics_still_start_rows_at_0() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = FakeNvml::new(&gpus(2)).unwrap();
    let cfg = config(tmp.path(), &fake.library(), &state, &[(G0, "vision")], "");
    let d = Daemon::start(&cfg, &[]);
    let started = std::time::Instant::now();
    let summary = || -> serde_json::Value {
        let (status, body) = d.get("/api/v1/summary");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let booked = |v: &serde_json::Value| {
        v["totals"]["cost"]["total"].as_f64().unwrap() > 0.0
            && v["totals"]["facility_energy_joules"].as_f64().unwrap() > 0.0
            && v["gpus"].as_array().unwrap().len() == 2
            && v["gpus"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["energy_joules"].as_f64().unwrap() > 0.0)
    };
    let v = loop {
        let v = summary();
        if booked(&v) {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the summary shows nothing booked while nobody scrapes: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Its rows add up to its totals, and it is not ahead of the disk.
    let total = v["totals"]["cost"]["total"].as_f64().unwrap();
    let rows: f64 = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cost"]["total"].as_f64().unwrap())
        .sum();
    assert!(
        rows > 0.0 && (rows - total).abs() <= 1e-9 * total,
        "{rows} vs {total}"
    );
    let (_, disk) = stored_checkpoint(&state).expect("a checkpoint");
    let disk: serde_json::Value = serde_json::from_str(&disk).unwrap();
    let on_disk = disk["facility_energy_joules"]["sum"].as_f64().unwrap();
    let shown = v["totals"]["facility_energy_joules"].as_f64().unwrap();
    assert!(
        shown <= on_disk,
        "summary {shown} J ahead of the disk {on_disk} J"
    );

    // The first scrape still shows every new row at 0 (the hold), with the
    // node totals they were not yet part of.
    let m = d.metrics();
    let first = series(&m, "roimon_gpu_cost_total");
    assert!(!first.is_empty(), "{m}");
    for (k, v) in &first {
        assert_eq!(*v, 0.0, "new row {k} did not start at 0 on /metrics");
    }
    assert_eq!(sum(&m, "roimon_cost_total"), 0.0, "{m}");
    // Then they count, and every interval adds up.
    let mut last = m;
    let later = d.wait_metrics("rows released", |m| sum(m, "roimon_gpu_cost_total") > 0.0);
    check_interval(&last, &later, "release");
    last = later;
    scrapes(
        &d,
        4,
        Duration::from_millis(150),
        &mut last,
        "after release",
    );
    // The summary stays on the booked figures, never behind what it showed.
    assert!(summary()["totals"]["cost"]["total"].as_f64().unwrap() >= total);
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn a_legacy_checkpoint_keeps_its_history_under_the_owner_configured_at_upgrade() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let wall = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    std::fs::write(
        state.join("counters.json"),
        format!(
            r#"{{"currency":"EUR","last_wall":"{wall}",
            "gpu_energy_joules":{{"{G0}":{{"sum":1000.0}}}},
            "cost":{{"energy":{{"sum":7.0}},"capex":{{"sum":3.0}}}},
            "gpu_cost":{{"{G0}":{{"energy":{{"sum":7.0}},"capex":{{"sum":3.0}}}}}}}}"#
        ),
    )
    .unwrap();
    let fake = FakeNvml::new(&gpus(1)).unwrap();
    let cfg = config(tmp.path(), &fake.library(), &state, &[(G0, "vision")], "");
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("vision's migrated row", |m| {
        series(m, "roimon_gpu_cost_total")
            .get(&row("vision", G0, "energy"))
            .copied()
            .unwrap_or(0.0)
            >= 7.0
    });
    let node = sum(&m, "roimon_cost_total");
    let rows = sum(&m, "roimon_gpu_cost_total");
    assert!((node - rows).abs() <= 1e-9 * node, "{node} vs {rows}");
    assert!(
        !m.contains("team=\"unallocated\""),
        "nothing went to unallocated:\n{m}"
    );
    let (st, log) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
    let said = log
        .iter()
        .filter(|l| l.contains("before owner-keyed attribution"))
        .count();
    assert_eq!(said, 1, "{log:?}");
    // Migrated once: the ledger now holds rows (the old file is kept
    // aside, never read again), and a restart says nothing.
    let (_, saved) = stored_checkpoint(&state).expect("counters in the ledger");
    assert!(!saved.contains("gpu_cost"));
    assert!(saved.contains("vision"));
    assert!(!state.join("counters.json").exists());
    assert!(state.join("counters.json.migrated").exists());
    let d = Daemon::start(&cfg, &[]);
    let (_, log) = d.stop("TERM");
    assert!(
        !log.iter()
            .any(|l| l.contains("before owner-keyed attribution"))
    );
}

/// Run the binary to completion with `args` and then `file`.
fn roimon(args: &[&str], file: &Path) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failing_disk_never_shows_live_counters_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = FakeNvml::new(&gpus(1)).unwrap();
    let cfg = config(tmp.path(), &fake.library(), &state, &[], "");
    let mut d = Daemon::start(&cfg, &[]);
    let energy = format!("roimon_gpu_energy_joules_total{{gpu=\"0\",gpu_uuid=\"{G0}\"}}");
    d.wait_metrics("energy on disk", |m| {
        value(m, &energy).unwrap_or(0.0) > 50.0
    });

    // Writes "fail": another process holds the ledger's write lock, so
    // every checkpoint transaction is refused (as on a failing disk).
    let blocker = rusqlite::Connection::open(ledger_path(&state)).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let m = d.wait_metrics("three failed checkpoints", |m| {
        value(m, "roimon_checkpoint_consecutive_failures").unwrap_or(0.0) >= 3.0
    });
    // The error counter is as on disk too: it moves once a write lands.
    assert_eq!(value(&m, "roimon_checkpoint_errors_total"), Some(0.0));
    let (status, why) = d.get("/readyz");
    assert_eq!(status, 503);
    assert!(why.contains("checkpoint failing"), "{why}");
    // What is shown is what is on disk: it does not move while writes fail.
    let held = value(&m, &energy).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let later = d.metrics();
    assert_eq!(
        value(&later, &energy),
        Some(held),
        "live counters were published"
    );
    // The disk recovers: checkpoints resume, readiness returns.
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let m = d.wait_metrics("checkpoints again, with the failures counted", |m| {
        value(m, &energy).unwrap_or(0.0) > held
            && value(m, "roimon_checkpoint_errors_total").unwrap_or(0.0) >= 3.0
            && value(m, "roimon_checkpoint_consecutive_failures") == Some(0.0)
    });
    wait_until("ready again", || d.get("/readyz").0 == 200);
    let errors = value(&m, "roimon_checkpoint_errors_total").unwrap();
    // Crash hard, restart: nothing shown before is lost, and the error count
    // (written with the first checkpoint after the outage) is kept.
    std::thread::sleep(Duration::from_millis(400));
    let shown = d.metrics();
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let mut log: Vec<String> = d.early.clone();
    log.extend(d.log.try_iter());
    drop(d);
    let said = log
        .iter()
        .filter(|l| l.contains("checkpoint failed"))
        .count();
    assert_eq!(said, 1, "logged once per failure streak: {log:?}");
    assert!(
        log.iter().any(|l| l.contains("checkpoint written again")),
        "{log:?}"
    );
    let d = Daemon::start(&cfg, &[]);
    let after = d.wait_metrics("GPU seen again", |m| value(m, &energy).is_some());
    for name in [
        "roimon_cost_total",
        "roimon_gpu_cost_total",
        "roimon_facility_energy_joules_total",
    ] {
        for (k, v) in series(&shown, name) {
            let now = series(&after, name)[&k];
            assert!(
                now >= v,
                "{name}{{{k}}} went backwards across the crash: {v} -> {now}"
            );
        }
    }
    assert!(value(&after, "roimon_checkpoint_errors_total").unwrap() >= errors);
    assert!(errors >= 3.0);

    // The state dir is deleted while running: recreated, and SIGTERM's
    // final checkpoint lands in it.
    let before_delete = value(&d.metrics(), &energy).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    wait_until("state dir recreated", || {
        stored_checkpoint(&state).is_some()
    });
    let (st, log) = d.stop("TERM");
    assert_eq!(st.code(), Some(0), "{log:?}");
    assert!(log.iter().any(|l| l.contains("recreated")), "{log:?}");
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("GPU seen again", |m| value(m, &energy).is_some());
    assert!(value(&m, &energy).unwrap() >= before_delete);

    // A final checkpoint that fails is an error and exit 1, not "written".
    let blocker = rusqlite::Connection::open(ledger_path(&state)).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (st, log) = d.stop("TERM");
    drop(blocker);
    assert_eq!(st.code(), Some(1), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("final checkpoint failed") && l.contains("ERROR")),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("final checkpoint written")));
}

#[test]
fn one_daemon_per_state_dir_and_impossible_checkpoints_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = FakeNvml::new(&gpus(1)).unwrap();
    let cfg = config(tmp.path(), &fake.library(), &state, &[], "");
    let d = Daemon::start(&cfg, &[]);
    let out = roimon(&["run", "--config"], &cfg);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("in use by process {}", d.child.id())),
        "{err}"
    );
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));

    // A checkpoint whose last tick is in 1970 would book 56 years of capex.
    // (Forged in the ledger database, where the checkpoint lives.)
    let (_, good) = stored_checkpoint(&state).expect("a checkpoint");
    let forge = |v: &serde_json::Value| {
        ledger_sql(
            &state,
            &format!(
                "UPDATE checkpoint SET counters = '{}' WHERE id = 1",
                v.to_string().replace('\'', "''")
            ),
        )
        .unwrap();
    };
    for (field, bad) in [
        ("last_wall", serde_json::Value::from("1970-01-01T00:00:00Z")),
        ("last_wall", serde_json::Value::from("2999-01-01T00:00:00Z")),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v[field] = bad;
        if field == "last_wall" {
            v["created"] = serde_json::Value::Null;
        }
        forge(&v);
        let out = roimon(&["run", "--config"], &cfg);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("last_wall") && err.contains("ledger.sqlite3"),
            "{err}"
        );
    }
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["cost"]["capex"]["sum"] = (-5.0).into();
    forge(&v);
    let out = roimon(&["run", "--config"], &cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cost.capex"));
}

#[test]
fn a_hung_gpu_stops_neither_the_host_nor_the_books() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = FakeNvml::new(&gpus(2)).unwrap();
    let cfg = config(tmp.path(), &fake.library(), &state, &[], "");
    let d = Daemon::start(&cfg, &[]);
    let host = "roimon_host_energy_joules_total{source=\"model\"}";
    let capex = "roimon_cost_total{component=\"capex\",currency=\"EUR\"}";
    d.wait_metrics("both collectors up", |m| {
        value(m, "roimon_collector_up{collector=\"nvml\"}") == Some(1.0)
            && value(m, host).unwrap_or(0.0) > 0.0
    });
    fake.set_hung(0, true);
    let m = d.wait_metrics("NVML reported down", |m| {
        value(m, "roimon_collector_up{collector=\"nvml\"}") == Some(0.0)
    });
    // The host, the fixed costs and the checkpoints go on.
    let (h0, c0) = (value(&m, host).unwrap(), value(&m, capex).unwrap());
    let started = Instant::now();
    let m = d.wait_metrics("host and costs still accounted", |m| {
        value(m, host).unwrap_or(0.0) > h0 && value(m, capex).unwrap_or(0.0) > c0 + 0.01
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    // NVML serialises calls, so both GPUs stop answering: their time becomes
    // unaccounted (past the 5-interval gap), not energy, and they show down.
    let e1 = format!("roimon_gpu_energy_joules_total{{gpu=\"1\",gpu_uuid=\"{G1}\"}}");
    let energy_before = value(&m, &e1).unwrap();
    let m = d.wait_metrics("hung GPUs' time unaccounted", |m| {
        [G0, G1].iter().all(|g| {
            value(
                m,
                &format!("roimon_unaccounted_seconds_total{{gpu_uuid=\"{g}\"}}"),
            )
            .unwrap_or(0.0)
                > 0.5
        })
    });
    for (i, g) in [G0, G1].iter().enumerate() {
        assert_eq!(
            value(
                &m,
                &format!("roimon_gpu_up{{gpu=\"{i}\",gpu_uuid=\"{g}\"}}")
            ),
            Some(0.0)
        );
    }
    assert_eq!(
        value(&m, &e1),
        Some(energy_before),
        "no energy invented while hung"
    );
    assert_eq!(d.get("/healthz").0, 200);
    fake.set_hung(0, false);
    d.wait_metrics("NVML back", |m| {
        value(m, "roimon_collector_up{collector=\"nvml\"}") == Some(1.0)
    });
    // Hung again at shutdown: the daemon still stops, checkpointed.
    fake.set_hung(0, true);
    let t = Instant::now();
    let (st, log) = d.stop("TERM");
    assert_eq!(st.code(), Some(0), "{log:?}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let blocked = log
        .iter()
        .filter(|l| l.contains("did not answer in time"))
        .count();
    assert!(blocked >= 1, "{log:?}");
    fake.set_hung(0, false);
}

#[test]
fn systemd_hears_ready_and_the_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let fake = FakeNvml::new(&gpus(1)).unwrap();
    let cfg = config(
        tmp.path(),
        &fake.library(),
        &tmp.path().join("state"),
        &[],
        "",
    );
    let d = Daemon::start_env(&cfg, &[], &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())]);
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while got
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        let n = sock.recv(&mut buf).expect("a notification within 20 s");
        got.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(got[0].contains("READY=1"), "{got:?}");
    assert_eq!(got.iter().filter(|m| m.contains("READY=1")).count(), 1);
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn misconfiguration_is_loud() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |body: &str, key: &str| {
        let p = tmp.path().join("c.toml");
        std::fs::write(&p, body).unwrap();
        let out = roimon(&["check-config"], &p);
        assert_eq!(out.status.code(), Some(2), "{body}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{key} not named in {err}");
    };
    check("[log]\nlevel = \"verbose\"\n", "log.level");
    check("[state]\ndir = \"\"\n", "state.dir");
    check(
        "[costs]\npurchase = 1e308\ndepreciation_years = 1e-300\n",
        "costs.purchase",
    );
    check("[host]\nmax_watts = 1e308\n", "host.max_watts");
    let big = format!("# {}\n", "x".repeat(2 << 20));
    let p = tmp.path().join("big.toml");
    std::fs::write(&p, big).unwrap();
    let out = roimon(&["check-config"], &p);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a configuration file"));
}

#[test]
fn an_owner_uuid_that_matches_no_gpu_is_a_warning_and_a_gauge() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeNvml::new(&gpus(1)).unwrap();
    let typo = G0.to_lowercase();
    let cfg = config(
        tmp.path(),
        &fake.library(),
        &tmp.path().join("state"),
        &[(&typo, "vision")],
        "",
    );
    let d = Daemon::start(&cfg, &[]);
    d.wait_metrics("unmatched owner gauge", |m| {
        value(
            m,
            &format!("roimon_gpu_owner_unmatched{{gpu_uuid=\"{typo}\"}}"),
        ) == Some(1.0)
    });
    let (_, log) = d.stop("TERM");
    let warned: Vec<&String> = log.iter().filter(|l| l.contains("does not have")).collect();
    assert_eq!(warned.len(), 1, "{log:?}");
    assert!(warned[0].contains("WARN") && warned[0].contains(&typo));
}

/// The state dir is replaced while running by one another process has
/// locked: two writers would corrupt each other's counters, so the daemon
/// stops with an error naming the holder instead of writing.
#[test]
fn a_state_dir_taken_over_by_another_process_stops_the_daemon() {
    use std::os::fd::AsFd;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let fake = FakeNvml::new(&gpus(1)).unwrap();
    let cfg = config(tmp.path(), &fake.library(), &state, &[], "");
    let mut d = Daemon::start(&cfg, &[]);
    wait_until("first checkpoint", || stored_checkpoint(&state).is_some());
    // Swap in a dir whose lock this test holds (retry if the daemon's save
    // recreated the dir in between the two renames).
    let mut held = None;
    for attempt in 0..10 {
        let other = tmp.path().join(format!("other-{attempt}"));
        std::fs::create_dir(&other).unwrap();
        let f = std::fs::File::create(other.join("lock")).unwrap();
        rustix::fs::flock(
            f.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
        .unwrap();
        std::fs::write(other.join("lock"), "424242").unwrap();
        std::fs::rename(&state, tmp.path().join(format!("old-{attempt}"))).unwrap();
        if std::fs::rename(&other, &state).is_ok() {
            held = Some(f);
            break;
        }
    }
    assert!(held.is_some(), "could not swap the state dir");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = d.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon kept running on a state dir it does not hold"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let mut log: Vec<String> = d.early.clone();
    log.extend(d.log.try_iter());
    assert!(log.iter().any(|l| l.contains("process 424242")), "{log:?}");
    // Nothing was written into the other process's dir.
    assert!(!ledger_path(&state).exists());
}
