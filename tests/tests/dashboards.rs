//! Every shipped Grafana dashboard against real data: two roimon nodes (with
//! value pushed and scraped from an inference server, a carbon intensity and
//! owners) scraped by a real Prometheus with the shipped rules; every panel
//! query, with Grafana's variables filled in as Grafana would, must return
//! data, or be listed here with the reason it cannot in this setup.

use roimon_system_tests::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A vLLM-like /metrics whose counters grow on every request.
fn inference_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let n = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let i = n.fetch_add(1, Ordering::Relaxed) + 1;
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = format!(
                "# TYPE vllm:prompt_tokens_total counter\n\
                 vllm:prompt_tokens_total{{model_name=\"llama\"}} {}\n\
                 # TYPE vllm:generation_tokens_total counter\n\
                 vllm:generation_tokens_total{{model_name=\"llama\"}} {}\n\
                 # TYPE vllm:request_success_total counter\n\
                 vllm:request_success_total{{model_name=\"llama\",finished_reason=\"stop\"}} {}\n",
                i * 1000,
                i * 400,
                i * 3
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// Every PromQL expression of a dashboard, with its panel's title.
fn panel_queries(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Fill Grafana's variables in as Grafana would for "All" of everything and
/// a short time range with a 1 s scrape.
fn fill(expr: &str, vars: &[String]) -> String {
    let mut e = expr
        .replace("$__rate_interval", "10s")
        .replace("${__rate_interval}", "10s")
        .replace("$__interval", "5s")
        .replace("${__interval}", "5s")
        .replace("$__range_s", "120")
        .replace("$__range", "2m")
        .replace("${__range}", "2m");
    // Longest names first, so `$team` does not eat `$teams`.
    let mut vars = vars.to_vec();
    vars.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in &vars {
        for form in [format!("${{{v}}}"), format!("${v}")] {
            e = e
                .replace(&format!("=~\"{form}\""), "=~\".*\"")
                .replace(&format!("=\"{form}\""), "=~\".*\"")
                .replace(&format!("!=\"{form}\""), "!~\"^$\"");
        }
    }
    e
}

#[test]
fn every_dashboard_panel_returns_data() {
    let tmp = tempfile::tempdir().unwrap();
    let server = inference_server();
    // The InfluxDB stream writes to a real VictoriaMetrics.
    let vm = Vm::start(&tmp.path().join("vm"));
    let extra = format!(
        r#"
[carbon]
source = "static"
grams_per_kwh = 350.0
price_per_tonne = 80.0

[[value.scrape]]
url = "http://{server}/metrics"
kind = "vllm"
team = "search"
workload = "chat"
interval_secs = 1
input_per_million_tokens = 0.5
output_per_million_tokens = 1.5
per_request = 0.001

[influxdb]
url = "{influx}"
org = "roimon"
bucket = "roimon"
interval_secs = 1

[roi]
windows = ["1m", "5m", "1h", "24h"]

[[budget]]
team = "search"
monthly = 12000.0

[[budget]]
team = "ads"
workload = "rank"
monthly = 0.01

[push]
allowed_owners = ["ads/rank", "vision/batch"]

[[value.kpis]]
name = "precision"
value = 0.9
team = "search"
workload = "chat"
"#,
        influx = vm.url()
    );
    let (a, b, prom, _rules) = two_clusters(tmp.path(), &extra);
    for (n, amount) in [(&a, 40.0), (&b, 30.0)] {
        for (team, wl) in [("ads", "rank"), ("vision", "batch")] {
            let line = format!(
                "roimon_value,team={team},workload={wl} amount={amount} {}\n",
                now_ns()
            );
            let (st, body) = http(&n.addr, "POST", "/api/v2/write", &[], line.as_bytes());
            assert_eq!(st, 204, "{body}");
        }
    }
    // Enough samples for rates over 10 s and rules over the data there is.
    wait_for(
        "tokens in Prometheus",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || (!prom.query("rate(roimon_tokens_total[10s]) > 0").is_empty()).then_some(()),
    );
    // The trailing ROI baseline starts once the shortest window (1m) has
    // covered its own length.
    wait_for(
        "an ROI baseline",
        Duration::from_secs(150),
        Duration::from_secs(2),
        || (!prom.query("roimon_roi_baseline_ratio").is_empty()).then_some(()),
    );
    // The owners' baseline reaches the dashboards through a recording rule
    // that sums the daemons' gauges: one rule evaluation later.
    wait_for(
        "an owner ROI baseline recorded",
        Duration::from_secs(60),
        Duration::from_secs(2),
        || {
            (!prom
                .query("team_workload:roimon_owner_roi_baseline:ratio")
                .is_empty())
            .then_some(())
        },
    );

    // Panels that cannot have data in this setup, and why.
    let cannot: &[(&str, &str)] = &[
        (
            "Price known until (hours ahead)",
            "a static price has no schedule end",
        ),
        (
            "Collectors down (nodes)",
            "lists the collectors that are down: none in a healthy fleet (the panel shows its no-data text)",
        ),
        (
            "Price and carbon fetch failures (per hour)",
            "no fetched feed: nothing to fail",
        ),
        (
            "Owners whose value is not measured",
            "lists owners whose value is not measured: every owner's is here (the panel shows its no-data text)",
        ),
    ];

    let dir = repo_root().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut empty = Vec::new();
    let mut checked = 0;
    for f in &files {
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let vars: Vec<String> = dash["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect();
        for (title, expr) in panel_queries(&dash) {
            if cannot.iter().any(|(t, _)| *t == title) {
                continue;
            }
            let q = fill(&expr, &vars);
            checked += 1;
            if prom.query(&q).is_empty() {
                empty.push(format!(
                    "{}: {title}: {q}",
                    f.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(checked > 20, "only {checked} panel queries found");
    assert!(
        empty.is_empty(),
        "{} panel queries returned no data:\n{}",
        empty.len(),
        empty.join("\n")
    );
    assert!(a.stop());
    assert!(b.stop());
}
