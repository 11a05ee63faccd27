//! The push door against a hostile client, on the real binary: amounts,
//! KPI scores and names bounded, owners limited to those the node knows,
//! whole batches refused over a cap (and their retry booked, not taken for
//! a duplicate), and no unauthenticated pushes on a listener that is not
//! loopback. Every refusal is a 4xx naming the line; the books stay finite
//! and restartable. And the sampler behind the door: a tick late by more
//! than two intervals (a stopped process) is logged once, with its gap.

mod common;

use common::{Daemon, http_post, value};
use std::path::Path;

fn config(dir: &Path, listen: &str, push: &str) -> std::path::PathBuf {
    let p = common::gpuless_config(
        dir,
        &dir.join("state"),
        (0.2, 0.3),
        &format!(
            r#"[roi]
benefit_weights = {{ precision = 1.0 }}
[[value.kpis]]
name = "coverage"
value = 0.5
team = "search"
workload = "chat"
[[budget]]
team = "vision"
monthly = 100.0
[push]
{push}
"#
        ),
    );
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"{listen}\""),
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap()
}

fn post(d: &Daemon, body: &str) -> (u16, serde_json::Value) {
    let (st, text) = http_post(&d.addr, "/api/v2/write", &[], body.as_bytes());
    let j = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (st, j)
}

#[test]
fn hostile_pushes_are_refused_whole_and_the_books_stay_finite() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "127.0.0.1:0", "max_amount = 1000000.0");
    let d = Daemon::start(&cfg, &[]);
    let t = now_ns();

    let refused = |body: String, line: u64, says: &str| {
        let (st, j) = post(&d, &body);
        assert_eq!(st, 400, "{body:.200}: {j}");
        assert_eq!(j["line"], line, "{j}");
        let msg = j["message"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{says:?} not in {msg:.300}");
    };
    let good = format!("roimon_value,team=search,workload=chat amount=2.5 {t}\n");
    // Overflowing amounts, a u64 wrap and amounts over the cap.
    refused(
        format!("{good}roimon_value,team=search,workload=chat amount=1.7e308 {t}\n"),
        2,
        "push.max_amount",
    );
    refused(
        format!("roimon_value,team=search,workload=chat amount=18446744073709551615u {t}\n"),
        1,
        "push.max_amount",
    );
    refused(
        format!("roimon_value,team=search,workload=chat amount=1000000.5 {t}\n"),
        1,
        "push.max_amount",
    );
    // KPI scores outside [0, 1], and names the node does not know.
    refused(
        format!("roimon_kpi,team=search,workload=chat precision=5.0 {t}\n"),
        1,
        "between 0 and 1",
    );
    refused(
        format!("{good}roimon_kpi,team=search,workload=chat precision=-3 {t}\n"),
        2,
        "between 0 and 1",
    );
    refused(
        format!("roimon_kpi,team=search,workload=chat vibes=0.5 {t}\n"),
        1,
        "push.allow_new_kpis",
    );
    // Long and control-character names.
    let long = "a".repeat(700);
    refused(
        format!("roimon_value,team={long},workload=chat amount=1 {t}\n"),
        1,
        "128-byte",
    );
    refused(
        format!("roimon_value,team=se\u{1}arch,workload=chat amount=1 {t}\n"),
        1,
        "control character",
    );
    // A typo is not a new team, and a missing workload is not a guess.
    refused(
        format!("{good}roimon_value,team=vison,workload=chat amount=1 {t}\n"),
        2,
        "`vison/chat`",
    );
    refused(
        format!("roimon_value,team=search amount=1 {t}\n"),
        1,
        "no `workload` tag",
    );
    // Nothing of any refused batch was booked.
    let m = d.metrics();
    assert_eq!(common::sum(&m, "roimon_value_total"), 0.0, "{m:.2000}");
    assert_eq!(
        value(&m, "roimon_push_rejected_total{reason=\"unknown_owner\"}"),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "roimon_push_rejected_total{reason=\"bad_request\"}"),
        Some(8.0)
    );

    // Known owners: gpu owners, kpis, a whole-team budget.
    let ok = format!(
        "{good}roimon_value,team=vision,workload=anything amount=1 {t}\nroimon_kpi,team=search,workload=chat precision=0.75,coverage=1 {t}\n"
    );
    assert_eq!(post(&d, &ok).0, 204);
    let m = d.wait_metrics("pushed value", |m| {
        (common::sum(m, "roimon_value_total") - 3.5).abs() < 1e-9
    });
    assert!(!m.contains("NaN") && !m.contains("+Inf"), "{m:.3000}");

    // After a restart the books load (nothing non-finite was written).
    let (st, log) = d.stop("TERM");
    assert!(st.success(), "{log:?}");
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("value after restart", |m| {
        (common::sum(m, "roimon_value_total") - 3.5).abs() < 1e-9
    });
    assert!(!m.contains("NaN"));
}

#[test]
fn over_the_owner_cap_nothing_is_booked_and_the_retry_is_not_a_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "127.0.0.1:0", "allow_unknown_owners = true");
    let d = Daemon::start(&cfg, &[]);
    let t = now_ns();
    let batch = |n: usize, from: usize| -> String {
        (from..from + n)
            .map(|i| format!("roimon_value,team=t{i},workload=w amount=1 {t}\n"))
            .collect()
    };
    let (st, j) = post(&d, &batch(1003, 0));
    assert_eq!(st, 400, "{j}");
    assert!(
        j["message"].as_str().unwrap().contains("1000"),
        "names the cap: {j}"
    );
    let m = d.metrics();
    assert_eq!(common::sum(&m, "roimon_value_total"), 0.0);
    assert_eq!(
        value(&m, "roimon_push_rejected_total{reason=\"over_cap\"}"),
        Some(1.0)
    );
    // The first 1,000 alone are booked, not answered as duplicates.
    assert_eq!(post(&d, &batch(1000, 0)).0, 204);
    let m = d.wait_metrics("1000 owners booked", |m| {
        value(m, "roimon_push_points_total{result=\"accepted\"}") == Some(1000.0)
    });
    assert_eq!(
        value(&m, "roimon_push_points_total{result=\"duplicate\"}"),
        Some(0.0)
    );
}

#[test]
fn a_listener_beyond_loopback_refuses_unauthenticated_pushes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "0.0.0.0:0", "");
    let d = Daemon::start(&cfg, &[]);
    let port = d.addr.rsplit(':').next().unwrap().to_string();
    let addr = format!("127.0.0.1:{port}");
    let body = format!(
        "roimon_value,team=search,workload=chat amount=1 {}\n",
        now_ns()
    );
    let (st, text) = http_post(&addr, "/api/v2/write", &[], body.as_bytes());
    assert_eq!(st, 403, "{text}");
    assert!(text.contains("push.token_env"), "{text}");
    assert!(text.contains("push.allow_unauthenticated"), "{text}");
    let (_, m) = common::http_get(&addr, "/metrics");
    assert_eq!(
        value(&m, "roimon_push_rejected_total{reason=\"forbidden\"}"),
        Some(1.0)
    );
    drop(d);

    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "0.0.0.0:0", "allow_unauthenticated = true");
    let d = Daemon::start(&cfg, &[]);
    let port = d.addr.rsplit(':').next().unwrap().to_string();
    let (st, text) = http_post(
        &format!("127.0.0.1:{port}"),
        "/api/v2/write",
        &[],
        body.as_bytes(),
    );
    assert_eq!(st, 204, "{text}");
}

#[test]
fn a_late_tick_is_logged_once_with_its_gap() {
    // One tick a second: a busy test machine does not make a tick 2 s
    // late, a stop of 5 s does.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = common::gpuless_config(tmp.path(), &tmp.path().join("state"), (1.0, 1.0), "");
    let d = Daemon::start(&cfg, &[]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = d.child.id().to_string();
    let sig = |s: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([s, &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    sig("-STOP");
    std::thread::sleep(std::time::Duration::from_secs(5));
    sig("-CONT");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (_, log) = d.stop("TERM");
    // Once for the stop (a busy test machine may add short streaks of its
    // own, each logged once too).
    let late: Vec<serde_json::Value> = log
        .iter()
        .filter(|l| l.contains("late by more than two intervals"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["late_secs"].as_f64().unwrap_or(0.0) >= 3.0)
        .collect();
    assert_eq!(late.len(), 1, "{log:#?}");
    let v = &late[0];
    let gap = v["fields"]["late_secs"].as_f64().unwrap();
    assert!((3.0..12.0).contains(&gap), "{v}");
    assert!(
        v["fields"]["doing"].as_str().unwrap().contains("suspended"),
        "{v}"
    );
}

#[test]
fn the_duplicate_window_is_saved_as_rows_and_a_retry_counts_once_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cfg = config(tmp.path(), "127.0.0.1:0", "");
    let t = now_ns();
    let batch = format!(
        "roimon_value,team=search,workload=chat amount=2 {t}\nroimon_value,team=search,workload=chat amount=3 {}\n",
        t + 1
    );
    let booked = |d: &Daemon, dups: f64| {
        d.wait_metrics("the batch booked once", |m| {
            (common::sum(m, "roimon_value_total") - 5.0).abs() < 1e-9
                && value(m, "roimon_push_points_total{result=\"duplicate\"}") == Some(dups)
        });
    };
    let rows = || -> Vec<(i64, i64, i64)> {
        let c = rusqlite::Connection::open(common::ledger_path(&state)).unwrap();
        let mut st = c
            .prepare("SELECT k0, k1, at_ns FROM push_seen ORDER BY at_ns")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };

    let d = Daemon::start(&cfg, &[]);
    assert_eq!(post(&d, &batch).0, 204);
    booked(&d, 0.0);
    assert!(d.stop("TERM").0.success());
    // Two rows, and no copy of the window in the counters' JSON (which is
    // rewritten whole with every checkpoint).
    let seen = rows();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (_, json) = common::stored_checkpoint(&state).unwrap();
    assert!(!json.contains("push.dedup"), "{json:.500}");

    let d = Daemon::start(&cfg, &[]);
    assert_eq!(post(&d, &batch).0, 204);
    booked(&d, 2.0);
    assert!(d.stop("TERM").0.success());

    // A state from before the rows kept the window as JSON in the
    // counters: it is honoured, then written out as rows.
    let entries: Vec<String> = seen
        .iter()
        .map(|(a, b, at)| format!("[[{},{}],{at}]", *a as u64, *b as u64))
        .collect();
    let legacy = format!(
        r#"{{"max_entries":100000,"max_age_ns":86400000000000,"entries":[{}]}}"#,
        entries.join(",")
    );
    common::ledger_sql(
        &state,
        &format!(
            "DELETE FROM push_seen; UPDATE checkpoint SET counters = json_set(counters, '$.extensions.\"push.dedup\"', '{legacy}');"
        ),
    )
    .unwrap();
    let d = Daemon::start(&cfg, &[]);
    assert_eq!(post(&d, &batch).0, 204);
    booked(&d, 2.0);
    assert!(d.stop("TERM").0.success());
    assert_eq!(rows(), seen);
    let (_, json) = common::stored_checkpoint(&state).unwrap();
    assert!(!json.contains("push.dedup"), "{json:.500}");
}
