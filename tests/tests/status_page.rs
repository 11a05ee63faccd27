//! The status page in a real browser: the real roimon binary on a fake
//! NVML (two GPUs of two owners), one value target that refuses
//! connections and one that answers, and the page at `/` loaded by Debian's
//! headless `chromium`. The page must load without a console message, say
//! in words that the refusing target's value is not measured (no ROI for its
//! owner), and carry exactly the figures `/api/v1/summary` shows for the
//! same booked snapshot (matched by the snapshot's time, which both carry).
//! Every wait is bounded; nothing depends on how fast the machine is.

use roimon_fake_nvml::{FakeGpu, FakeNvml};
use roimon_system_tests::{Node, free_port, http, value, wait_for};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const G0: &str = "GPU-00000000-0000-0000-0000-000000000000";
const G1: &str = "GPU-00000000-0000-0000-0000-000000000001";

/// Debian's `chromium` (installed by `.ci/run`).
fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(c).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!("chromium not found: install it (apt-get install chromium; .ci/run does)");
}

/// Load `url` in headless chromium; (the DOM after load, the browser's
/// console lines). Bounded: killed after 120 s.
fn load(url: &str, profile: &Path) -> (String, Vec<String>) {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not load {url} in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = out.join().unwrap();
    let console = err
        .join()
        .unwrap()
        .into_iter()
        .filter(|l| l.contains("CONSOLE"))
        .collect();
    (dom, console)
}

/// A vLLM server whose counters grow by 1000 prompt and 500 generated
/// tokens and one request at each scrape; returns its URL.
fn vllm() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", l.local_addr().unwrap());
    let n = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let _ = r.read_line(&mut line);
            while r.read_line(&mut line).is_ok_and(|k| k > 2) {}
            let k = n.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(
                "# TYPE vllm:prompt_tokens_total counter\n\
                 vllm:prompt_tokens_total{{model_name=\"m\"}} {}\n\
                 # TYPE vllm:generation_tokens_total counter\n\
                 vllm:generation_tokens_total{{model_name=\"m\"}} {}\n\
                 # TYPE vllm:request_success_total counter\n\
                 vllm:request_success_total{{model_name=\"m\",finished_reason=\"stop\"}} {k}\n",
                k * 1000,
                k * 500
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn config(dir: &Path, nvml: &Path, refusing: u16, answering: &str) -> String {
    format!(
        r#"
[sampling]
interval_secs = 1.0

[gpu]
source = "nvml"
nvml_library = "{nvml}"
[[gpu.owners]]
gpu_uuid = "{G0}"
team = "search"
workload = "chat"
[[gpu.owners]]
gpu_uuid = "{G1}"
team = "ads"
workload = "rank"

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
checkpoint_interval_secs = 1.0

[[value.scrape]]
name = "vllm-chat"
url = "http://127.0.0.1:{refusing}/metrics"
kind = "vllm"
team = "search"
workload = "chat"
interval_secs = 1.0
timeout_secs = 2.0
input_per_million_tokens = 1.0
output_per_million_tokens = 2.0

[[value.scrape]]
name = "vllm-ads"
url = "{answering}"
kind = "vllm"
team = "ads"
workload = "rank"
interval_secs = 1.0
timeout_secs = 2.0
input_per_million_tokens = 1.0
output_per_million_tokens = 2.0
"#,
        nvml = nvml.display(),
        none = dir.join("no-rapl").display(),
        state = dir.join("state").display(),
    )
}

/// The opening tag of the first element whose tag holds `anchor`.
fn tag<'a>(dom: &'a str, anchor: &str) -> &'a str {
    let at = dom
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor} not on the page:\n{dom}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    &dom[start..end]
}

/// The table row (`<tr …>…</tr>`) whose opening tag holds `anchor`.
fn row<'a>(dom: &'a str, anchor: &str) -> &'a str {
    let at = dom
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor} not on the page:\n{dom}"));
    let start = dom[..at].rfind("<tr").unwrap();
    let end = at + dom[at..].find("</tr>").unwrap();
    &dom[start..end]
}

/// The exact figure `data-NAME` in `html` (the first one).
fn figure(html: &str, name: &str) -> Option<f64> {
    let key = format!("data-{name}=\"");
    let i = html.find(&key)? + key.len();
    let v = &html[i..];
    Some(v[..v.find('"')?].parse().expect("a number"))
}

/// The summaries seen while `f` runs, by their `at`.
fn summaries_during<T>(
    addr: &str,
    f: impl FnOnce() -> T,
) -> (T, HashMap<String, serde_json::Value>) {
    let seen: Arc<Mutex<HashMap<String, serde_json::Value>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (seen, stop, addr) = (seen.clone(), stop.clone(), addr.to_string());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = http(&addr, "GET", "/api/v1/summary", &[], b"");
                assert_eq!(status, 200, "{body}");
                let j: serde_json::Value = serde_json::from_str(&body).unwrap();
                if let Some(at) = j["at"].as_str() {
                    seen.lock().unwrap().insert(at.to_string(), j);
                }
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    let out = f();
    // One more round after the page was served.
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (out, seen)
}

/// The 24 h window's figures of `team` in a summary.
fn day_owner<'a>(j: &'a serde_json::Value, team: &str) -> &'a serde_json::Value {
    j["roi"]["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["seconds"] == 86_400)
        .and_then(|w| w["owners"].as_array())
        .and_then(|o| o.iter().find(|o| o["team"] == team))
        .unwrap_or_else(|| panic!("no 24 h figures for {team}: {j}"))
}

/// The refusing target on the page: failing, in words, in the health
/// section and in place of its owner's ROI.
fn shows_the_refusing_target_as_failing(dom: &str, refusing: u16) {
    let words = "target vllm-chat refused connection";
    let detail = format!("cannot connect to 127.0.0.1:{refusing}: connection refused");
    let (Some(from), Some(to)) = (dom.find("id=\"health\""), dom.find("id=\"gpus\"")) else {
        panic!("the page has no health section before its GPUs:\n{dom}");
    };
    let health = &dom[from..to];
    assert!(
        health.contains("value not measured since")
            && health.contains(words)
            && health.contains(&detail),
        "{health}"
    );
    assert!(tag(dom, "data-target=\"vllm-chat\"").contains("data-up=\"false\""));
    assert!(tag(dom, "data-target=\"vllm-ads\"").contains("data-up=\"true\""));
    let search = row(dom, "data-team=\"search\" data-workload=\"chat\"");
    assert!(
        search.contains("value not measured since") && search.contains(words),
        "{search}"
    );
    assert!(figure(search, "roi").is_none(), "{search}");
    assert!(!search.contains("-100"), "{search}");
}

#[test]
fn status_page_in_a_browser_shows_a_refusing_target_as_failing_and_the_summary_figures() {
    let dir = tempfile::tempdir().unwrap();
    let gpus: Vec<FakeGpu> = (0..2)
        .map(|i| {
            let mut g = FakeGpu::new(i);
            g.power_mw = 250_000 + 100_000 * i;
            g.util_percent = 80 - 78 * i;
            g
        })
        .collect();
    let nvml = FakeNvml::in_dir(dir.path().join("nvml"), &gpus).unwrap();
    let refusing = free_port();
    let d = Node::start(
        dir.path(),
        &config(dir.path(), &nvml.library(), refusing, &vllm()),
        &[],
    );

    // The detector works on this browser: a page that throws is heard.
    let profile = dir.path().join("chromium");
    let (_, console) = load(
        "data:text/html,<title>x</title><script>no_such_function()</script>",
        &profile,
    );
    assert!(
        console.iter().any(|l| l.contains("no_such_function")),
        "chromium's console is not heard: {console:?}"
    );

    // Wait (bounded) until the refusing target has failed (as `/metrics`
    // counts it) and the answering one has booked value that reached the
    // day's window.
    wait_for(
        "a failed scrape and booked value",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let failed = value(
                &d.metrics(),
                "roimon_value_target_errors_total{target=\"vllm-chat\"}",
            )?;
            let (_, body) = d.get("/api/v1/summary");
            let j: serde_json::Value = serde_json::from_str(&body).ok()?;
            let day = j["roi"]["windows"]
                .as_array()?
                .iter()
                .find(|w| w["seconds"] == 86_400)?;
            let ads = day["owners"]
                .as_array()?
                .iter()
                .find(|o| o["team"] == "ads")?;
            (failed > 0.0 && ads["value"].as_f64()? > 0.0 && ads["roi"].is_number()).then_some(())
        },
    );

    let url = format!("http://{}/", d.addr);
    let mut found = None;
    for _ in 0..5 {
        let ((dom, console), seen) = summaries_during(&d.addr, || load(&url, &profile));
        assert!(
            console.is_empty(),
            "the page logged to the console: {console:?}"
        );
        shows_the_refusing_target_as_failing(&dom, refusing);
        let at = tag(&dom, "<body")
            .split("data-at=\"")
            .nth(1)
            .map(|s| s[..s.find('"').unwrap()].to_string());
        let at = at.unwrap_or_else(|| panic!("the page carries no snapshot time:\n{dom}"));
        if let Some(j) = seen.get(&at) {
            found = Some((dom, j.clone()));
            break;
        }
    }
    let (dom, j) = found.expect("no summary of the page's snapshot was seen in 5 loads");

    // The figures are the summary's, exactly.
    for g in j["gpus"].as_array().unwrap() {
        let r = row(
            &dom,
            &format!("data-gpu-uuid=\"{}\"", g["gpu_uuid"].as_str().unwrap()),
        );
        for (attr, key) in [
            ("power-watts", "power_watts"),
            ("utilization-ratio", "utilization_ratio"),
            ("cost-rate-per-hour", "cost_rate_per_hour"),
            ("energy-joules", "energy_joules"),
            ("cost", "cost"),
        ] {
            assert_eq!(figure(r, attr), g[key].as_f64(), "{attr} of {r}");
        }
        assert!(g["cost"].as_f64().unwrap() > 0.0, "{g}");
    }
    assert_eq!(
        figure(tag(&dom, "id=\"cost-rate\""), "cost-rate-per-hour"),
        j["cost_rate_per_hour"]["total"].as_f64()
    );
    assert_eq!(
        figure(tag(&dom, "id=\"cost-total\""), "cost"),
        j["totals"]["cost"]["total"].as_f64()
    );
    let ads = row(&dom, "data-team=\"ads\" data-workload=\"rank\"");
    let want = day_owner(&j, "ads");
    for k in ["value", "cost", "roi"] {
        assert_eq!(figure(ads, k), want[k].as_f64(), "{k} of {ads}");
    }
    assert_eq!(
        figure(row(&dom, "data-team=\"search\""), "cost"),
        day_owner(&j, "search")["cost"].as_f64()
    );
    // The nearly idle GPU is flagged.
    assert!(tag(&dom, &format!("data-gpu-uuid=\"{G1}\"")).contains("data-idle=\"true\""));
    assert!(tag(&dom, &format!("data-gpu-uuid=\"{G0}\"")).contains("data-idle=\"false\""));
    assert!(d.stop(), "roimon did not stop cleanly");
}
