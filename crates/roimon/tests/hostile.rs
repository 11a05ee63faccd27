//! A hostile client must not blind the daemon: with 2,000 idle and 200
//! slowloris connections held open against a daemon started under the usual
//! 1,024-descriptor soft limit, `/metrics` keeps answering within a second,
//! checkpoints keep being written, memory stays bounded, the daemon closes
//! the hostile connections itself, and memory returns once they are gone.
// Test scenarios read top to bottom: a long test is one story, not split.
#![allow(clippy::too_many_lines)]

mod common;

use common::{Daemon, http_get, stored_checkpoint, value};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const IDLE: usize = 2_000;
const SLOWLORIS: usize = 200;
const MIB: u64 = 1024;

fn set_soft_nofile(soft: u64) {
    let l = getrlimit(Resource::Nofile);
    let soft = l.maximum.map_or(soft, |h| soft.min(h));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: l.maximum,
        },
    )
    .expect("setrlimit NOFILE");
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// GET /metrics; the body and how long it took.
fn timed_scrape(addr: &str) -> (String, Duration) {
    let t = Instant::now();
    let (status, body) = http_get(addr, "/metrics");
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    (body, took)
}

/// Whether the peer has closed this connection (EOF or reset), without
/// blocking.
fn closed_by_peer(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

fn checkpoint_stamp(state: &Path) -> (String, String) {
    stored_checkpoint(state).expect("a checkpoint in the ledger")
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .expect("connect: the daemon stopped accepting connections")
}

#[test]
fn idle_and_slowloris_connections_do_not_blind_the_daemon() {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some_and(|h| h < 8192) {
        // Raising the hard limit needs privilege (CI runs as root); where it
        // is refused, the assertion below says why the test cannot run.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.current,
                maximum: Some(8192),
            },
        );
        limit = getrlimit(Resource::Nofile);
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= 4096,
        "this test needs a hard RLIMIT_NOFILE of at least 4096, got {hard}"
    );
    // The daemon inherits the common default soft limit: 2,200 connections
    // would exhaust it unless it caps connections and raises its own limit.
    set_soft_nofile(1024);

    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cfg = format!(
        "[sampling]\ninterval_secs = 0.2\n[gpu]\nsource = \"none\"\n[host]\npower = \"model\"\nrapl_root = \"{}\"\n\
         [server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_secs = 2.0\nidle_timeout_secs = 3.0\n\
         [state]\ndir = \"{}\"\ncheckpoint_interval_secs = 0.5\n",
        tmp.path().join("no-rapl").display(),
        state.display()
    );
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let d = Daemon::start(&path, &[]);
    // The client side needs descriptors for every connection it holds.
    set_soft_nofile(8192);
    let pid = d.child.id();
    let addr: SocketAddr = d.addr.parse().unwrap();

    d.wait_metrics("a first checkpoint", |m| {
        value(m, "roimon_host_energy_joules_total{source=\"model\"}").unwrap_or(0.0) > 0.0
    });
    for _ in 0..20 {
        timed_scrape(&d.addr);
    }
    std::thread::sleep(Duration::from_millis(500));
    let baseline = rss_kib(pid);
    let mut peak = baseline;

    // 2,000 idle connections: connect and say nothing.
    let t0 = Instant::now();
    // Paced: a client can connect faster than a debug build accepts, and
    // past the listen backlog the kernel drops SYNs (retried after 1 s, 3 s).
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| {
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_millis(10));
            }
            connect(addr)
        })
        .collect();
    let opened_idle = t0.elapsed();
    // 200 slowloris clients: half send a large partial header at once (each
    // used to cost ~400 KB of buffer), half a small one; all then trickle
    // more header bytes and never finish.
    let pad = "a".repeat(300 * 1024);
    let slow: Vec<TcpStream> = (0..SLOWLORIS)
        .map(|i| {
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut s = connect(addr);
            s.set_nonblocking(true).unwrap();
            let head = if i % 2 == 0 {
                format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}")
            } else {
                "GET /metrics HTTP/1.1\r\nHost: x\r\n".to_string()
            };
            let _ = s.write(head.as_bytes());
            s
        })
        .collect();
    let opened = t0.elapsed();
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        let socks: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            let mut socks = socks;
            while !stop.load(Ordering::Relaxed) {
                for s in &mut socks {
                    let _ = s.write(b"X");
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    // Hold them for longer than both timeouts; meanwhile scrape, watch the
    // checkpoint and the daemon's memory.
    let before = checkpoint_stamp(&state);
    let mut stamps = vec![before.clone()];
    let mut worst = Duration::ZERO;
    let mut last = String::new();
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(7) {
        let (m, took) = timed_scrape(&d.addr);
        worst = worst.max(took);
        assert!(
            took < Duration::from_secs(1),
            "/metrics took {took:?} with hostile connections open"
        );
        let open = value(&m, "roimon_http_connections").expect("connection gauge");
        assert!(open <= 512.0, "open connections {open} above the cap");
        peak = peak.max(rss_kib(pid));
        let st = checkpoint_stamp(&state);
        if stamps.last() != Some(&st) {
            stamps.push(st);
        }
        last = m;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        value(&last, "roimon_checkpoint_errors_total"),
        Some(0.0),
        "checkpoints failed while hostile connections were open"
    );
    assert!(
        stamps.len() >= 5,
        "the checkpoint was rewritten only {} times in 7 s (every 0.5 s expected)",
        stamps.len() - 1
    );

    // The daemon closed every hostile connection itself: the oldest to make
    // room, the rest when their header or idle time ran out.
    let idle_open = idle.iter().filter(|s| !closed_by_peer(s)).count();
    let slow_open = slow.iter().filter(|s| !closed_by_peer(s)).count();
    assert_eq!(
        (idle_open, slow_open),
        (0, 0),
        "connections still open after 7 s (header timeout 2 s, idle timeout 3 s)"
    );
    let dropped = |reason: &str| {
        value(
            &last,
            &format!("roimon_http_connections_dropped_total{{reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(dropped("evicted") > 0.0, "{last}");
    assert!(dropped("header_timeout") > 0.0, "{last}");

    stop.store(true, Ordering::Relaxed);
    trickler.join().unwrap();
    drop(idle);
    drop(slow);
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..5 {
        timed_scrape(&d.addr);
    }
    let after = rss_kib(pid);
    eprintln!(
        "opened {} connections in {opened:?} ({IDLE} idle in {opened_idle:?}); slowest /metrics {worst:?}; RSS KiB: baseline {baseline}, peak {peak}, after {after}; checkpoints written {}",
        IDLE + SLOWLORIS,
        stamps.len() - 1
    );
    // Measured: about +9 MiB with the limits, +45 MiB without them.
    assert!(
        peak < baseline + 32 * MIB,
        "RSS rose from {baseline} KiB to {peak} KiB"
    );
    assert!(
        after < baseline + 16 * MIB,
        "RSS {after} KiB after the connections closed (baseline {baseline} KiB)"
    );
    let m = d.metrics();
    assert_eq!(value(&m, "roimon_http_connections"), Some(1.0), "{m}");
    let (status, log) = d.stop("TERM");
    assert_eq!(status.code(), Some(0));
    // It raised its soft descriptor limit from 1,024 to the hard limit.
    let fd = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "file-descriptor limit")
        .unwrap_or_else(|| panic!("no file-descriptor limit in the log: {log:?}"));
    assert_eq!(fd["fields"]["soft"], fd["fields"]["hard"], "{fd}");
    assert_ne!(fd["fields"]["soft"], "1024", "{fd}");
}

/// Read one response off a keep-alive connection: (status, whole text).
fn read_response(mut s: &TcpStream) -> (u16, String) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read response");
        assert!(n > 0, "closed before a full response");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, text);
            }
        }
    }
}

#[test]
fn each_limit_holds_on_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[sampling]\ninterval_secs = 0.2\n[gpu]\nsource = \"none\"\n[host]\npower = \"model\"\nrapl_root = \"{}\"\n\
         [server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 4\nheader_read_timeout_secs = 2.0\nidle_timeout_secs = 1.5\n\
         [state]\ndir = \"{}\"\n",
        tmp.path().join("no-rapl").display(),
        tmp.path().join("state").display()
    );
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let d = Daemon::start(&path, &[]);
    let addr: SocketAddr = d.addr.parse().unwrap();

    // Keep-alive works, and an idle keep-alive connection is closed after
    // idle_timeout_secs.
    let ka = connect(addr);
    (&ka)
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&ka).0, 200);
    (&ka)
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&ka).0, 200, "keep-alive reuse");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!closed_by_peer(&ka), "closed before the idle timeout");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(closed_by_peer(&ka), "idle keep-alive connection still open");

    // A header larger than the 16 KiB buffer is refused, not buffered.
    let big = connect(addr);
    let pad = "a".repeat(32 * 1024);
    let _ =
        (&big).write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n").as_bytes());
    let mut head = [0u8; 12];
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (&big).read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 431");

    // At the cap, the connection waiting longest makes room for a scrape.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let s = connect(addr);
            std::thread::sleep(Duration::from_millis(20));
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let (m, took) = timed_scrape(&d.addr);
    assert!(took < Duration::from_secs(1), "{took:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        closed_by_peer(&held[0]),
        "the oldest idle connection was kept"
    );
    assert!(
        !closed_by_peer(&held[3]),
        "the newest idle connection was closed"
    );
    // The cap, plus at most the one being closed to make room.
    let open = value(&m, "roimon_http_connections").unwrap();
    assert!((4.0..=5.0).contains(&open), "{m}");
    let m = d.metrics();
    for reason in ["evicted", "idle_timeout"] {
        let n = value(
            &m,
            &format!("roimon_http_connections_dropped_total{{reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0);
        assert!(n >= 1.0, "{reason}: {m}");
    }

    // Stopping does not wait for idle connections: they are closed at once.
    let t = Instant::now();
    let (status, _) = d.stop("TERM");
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?} with idle connections open",
        t.elapsed()
    );
    drop(held);
}
