//! End to end: the real roimon binary on a fake NVML library (loaded through
//! nvml-wrapper) and a RAPL fixture tree, scraped over loopback. Checks the
//! numbers (energy, PUE, price, cost), promtool's verdict, lost GPUs, counter
//! resets, a clean SIGTERM, and that a restart resumes every counter.

mod common;

use common::*;
use roimon_fake_nvml::{FakeGpu, FakeNvml};
use std::path::Path;

fn write_config(dir: &Path, nvml: &Path, rapl: &Path, state: &Path) -> std::path::PathBuf {
    let cfg = format!(
        r#"
[sampling]
interval_secs = 0.2

[gpu]
source = "nvml"
nvml_library = "{nvml}"
[[gpu.owners]]
gpu_uuid = "GPU-00000000-0000-0000-0000-000000000000"
team = "search"
workload = "llm"

[host]
power = "rapl"
rapl_root = "{rapl}"

[facility]
pue = 1.5

[price]
source = "static"
currency = "EUR"
price_per_kwh = 0.30

[costs]
purchase = 315576.0
residual = 0.0
depreciation_years = 1.0

[server]
listen = "127.0.0.1:0"

[state]
dir = "{state}"
checkpoint_interval_secs = 0.5
"#,
        nvml = nvml.display(),
        rapl = rapl.display(),
        state = state.display()
    );
    let path = dir.join("roimon.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn gpus() -> Vec<FakeGpu> {
    let mut a = FakeGpu::new(0);
    a.power_mw = 300_000;
    let mut b = FakeGpu::new(1);
    b.power_mw = 100_000;
    b.energy_counter = false;
    vec![a, b]
}

const G0: &str = "GPU-00000000-0000-0000-0000-000000000000";
const G1: &str = "GPU-00000000-0000-0000-0000-000000000001";

fn gpu_series(name: &str, idx: u32, uuid: &str) -> String {
    format!("{name}{{gpu=\"{idx}\",gpu_uuid=\"{uuid}\"}}")
}

#[test]
fn daemon_measures_prices_exports_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let nvml_dir = tmp.path().join("nvml");
    std::fs::create_dir_all(&nvml_dir).unwrap();
    let fake = FakeNvml::in_dir(&nvml_dir, &gpus()).expect("build fake NVML");
    let rapl = tmp.path().join("powercap");
    rapl_tree(&rapl, [1_000_000, 2_000_000]);
    let state = tmp.path().join("state");
    let config = write_config(tmp.path(), &fake.library(), &rapl, &state);

    let d = Daemon::start(&config, &[]);
    assert_eq!(d.get("/healthz").0, 200);
    // Ready once both collectors reported.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while d.get("/readyz").0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Let energy accumulate, then move the RAPL counters by 50 J each.
    let e0 = gpu_series("roimon_gpu_energy_joules_total", 0, G0);
    d.wait_metrics("GPU 0 energy > 300 J", |m| {
        value(m, &e0).unwrap_or(0.0) > 300.0
    });
    rapl_tree(&rapl, [51_000_000, 52_000_000]);
    let m = d.wait_metrics("host energy 100 J", |m| {
        value(m, "roimon_host_energy_joules_total{source=\"rapl\"}") == Some(100.0)
    });

    // GPU 0 measured by counter at 300 W, GPU 1 integrated from 100 W power:
    // both cover (nearly) the same time, so energy/power agree.
    let g0 = value(&m, &e0).unwrap();
    let g1 = value(&m, &gpu_series("roimon_gpu_energy_joules_total", 1, G1)).unwrap();
    let (t0, t1) = (g0 / 300.0, g1 / 100.0);
    assert!(
        (t0 - t1).abs() / t0 < 0.15,
        "GPU0 {g0} J ({t0} s) vs GPU1 {g1} J ({t1} s)"
    );
    assert_eq!(
        value(&m, &gpu_series("roimon_gpu_power_watts", 0, G0)),
        Some(300.0)
    );
    assert!(m.contains(&format!(
        "roimon_gpu_info{{gpu=\"0\",gpu_uuid=\"{G0}\",model=\""
    )));
    assert!(m.contains("team=\"search\",workload=\"llm\"} 1"));
    assert!(
        m.contains(&format!("gpu_uuid=\"{G1}\",model="))
            && m.contains("team=\"unallocated\",workload=\"unallocated\"} 1")
    );

    // Facility = (GPU + host) × PUE, and energy cost = facility kWh × price.
    let gpu_total = sum(&m, "roimon_gpu_energy_joules_total");
    let host = value(&m, "roimon_host_energy_joules_total{source=\"rapl\"}").unwrap();
    let facility = value(&m, "roimon_facility_energy_joules_total").unwrap();
    assert!(
        (facility - (gpu_total + host) * 1.5).abs() < 1e-6 * facility,
        "{facility} vs {gpu_total}+{host}"
    );
    let energy_cost = value(
        &m,
        "roimon_cost_total{component=\"energy\",currency=\"EUR\"}",
    )
    .unwrap();
    assert!(
        (energy_cost - facility / 3.6e6 * 0.30).abs() < 1e-9 * energy_cost.max(1e-9),
        "{energy_cost}"
    );
    assert_eq!(
        value(
            &m,
            "roimon_electricity_price_per_kwh{basis=\"source\",currency=\"EUR\",source=\"static\"}"
        ),
        Some(0.30)
    );
    assert_eq!(value(&m, "roimon_facility_pue"), Some(1.5));
    // capex: 315576 over one year = 0.01 EUR/s; attributed costs sum to the node's.
    let capex = value(
        &m,
        "roimon_cost_total{component=\"capex\",currency=\"EUR\"}",
    )
    .unwrap();
    assert!(capex > 0.0);
    let node_cost = sum(&m, "roimon_cost_total");
    let gpu_cost = sum(&m, "roimon_gpu_cost_total");
    assert!(
        (node_cost - gpu_cost).abs() < 1e-9 * node_cost,
        "{node_cost} vs {gpu_cost}"
    );
    assert_eq!(
        value(&m, "roimon_collector_up{collector=\"nvml\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "roimon_collector_up{collector=\"host\"}"),
        Some(1.0)
    );
    promtool_check_metrics(&m);

    // Summary JSON agrees.
    let (status, body) = d.get("/api/v1/summary");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["currency"], "EUR");
    assert_eq!(v["gpus"].as_array().unwrap().len(), 2);
    assert!(v["power_watts"]["gpu"].as_f64().unwrap() > 399.0);
    assert!(
        v["cost_rate_per_hour"]["by_component"]["capex"]
            .as_f64()
            .unwrap()
            > 35.0
    );

    // A lost GPU is counted and does not stop the other one.
    fake.set_lost(0, true);
    let errs = "roimon_collector_errors_total{collector=\"nvml\"}";
    let e1 = gpu_series("roimon_gpu_energy_joules_total", 1, G1);
    let before = value(&m, &e1).unwrap();
    let m = d.wait_metrics("errors counted and GPU 1 still measured", |m| {
        value(m, errs).unwrap_or(0.0) >= 3.0 && value(m, &e1).unwrap_or(0.0) > before
    });
    assert!(
        !m.contains(&gpu_series("roimon_gpu_power_watts", 0, G0)),
        "a lost GPU shows no stale power"
    );
    fake.set_lost(0, false);
    let g0_before = value(&m, &e0).unwrap();
    d.wait_metrics("GPU 0 back", |m| value(m, &e0).unwrap_or(0.0) > g0_before);

    // A driver reload (counter goes backwards) is detected; energy keeps rising.
    fake.reset_counter(0);
    let resets = gpu_series("roimon_gpu_energy_resets_total", 0, G0);
    let m = d.wait_metrics("counter reset seen", |m| {
        value(m, &resets).unwrap_or(0.0) >= 1.0
    });
    let after_reset = value(&m, &e0).unwrap();
    assert!(after_reset >= g0_before);
    let m = d.wait_metrics("energy rises after reset", |m| {
        value(m, &e0).unwrap_or(0.0) > after_reset + 30.0
    });

    // SIGTERM: flush, checkpoint, exit 0.
    let last = m;
    let (status, log) = d.stop("TERM");
    assert_eq!(status.code(), Some(0), "{log:?}");
    assert!(stored_checkpoint(&state).is_some());

    // Restart on the same state dir: every counter resumes, none goes back.
    let d = Daemon::start(&config, &[]);
    let m = d.wait_metrics("first scrape after restart", |m| value(m, &e0).is_some());
    for line in last.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, v)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap();
        if !name.ends_with("_total") {
            continue;
        }
        let before: f64 = v.parse().unwrap();
        let now = value(&m, series).unwrap_or_else(|| panic!("{series} missing after restart"));
        assert!(
            now >= before,
            "{series} went backwards across restart: {before} -> {now}"
        );
    }
    let (status, _) = d.stop("INT");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn auto_without_nvml_runs_without_gpus() {
    let tmp = tempfile::tempdir().unwrap();
    let rapl = tmp.path().join("none");
    let cfg = format!(
        "[sampling]\ninterval_secs = 0.2\n[gpu]\nsource = \"auto\"\nnvml_library = \"{}\"\n[host]\npower = \"model\"\nrapl_root = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[state]\ndir = \"{}\"\n",
        tmp.path().join("no-such-libnvidia-ml.so.1").display(),
        rapl.display(),
        tmp.path().join("state").display()
    );
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let d = Daemon::start(&path, &[]);
    let m = d.wait_metrics("host energy from the model", |m| {
        value(m, "roimon_host_energy_joules_total{source=\"model\"}").unwrap_or(0.0) > 0.0
    });
    assert_eq!(
        value(&m, "roimon_collector_up{collector=\"nvml\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "roimon_collector_errors_total{collector=\"nvml\"}"),
        Some(0.0)
    );
    // With no GPU, costs are attributed to the explicit "none"/unallocated row.
    assert!(m.contains("roimon_gpu_cost_total{gpu_uuid=\"none\",team=\"unallocated\",workload=\"unallocated\",component=\"energy\""));
    assert_eq!(d.get("/readyz").0, 200);
    promtool_check_metrics(&m);
    let (_, log) = d.stop("TERM");
    // A library was named and does not load: a WARN, once.
    let said: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("not available on this machine"))
        .collect();
    assert_eq!(
        said.len(),
        1,
        "said once, not never and not repeatedly: {log:?}"
    );
    assert!(said[0].contains("\"WARN\""), "{said:?}");
}

#[test]
fn bad_config_exits_2_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    std::fs::write(
        &path,
        "[facility]\npue = 1.2\n\n[price]\nprice_per_kwh = 0.2\nsorce = \"static\"\n",
    )
    .unwrap();
    for args in [vec!["run", "--config"], vec!["check-config"]] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{}:6: key `price.sorce`", path.display())),
            "{err}"
        );
    }
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/roimon.example.toml"
    );
    let out = std::process::Command::new(BIN)
        .args(["check-config", example])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `roimon roi` refuses benefit scores outside [0, 1] (exit 2, naming the
/// scenario and the key), warns when weights do not sum to 1, and ranks by
/// efficiency (default) or by ROI.
#[test]
fn roi_checks_scores_warns_on_weights_and_ranks_by_choice() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/scenario.example.toml"
    );
    let roi = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("roi")
            .args(args)
            .output()
            .unwrap()
    };
    let ranks = |out: &std::process::Output| {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["rank"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let by_eff = roi(&["--scenario", example, "--json"]);
    assert_eq!(
        ranks(&by_eff),
        [("case-4.2".to_string(), 1), ("case-4.3".to_string(), 2)]
    );
    // The example's weights sum to 1: nothing to warn about.
    assert!(!String::from_utf8_lossy(&by_eff.stderr).contains("warning"));
    let explicit = roi(&["--scenario", example, "--json", "--rank-by", "efficiency"]);
    assert_eq!(ranks(&explicit), ranks(&by_eff));
    // By ROI: case-4.3 has a value (ROI -0.67), case-4.2 none, so it comes after.
    let by_roi = roi(&["--scenario", example, "--json", "--rank-by", "roi"]);
    assert_eq!(
        ranks(&by_roi),
        [("case-4.2".to_string(), 2), ("case-4.3".to_string(), 1)]
    );
    let table = roi(&["--scenario", example, "--rank-by", "roi"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let first = table.lines().nth(1).unwrap_or_default();
    assert!(
        first.starts_with("1") && first.contains("case-4.3"),
        "{table}"
    );
    let bad_flag = roi(&["--scenario", example, "--rank-by", "luck"]);
    assert_eq!(bad_flag.status.code(), Some(2));

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("s.toml");
    // A score above 1: exit 2, the scenario and the key named.
    std::fs::write(
        &file,
        "[weights]\nbenefit = { a = 0.5, b = 0.5 }\n\n[[scenario]]\nname = \"ok\"\nbenefit = { a = 1.0, b = 0.0 }\ncost = { c = 1.0 }\n\n[[scenario]]\nname = \"too-good\"\nbenefit = { a = 0.5, b = 1.5 }\ncost = { c = 1.0 }\n",
    )
    .unwrap();
    let out = roi(&["--scenario", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":10: key `scenario[1].benefit.b`")
            && err.contains("scenario `too-good`")
            && err.contains("must be in [0, 1], got 1.5"),
        "{err}"
    );
    // A negative score too.
    std::fs::write(
        &file,
        "[weights]\nbenefit = { a = 1.0 }\n\n[[scenario]]\nname = \"x\"\nbenefit = { a = -0.2 }\ncost = { c = 1.0 }\n",
    )
    .unwrap();
    let out = roi(&["--scenario", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key `scenario[0].benefit.a`"), "{err}");

    // Weights that do not sum to 1: evaluated, with a warning for each set.
    std::fs::write(
        &file,
        "[weights]\nbenefit = { a = 0.5, b = 0.4 }\ncost = { c = 2.0 }\n\n[[scenario]]\nname = \"x\"\nbenefit = { a = 1.0, b = 1.0 }\ncost = { c = 1.0 }\n",
    )
    .unwrap();
    let out = roi(&["--scenario", file.to_str().unwrap(), "--json"]);
    assert_eq!(ranks(&out), [("x".to_string(), 1)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("weights.benefit sum to 0.9"),
        "{err}"
    );
    assert!(err.contains("weights.cost sum to 2"), "{err}");
    // Within 1e-9 of 1 (0.1 + 0.2 is not exactly 0.3): no warning; omitted
    // cost weights (each 1 by definition): no warning either.
    std::fs::write(
        &file,
        "[weights]\nbenefit = { a = 0.1, b = 0.2, c = 0.7 }\n\n[[scenario]]\nname = \"x\"\nbenefit = { a = 1.0, b = 1.0, c = 1.0 }\ncost = { c = 1.0, d = 2.0 }\n",
    )
    .unwrap();
    let out = roi(&["--scenario", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

/// Logs written to a file or a pipe carry no ANSI colour escapes.
#[test]
fn text_logs_to_a_non_terminal_have_no_ansi_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    // A state dir that is a file: the daemon logs an error and exits 1.
    let not_a_dir = tmp.path().join("state");
    std::fs::write(&not_a_dir, "").unwrap();
    let cfg = common::gpuless_config(tmp.path(), &not_a_dir, (1.0, 5.0), "");
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--log-format", "text"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ERROR") && err.contains("roimon stopped"),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "ANSI escapes in {err:?}");
}

/// The README's simulated quick start (`run --config config/simulated.toml`)
/// starts from a file `check-config` accepts.
#[test]
fn simulated_quick_start_config_passes_check_config() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/simulated.toml");
    let out = std::process::Command::new(BIN)
        .args(["check-config", file])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("simulated.toml: ok"));
}

#[test]
fn roi_scenario_reproduces_the_worked_examples() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/scenario.example.toml"
    );
    let out = std::process::Command::new(BIN)
        .args(["roi", "--scenario", file, "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = v["scenarios"].as_array().unwrap();
    assert_eq!(s[0]["name"], "case-4.2");
    assert!((s[0]["benefit_score"].as_f64().unwrap() - 0.88).abs() < 1e-12);
    assert!((s[0]["cost"].as_f64().unwrap() - 1432.5).abs() < 1e-9);
    assert!((s[0]["weighted_efficiency"].as_f64().unwrap() - 6.1431e-4).abs() < 5e-9);
    assert!(s[0]["roi"].is_null());
    assert_eq!(s[0]["rank"], 1);
    assert!((s[1]["cost"].as_f64().unwrap() - 1582.5).abs() < 1e-9);
    assert!((s[1]["weighted_efficiency"].as_f64().unwrap() - 5.7915e-4).abs() < 5e-9);
    // Financial ROI on the unweighted money: 2000 earned against 6150 spent.
    assert_eq!(s[1]["money_cost"].as_f64(), Some(6150.0));
    assert!((s[1]["roi"].as_f64().unwrap() - (2000.0 - 6150.0) / 6150.0).abs() < 1e-12);
    // Table form.
    let out = std::process::Command::new(BIN)
        .args(["roi", "--scenario", file])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("case-4.2") && table.contains("6.1431e-4"),
        "{table}"
    );
    // An unweighted indicator is an error naming it, exit 2.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("s.toml");
    std::fs::write(&bad, "[weights]\nbenefit = { a = 1.0 }\n\n[[scenario]]\nname = \"x\"\nbenefit = { a = 1.0, b = 2.0 }\ncost = { c = 1.0 }\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["roi", "--scenario"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`b` has no weight") && err.contains(":5:"),
        "{err}"
    );
}

#[test]
fn a_crash_never_shows_counters_going_backwards_and_a_broken_collector_is_not_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[sampling]\ninterval_secs = 0.2\n[gpu]\nsource = \"nvml\"\nnvml_library = \"{}\"\n[host]\npower = \"model\"\nrapl_root = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[state]\ndir = \"{}\"\ncheckpoint_interval_secs = 1.0\n",
        tmp.path().join("no-such-libnvidia-ml.so.1").display(),
        tmp.path().join("none").display(),
        tmp.path().join("state").display()
    );
    let path = tmp.path().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut d = Daemon::start(&path, &[]);
    // NVML was required and never worked: not ready, down, errors counted.
    let m = d.wait_metrics("energy checkpointed and an NVML error counted", |m| {
        value(m, "roimon_host_energy_joules_total{source=\"model\"}").unwrap_or(0.0) > 0.0
            && value(m, "roimon_collector_errors_total{collector=\"nvml\"}").unwrap_or(0.0) >= 1.0
    });
    assert_eq!(
        value(&m, "roimon_collector_up{collector=\"nvml\"}"),
        Some(0.0)
    );
    for _ in 0..5 {
        assert_eq!(
            d.get("/readyz").0,
            503,
            "a collector that never worked is not ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Let more energy accrue past the checkpoint, scrape, then crash hard.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let before = d.metrics();
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    drop(d);

    let d = Daemon::start(&path, &[]);
    let after = d.metrics();
    let mut checked = 0;
    for line in before.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, v)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap();
        // Per-process counters restart with the process by design.
        if !name.ends_with("_total") || name == "roimon_checkpoint_errors_total" {
            continue;
        }
        let was: f64 = v.parse().unwrap();
        let now =
            value(&after, series).unwrap_or_else(|| panic!("{series} missing after the crash"));
        assert!(
            now >= was,
            "{series} went backwards across a crash: {was} -> {now}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} counters compared");
    let (status, _) = d.stop("TERM");
    assert_eq!(status.code(), Some(0));
}
