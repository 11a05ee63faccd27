//! The real-GPU check (`scripts/real-gpu-check.sh` and its Python helper) run
//! as CI runs it, against the fake NVML: it drives every phase, writes the
//! Markdown and JSON reports and exits 0 when roimon books what NVML counts,
//! and exits 1 when roimon books energy NVML did not count. Needs python3
//! with `nvidia-ml-py` (installed by `.ci/run`).

use roimon_fake_nvml::{DRIVER_VERSION, FakeGpu, FakeNvml};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roimon");
const PHASES: [&str; 4] = ["idle", "full-load", "half-load", "idle-after"];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/real-gpu-check.sh")
}

/// Whether python3 can import pynvml; under CI it must.
fn have_pynvml() -> bool {
    let have = Command::new("python3")
        .args(["-c", "import pynvml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var("CI").is_err(),
            "python3 with nvidia-ml-py (import pynvml) is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIP: python3 -m pip install nvidia-ml-py to run this test");
    }
    have
}

/// What one run of the script left: exit status, stdout, stderr.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Run the script on `nvml` with `roimon`, reports to `out`; bounded.
fn check(roimon: &Path, nvml: Option<&Path>, out: &Path, tmp: &Path) -> Run {
    let (so, se) = (tmp.join("stdout"), tmp.join("stderr"));
    let mut cmd = Command::new("bash");
    cmd.arg(script());
    if let Some(lib) = nvml {
        cmd.arg("--nvml-library").arg(lib);
    }
    let mut child = cmd
        .arg(out)
        .env("ROIMON_BIN", roimon)
        // Every phase as short as allowed: each still spans one checkpoint
        // interval of roimon (5 s), between the boundaries it waits for.
        .env("REAL_GPU_CHECK_PHASE_SECS", "1")
        .env_remove("ROIMON_CONFIG")
        .env_remove("ROIMON_NVML_LIBRARY")
        .stdin(Stdio::null())
        .stdout(File::create(&so).unwrap())
        .stderr(File::create(&se).unwrap())
        .spawn()
        .expect("run bash");
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            // TERM first: the script's trap stops its roimon.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(20));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "real-gpu-check.sh did not finish within 240 s:\n{}",
                std::fs::read_to_string(&so).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run {
        status,
        stdout: std::fs::read_to_string(&so).unwrap(),
        stderr: std::fs::read_to_string(&se).unwrap(),
    }
}

fn report(out: &Path, run: &Run) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}):\n{}", run.show()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report.json: {e}\n{text}"))
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// The report's shape: the keys the README promises, four phases in order.
fn assert_shape(doc: &serde_json::Value) -> &Vec<serde_json::Value> {
    assert_eq!(doc["gpu"], "NVIDIA H100 80GB HBM3", "{doc}");
    assert_eq!(doc["driver"], DRIVER_VERSION, "{doc}");
    assert!(doc["mig"].is_boolean(), "{doc}");
    let phases = doc["phases"].as_array().expect("phases is a list");
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, PHASES);
    for p in phases {
        for key in [
            "seconds",
            "nvml_joules",
            "roimon_joules",
            "relative_error",
            "nvml_mean_watts",
            "roimon_mean_watts",
        ] {
            num(p, key);
        }
    }
    phases
}

#[test]
fn the_check_passes_on_the_fake_nvml_and_writes_both_reports() {
    if !have_pynvml() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    let out = tmp.path().join("report");
    let run = check(Path::new(BIN), Some(&fake.library()), &out, tmp.path());
    assert_eq!(run.status.code(), Some(0), "{}", run.show());
    assert!(
        run.stdout.contains(
            "| phase | seconds | NVML J | roimon J | relative error | NVML mean W | roimon mean W |"
        ),
        "{}",
        run.show()
    );

    let doc = report(&out, &run);
    assert_eq!(doc["passed"], true, "{doc}");
    assert_eq!(doc["mig"], false, "{doc}");
    assert_eq!(doc["mode"], "fake", "{doc}");
    for p in assert_shape(&doc) {
        let (secs, nvml_j) = (num(p, "seconds"), num(p, "nvml_joules"));
        // Each phase spans at least one checkpoint interval, and NVML's own
        // counter moved at the fake's 350 W over it.
        assert!(secs >= 4.0, "{p}");
        assert!((nvml_j / secs - 350.0).abs() < 3.5, "{p}");
        assert!(num(p, "relative_error") < 0.01, "{p}");
        assert!((num(p, "nvml_mean_watts") - 350.0).abs() < 1e-6, "{p}");
        assert!((num(p, "roimon_mean_watts") - 350.0).abs() < 1e-6, "{p}");
        // roimon's cost is its facility energy times the price.
        assert!(num(&p["cost"], "relative_error") < 1e-3, "{p}");
    }
    // The stand-in load was listed on the fake GPU in the load phases only,
    // and roimon resolved its pid.
    let phases = doc["phases"].as_array().unwrap();
    for (p, loaded) in phases.iter().zip([false, true, true, false]) {
        let pr = &p["processes"];
        assert_eq!(pr["load_pid"].is_u64(), loaded, "{p}");
        if loaded {
            assert_eq!(pr["load_pid_seen_by_nvml"], true, "{p}");
            assert_eq!(pr["load_pid_seen_by_roimon"], true, "{p}");
            assert_eq!(pr["roimon_gpu_processes_max"], 1.0, "{p}");
        } else {
            assert_eq!(pr["roimon_gpu_processes_max"], 0.0, "{p}");
        }
    }

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("verdict: **PASS**"), "{md}");
    for name in PHASES {
        assert!(md.contains(&format!("| {name} |")), "{md}");
    }
    let log = std::fs::read_to_string(out.join("roimon.log")).unwrap();
    assert!(log.contains("\"roimon running\""), "{log}");
}

#[test]
fn the_check_fails_when_roimon_books_energy_nvml_did_not_count() {
    if !have_pynvml() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // What the check reads: the GPU at 350 W, with MIG on.
    let seen = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    seen.set_mig(0, &[4, 3]);
    // What roimon is given instead: the same GPU drawing 3 % more, so it
    // books 3 % more energy than NVML counts.
    let wrong = FakeNvml::new(&[FakeGpu {
        power_mw: 360_500,
        ..FakeGpu::new(0)
    }])
    .unwrap();
    let wrapper = tmp.path().join("roimon-misreading");
    std::fs::write(
        &wrapper,
        format!(
            "#!/usr/bin/env bash\n# roimon, pointed at another NVML than the one named\nargs=()\nwhile (($#)); do\n  if [ \"$1\" = --nvml-library ]; then args+=(\"$1\" '{wrong}'); shift 2; else args+=(\"$1\"); shift; fi\ndone\nexec '{bin}' \"${{args[@]}}\"\n",
            wrong = wrong.library().display(),
            bin = BIN
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = tmp.path().join("report");
    let run = check(&wrapper, Some(&seen.library()), &out, tmp.path());
    assert_eq!(run.status.code(), Some(1), "{}", run.show());
    assert!(
        run.stdout.contains("FAIL: idle: roimon booked"),
        "{}",
        run.show()
    );

    let doc = report(&out, &run);
    assert_eq!(doc["passed"], false, "{doc}");
    assert_eq!(doc["mig"], true, "{doc}");
    assert_eq!(doc["failures"].as_array().map(Vec::len), Some(4), "{doc}");
    for p in assert_shape(&doc) {
        let err = num(p, "relative_error");
        assert!((err - 0.03).abs() < 0.002, "{p}");
        assert!((num(p, "roimon_mean_watts") - 360.5).abs() < 1e-6, "{p}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("verdict: **FAIL**"), "{md}");
}

#[test]
fn the_check_refuses_to_start_without_a_roimon_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report");
    let missing = tmp.path().join("no-roimon-here");
    let run = check(&missing, None, &out, tmp.path());
    assert_eq!(run.status.code(), Some(2), "{}", run.show());
    assert!(
        run.stderr.contains("no roimon binary at") && run.stderr.contains("ROIMON_BIN"),
        "{}",
        run.show()
    );
    assert!(!out.join("report.json").exists());
}
