//! Two roimon nodes in two clusters, scraped by a real Prometheus with the
//! shipped recording rules and alerts loaded: both targets are up, every
//! node's attributed cost adds up to its total inside Prometheus, every
//! recording rule yields series, and an ROI alert fires for the team whose
//! pushed value is below its cost (and not for the team whose value is
//! above it).

use roimon_system_tests::*;
use std::time::Duration;

/// The same budgets on every node (the fleet rules take the max of the
/// monthly figure across nodes and sum the spend).
const BUDGETS: &str = r#"
[[budget]]
team = "search"
monthly = 12000.0

[[budget]]
team = "ads"
workload = "rank"
monthly = 0.01
"#;

fn push(node: &Node, line: &str) {
    let (status, body) = http(&node.addr, "POST", "/api/v2/write", &[], line.as_bytes());
    assert_eq!(status, 204, "push {line}: {body}");
}

/// Every `record:` name in the rule files.
fn recorded_names(files: &[std::path::PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        for l in std::fs::read_to_string(f).unwrap().lines() {
            if let Some(r) = l.trim_start().strip_prefix("- record:") {
                out.push(r.trim().to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn two_nodes_rules_and_an_roi_alert_driven_by_pushed_value() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, prom, rules) = two_clusters(tmp.path(), BUDGETS);

    // Value: search earns far more than its GPUs cost, ads almost nothing,
    // vision a lot. Pushed once the targets are scraped, so every value
    // series starts at 0 in Prometheus.
    let t = now_ns();
    push(
        &a,
        &format!("roimon_value,team=search,workload=chat amount=5000 {t}\n"),
    );
    push(
        &a,
        &format!("roimon_value,team=ads,workload=rank amount=0.000001 {t}\n"),
    );
    push(
        &b,
        &format!("roimon_value,team=search,workload=chat amount=4000 {t}\n"),
    );
    push(
        &b,
        &format!("roimon_value,team=vision,workload=batch amount=3000 {t}\n"),
    );

    // Inside Prometheus, per node and scrape, the attributed rows add up to
    // the node's cost.
    wait_for(
        "cost rows scraped from both nodes",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let r = prom.query("sum by (instance) (roimon_gpu_cost_total) > 0");
            (r.len() == 2).then_some(())
        },
    );
    let diff = prom.query(
        "abs(sum by (instance) (roimon_gpu_cost_total) - sum by (instance) (roimon_cost_total)) \
         / sum by (instance) (roimon_cost_total)",
    );
    assert_eq!(diff.len(), 2, "{diff:?}");
    for d in &diff {
        let v: f64 = d["value"][1].as_str().unwrap().parse().unwrap();
        assert!(v < 1e-9, "rows do not add up to the node total: {d}");
    }
    // The cluster label travels with every series.
    let clusters = prom.query("count by (cluster) (roimon_cost_total)");
    assert_eq!(clusters.len(), 2, "{clusters:?}");

    // The ROI alert: fires for ads (value below cost), never for search or
    // vision.
    let fired = wait_for(
        "an ROI alert for team ads",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || {
            let f = prom.firing();
            f.iter()
                .any(|a| {
                    a["labels"]["alertname"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("RoimonRoi"))
                        && a["labels"]["team"] == "ads"
                })
                .then_some(f)
        },
    );
    for a in &fired {
        let name = a["labels"]["alertname"].as_str().unwrap_or("");
        if name.starts_with("RoimonRoi") {
            assert_eq!(a["labels"]["team"], "ads", "unexpected ROI alert: {a}");
        }
    }

    // Every recording rule yields series with two nodes, owners and value.
    // Rules that need a feature these nodes do not run are named here with
    // the reason.
    let needs_feature: &[(&str, &str)] = &[
        (
            "team_workload:roimon_tokens:increase1h",
            "no inference server scraped: no tokens",
        ),
        (
            "team_workload:roimon_cost_per_million_tokens:ratio1h",
            "no tokens",
        ),
        ("instance:roimon_tokens:increase1h", "no tokens"),
        (
            "instance:roimon_cost_per_million_tokens:ratio1h",
            "no tokens",
        ),
        ("instance:roimon_tokens_per_joule:ratio1h", "no tokens"),
        (
            "team_workload:roimon_owner_roi_baseline:ratio",
            "a baseline starts once a window covers its own length (5 min at least)",
        ),
        (
            "team_workload:roimon_owner_roi_baseline_span_seconds:min",
            "no baseline yet",
        ),
        (
            "instance_team_workload:roimon_value_not_measured:max",
            "every owner's value is measured (pushed) here",
        ),
    ];
    let names = recorded_names(&rules);
    assert!(names.len() >= 10, "{names:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let empty: Vec<&String> = names
            .iter()
            .filter(|n| !needs_feature.iter().any(|(f, _)| f == n))
            .filter(|n| prom.query(n).is_empty())
            .collect();
        if empty.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "recording rules without series after 30 s: {empty:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // Fleet ROI over 1h is positive (search and vision carry it).
    let fleet = prom.scalar(":roimon_roi:ratio1h").expect("fleet ROI");
    assert!(fleet > 0.0, "fleet ROI {fleet}\n{}", prom.log());

    assert!(a.stop());
    assert!(b.stop());
}
