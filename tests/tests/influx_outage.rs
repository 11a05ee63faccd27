//! The InfluxDB stream system tests: the real roimon binary on a fake NVML
//! (loaded through nvml-wrapper) writes to a real VictoriaMetrics
//! (`/api/v2/write`) on loopback, through a happy path, an outage with the
//! server stopped and restarted, and a daemon restart during the outage; the
//! points stored are counted against the daemon's own figures: none lost,
//! none doubled. A scripted server checks what each answer status does to
//! the points and the counters (split, drop and count, keep and alarm, wait
//! for `Retry-After`). Every wait is bounded.

use roimon_fake_nvml::{FakeGpu, FakeNvml};
use roimon_system_tests::{Node, Vm, sum, value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const G0: &str = "GPU-00000000-0000-0000-0000-000000000000";
const G1: &str = "GPU-00000000-0000-0000-0000-000000000001";
/// The stream's interval in these tests, seconds.
const INTERVAL: f64 = 0.3;

/// A config on the fake NVML (two GPUs of two teams) writing to `url`.
fn config(dir: &Path, nvml: &Path, url: &str, extra: &str) -> String {
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
    cfg
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
fn wait_drained(d: &Node, secs: u64) -> String {
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

/// Points written so far, once nothing more can be written (server down
/// for longer than the request timeout).
fn written_while_down(d: &Node) -> f64 {
    std::thread::sleep(Duration::from_millis(1500));
    let m = d.metrics();
    assert_eq!(metric(&m, "roimon_influxdb_up"), 0.0, "{m}");
    metric(&m, "roimon_influxdb_points_written_total")
}

/// Check what the server stored: every series' timestamps unique (none
/// doubled), the node's and each GPU's points at the same times, gaps no
/// longer than a few intervals except `allowed_gaps` (daemon restarts);
/// returns the number of points (lines) stored.
fn check_stored(vm: &Vm, allowed_gaps: usize) -> (usize, Vec<i64>) {
    let all = vm.export("roimon_");
    let node_key = all
        .keys()
        .find(|k| k.starts_with("__name__=roimon_node_price_per_kwh,"))
        .unwrap_or_else(|| panic!("no roimon_node_price_per_kwh in {:?}", all.keys()))
        .clone();
    for (k, pts) in &all {
        let ts: BTreeSet<i64> = pts.iter().map(|p| p.0).collect();
        assert_eq!(ts.len(), pts.len(), "{k}: a timestamp stored twice");
    }
    let node: Vec<i64> = all[&node_key].iter().map(|p| p.0).collect();
    let node_label = node_key.contains("node=node-a") && node_key.contains("currency=EUR");
    assert!(node_label, "{node_key}");
    let gpu: Vec<(&String, Vec<i64>)> = all
        .iter()
        .filter(|(k, _)| k.starts_with("__name__=roimon_gpu_power_watts,"))
        .map(|(k, v)| (k, v.iter().map(|p| p.0).collect()))
        .collect();
    assert_eq!(gpu.len(), 2, "{:?}", all.keys());
    for (k, ts) in &gpu {
        assert_eq!(ts, &node, "{k}: not at the node's times");
    }
    // Labels as configured, escaping included.
    let keys: Vec<&String> = gpu.iter().map(|g| g.0).collect();
    assert!(
        keys.iter().any(|k| k.contains(&format!("gpu_uuid={G0}"))
            && k.contains("team=search")
            && k.contains("workload=chat bot")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.contains(&format!("gpu_uuid={G1}")) && k.contains("workload=rank,v2")),
        "{keys:?}"
    );
    let g0 = all
        .iter()
        .find(|(k, _)| {
            k.starts_with("__name__=roimon_gpu_power_watts,") && k.contains(&format!("={G0}"))
        })
        .unwrap()
        .1;
    assert!(g0.iter().all(|p| p.1 == 200.0), "{g0:?}");
    let gaps = node
        .windows(2)
        .filter(|w| (w[1] - w[0]) as f64 > 6.0 * INTERVAL * 1000.0)
        .count();
    assert!(
        gaps <= allowed_gaps,
        "{gaps} gaps longer than 6 intervals (a sampler stall under load is shorter; an outage longer) in {node:?}"
    );
    // The money rows: one per (GPU, owner), at the node's times too.
    let rows: Vec<Vec<i64>> = all
        .iter()
        .filter(|(k, _)| k.starts_with("__name__=roimon_gpu_cost_cost_total,"))
        .map(|(_, v)| v.iter().map(|p| p.0).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{:?}", all.keys());
    for ts in &rows {
        assert_eq!(ts, &node, "a cost row not at the node's times");
    }
    // Per sample: the node, two GPUs, two cost rows.
    (node.len() * 5, node)
}

#[test]
fn happy_path_every_point_once() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = fake_nvml(dir.path());
    let mut vm = Vm::start(&dir.path().join("vm"));
    let cfg = config(dir.path(), &nvml.library(), &vm.url(), "");
    let d = Node::start(&dir.path().join("node"), &cfg, &[]);
    d.wait_metrics("30 points written", |m| {
        value(m, "roimon_influxdb_points_written_total").is_some_and(|v| v >= 30.0)
    });
    let m = wait_drained(&d, 20);
    assert_eq!(sum(&m, "roimon_influxdb_points_dropped_total"), 0.0, "{m}");
    assert!(metric(&m, "roimon_influxdb_last_success_timestamp_seconds") > 1.7e9);
    assert!(metric(&m, "roimon_influxdb_buffer_capacity_bytes") == 268_435_456.0);
    vm.pause();
    let written = written_while_down(&d);
    assert!(d.stop());
    vm.resume();
    let (stored, _) = check_stored(&vm, 0);
    assert_eq!(stored as f64, written);
    // Counters are stored as totals: the node's cost never goes backwards.
    let all = vm.export("roimon_node_cost_total");
    let cost = all.values().next().unwrap();
    assert!(cost.windows(2).all(|w| w[1].1 >= w[0].1), "{cost:?}");
    assert!(cost.last().unwrap().1 > 0.0);
}

#[test]
fn an_outage_loses_nothing_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = fake_nvml(dir.path());
    let mut vm = Vm::start(&dir.path().join("vm"));
    let cfg = config(dir.path(), &nvml.library(), &vm.url(), "");
    let d = Node::start(&dir.path().join("node"), &cfg, &[]);
    d.wait_metrics("points written", |m| {
        value(m, "roimon_influxdb_points_written_total").is_some_and(|v| v >= 9.0)
    });
    vm.pause();
    let down_from = chrono_ms();
    let m = d.wait_metrics("points buffered during the outage", |m| {
        value(m, "roimon_influxdb_buffer_points").is_some_and(|v| v >= 30.0)
    });
    assert_eq!(metric(&m, "roimon_influxdb_up"), 0.0);
    assert!(metric(&m, "roimon_influxdb_retries_total") >= 1.0, "{m}");
    assert!(metric(&m, "roimon_influxdb_buffer_bytes") > 0.0);
    let down_to = chrono_ms();
    vm.resume();
    let m = wait_drained(&d, 60);
    assert_eq!(sum(&m, "roimon_influxdb_points_dropped_total"), 0.0, "{m}");
    vm.pause();
    let written = written_while_down(&d);
    assert!(d.stop());
    vm.resume();
    let (stored, node) = check_stored(&vm, 0);
    assert_eq!(stored as f64, written);
    let during = node
        .iter()
        .filter(|t| (down_from..down_to).contains(*t))
        .count();
    assert!(
        during as f64 >= (down_to - down_from) as f64 / 1000.0 / INTERVAL * 0.5,
        "only {during} points from the outage of {} ms",
        down_to - down_from
    );
}

#[test]
fn a_restart_during_an_outage_replays_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let nvml = fake_nvml(dir.path());
    let mut vm = Vm::start(&dir.path().join("vm"));
    let cfg = config(dir.path(), &nvml.library(), &vm.url(), "");
    let a = Node::start(&dir.path().join("node"), &cfg, &[]);
    a.wait_metrics("points written", |m| {
        value(m, "roimon_influxdb_points_written_total").is_some_and(|v| v >= 9.0)
    });
    vm.pause();
    let down_from = chrono_ms();
    a.wait_metrics("points buffered", |m| {
        value(m, "roimon_influxdb_buffer_points").is_some_and(|v| v >= 15.0)
    });
    let written_a = written_while_down(&a);
    assert!(a.stop(), "the first daemon did not stop cleanly");
    let b = Node::start(&dir.path().join("node"), &cfg, &[]);
    let m = b.wait_metrics("the buffer resumed", |m| {
        value(m, "roimon_influxdb_buffer_points").is_some_and(|v| v >= 15.0)
    });
    assert_eq!(metric(&m, "roimon_influxdb_points_written_total"), 0.0);
    assert!(
        b.early
            .iter()
            .any(|l| l.contains("unsent points will be replayed")),
        "{:?}",
        b.early
    );
    std::thread::sleep(Duration::from_secs(1));
    let down_to = chrono_ms();
    vm.resume();
    let m = wait_drained(&b, 60);
    assert_eq!(sum(&m, "roimon_influxdb_points_dropped_total"), 0.0, "{m}");
    vm.pause();
    let written_b = written_while_down(&b);
    assert!(b.stop());
    vm.resume();
    // One gap: the restart.
    let (stored, node) = check_stored(&vm, 1);
    assert_eq!(stored as f64, written_a + written_b);
    let during = node
        .iter()
        .filter(|t| (down_from..down_to).contains(*t))
        .count();
    assert!(during >= 10, "only {during} points from the outage");
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
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
    let d = Node::start(
        &dir.path().join("node"),
        &cfg,
        &[("ROIMON_TEST_INFLUX_TOKEN", "s3cret-t0ken")],
    );
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
    let (stopped, log) = d.stop_with_log();
    assert!(stopped);

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
