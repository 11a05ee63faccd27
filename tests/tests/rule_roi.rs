//! The shipped ROI recording rules against the daemon they read: a real
//! Prometheus scrapes a roimon node whose owners earn steadily from two
//! inference servers, and the rules' owner and node ROI for every window must
//! equal the daemon's own (`/api/v1/summary`, per owner and window) within
//! 1 % at any moment, including right after Prometheus restarts. The rules
//! read the daemon's window gauges, so neither the restart nor the history
//! Prometheus holds can move them.

use roimon_system_tests::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A vLLM-like /metrics whose generated tokens grow by `per_sec` every
/// second of wall time since it started: value flows at a steady rate, so an
/// owner's ROI is the same over any window and any moment.
fn inference_server(per_sec: f64) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let tokens = (t0.elapsed().as_secs_f64() * per_sec).floor();
            let body = format!(
                "# TYPE vllm:prompt_tokens_total counter\n\
                 vllm:prompt_tokens_total{{model_name=\"llama\"}} 0\n\
                 # TYPE vllm:generation_tokens_total counter\n\
                 vllm:generation_tokens_total{{model_name=\"llama\"}} {tokens}\n\
                 # TYPE vllm:request_success_total counter\n\
                 vllm:request_success_total{{model_name=\"llama\",finished_reason=\"stop\"}} 0\n"
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

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The daemon's ROI per (window, team/workload or "" for the node), read
/// from its summary at a moment (Unix seconds).
type DaemonRois = (f64, Vec<(String, String, f64)>);

fn daemon_rois(node: &Node) -> DaemonRois {
    let (status, body) = node.get("/api/v1/summary");
    assert_eq!(status, 200, "{body}");
    let at = unix_now();
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = Vec::new();
    for w in s["roi"]["windows"].as_array().unwrap() {
        let window = w["window"].as_str().unwrap().to_string();
        if let Some(r) = w["roi"].as_f64() {
            out.push((window.clone(), String::new(), r));
        }
        for o in w["owners"].as_array().unwrap() {
            if let Some(r) = o["roi"].as_f64() {
                let who = format!(
                    "{}/{}",
                    o["team"].as_str().unwrap(),
                    o["workload"].as_str().unwrap()
                );
                out.push((window.clone(), who, r));
            }
        }
    }
    (at, out)
}

/// The rules' ROI per (window, owner or "" for the node) with the time of
/// the scrape each rests on (the window gauges' sample time).
fn rule_rois(prom: &Prometheus) -> Vec<(String, String, f64, f64)> {
    let mut out = Vec::new();
    let owners = prom.query("team_workload:roimon_owner_roi:ratio");
    let stamps =
        prom.query("max by (window, team, workload) (timestamp(roimon_owner_window_cost))");
    for r in owners {
        let m = &r["metric"];
        let who = format!(
            "{}/{}",
            m["team"].as_str().unwrap(),
            m["workload"].as_str().unwrap()
        );
        let window = m["window"].as_str().unwrap().to_string();
        let at = stamps
            .iter()
            .find(|s| {
                let l = &s["metric"];
                l["window"] == m["window"]
                    && l["team"] == m["team"]
                    && l["workload"] == m["workload"]
            })
            .and_then(|s| s["value"][1].as_str()?.parse().ok())
            .unwrap_or(0.0);
        let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        out.push((window, who, v, at));
    }
    // The node's 1h ROI, from the node rules.
    if let Some(v) = prom.scalar("instance:roimon_roi:ratio1h") {
        let at = prom
            .scalar("timestamp(roimon_window_cost{window=\"1h\"})")
            .unwrap_or(0.0);
        out.push(("1h".into(), String::new(), v, at));
    }
    out
}

/// Every rule ROI equals the daemon's, as the daemon had it when
/// Prometheus scraped it (the summaries read within 2 s of that scrape),
/// within 1 %. Returns how many figures were compared.
fn compare(rules: &[(String, String, f64, f64)], daemon: &[DaemonRois], when: &str) -> usize {
    let mut n = 0;
    for (window, who, rule, at) in rules {
        let near: Vec<f64> = daemon
            .iter()
            .filter(|(t, _)| (t - at).abs() <= 2.0)
            .flat_map(|(_, rs)| rs.iter())
            .filter(|(w, o, _)| w == window && o == who)
            .map(|(_, _, r)| *r)
            .collect();
        assert!(
            !near.is_empty(),
            "{when}: no daemon ROI for {window} {who:?} near the scrape at {at}"
        );
        let ok = near
            .iter()
            .any(|d| (rule - d).abs() <= 0.01 * d.abs().max(rule.abs()).max(0.01));
        assert!(
            ok,
            "{when}: the rule's {window} ROI of {who:?} is {rule}, the daemon's {near:?}"
        );
        n += 1;
    }
    n
}

/// Read the daemon's summaries for `secs` (4 a second), then the rules,
/// then summaries for 2 s more, and compare.
fn check(node: &Node, prom: &Prometheus, when: &str) -> usize {
    let mut daemon = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        daemon.push(daemon_rois(node));
        std::thread::sleep(Duration::from_millis(250));
    }
    let rules = rule_rois(prom);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        daemon.push(daemon_rois(node));
        std::thread::sleep(Duration::from_millis(250));
    }
    compare(&rules, &daemon, when)
}

#[test]
fn rule_roi_equals_the_daemon_roi_even_right_after_a_prometheus_restart() {
    let tmp = tempfile::tempdir().unwrap();
    // search/chat earns 2.0 per million generated tokens at 1e6 tokens/s
    // (2.0 a second), ads/rank 0.25; each GPU costs about 0.5 a second
    // (staff cost shared equally, energy a little): ROI about +3 and -0.5.
    let search = inference_server(1e6);
    let ads = inference_server(1e6);
    let extra = format!(
        r#"
[costs]
share_key = "equal"
staff_per_month = 2629800.0

[roi]
windows = ["5m", "1h"]

[[value.scrape]]
url = "http://{search}/metrics"
kind = "vllm"
team = "search"
workload = "chat"
interval_secs = 1
output_per_million_tokens = 2.0

[[value.scrape]]
url = "http://{ads}/metrics"
kind = "vllm"
team = "ads"
workload = "rank"
interval_secs = 1
output_per_million_tokens = 0.25
"#
    );
    let node = Node::start(
        &tmp.path().join("node"),
        &node_config(
            &tmp.path().join("node/state"),
            &[("search", "chat"), ("ads", "rank")],
            &extra,
        ),
        &[],
    );
    let rules = shipped_rules(&tmp.path().join("rules"), "1s");
    let target = [Target {
        addr: &node.addr,
        labels: &[("cluster", "east")],
    }];
    let prom_dir = tmp.path().join("prom");
    let prom = Prometheus::start(&prom_dir, &target, &rules);
    wait_for(
        "both owners' ROI in both windows, recorded",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || (prom.query("team_workload:roimon_owner_roi:ratio").len() == 4).then_some(()),
    );
    // Long enough for the windows' value to rest on many scrapes.
    std::thread::sleep(Duration::from_secs(30));
    let (_, now) = daemon_rois(&node);
    let search_roi = now
        .iter()
        .find(|(w, o, _)| w == "5m" && o == "search/chat")
        .map(|r| r.2)
        .expect("search/chat has a 5m ROI");
    assert!(search_roi > 1.0, "{now:?}");
    assert!(
        now.iter()
            .any(|(w, o, r)| w == "5m" && o == "ads/rank" && *r < 0.0),
        "{now:?}"
    );
    for i in 0..3 {
        let n = check(&node, &prom, &format!("before the restart, round {i}"));
        assert_eq!(n, 5, "owners x windows and the node's 1h");
    }

    // Prometheus restarts (killed, then started on the same data): the
    // first rule evaluations after it equal the daemon's figures already.
    drop(prom);
    let prom = Prometheus::start(&prom_dir, &target, &rules);
    let restarted = Instant::now();
    wait_for(
        "the owner ROI rules after the restart",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            // Series from before the restart linger (no stale markers
            // after a kill): only samples evaluated since count.
            let fresh = prom.query(
                "team_workload:roimon_owner_roi:ratio \
                 and (time() - timestamp(team_workload:roimon_owner_roi:ratio) < 2)",
            );
            (fresh.len() == 4).then_some(())
        },
    );
    let n = check(&node, &prom, "right after the restart");
    assert_eq!(n, 5);
    assert!(
        restarted.elapsed() < Duration::from_secs(30),
        "compared {:?} after the restart",
        restarted.elapsed()
    );
    // An ROI from increase() over what this Prometheus holds now would
    // rest on a few seconds of samples; the rules do not.
    for i in 0..2 {
        check(&node, &prom, &format!("after the restart, round {i}"));
    }
    assert!(node.stop());
}
