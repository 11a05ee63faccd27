//! Test harness for the real roimon binary: start it on a config, find its
//! port from its JSON log, scrape it over loopback with a minimal HTTP/1.1
//! client, and stop it with a signal. Every wait is bounded.

#![allow(dead_code)]

/// The scripted HTTP server, shared with roimon-http's tests.
#[path = "../../../roimon-http/tests/mock/mod.rs"]
pub mod mock;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_roimon");

/// A running daemon.
pub struct Daemon {
    pub child: Child,
    pub addr: String,
    pub log: mpsc::Receiver<String>,
    /// Log lines read while waiting for the start.
    pub early: Vec<String>,
}

impl Daemon {
    /// Start `roimon run --config CONFIG` with extra args; wait for its listen address.
    pub fn start(config: &Path, extra: &[&str]) -> Daemon {
        Self::start_env(config, extra, &[])
    }

    /// Like `start`, with extra environment variables.
    pub fn start_env(config: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--log-format")
            .arg("json")
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn roimon");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if v["fields"]["message"] == "roimon running" {
                            let addr = v["fields"]["listen"].as_str().unwrap().to_string();
                            seen.push(line);
                            return Daemon {
                                child,
                                addr,
                                log: rx,
                                early: seen,
                            };
                        }
                    }
                    seen.push(line);
                }
                Err(_) => {
                    if let Ok(Some(st)) = child.try_wait() {
                        panic!("roimon exited early with {st}:\n{}", seen.join("\n"));
                    }
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("roimon did not start in 30 s:\n{}", seen.join("\n"));
    }

    /// GET a path; (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
    }

    /// Scrape /metrics.
    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Poll `f` on fresh scrapes until it holds (bounded).
    pub fn wait_metrics(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = self.metrics();
            if f(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; last scrape:\n{m}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Send a signal by name (TERM, INT) and wait for the exit (bounded).
    pub fn stop(mut self, signal: &str) -> (ExitStatus, Vec<String>) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut log = std::mem::take(&mut self.early);
                log.extend(self.log.try_iter());
                return (st, log);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("roimon did not stop within 20 s of SIG{signal}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET over loopback.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The value of the sample whose line starts with `series` followed by a space.
pub fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Sum of every sample of a metric name (any labels).
pub fn sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// A RAPL powercap fixture tree: two packages and subzones that must not count.
pub fn rapl_tree(root: &Path, uj: [u64; 2]) {
    for (i, e) in uj.iter().enumerate() {
        let z = root.join(format!("intel-rapl:{i}"));
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("name"), format!("package-{i}\n")).unwrap();
        std::fs::write(z.join("energy_uj"), format!("{e}\n")).unwrap();
        std::fs::write(z.join("max_energy_range_uj"), "262143328850\n").unwrap();
        let sub = root.join(format!("intel-rapl:{i}:0"));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("name"), "core\n").unwrap();
        std::fs::write(sub.join("energy_uj"), "999999999\n").unwrap();
        std::fs::write(sub.join("max_energy_range_uj"), "262143328850\n").unwrap();
    }
}

/// Run promtool check metrics on an exposition.
pub fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install it with `apt-get install prometheus` (.ci/run does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[path = "../../../roimon-price/tests/common/fixtures.rs"]
mod fixtures;
#[allow(unused_imports)]
pub use fixtures::fixtures_dir;

/// The ledger database of a state dir.
pub fn ledger_path(state: &Path) -> std::path::PathBuf {
    state.join("ledger.sqlite3")
}

/// (saved_at, counters JSON) of the last checkpoint in a state dir's
/// ledger, read as another process would (read-only, beside the daemon).
pub fn stored_checkpoint(state: &Path) -> Option<(String, String)> {
    let conn = rusqlite::Connection::open_with_flags(
        ledger_path(state),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    conn.query_row(
        "SELECT saved_at, counters FROM checkpoint WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

/// Run a SQL batch on a state dir's ledger as an operator with `sqlite3`
/// would (read-write).
pub fn ledger_sql(state: &Path, sql: &str) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(ledger_path(state))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(sql)
}

/// POST a body to the daemon; (status, response body).
pub fn http_post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        h.split_whitespace().nth(1).unwrap().parse().unwrap(),
        b.to_string(),
    )
}

/// A node without GPUs (the model host, no RAPL under `dir`), a static
/// price of 0.30 EUR/kWh, a loopback listener and its state in `state`:
/// sampling every `interval` s, checkpoints every `checkpoint` s. Tables
/// the test needs follow it (`extra`); written to `dir/roimon.toml`.
pub fn gpuless_config(
    dir: &Path,
    state: &Path,
    (interval, checkpoint): (f64, f64),
    extra: &str,
) -> std::path::PathBuf {
    let cfg = format!(
        r#"[sampling]
interval_secs = {interval}
[gpu]
source = "none"
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
checkpoint_interval_secs = {checkpoint}
{extra}"#,
        none = dir.join("no-rapl").display(),
        state = state.display(),
    );
    let path = dir.join("roimon.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// Where Debian's libfaketime is.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// libfaketime, or `None` (a skip, said once) outside CI.
pub fn faketime() -> Option<&'static str> {
    if Path::new(FAKETIME_LIB).exists() {
        return Some(FAKETIME_LIB);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{FAKETIME_LIB} is missing (Debian package faketime; .ci/run installs it)"
    );
    eprintln!("skipping: {FAKETIME_LIB} is missing (apt-get install faketime)");
    None
}
