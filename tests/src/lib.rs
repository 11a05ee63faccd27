//! Harness for system tests: start real roimon daemons, a real Prometheus
//! (with the shipped rules) and query them over loopback, every wait bounded.
//! Used by the tests in `tests/tests/`; nothing here is product code.

#![allow(missing_debug_implementations)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `roimon` binary of this build (built by `cargo nextest run
/// --workspace`; built here with cargo when missing). `ROIMON_BIN` points
/// elsewhere (e.g. a release build, for the fleet figures).
pub fn roimon_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(b) = std::env::var_os("ROIMON_BIN") {
            return PathBuf::from(b);
        }
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test> → target/<profile>/roimon
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary under target/<profile>/deps");
        let bin = dir.join("roimon");
        // Never test a stale binary: when a source file is newer than it
        // (only this crate's tests were built), build it first.
        if !bin.exists() || newest_source() > mtime(&bin) {
            let st = Command::new(env!("CARGO"))
                .args(["build", "-p", "roimon", "--bin", "roimon"])
                .current_dir(repo_root())
                .status()
                .expect("run cargo build -p roimon");
            assert!(st.success(), "cargo build -p roimon failed");
        }
        assert!(bin.exists(), "{} not found", bin.display());
        bin
    })
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// The newest modification time of the daemon's sources (`crates/*/src`,
/// `crates/*/Cargo.toml`, `Cargo.lock`).
fn newest_source() -> std::time::SystemTime {
    fn walk(dir: &Path, newest: &mut std::time::SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, newest);
            } else {
                *newest = (*newest).max(mtime(&p));
            }
        }
    }
    let root = repo_root();
    let mut newest = mtime(&root.join("Cargo.lock"));
    if let Ok(crates) = std::fs::read_dir(root.join("crates")) {
        for c in crates.flatten() {
            newest = newest.max(mtime(&c.path().join("Cargo.toml")));
            walk(&c.path().join("src"), &mut newest);
        }
    }
    newest
}

/// Now, in nanoseconds since the Unix epoch (line protocol time).
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `f` returns `Some`, polling every `every`, for at most `limit`.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// A running roimon daemon.
pub struct Node {
    pub child: Child,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
    pub dir: PathBuf,
    pub log: mpsc::Receiver<String>,
    /// Log lines read while waiting for the start.
    pub early: Vec<String>,
}

/// The config of a node with `gpus` simulated GPUs, each owned by the
/// given (team, workload), a static price and `extra` TOML appended.
pub fn node_config(state: &Path, owners: &[(&str, &str)], extra: &str) -> String {
    let mut cfg = format!(
        r#"[sampling]
interval_secs = 0.5

[gpu]
source = "simulated"
simulated_count = {n}

[facility]
pue = 1.2

[price]
source = "static"
currency = "EUR"
price_per_kwh = 0.30

[server]
listen = "127.0.0.1:0"

[state]
dir = "{state}"
checkpoint_interval_secs = 1.0
"#,
        n = owners.len(),
        state = state.display()
    );
    for (i, (team, workload)) in owners.iter().enumerate() {
        cfg.push_str(&format!(
            "\n[[gpu.owners]]\ngpu_uuid = \"SIM-GPU-{i:04}\"\nteam = \"{team}\"\nworkload = \"{workload}\"\n"
        ));
    }
    cfg.push_str(extra);
    cfg
}

impl Node {
    /// Start `roimon run` on `config` (TOML text) in `dir`.
    pub fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("roimon.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(roimon_bin())
            .args(["run", "--config"])
            .arg(&path)
            .args(["--log-format", "json"])
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
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if v["fields"]["message"] == "roimon running" {
                            let addr = v["fields"]["listen"].as_str().unwrap().to_string();
                            seen.push(line);
                            return Node {
                                child,
                                addr,
                                dir: dir.to_path_buf(),
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
        panic!("roimon did not start in 60 s:\n{}", seen.join("\n"));
    }

    /// GET a path; (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http(&self.addr, "GET", path, &[], b"")
    }

    /// Scrape `/metrics`.
    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Poll fresh scrapes until `f` holds (bounded: 30 s).
    pub fn wait_metrics(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.metrics();
            if f(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last scrape:\n{m}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop with SIGTERM (bounded); whether it exited 0, and every log line
    /// it wrote.
    pub fn stop_with_log(mut self) -> (bool, Vec<String>) {
        let mut log = std::mem::take(&mut self.early);
        let ok = self.stop_ref();
        log.extend(self.log.try_iter());
        (ok, log)
    }

    /// Stop with SIGTERM and wait (bounded); true when it exited 0.
    pub fn stop(mut self) -> bool {
        self.stop_ref()
    }

    fn stop_ref(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request over loopback; (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
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
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The value of the sample whose line starts with `series` and a space.
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

/// Percent-encode a query parameter value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A running Prometheus scraping roimon nodes with the shipped rules.
pub struct Prometheus {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
}

/// One scrape target with extra target labels (e.g. `cluster`).
pub struct Target<'a> {
    pub addr: &'a str,
    pub labels: &'a [(&'a str, &'a str)],
}

impl Prometheus {
    /// Start Prometheus in `dir` scraping `targets` every second and
    /// evaluating `rule_files` every second.
    pub fn start(dir: &Path, targets: &[Target<'_>], rule_files: &[PathBuf]) -> Prometheus {
        std::fs::create_dir_all(dir).unwrap();
        let mut cfg = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 1s\nrule_files:\n",
        );
        for f in rule_files {
            cfg.push_str(&format!("  - {}\n", f.display()));
        }
        cfg.push_str("scrape_configs:\n  - job_name: roimon\n    static_configs:\n");
        for t in targets {
            cfg.push_str(&format!("      - targets: ['{}']\n", t.addr));
            if !t.labels.is_empty() {
                cfg.push_str("        labels:\n");
                for (k, v) in t.labels {
                    cfg.push_str(&format!("          {k}: '{v}'\n"));
                }
            }
        }
        let conf = dir.join("prometheus.yml");
        std::fs::write(&conf, cfg).unwrap();
        let check = Command::new("promtool")
            .args(["check", "config"])
            .arg(&conf)
            .output()
            .expect("promtool not found: `apt-get install prometheus` (.ci/run does)");
        assert!(
            check.status.success(),
            "promtool check config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus not found: `apt-get install prometheus` (.ci/run does)");
        let p = Prometheus {
            child,
            addr,
            dir: dir.to_path_buf(),
        };
        wait_for(
            "Prometheus ready",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                TcpStream::connect(&p.addr).ok().and_then(|_| {
                    (http(&p.addr, "GET", "/-/ready", &[], b"").0 == 200).then_some(())
                })
            },
        );
        p
    }

    /// An instant query; the `data.result` vector.
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        self.query_at(expr, None)
    }

    /// An instant query at a given evaluation time (Unix seconds), so that
    /// several queries see the same samples.
    pub fn query_at(&self, expr: &str, time: Option<f64>) -> Vec<serde_json::Value> {
        let at = time.map(|t| format!("&time={t:.3}")).unwrap_or_default();
        let (status, body) = http(
            &self.addr,
            "GET",
            &format!("/api/v1/query?query={}{at}", urlencode(expr)),
            &[],
            b"",
        );
        assert_eq!(status, 200, "query {expr}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "query {expr}: {body}");
        match &v["data"]["result"] {
            serde_json::Value::Array(a) => a.clone(),
            // scalar or string results: one pseudo-series
            other => vec![serde_json::json!({"metric": {}, "value": other.clone()})],
        }
    }

    /// The single value of an instant query that yields one series.
    pub fn scalar(&self, expr: &str) -> Option<f64> {
        self.scalar_at(expr, None)
    }

    /// `scalar` at a given evaluation time.
    pub fn scalar_at(&self, expr: &str, time: Option<f64>) -> Option<f64> {
        let r = self.query_at(expr, time);
        if r.len() != 1 {
            return None;
        }
        r[0]["value"][1].as_str()?.parse().ok()
    }

    /// The firing alerts (name and labels).
    pub fn firing(&self) -> Vec<serde_json::Value> {
        let (_, body) = http(&self.addr, "GET", "/api/v1/alerts", &[], b"");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["state"] == "firing")
            .collect()
    }

    /// Series in Prometheus's head block.
    pub fn head_series(&self) -> Option<f64> {
        let (_, body) = http(&self.addr, "GET", "/api/v1/status/tsdb", &[], b"");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["headStats"]["numSeries"].as_f64()
    }

    /// Prometheus's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two nodes in two clusters, `a` (search/chat and ads/rank) in `east` and
/// `b` (search/chat and vision/batch) in `west`, each with `extra` config,
/// scraped by a Prometheus with the shipped rules; returns once both
/// targets are up.
pub fn two_clusters(dir: &Path, extra: &str) -> (Node, Node, Prometheus, Vec<PathBuf>) {
    let a = Node::start(
        &dir.join("a"),
        &node_config(
            &dir.join("a/state"),
            &[("search", "chat"), ("ads", "rank")],
            extra,
        ),
        &[],
    );
    let b = Node::start(
        &dir.join("b"),
        &node_config(
            &dir.join("b/state"),
            &[("search", "chat"), ("vision", "batch")],
            extra,
        ),
        &[],
    );
    let rules = shipped_rules(&dir.join("rules"), "1s");
    let prom = Prometheus::start(
        &dir.join("prom"),
        &[
            Target {
                addr: &a.addr,
                labels: &[("cluster", "east")],
            },
            Target {
                addr: &b.addr,
                labels: &[("cluster", "west")],
            },
        ],
        &rules,
    );
    wait_for(
        "both roimon targets up",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || (prom.scalar("sum(up{job=\"roimon\"})") == Some(2.0)).then_some(()),
    );
    (a, b, prom, rules)
}

/// The shipped rule files (`deploy/prometheus/rules/*.yml`), copied into
/// `dir` with every `for:` shortened to `for_`, every group `interval:`
/// set to 1s and every least-data gate (a `…_seconds… >= N` line: the
/// seconds of data a window, baseline or forecast must rest on) lowered to
/// 0, so alerts fire within a test; the expressions are otherwise unchanged.
pub fn shipped_rules(dir: &Path, for_: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let src = repo_root().join("deploy/prometheus/rules");
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    names.sort();
    for p in names {
        let text = std::fs::read_to_string(&p).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                let t = l.trim_start();
                let indent = &l[..l.len() - t.len()];
                if t.starts_with("for:") {
                    format!("{indent}for: {for_}\n")
                } else if t.starts_with("interval:") {
                    format!("{indent}interval: 1s\n")
                } else if let Some((gated, _)) =
                    l.split_once(" >= ").filter(|(g, _)| g.contains("_seconds"))
                {
                    format!("{gated} >= 0\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let dst = dir.join(p.file_name().unwrap());
        std::fs::write(&dst, text).unwrap();
        out.push(dst);
    }
    assert!(!out.is_empty(), "no rule files in {}", src.display());
    out
}

// --- VictoriaMetrics -------------------------------------------------------

/// A VictoriaMetrics on a loopback port with its data in a temp dir.
pub struct Vm {
    child: Option<Child>,
    port: u16,
    data: PathBuf,
}

impl Vm {
    pub fn start(data: &Path) -> Vm {
        let port = free_port();
        let mut vm = Vm {
            child: None,
            port,
            data: data.to_path_buf(),
        };
        vm.resume();
        vm
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// (Re)start on the same port and data, and wait until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
            .arg(format!("-storageDataPath={}", self.data.display()))
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics not found: install it with `apt-get install victoria-metrics` (.ci/run does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(self.addr()).is_ok()
                && http(&self.addr(), "GET", "/health", &[], b"").0 == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "victoria-metrics did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop (SIGTERM: it flushes its data) and wait for the exit.
    pub fn pause(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every stored series whose name starts with `prefix`: labels (with
    /// `__name__`) → timestamps (ms) and values, as stored (duplicates kept).
    pub fn export(&self, prefix: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
        http(&self.addr(), "POST", "/internal/force_flush", &[], b"");
        let q = format!("/api/v1/export?match%5B%5D=%7B__name__%3D~%22{prefix}.%2A%22%7D");
        let (status, body) = http(&self.addr(), "GET", &q, &[], b"");
        assert_eq!(status, 200, "{body}");
        let mut out = BTreeMap::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let labels: BTreeMap<String, String> =
                serde_json::from_value(v["metric"].clone()).unwrap();
            let key = labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let ts = v["timestamps"].as_array().unwrap();
            let vals = v["values"].as_array().unwrap();
            let e: &mut Vec<(i64, f64)> = out.entry(key).or_default();
            for (t, x) in ts.iter().zip(vals) {
                e.push((t.as_i64().unwrap(), x.as_f64().unwrap()));
            }
        }
        for v in out.values_mut() {
            v.sort_by_key(|p| p.0);
        }
        out
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU seconds (user + system) and resident memory (current, peak) in
/// bytes of a process, from /proc.
pub fn proc_usage(pid: u32) -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after the comm: state(0) ... utime(11) stime(12)
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    Some((ticks / hz, kb("VmRSS:")?, kb("VmHWM:")?))
}

/// Read a whole stream into a string (helper for child outputs).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
