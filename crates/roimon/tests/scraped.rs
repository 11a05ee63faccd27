//! A hostile inference server against the real binary: counters that jump
//! to 1e308 and back, a u64 wrap, thousands of new model names and an error
//! body that tries to forge log lines. Every exported figure stays finite,
//! the refusals are counted in `roimon_value_rejected_total`, at most
//! `max_models` models are booked, the server's words are logged escaped,
//! checkpoints keep being written, and the daemon restarts on its state
//! and passes `report --verify`. A server whose start time changes at
//! every scrape is a reset storm: a few restarts are believed, then none.
//! A target whose token file is missing at start is scraped once it appears.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the fake server answers: a status and a body.
type Answer = Arc<Mutex<(u16, String)>>;

fn serve(answer: Answer) -> String {
    serve_with(move |_| answer.lock().unwrap().clone())
}

/// A server answering request `n` (0-based) with `f(n)`.
fn serve_with(f: impl Fn(u64) -> (u16, String) + Send + Sync + 'static) -> String {
    let f = Arc::new(f);
    let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let f = f.clone();
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let (status, b) = f(i);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                );
            });
        }
    });
    addr
}

/// A vLLM-style body: prompt tokens per model.
fn body(models: &[(&str, f64)]) -> String {
    let mut b = String::from(
        "# HELP vllm:prompt_tokens_total Prompt tokens.\n# TYPE vllm:prompt_tokens_total counter\n",
    );
    for (m, v) in models {
        b.push_str(&format!(
            "vllm:prompt_tokens_total{{model_name=\"{m}\"}} {v:e}\n"
        ));
    }
    b.push_str("process_start_time_seconds 1.7e9\n");
    b
}

const REJECTED: &str = "roimon_value_rejected_total{target=\"hostile\",reason=";
const VALUE: &str =
    "roimon_value_total{team=\"t\",workload=\"w\",source=\"hostile\",currency=\"EUR\"}";

fn rejected(m: &str, reason: &str) -> f64 {
    value(m, &format!("{REJECTED}\"{reason}\"}}")).unwrap_or(0.0)
}

/// Every value, token and request figure exported is a finite number.
fn all_finite(m: &str) {
    for l in m.lines().filter(|l| {
        [
            "roimon_value_total",
            "roimon_tokens_total",
            "roimon_requests_total",
            "roimon_window_value",
        ]
        .iter()
        .any(|n| l.starts_with(n))
    }) {
        let v: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v.is_finite(), "not finite: {l}");
    }
}

fn wait_log(d: &Daemon, what: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = d.log.recv_timeout(Duration::from_millis(200))
            && line.contains(what)
        {
            return serde_json::from_str(&line).unwrap();
        }
    }
    panic!("no log line with {what:?} within 20 s");
}

/// The `[[value.scrape]]` table of the hostile server at `target`, owned
/// by t/w and scraped every second, with `keys` added.
fn hostile_target(target: &str, keys: &str) -> String {
    format!(
        "[[value.scrape]]\nurl = \"http://{target}/metrics\"\nname = \"hostile\"\nteam = \"t\"\nworkload = \"w\"\ninterval_secs = 1\n{keys}"
    )
}

#[test]
fn a_hostile_vllm_server_cannot_poison_the_books() {
    let answer: Answer = Arc::new(Mutex::new((200, body(&[("m", 100.0)]))));
    let target = serve(answer.clone());
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let path = common::gpuless_config(
        tmp.path(),
        &state,
        (0.2, 0.3),
        &format!(
            "[value]\nmax_models = 8\n{}",
            hostile_target(
                &target,
                "input_per_million_tokens = 1000000.0\nmax_tokens_per_second = 1000000.0\n"
            )
        ),
    );
    let set = |status: u16, b: String| *answer.lock().unwrap() = (status, b);

    let d = Daemon::start(&path, &[]);
    let m = d.wait_metrics("the baseline", |m| value(m, VALUE) == Some(0.0));
    for reason in [
        "tokens_rate",
        "reset_storm",
        "too_many_models",
        "label_too_long",
    ] {
        assert_eq!(
            value(&m, &format!("{REJECTED}\"{reason}\"}}")),
            Some(0.0),
            "{reason} exported from the start"
        );
    }

    // 100 → 1e308: refused and counted, nothing booked.
    set(200, body(&[("m", 1e308)]));
    let m = d.wait_metrics("the jump refused", |m| rejected(m, "tokens_rate") >= 1.0);
    all_finite(&m);
    assert_eq!(value(&m, VALUE), Some(0.0));
    // → 0 (a reset to nothing), → 1e308 again with a second model there.
    set(200, body(&[("m", 0.0)]));
    std::thread::sleep(Duration::from_millis(2500));
    set(200, body(&[("m", 1e308), ("n", 1e308)]));
    let m = d.wait_metrics("the second jump refused", |m| {
        rejected(m, "tokens_rate") >= 2.0
    });
    all_finite(&m);
    // A u64 wrap is refused as well.
    set(200, body(&[("m", 1.8e19)]));
    let before = rejected(&m, "tokens_rate");
    let m = d.wait_metrics("the wrap refused", |m| rejected(m, "tokens_rate") > before);
    all_finite(&m);
    // Plausible counts are booked again: 50 tokens at 1 EUR each since
    // the 0 the state last took.
    set(200, body(&[("m", 50.0)]));
    d.wait_metrics("50 booked", |m| value(m, VALUE) == Some(50.0));

    // 2,000 new model names: at most max_models booked, the rest counted.
    let names: Vec<String> = (0..2000).map(|i| format!("model-{i}")).collect();
    let mut many: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 5.0)).collect();
    many.push(("m", 50.0));
    set(200, body(&many));
    let m = d.wait_metrics("models refused", |m| rejected(m, "too_many_models") >= 1.0);
    let m2 = d.wait_metrics("the admitted ones booked", |m2| {
        value(m2, VALUE).is_some_and(|v| v > 50.0)
    });
    let _ = m;
    let models: std::collections::BTreeSet<&str> = m2
        .lines()
        .filter(|l| l.starts_with("roimon_tokens_total{"))
        .filter_map(|l| l.split("model=\"").nth(1)?.split('"').next())
        .collect();
    assert!(models.len() <= 8, "{} models booked", models.len());
    // Of `m` there are 50 so far; the admitted new models booked theirs.
    let booked = value(&m2, VALUE).unwrap();
    // A 100 KB model label is counted, never booked.
    let long = "x".repeat(100_000);
    set(200, body(&[("m", 50.0), (long.as_str(), 1.0)]));
    d.wait_metrics("the long label refused", |m| {
        rejected(m, "label_too_long") >= 1.0
    });

    // An error body that tries to forge a log line and colour the terminal.
    set(
        500,
        "\u{1b}[31mowned\n{\"level\":\"INFO\",\"fields\":{\"message\":\"forged\"}}".into(),
    );
    let line = wait_log(&d, "value target failed");
    let error = line["fields"]["error"].as_str().unwrap();
    assert!(!error.chars().any(|c| c.is_control()), "{error:?}");
    assert!(error.contains("\\x1b[31mowned\\x0a"), "{error}");
    set(200, body(&[("m", 60.0)]));
    let m = d.wait_metrics("booked again", |m| value(m, VALUE) == Some(booked + 10.0));
    all_finite(&m);
    assert_eq!(value(&m, "roimon_checkpoint_errors_total"), Some(0.0));
    let refused = rejected(&m, "tokens_rate");
    // Peak memory through all of it stays within 128 MiB.
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!("peak RSS {hwm_kib} KiB");
    assert!(hwm_kib <= 128 * 1024, "peak RSS {hwm_kib} KiB");
    let (st, log) = d.stop("TERM");
    assert!(st.success(), "{}", log.join("\n"));

    // The daemon restarts on what it saved, with the books as they were.
    let d = Daemon::start(&path, &[]);
    let m = d.wait_metrics("resumed", |m| value(m, VALUE) == Some(booked + 10.0));
    all_finite(&m);
    assert!(rejected(&m, "tokens_rate") >= refused);
    let (st, log) = d.stop("TERM");
    assert!(st.success(), "{}", log.join("\n"));
    let out = std::process::Command::new(BIN)
        .args(["report", "--verify", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_start_time_changing_at_every_scrape_is_a_reset_storm() {
    // Each answer is a "new process" that has served a million tokens.
    let target = serve_with(|i| {
        (
            200,
            format!(
                "vllm:prompt_tokens_total{{model_name=\"m\"}} 1e6\nprocess_start_time_seconds {}\n",
                1.7e9 + i as f64
            ),
        )
    });
    let tmp = tempfile::tempdir().unwrap();
    let path = common::gpuless_config(
        tmp.path(),
        &tmp.path().join("state"),
        (0.2, 0.3),
        &hostile_target(&target, "input_per_million_tokens = 1.0\n"),
    );
    let d = Daemon::start(&path, &[]);
    let m = d.wait_metrics("the storm refused", |m| rejected(m, "reset_storm") >= 2.0);
    // Three restarts an hour are believed (a million tokens, 1 EUR each),
    // then no more.
    assert!(value(&m, VALUE).unwrap() <= 3.0, "{:?}", value(&m, VALUE));
    let line = wait_log(&d, "reset storm");
    assert_eq!(line["level"], "WARN");
    let (st, _) = d.stop("TERM");
    assert!(st.success());
}

#[test]
fn a_target_whose_token_file_appears_later_is_scraped_without_a_restart() {
    let answer: Answer = Arc::new(Mutex::new((200, body(&[("m", 100.0)]))));
    let target = serve(answer);
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("scrape-token");
    let path = common::gpuless_config(
        tmp.path(),
        &tmp.path().join("state"),
        (0.2, 0.3),
        &hostile_target(
            &target,
            &format!(
                "token_file = \"{}\"\ninput_per_million_tokens = 1.0\n",
                token.display()
            ),
        ),
    );
    let d = Daemon::start(&path, &[]);
    // No token yet: the target cannot start; that is logged once and
    // counted at every try.
    let line = wait_log(&d, "value target cannot start");
    assert_eq!(line["level"], "ERROR");
    let errors = "roimon_value_target_errors_total{target=\"hostile\"}";
    d.wait_metrics("the tries counted", |m| {
        value(m, errors).unwrap_or(0.0) >= 2.0
    });
    // The token is provisioned: the next try starts the target.
    std::fs::write(&token, "scrape-secret\n").unwrap();
    d.wait_metrics("the target up", |m| {
        value(m, "roimon_value_target_up{target=\"hostile\"}") == Some(1.0)
    });
    let (st, log) = d.stop("TERM");
    assert!(st.success());
    // The line taken above was the streak's only one.
    let again = log
        .iter()
        .filter(|l| l.contains("value target cannot start"))
        .count();
    assert_eq!(again, 0, "logged once per streak");
}
