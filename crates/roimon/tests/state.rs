//! The state dir and the clock as an operator meets them, on the real
//! binary: a state dir that lost its checkpoint (ledger deleted, emptied,
//! or its `-wal` lost after kill -9) is refused with exit 1 and the two
//! ways on; `--reset-state` starts over visibly (a ledger event of kind
//! reset, roimon_state_resets_total); an impossible figure is named at
//! start and by `report --verify`, and `roimon ledger repair` fixes it
//! keeping the ledger; a wall clock stepped a day ahead and back books to
//! the hour of the wall time and is logged; a checkpoint from the future
//! starts.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// No GPUs, the model host, fixed costs: a node whose books grow by
/// capex every tick.
fn config(dir: &Path, state: &Path) -> PathBuf {
    common::gpuless_config(
        dir,
        state,
        (0.05, 0.1),
        "[costs]\npurchase = 315576.0\ndepreciation_years = 1.0\n[node]\nname = \"node-s\"\n",
    )
}

const CAPEX: &str = "roimon_cost_total{component=\"capex\",currency=\"EUR\"}";

fn roimon(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

/// `roimon run --config CFG` expected to refuse: (exit code, stderr).
fn refused(cfg: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(cfg)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (st.code(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("roimon started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn verify(state: &Path) -> (Option<i32>, String) {
    let out = roimon(&["report", "--verify", "--state-dir", state.to_str().unwrap()]);
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Run once until the books hold capex, then stop cleanly.
fn run_once(cfg: &Path) {
    let d = Daemon::start(cfg, &[]);
    d.wait_metrics("capex booked", |m| value(m, CAPEX).unwrap_or(0.0) > 0.0);
    let (st, log) = d.stop("TERM");
    assert_eq!(st.code(), Some(0), "{log:?}");
}

fn query<T: rusqlite::types::FromSql>(state: &Path, sql: &str) -> T {
    let c = rusqlite::Connection::open_with_flags(
        ledger_path(state),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn a_state_dir_without_its_checkpoint_never_starts_a_second_history_silently() {
    type Spoil = fn(&Path);
    let spoils: [(&str, Spoil); 3] = [
        ("is missing", |s| {
            std::fs::remove_file(ledger_path(s)).unwrap();
            let _ = std::fs::remove_file(s.join("ledger.sqlite3-wal"));
            let _ = std::fs::remove_file(s.join("ledger.sqlite3-shm"));
        }),
        ("is empty (0 bytes)", |s| {
            let _ = std::fs::remove_file(s.join("ledger.sqlite3-wal"));
            let _ = std::fs::remove_file(s.join("ledger.sqlite3-shm"));
            std::fs::write(ledger_path(s), b"").unwrap();
        }),
        ("holds no checkpoint", |s| {
            // What kill -9 and a lost -wal leave when nothing had been
            // copied into the main file yet: the schema only.
            let _ = std::fs::remove_file(s.join("ledger.sqlite3-wal"));
            let _ = std::fs::remove_file(s.join("ledger.sqlite3-shm"));
            std::fs::remove_file(ledger_path(s)).unwrap();
            let c = rusqlite::Connection::open(ledger_path(s)).unwrap();
            c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
                .unwrap();
            drop(c);
        }),
    ];
    for (missing, spoil) in spoils {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let cfg = config(tmp.path(), &state);
        run_once(&cfg);
        spoil(&state);
        let (code, err) = refused(&cfg, &[]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(missing), "{missing}: {err}");
        assert!(err.contains("restore"), "{err}");
        assert!(err.contains("roimon run --reset-state"), "{err}");
        assert!(!err.contains("move the files aside"), "{err}");
        // Refused again: nothing was started meanwhile.
        assert_eq!(refused(&cfg, &[]).0, Some(1));

        // Starting over deliberately is visible: a reset event with its
        // reason, the metric, and books that reconcile from zero.
        let d = Daemon::start(&cfg, &["--reset-state"]);
        let m = d.wait_metrics("capex booked again", |m| {
            value(m, CAPEX).unwrap_or(0.0) > 0.0
        });
        assert_eq!(value(&m, "roimon_state_resets_total"), Some(1.0), "{m}");
        let (st, _) = d.stop("TERM");
        assert_eq!(st.code(), Some(0));
        let reason: String = query(
            &state,
            "SELECT reason FROM ledger WHERE kind = 'reset' LIMIT 1",
        );
        assert!(reason.contains("--reset-state"), "{reason}");
        assert!(reason.contains(missing), "{reason}");
        let (code, out) = verify(&state);
        assert_eq!(code, Some(0), "{out}");
        // The count survives restarts, and --reset-state with a readable
        // checkpoint resets nothing.
        let d = Daemon::start(&cfg, &["--reset-state"]);
        let m = d.metrics();
        assert_eq!(value(&m, "roimon_state_resets_total"), Some(1.0));
        assert!(value(&m, CAPEX).unwrap() > 0.0);
        d.stop("TERM");
    }
}

#[test]
fn only_a_lock_or_a_price_cache_is_a_previous_life_too() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cfg = config(tmp.path(), &state);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("prices.json"), b"[]").unwrap();
    let (code, err) = refused(&cfg, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("prices.json") && err.contains("is missing"),
        "{err}"
    );
    // A new, empty state dir starts.
    let fresh = tmp.path().join("fresh");
    let cfg = config(tmp.path(), &fresh);
    run_once(&cfg);
}

#[test]
fn an_impossible_figure_is_named_and_repaired_keeping_the_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cfg = config(tmp.path(), &state);
    run_once(&cfg);
    let rows_before: i64 = query(&state, "SELECT COUNT(*) FROM ledger");
    let (_, good) = stored_checkpoint(&state).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    // Finite in the file, infinite as a total.
    v["value_total"] = serde_json::json!({"sum": 1.7e308, "comp": 1.7e308});
    ledger_sql(
        &state,
        &format!(
            "UPDATE checkpoint SET counters = '{}' WHERE id = 1",
            v.to_string().replace('\'', "''")
        ),
    )
    .unwrap();
    let (code, err) = refused(&cfg, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("value_total"), "{err}");
    assert!(err.contains("roimon ledger repair"), "{err}");
    assert!(!err.contains("aside"), "{err}");
    let (code, out) = verify(&state);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("value_total") && out.contains("roimon ledger repair"),
        "{out}"
    );

    let out = roimon(&["ledger", "repair", "--config", cfg.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("value_total"), "{said}");
    let reason: String = query(
        &state,
        "SELECT reason FROM ledger WHERE kind = 'correction' LIMIT 1",
    );
    assert!(reason.contains("value_total"), "{reason}");
    let rows_after: i64 = query(&state, "SELECT COUNT(*) FROM ledger WHERE closed = 1");
    assert!(rows_after >= 1 && rows_before >= 1);
    let (code, out) = verify(&state);
    assert_eq!(code, Some(0), "{out}");
    // The daemon starts and goes on from the kept books.
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("capex booked", |m| value(m, CAPEX).unwrap_or(0.0) > 0.0);
    assert_eq!(value(&m, "roimon_state_resets_total"), Some(0.0));
    d.stop("TERM");
    let (code, out) = verify(&state);
    assert_eq!(code, Some(0), "{out}");
}

/// JSON log lines' messages.
fn messages(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["fields"]["message"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_clock_stepped_a_day_ahead_and_back_books_to_the_hour_of_the_wall_time() {
    let Some(lib) = faketime() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cfg = config(tmp.path(), &state);
    // The offset is read from a file on every call, so it can step; the
    // file is replaced whole (a reader never sees it half written).
    let offset = tmp.path().join("faketime");
    let set = |o: &str| {
        let t = tmp.path().join("faketime.tmp");
        std::fs::write(&t, o).unwrap();
        std::fs::rename(&t, &offset).unwrap();
    };
    set("+0");
    let env = [
        ("LD_PRELOAD", lib),
        ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ("TZ", "UTC"),
    ];
    let d = Daemon::start_env(&cfg, &[], &env);
    d.wait_metrics("capex booked", |m| value(m, CAPEX).unwrap_or(0.0) > 0.0);
    std::thread::sleep(Duration::from_millis(500));
    set("+1d");
    std::thread::sleep(Duration::from_millis(1000));
    set("+0");
    std::thread::sleep(Duration::from_millis(3000));
    let (st, log) = d.stop("TERM");
    assert_eq!(st.code(), Some(0), "{log:?}");
    let said = messages(&log);
    let forward: Vec<&String> = said
        .iter()
        .filter(|m| m.contains("wall clock stepped forward"))
        .collect();
    let back: Vec<&String> = said
        .iter()
        .filter(|m| m.contains("wall clock stepped back"))
        .collect();
    assert_eq!(forward.len(), 1, "{said:?}");
    assert_eq!(back.len(), 1, "{said:?}");
    assert!(forward[0].contains("8640"), "the size: {}", forward[0]);
    // About a second of the run was a day ahead: tomorrow holds only that
    // (well under half), and today's hours hold the rest.
    let now = chrono::Utc::now().timestamp();
    let tomorrow: f64 = query(
        &state,
        &format!(
            "SELECT COALESCE(SUM(cost_capex), 0) FROM ledger WHERE hour_start > {}",
            now + 3600
        ),
    );
    let total: f64 = query(&state, "SELECT SUM(cost_capex) FROM ledger");
    assert!(tomorrow > 0.0, "nothing booked while ahead");
    assert!(
        tomorrow < 0.5 * total,
        "{tomorrow} of {total} booked to tomorrow"
    );
    // The open hour is today's again.
    let open: i64 = query(
        &state,
        "SELECT MAX(hour_start) FROM ledger WHERE closed = 0",
    );
    assert!(open <= now, "the open hour stayed tomorrow");
    let late_or_now: i64 = query(
        &state,
        &format!(
            "SELECT COUNT(*) FROM ledger WHERE hour_start <= {now} AND kind IN ('late', 'hour')"
        ),
    );
    assert!(late_or_now > 0);
    let (code, out) = verify(&state);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_checkpoint_from_the_future_starts_the_daemon() {
    let Some(lib) = faketime() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cfg = config(tmp.path(), &state);
    // Checkpoints written while the clock was a day ahead...
    let d = Daemon::start_env(
        &cfg,
        &[],
        &[
            ("LD_PRELOAD", lib),
            ("FAKETIME", "+1d"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("TZ", "UTC"),
        ],
    );
    d.wait_metrics("capex booked", |m| value(m, CAPEX).unwrap_or(0.0) > 0.0);
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
    let closed: i64 = query(&state, "SELECT COUNT(*) FROM ledger WHERE closed = 1");
    // ...and the clock corrected while stopped: it starts, says so, and
    // accrues from now.
    let d = Daemon::start(&cfg, &[]);
    let before = value(&d.metrics(), CAPEX).unwrap();
    d.wait_metrics("capex accrues from now", |m| {
        value(m, CAPEX).unwrap_or(0.0) > before
    });
    let (st, log) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
    assert!(
        messages(&log).iter().any(|m| m.contains("from the future")),
        "{log:?}"
    );
    let closed_after: i64 = query(&state, "SELECT COUNT(*) FROM ledger WHERE closed = 1");
    assert!(closed_after >= closed);
    let (code, out) = verify(&state);
    assert_eq!(code, Some(0), "{out}");
    let open: i64 = query(
        &state,
        "SELECT MAX(hour_start) FROM ledger WHERE closed = 0",
    );
    assert!(open <= chrono::Utc::now().timestamp());
}

#[test]
fn a_permission_error_is_named_with_the_path_and_the_uid() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("state");
    let cfg = config(tmp.path(), &state);
    run_once(&cfg);
    let as_root = own_uid() == 0;
    // Root ignores file modes: the daemon then runs as nobody, whose state
    // dir it is, read-only.
    let (uid, mut cmd) = if as_root {
        let Ok(setpriv) = which("setpriv") else {
            eprintln!("skipping: running as root without setpriv");
            return;
        };
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&state)
            .status()
            .unwrap();
        assert!(status.success());
        let mut c = std::process::Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        (65534, c)
    } else {
        (own_uid(), std::process::Command::new(BIN))
    };
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o500)).unwrap();
    let out = cmd.args(["run", "--config"]).arg(&cfg).output().unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission error on"), "{err}");
    assert!(err.contains(state.to_str().unwrap()), "{err}");
    assert!(err.contains(&format!("uid {uid}")), "{err}");
    assert!(
        !err.contains("aside") && !err.contains("--reset-state"),
        "{err}"
    );
    // The ledger was not touched.
    let (code, out) = verify(&state);
    assert_eq!(code, Some(0), "{out}");
}

fn own_uid() -> u32 {
    // The owner of a file this process just made is its uid.
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid()
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.exists())
        })
        .ok_or(())
}
