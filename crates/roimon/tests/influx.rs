//! The InfluxDB v2 stream's answer semantics: the real binary on a fake
//! NVML writes to a scripted server, which checks what each answer status
//! does to the points and the counters (split, drop and count, keep and
//! alarm, wait for `Retry-After`). The outage and restart tests against a
//! real VictoriaMetrics are system tests (`tests/tests/influx_outage.rs`).
//! Every wait is bounded.

mod common;

use common::*;
use roimon_fake_nvml::{FakeGpu, FakeNvml};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const G0: &str = "GPU-00000000-0000-0000-0000-000000000000";
const G1: &str = "GPU-00000000-0000-0000-0000-000000000001";
/// The stream's interval in these tests, seconds.
const INTERVAL: f64 = 0.3;

/// A config on the fake NVML (two GPUs of two teams) writing to `url`.
fn config(dir: &Path, nvml: &Path, url: &str, extra: &str) -> PathBuf {
    let cfg = format!(
        r#"
[sampling]
interval_secs = 0.1

[gpu]
source = "nvml"
nvml_library = "{nvml}"
[[gpu.owners]]
gpu_uuid = "{G0}"
team = "search"
workload = "chat bot"
[[gpu.owners]]
gpu_uuid = "{G1}"
team = "ads"
workload = "rank,v2"

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
checkpoint_interval_secs = 0.3

[influxdb]
url = "{url}"
org = "my org"
bucket = "roimon"
interval_secs = {INTERVAL}
timeout_secs = 1.0
node = "node-a"
{extra}
"#,
        nvml = nvml.display(),
        none = dir.join("no-rapl").display(),
        state = dir.join("state").display(),
    );
    let path = dir.join("roimon.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn fake_nvml(dir: &Path) -> FakeNvml {
    let gpus: Vec<FakeGpu> = (0..2)
        .map(|i| {
            let mut g = FakeGpu::new(i);
            g.power_mw = 200_000 + 100_000 * i;
            g
        })
        .collect();
    FakeNvml::in_dir(dir.join("nvml"), &gpus).unwrap()
}

fn metric(m: &str, series: &str) -> f64 {
    value(m, series).unwrap_or_else(|| panic!("{series} missing:\n{m}"))
}

/// Wait until the daemon's buffer is empty and its last write succeeded.
fn wait_drained(d: &Daemon, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = d.metrics();
        if value(&m, "roimon_influxdb_buffer_points") == Some(0.0)
            && value(&m, "roimon_influxdb_up") == Some(1.0)
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "the buffer did not drain in {secs} s:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// --- The scripted server ----------------------------------------------------

/// A request as the scripted server saw it.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: Vec<(String, String)>,
    /// The body, gunzipped.
    lines: Vec<String>,
    at: Instant,
    /// The status it was answered with.
    status: u16,
}

type Answer = (u16, Vec<(String, String)>, String);

/// An HTTP/1.1 server (keep-alive) answering each request with `answer`
/// (given the request and how many came before); records every request and
/// the lines of every 2xx.
struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<Req>>>,
    stored: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn start(answer: impl Fn(&Req, usize) -> Answer + Send + Sync + 'static) -> Scripted {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stored = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let (s2, st2) = (seen.clone(), stored.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let (seen, stored, answer) = (s2.clone(), st2.clone(), answer.clone());
                std::thread::spawn(move || serve_conn(conn, &seen, &stored, &*answer));
            }
        });
        Scripted { url, seen, stored }
    }
}

fn serve_conn(
    conn: TcpStream,
    seen: &Mutex<Vec<Req>>,
    stored: &Mutex<Vec<String>>,
    answer: &dyn Fn(&Req, usize) -> Answer,
) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut raw = vec![0u8; len];
        if r.read_exact(&mut raw).is_err() {
            return;
        }
        let gz = headers
            .iter()
            .any(|(k, v)| k == "content-encoding" && v == "gzip");
        let text = if gz {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8(raw).unwrap()
        };
        let req = Req {
            path,
            headers,
            lines: text.lines().map(String::from).collect(),
            at: Instant::now(),
            status: 0,
        };
        let mut s = seen.lock().unwrap();
        let n = s.len();
        let (status, extra, body) = answer(&req, n);
        s.push(Req {
            status,
            ..req.clone()
        });
        drop(s);
        if (200..300).contains(&status) {
            stored.lock().unwrap().extend(req.lines.iter().cloned());
        }
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
            body.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).is_err() || out.write_all(body.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn answers_split_drop_keep_and_wait_as_telegraf_does() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = fake_nvml(dir.path());
    // Requests 0-5 fail as a whole; later ones: more than 4 lines is too
    // large (413), GPU 1's points are refused by line number (400), the
    // rest stored; from `freeze` on everything fails (a cut for counting).
    let freeze = Arc::new(Mutex::new(false));
    let f2 = freeze.clone();
    let server = Scripted::start(move |req, n| {
        let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        match n {
            0 => return (500, vec![], "oops".into()),
            1 => return (503, h("Retry-After", "1"), String::new()),
            2 => return (429, h("Retry-After", "1"), String::new()),
            3 | 4 => {
                return (
                    401,
                    vec![],
                    r#"{"code":"unauthorized","message":"unauthorized access"}"#.into(),
                );
            }
            5 => return (403, vec![], String::new()),
            _ => {}
        }
        if *f2.lock().unwrap() {
            return (500, vec![], String::new());
        }
        if req.lines.len() > 4 {
            return (
                413,
                vec![],
                r#"{"code":"request too large","message":"unable to read data: points batch is too large"}"#
                    .into(),
            );
        }
        let bad: Vec<String> = req
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains(G1))
            .map(|(i, _)| format!("line {}: field type conflict", i + 1))
            .collect();
        if bad.is_empty() {
            (204, vec![], String::new())
        } else {
            (
                400,
                vec![],
                format!(r#"{{"code":"invalid","message":"{}"}}"#, bad.join("; ")),
            )
        }
    });
    let cfg = config(
        dir.path(),
        &nvml.library(),
        &server.url,
        "token_env = \"ROIMON_TEST_INFLUX_TOKEN\"\nbatch_points = 30\n",
    );
    let d = Daemon::start_env(&cfg, &[], &[("ROIMON_TEST_INFLUX_TOKEN", "s3cret-t0ken")]);
    // The six refusals take about 1 + 1 + 1 + 2 + 4 + 8 s of waiting.
    let deadline = Instant::now() + Duration::from_secs(60);
    let m = loop {
        let m = d.metrics();
        if value(&m, "roimon_influxdb_points_written_total").is_some_and(|v| v >= 20.0) {
            break m;
        }
        assert!(Instant::now() < deadline, "nothing stored in 60 s:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(metric(&m, "roimon_influxdb_retries_total") >= 6.0, "{m}");
    wait_drained(&d, 20);
    // A cut for counting: from now on every request fails. What the daemon
    // acknowledged is what lies before the first point it has to resend.
    *freeze.lock().unwrap() = true;
    let frozen = |s: &[Req]| s.iter().skip(6).filter(|r| r.status == 500).count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while frozen(&server.seen.lock().unwrap()) < 2 {
        assert!(Instant::now() < deadline, "no retries after the freeze");
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = d.metrics();
    assert_eq!(metric(&m, "roimon_influxdb_up"), 0.0);
    let written = metric(&m, "roimon_influxdb_points_written_total");
    let rejected = metric(
        &m,
        "roimon_influxdb_points_dropped_total{reason=\"rejected\"}",
    );
    let (_, log) = d.stop("TERM");

    let seen = server.seen.lock().unwrap().clone();
    let ts = |l: &str| -> i64 { l.rsplit(' ').next().unwrap().parse().unwrap() };
    let cut = seen
        .iter()
        .skip(6)
        .filter(|r| r.status == 500)
        .flat_map(|r| r.lines.iter().map(|l| ts(l)))
        .min()
        .unwrap();
    let stored: Vec<String> = server
        .stored
        .lock()
        .unwrap()
        .iter()
        .filter(|l| ts(l) < cut)
        .cloned()
        .collect();
    // Every request: the write path with org and bucket, the token, gzip.
    for r in &seen {
        assert_eq!(
            r.path,
            "/api/v2/write?org=my%20org&bucket=roimon&precision=ns"
        );
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "authorization" && v == "Token s3cret-t0ken")
        );
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "content-encoding" && v == "gzip")
        );
    }
    // 401/403 kept the data: the first batch arrives after them, whole.
    let first_ts = seen[0].lines[0].rsplit(' ').next().unwrap().to_string();
    assert!(
        stored.iter().any(|l| l.ends_with(&format!(" {first_ts}"))),
        "the points of the refused batch were lost"
    );
    // Retry-After honoured (1 s) after the 503 and the 429.
    for i in [1, 2] {
        let waited = seen[i + 1].at - seen[i].at;
        assert!(
            waited >= Duration::from_millis(950),
            "request {} came {waited:?} after a Retry-After of 1 s",
            i + 1
        );
    }
    // 413 split batches: nothing stored came in a request of more than 4.
    assert!(seen.iter().any(|r| r.lines.len() > 4));
    // No GPU 1 point stored; each stored once; counts as the daemon says.
    assert!(!stored.iter().any(|l| l.contains(G1)));
    let unique: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a point stored twice");
    assert_eq!(stored.len() as f64, written);
    let records: BTreeSet<&str> = stored
        .iter()
        .filter(|l| l.starts_with("roimon_node,"))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    // Per sample, GPU 1's two points (its readings and its cost row) are
    // refused; GPU 0's two and the node's are stored.
    assert_eq!(rejected, 2.0 * records.len() as f64);
    assert_eq!(stored.len(), 3 * records.len());
    // One ERROR for the streak of 401/403, the token never in the log.
    let errors = log
        .iter()
        .filter(|l| l.contains("influxdb refuses the token"))
        .count();
    assert_eq!(errors, 1, "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("s3cret-t0ken")));
}
