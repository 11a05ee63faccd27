//! A fleet simulation: many roimon instances with simulated GPUs (labelled
//! as such) scraped by one Prometheus with the shipped rules. Checks that
//! every target is up and that the fleet aggregation equals the sum of the
//! nodes, and prints what the fleet costs to run (CPU and memory of the
//! daemons and of Prometheus) for BENCHMARKS.md.
//!
//! `ROIMON_FLEET_NODES` (default 50) and `ROIMON_FLEET_SECS` (default 20)
//! size the run, `ROIMON_BIN` picks the binary (a release build for the
//! figures); `cargo nextest run -p roimon-system-tests --test fleet
//! --no-capture` shows the figures.
// Test scenarios read top to bottom: a long test is one story, not split.
#![allow(clippy::too_many_lines)]

use roimon_system_tests::*;
use std::time::{Duration, Instant};

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn fleet_of_simulated_nodes_scraped_by_one_prometheus() {
    let nodes_n = env_or("ROIMON_FLEET_NODES", 50) as usize;
    let secs = env_or("ROIMON_FLEET_SECS", 20);
    let gpus = 4;
    let tmp = tempfile::tempdir().unwrap();
    let teams = ["search", "ads", "vision", "speech"];
    let mut nodes = Vec::new();
    for i in 0..nodes_n {
        let dir = tmp.path().join(format!("node{i:03}"));
        let owners: Vec<(&str, &str)> = (0..gpus)
            .map(|g| (teams[(i + g) % teams.len()], "serve"))
            .collect();
        let mut cfg = node_config(&dir.join("state"), &owners, "");
        cfg = cfg.replace("interval_secs = 0.5", "interval_secs = 1.0");
        cfg = cfg.replace(
            "checkpoint_interval_secs = 1.0",
            "checkpoint_interval_secs = 5.0",
        );
        nodes.push(Node::start(&dir, &cfg, &[]));
    }
    let clusters: Vec<String> = (0..nodes_n).map(|i| format!("c{}", i % 5)).collect();
    let targets: Vec<Target<'_>> = nodes
        .iter()
        .zip(&clusters)
        .map(|(n, c)| Target {
            addr: &n.addr,
            labels: std::slice::from_ref(Box::leak(Box::new(("cluster", c.as_str())))),
        })
        .collect();
    let rules = shipped_rules(&tmp.path().join("rules"), "1s");
    let prom = Prometheus::start(&tmp.path().join("prom"), &targets, &rules);
    wait_for(
        "every node up",
        Duration::from_secs(120),
        Duration::from_secs(1),
        || (prom.scalar("sum(up{job=\"roimon\"})") == Some(nodes_n as f64)).then_some(()),
    );

    // Measure over a steady span.
    let pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
    let before: Vec<f64> = pids.iter().map(|p| proc_usage(*p).unwrap().0).collect();
    let prom_before = proc_usage(prom.child.id()).unwrap().0;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let span = t0.elapsed().as_secs_f64();
    let after: Vec<(f64, u64, u64)> = pids.iter().map(|p| proc_usage(*p).unwrap()).collect();
    let prom_after = proc_usage(prom.child.id()).unwrap();

    // The fleet aggregate equals the sum of the nodes (computed two ways in
    // Prometheus on the same evaluation), and covers every node.
    // One evaluation time for the comparisons, a little in the past so
    // every target's sample at it is in.
    let at = Some(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            - 3.0,
    );
    let per_node = prom.query("count by (instance) (roimon_cost_total)");
    assert_eq!(per_node.len(), nodes_n, "every node's cost is scraped");
    let by_cluster = prom.query_at("sum by (cluster) (rate(roimon_cost_total[30s]))", at);
    assert_eq!(by_cluster.len(), 5, "{by_cluster:?}");
    let fleet = prom
        .scalar_at("sum(rate(roimon_cost_total[30s]))", at)
        .expect("fleet cost rate");
    let clusters_sum: f64 = by_cluster
        .iter()
        .map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(fleet > 0.0);
    assert!(
        ((fleet - clusters_sum) / fleet).abs() < 1e-9,
        "fleet {fleet} vs Σclusters {clusters_sum}"
    );
    let rows_vs_node = prom
        .scalar_at(
            "max(abs(sum by (instance) (roimon_gpu_cost_total) - sum by (instance) (roimon_cost_total)) \
             / sum by (instance) (roimon_cost_total))",
            at,
        )
        .expect("rows vs node");
    assert!(
        rows_vs_node < 1e-9,
        "rows do not add up on some node: {rows_vs_node}"
    );

    // The shipped fleet rules: the GPU count per cluster covers the fleet,
    // and the per-cluster owner cost rate equals, at the rule's own
    // evaluation time, the same sum over the raw series; summed over owners
    // it is the fleet's node cost rate (rows add up across 50 nodes).
    let gpus_counted = prom
        .scalar("sum(cluster:roimon_gpus:count)")
        .expect("cluster:roimon_gpus:count");
    assert_eq!(gpus_counted, (nodes_n * gpus) as f64);
    let rule = "cluster_team_workload:roimon_gpu_cost:rate5m";
    let t = wait_for(
        "the owner cost rule over every cluster",
        Duration::from_secs(30),
        Duration::from_secs(1),
        || {
            let r = prom.query(&format!("max(timestamp({rule}))"));
            let t: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
            (prom
                .query_at(&format!("count by (cluster) ({rule})"), Some(t))
                .len()
                == 5)
                .then_some(t)
        },
    );
    let recorded = prom.query_at(rule, Some(t));
    let raw = prom.query_at(
        "sum by (cluster, team, workload, currency) (rate(roimon_gpu_cost_total[5m]))",
        Some(t),
    );
    assert_eq!(recorded.len(), raw.len(), "{recorded:?} vs {raw:?}");
    let key = |s: &serde_json::Value| {
        let m = &s["metric"];
        format!("{}/{}/{}", m["cluster"], m["team"], m["workload"])
    };
    let val = |s: &serde_json::Value| s["value"][1].as_str().unwrap().parse::<f64>().unwrap();
    // The rule saw the samples ingested by its evaluation; a scrape that
    // started just before and landed just after adds one sample to the raw
    // query at the same time (one of ~300 in 5 minutes): equal to 2 %. (The
    // rules' arithmetic is checked exactly by the promtool unit tests.)
    for r in &recorded {
        let w = raw.iter().find(|x| key(x) == key(r)).expect("same series");
        assert!(
            ((val(r) - val(w)) / val(w)).abs() < 0.02,
            "{}: rule {} vs raw {}",
            key(r),
            val(r),
            val(w)
        );
    }
    // Σ owners = Σ nodes over the same samples (the raw sums at one time).
    let owners_sum: f64 = raw.iter().map(val).sum();
    let node_sum = prom
        .scalar_at("sum(rate(roimon_cost_total[5m]))", Some(t))
        .expect("node cost rate");
    assert!(
        ((owners_sum - node_sum) / node_sum).abs() < 1e-9,
        "Σ owners {owners_sum} vs Σ nodes {node_sum}"
    );

    let head_series = prom.head_series().unwrap_or(f64::NAN);
    let scraped = prom
        .scalar("avg(scrape_samples_scraped{job=\"roimon\"})")
        .unwrap_or(f64::NAN);
    let scrape_ms = prom
        .scalar("avg(scrape_duration_seconds{job=\"roimon\"}) * 1000")
        .unwrap_or(f64::NAN);

    let cpu: Vec<f64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| (a.0 - b) / span)
        .collect();
    let rss: Vec<f64> = after.iter().map(|a| a.1 as f64 / 1048576.0).collect();
    let hwm: Vec<f64> = after.iter().map(|a| a.2 as f64 / 1048576.0).collect();
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max);
    println!(
        "fleet simulation: {nodes_n} roimon nodes × {gpus} simulated GPUs, 1 s sampling, scraped every 1 s, {span:.0} s measured"
    );
    println!(
        "  roimon CPU per node: avg {:.4} cores, max {:.4}",
        avg(&cpu),
        max(&cpu)
    );
    println!(
        "  roimon RSS per node: avg {:.1} MiB, max {:.1} MiB (peak {:.1} MiB)",
        avg(&rss),
        max(&rss),
        max(&hwm)
    );
    println!("  samples per scrape: {scraped:.0}; scrape duration avg {scrape_ms:.2} ms");
    println!(
        "  prometheus: CPU {:.3} cores, RSS {:.1} MiB, head series {head_series:.0}",
        (prom_after.0 - prom_before) / span,
        prom_after.1 as f64 / 1048576.0
    );
    for n in nodes {
        assert!(n.stop(), "a node did not stop cleanly");
    }
}
