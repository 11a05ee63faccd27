//! Push load against one node: pushers sending 200-point batches back to
//! back and scrapers reading `/metrics` back to back must not stop the
//! sampler (its unaccounted time stays small), every acknowledged point is
//! booked exactly once (value sums stay exact), and memory stays bounded.
//! Prints the figures for BENCHMARKS.md.
//!
//! `ROIMON_LOAD_SECS` (default 20), `ROIMON_LOAD_PUSHERS` (4) and
//! `ROIMON_LOAD_SCRAPERS` (16) size the run; `ROIMON_BIN` picks the binary
//! (a release build for the figures); `cargo nextest run -p
//! roimon-system-tests --test push_load --no-capture` shows them.

use roimon_system_tests::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn pushers_and_scrapers_never_stop_the_sampler() {
    let secs = env_or("ROIMON_LOAD_SECS", 20);
    let pushers = env_or("ROIMON_LOAD_PUSHERS", 4) as usize;
    let scrapers = env_or("ROIMON_LOAD_SCRAPERS", 16) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let owners = [("search", "chat"), ("ads", "rank")];
    let cfg = node_config(&tmp.path().join("state"), &owners, "");
    let node = Node::start(&tmp.path().join("n"), &cfg, &[]);
    let pid = node.child.id();
    let unaccounted = |m: &str| -> f64 { sum(m, "roimon_unaccounted_seconds_total") };
    let u0 = unaccounted(&node.metrics());

    let stop = Arc::new(AtomicBool::new(false));
    // Each pusher's points are unique (its index and a sequence number in
    // the amount's timestamp), so every acknowledged point must be booked.
    let acked_cents = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for p in 0..pushers {
        let (addr, stop) = (node.addr.clone(), stop.clone());
        let (acked_cents, batches, refused) =
            (acked_cents.clone(), batches.clone(), refused.clone());
        handles.push(std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut seq: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = now_ns() as i64;
                let mut body = String::new();
                let mut cents = 0u64;
                for i in 0..200 {
                    seq += 1;
                    let (team, wl) = owners[i % 2];
                    let c = 1 + (seq as u64 % 7);
                    cents += c;
                    body.push_str(&format!(
                        "roimon_value,team={team},workload={wl},pusher=p{p} amount={}.{:02} {}\n",
                        c / 100,
                        c % 100,
                        t - seq
                    ));
                }
                let t0 = Instant::now();
                let (st, _) = http(&addr, "POST", "/api/v2/write", &[], body.as_bytes());
                match st {
                    204 => {
                        lat.push(t0.elapsed().as_secs_f64());
                        acked_cents.fetch_add(cents, Ordering::Relaxed);
                        batches.fetch_add(1, Ordering::Relaxed);
                    }
                    429 | 503 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    other => panic!("push answered {other}"),
                }
            }
            lat
        }));
    }
    let scrapes = Arc::new(AtomicU64::new(0));
    let mut scrapers_h = Vec::new();
    for _ in 0..scrapers {
        let (addr, stop, scrapes) = (node.addr.clone(), stop.clone(), scrapes.clone());
        scrapers_h.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (st, _) = http(&addr, "GET", "/metrics", &[], b"");
                assert_eq!(st, 200);
                scrapes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let t0 = Instant::now();
    let mut peak_kib = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(250));
        peak_kib = peak_kib.max(status_kib(pid, "VmHWM:"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<f64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    for h in scrapers_h {
        h.join().unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    peak_kib = peak_kib.max(status_kib(pid, "VmHWM:"));

    // Every acknowledged point is on show once the counters are published.
    let want = acked_cents.load(Ordering::Relaxed) as f64 / 100.0;
    let m = node.wait_metrics("every acknowledged point booked", |m| {
        (sum(m, "roimon_value_total") - want).abs() <= 1e-6 * want.max(1.0)
    });
    let grew = unaccounted(&m) - u0;
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    let n = batches.load(Ordering::Relaxed);
    println!(
        "push load, {secs} s, {pushers} pushers x 200-point batches, {scrapers} scrapers: \
         {n} batches acknowledged ({:.1} batches/s, {:.0} points/s), {} answered 429/503, \
         ack latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms, {} scrapes ({:.0}/s), \
         unaccounted {:.2} s over {} GPUs, peak RSS {:.1} MiB, value booked {want:.2} = acknowledged",
        n as f64 / elapsed,
        n as f64 * 200.0 / elapsed,
        refused.load(Ordering::Relaxed),
        q(0.5) * 1e3,
        q(0.99) * 1e3,
        q(1.0) * 1e3,
        scrapes.load(Ordering::Relaxed),
        scrapes.load(Ordering::Relaxed) as f64 / elapsed,
        grew,
        owners.len(),
        peak_kib as f64 / 1024.0,
    );
    assert!(n > 0, "no batch was acknowledged");
    assert!(
        grew < 2.0 * owners.len() as f64,
        "the sampler was held: {grew} s unaccounted"
    );
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB is over 64 MiB"
    );
    assert!(node.stop(), "roimon did not stop cleanly");
}
