//! The InfluxDB outage system test: the real roimon binary on a fake NVML
//! (loaded through nvml-wrapper) writes to a real VictoriaMetrics
//! (`/api/v2/write`) on loopback, through a happy path, an outage with the
//! server stopped and restarted, and a daemon restart during the outage.
//! The points stored are counted against the daemon's own figures: none
//! lost, none doubled. Every wait is bounded.

use roimon_fake_nvml::{FakeGpu, FakeNvml};
use roimon_system_tests::{Node, Vm, sum, value};
use std::collections::BTreeSet;
use std::path::Path;
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
