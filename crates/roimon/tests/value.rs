//! Live value end to end: the real binary scrapes a local server that
//! replays the recorded vLLM capture with advancing and then resetting
//! counters, takes pushed value and scores on /api/v2/write, and the value,
//! tokens, windows and ROI it exports are checked against hand-computed
//! figures.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A server answering every request with the current body.
fn serve(body: Arc<Mutex<String>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let b = body.lock().unwrap().clone();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                );
            });
        }
    });
    addr
}

/// The recorded vLLM 0.4.3 capture with its counters set.
fn vllm(capture: &str, start: f64, prompt: f64, generated: f64, requests: f64) -> String {
    capture
        .replace(
            "process_start_time_seconds 1.7181405583e+09",
            &format!("process_start_time_seconds {start}"),
        )
        .replace(
            "vllm:prompt_tokens_total{model_name=\"facebook/opt-125m\"} 5.0",
            &format!("vllm:prompt_tokens_total{{model_name=\"facebook/opt-125m\"}} {prompt}"),
        )
        .replace(
            "vllm:generation_tokens_total{model_name=\"facebook/opt-125m\"} 7.0",
            &format!("vllm:generation_tokens_total{{model_name=\"facebook/opt-125m\"}} {generated}"),
        )
        .replace(
            "vllm:request_success_total{finished_reason=\"length\",model_name=\"facebook/opt-125m\"} 1.0",
            &format!("vllm:request_success_total{{finished_reason=\"length\",model_name=\"facebook/opt-125m\"}} {requests}"),
        )
}

#[test]
fn scraped_and_pushed_value_is_counted_exactly_and_sets_roi() {
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    let capture =
        std::fs::read_to_string(fixtures.join("inference/vllm-0.4.3-v0-opt-125m.prom")).unwrap();
    let body = Arc::new(Mutex::new(vllm(&capture, 1.0e9, 5.0, 7.0, 1.0)));
    let target = serve(body.clone());
    // A second server: the recorded TGI capture (tokens only in histogram
    // sums, no model label, counters without _total).
    let tgi_capture = std::fs::read_to_string(
        fixtures.join("inference/tgi-3.3.5-openhermes-mistral-7b-subset.prom"),
    )
    .unwrap();
    let tgi = |input: u64, generated: u64, ok: u64| {
        tgi_capture
            .replace(
                "tgi_request_success 109\n",
                &format!("tgi_request_success {ok}\n"),
            )
            .replace(
                "tgi_request_input_length_sum 662\n",
                &format!("tgi_request_input_length_sum {input}\n"),
            )
            .replace(
                "tgi_request_generated_tokens_sum 3423\n",
                &format!("tgi_request_generated_tokens_sum {generated}\n"),
            )
    };
    let tgi_body = Arc::new(Mutex::new(tgi(662, 3423, 109)));
    let tgi_target = serve(tgi_body.clone());
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"
[sampling]
interval_secs = 0.2
[gpu]
source = "none"
[host]
power = "model"
rapl_root = "{none}"
[price]
currency = "EUR"
price_per_kwh = 0.30
[costs]
purchase = 315576.0
depreciation_years = 1.0
[server]
listen = "127.0.0.1:0"
[state]
dir = "{state}"
checkpoint_interval_secs = 0.3
[[value.scrape]]
url = "http://{target}/metrics"
name = "chat"
team = "search"
workload = "chat"
interval_secs = 1
input_per_million_tokens = 1000000.0
output_per_million_tokens = 2000000.0
per_request = 10.0
[[value.scrape]]
url = "http://{tgi_target}/metrics"
name = "tgi"
kind = "auto"
team = "vision"
workload = "captions"
interval_secs = 1
input_per_million_tokens = 1000000.0
output_per_million_tokens = 2000000.0
per_request = 10.0
[push]
token_env = "ROIMON_TEST_PUSH_TOKEN"
allowed_owners = ["ads/*"]
[roi]
windows = ["5m", "1h"]
benefit_weights = {{ precision = 1.0 }}
[[value.kpis]]
name = "precision"
value = 0.8
team = "unallocated"
workload = "unallocated"
"#,
        none = tmp.path().join("none").display(),
        state = tmp.path().join("state").display(),
    );
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let d = Daemon::start_env(&path, &[], &[("ROIMON_TEST_PUSH_TOKEN", "s3cret")]);
    let chat =
        "roimon_value_total{team=\"search\",workload=\"chat\",source=\"chat\",currency=\"EUR\"}";
    // The first scrape is the baseline: the server's history before roimon
    // watched is not value roimon saw.
    d.wait_metrics("the target scraped", |m| {
        value(m, "roimon_value_target_up{target=\"chat\"}") == Some(1.0)
    });
    let m = d.wait_metrics("the value series", |m| value(m, chat).is_some());
    assert_eq!(value(&m, chat), Some(0.0), "baseline books nothing");

    // 10 prompt and 20 generated tokens and 2 requests: 10 + 40 + 20 = 70.
    *body.lock().unwrap() = vllm(&capture, 1.0e9, 15.0, 27.0, 3.0);
    d.wait_metrics("70 booked", |m| value(m, chat) == Some(70.0));
    // TGI: 100 prompt and 200 generated tokens, 2 requests: 100 + 400 + 20.
    let tgi_value =
        "roimon_value_total{team=\"vision\",workload=\"captions\",source=\"tgi\",currency=\"EUR\"}";
    d.wait_metrics("TGI baseline", |m| value(m, tgi_value) == Some(0.0));
    *tgi_body.lock().unwrap() = tgi(762, 3623, 111);
    d.wait_metrics("520 booked from TGI", |m| {
        value(m, tgi_value) == Some(520.0)
    });
    // The server restarts (new start time, counters from 0): its new counts
    // are the delta, never a negative one: 4 + 12 + 10 = 26.
    *body.lock().unwrap() = vllm(&capture, 1.1e9, 4.0, 6.0, 1.0);
    let m = d.wait_metrics("96 booked", |m| value(m, chat) == Some(96.0));
    let tok = |dir: &str| {
        value(
            &m,
            &format!(
                "roimon_tokens_total{{team=\"search\",workload=\"chat\",model=\"facebook/opt-125m\",direction=\"{dir}\"}}"
            ),
        )
    };
    assert_eq!((tok("input"), tok("output")), (Some(14.0), Some(26.0)));
    assert_eq!(
        value(
            &m,
            "roimon_requests_total{team=\"search\",workload=\"chat\",model=\"facebook/opt-125m\"}"
        ),
        Some(3.0)
    );

    // Pushes: the token is required.
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let line = format!("roimon_value,team=ads,workload=bid amount=12.5 {now_ns}\n");
    assert_eq!(
        http_post(&d.addr, "/api/v2/write", &[], line.as_bytes()).0,
        401
    );
    let auth = [("Authorization", "Token s3cret")];
    assert_eq!(
        http_post(
            &d.addr,
            "/api/v2/write?org=x&bucket=y",
            &auth,
            line.as_bytes()
        )
        .0,
        204
    );
    // A client's retry of the same point counts once.
    assert_eq!(
        http_post(&d.addr, "/api/v2/write", &auth, line.as_bytes()).0,
        204
    );
    // A batch with a bad second line writes nothing and names the line.
    let bad = format!(
        "roimon_value,team=ads,workload=bid amount=100 {now_ns}\nroimon_value,team=ads amount=-3 {now_ns}\n"
    );
    let (status, why) = http_post(&d.addr, "/api/v2/write", &auth, bad.as_bytes());
    assert_eq!(status, 400, "{why}");
    let why: serde_json::Value = serde_json::from_str(&why).unwrap();
    assert_eq!(why["line"], 2, "{why}");
    // Seconds precision, and a score.
    let kpi = format!(
        "roimon_kpi,team=ads,workload=bid precision=0.9 {}\n",
        now_ns / 1_000_000_000
    );
    assert_eq!(
        http_post(&d.addr, "/api/v2/write?precision=s", &auth, kpi.as_bytes()).0,
        204
    );

    let pushed =
        "roimon_value_total{team=\"ads\",workload=\"bid\",source=\"push\",currency=\"EUR\"}";
    // New series first show 0 (so increase() sees their start), then 12.5.
    let m = d.wait_metrics("pushed value", |m| value(m, pushed) == Some(12.5));
    assert_eq!(
        value(&m, "roimon_push_points_total{result=\"duplicate\"}"),
        Some(1.0)
    );

    // The windows hold all of it; ROI is (V − M)/M of the same window.
    let wv = value(&m, "roimon_window_value{window=\"5m\",currency=\"EUR\"}").unwrap();
    let wc = value(&m, "roimon_window_cost{window=\"5m\",currency=\"EUR\"}").unwrap();
    assert_eq!(wv, 108.5 + 520.0);
    assert!(wc > 0.0);
    let roi = value(&m, "roimon_roi_ratio{window=\"5m\"}").unwrap();
    assert!(
        (roi - (wv - wc) / wc).abs() < 1e-9 * roi.abs().max(1.0),
        "{roi} vs {wv} {wc}"
    );
    assert!(value(&m, "roimon_weighted_efficiency{window=\"5m\"}").is_some());
    // ads/bid has no cost on this node: its pushed 0.9 is its own score and
    // not the node's (P is 0.8, the score of the node's own owner), and it
    // has no weighted efficiency of its own.
    assert!(
        !m.contains("roimon_owner_weighted_efficiency{window=\"5m\",team=\"ads\""),
        "{m}"
    );
    let (_, summary) = d.get("/api/v1/summary");
    let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(s["scores"]["precision"], 0.8);
    // Weighted efficiency is per hour of the window: P / (C / hours).
    let five = s["roi"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "5m")
        .unwrap();
    let (eff, c, span) = (
        five["weighted_efficiency"].as_f64().unwrap(),
        five["weighted_cost"].as_f64().unwrap(),
        five["span_secs"].as_f64().unwrap(),
    );
    let want = 0.8 / (c / (span / 3600.0));
    assert!((eff - want).abs() < 1e-9 * eff, "{eff} vs {want}");
    // Each window carries its owners; the status page shows ROI by window
    // and value and cost per owner over the last day.
    let day = s["roi"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "1h")
        .unwrap();
    let search = day["owners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["team"] == "search")
        .unwrap();
    assert_eq!(search["value"], 96.0);
    let (status, page) = d.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("ROI by window") && page.contains("ROI 24 h"),
        "{page}"
    );
    assert_eq!(s["value"]["total"], 628.5);
    promtool_check_metrics(&m);

    // A restart resumes value and the target's counters: nothing counted
    // twice, nothing lost.
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
    *body.lock().unwrap() = vllm(&capture, 1.1e9, 5.0, 6.0, 1.0);
    let d = Daemon::start_env(&path, &[], &[("ROIMON_TEST_PUSH_TOKEN", "s3cret")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = d.metrics();
        if value(&m, chat) == Some(97.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "one more prompt token after the restart:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A client retries its batch after roimon restarted: the dedup window
    // was kept with the counters, so it counts once.
    assert_eq!(
        http_post(&d.addr, "/api/v2/write", &auth, line.as_bytes()).0,
        204
    );
    let m = d.wait_metrics("the retry seen", |m| {
        value(m, "roimon_push_points_total{result=\"duplicate\"}") == Some(1.0)
    });
    assert_eq!(value(&m, pushed), Some(12.5));
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
}

/// InfluxData's own Python client (`influxdb-client` from PyPI, installed
/// by `.ci/run`) writes to roimon as it would to InfluxDB: token auth, gzip,
/// its precision parameter.
#[test]
fn the_influxdb_python_client_pushes_value() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import influxdb_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var("CI").is_err(),
            "python3 with influxdb-client is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIP: python3 -m pip install influxdb-client to run this test");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[gpu]\nsource = \"none\"\n[host]\npower = \"model\"\nrapl_root = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[state]\ndir = \"{}\"\ncheckpoint_interval_secs = 0.3\n[push]\ntoken_env = \"ROIMON_TEST_PUSH_TOKEN\"\nallow_unknown_owners = true\nallow_new_kpis = true\n[roi]\nbenefit_weights = {{ satisfaction = 1.0 }}\n",
        tmp.path().join("none").display(),
        tmp.path().join("state").display()
    );
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let d = Daemon::start_env(&path, &[], &[("ROIMON_TEST_PUSH_TOKEN", "py-token")]);
    let script = r#"
import sys, time
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
url, token = sys.argv[1], sys.argv[2]
with InfluxDBClient(url=url, token=token, org="o", enable_gzip=True) as c:
    w = c.write_api(write_options=SYNCHRONOUS)
    now = int(time.time())
    w.write(bucket="b", record=Point("roimon_value").tag("team", "ads").tag("workload", "bid").field("amount", 7.25).time(now, WritePrecision.S))
    w.write(bucket="b", record="roimon_kpi,team=ads,workload=bid satisfaction=0.8 %d" % (now * 1000), write_precision=WritePrecision.MS)
    # The same point again (a retry): counted once.
    w.write(bucket="b", record=Point("roimon_value").tag("team", "ads").tag("workload", "bid").field("amount", 7.25).time(now, WritePrecision.S))
    try:
        InfluxDBClient(url=url, token="wrong", org="o").write_api(write_options=SYNCHRONOUS).write(bucket="b", record="roimon_value,team=x amount=1")
        print("no 401")
        sys.exit(1)
    except Exception as e:
        assert "401" in str(e), e
print("ok")
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(format!("http://{}", d.addr))
        .arg("py-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let series =
        "roimon_value_total{team=\"ads\",workload=\"bid\",source=\"push\",currency=\"EUR\"}";
    d.wait_metrics("7.25 pushed once", |m| value(m, series) == Some(7.25));
    let (_, summary) = d.get("/api/v1/summary");
    let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
    // The score is ads/bid's own: it shows as that owner's benefit score,
    // and not as the node's (ads/bid has no cost on this node).
    let hour = s["roi"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "1h")
        .unwrap();
    let ads = hour["owners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["team"] == "ads")
        .unwrap();
    assert_eq!(ads["benefit_score"], 0.8, "{ads}");
    assert_eq!(s["scores"]["satisfaction"], serde_json::Value::Null);
    let (st, _) = d.stop("TERM");
    assert_eq!(st.code(), Some(0));
}
