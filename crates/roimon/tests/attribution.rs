//! Attribution by what actually runs, through the real binary: the fake
//! NVML lists processes (with utilisation samples, and MIG devices), a fake
//! `/proc`, `/etc/passwd` and kubelet log tree resolve them, and the rows on
//! `/metrics` must show each owner's exact share. Every wait is bounded.

mod common;

use common::mock::{Mock, Step};
use common::*;
use roimon_fake_nvml::{FakeGpu, FakeNvml, FakeProcess};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const G0: &str = "GPU-00000000-0000-0000-0000-000000000000";
const G1: &str = "GPU-00000000-0000-0000-0000-000000000001";
const G2: &str = "GPU-00000000-0000-0000-0000-000000000002";
const POD_UID: &str = "0b7c5e2a-3d4f-4a1b-9c8d-123456789abc";
const CID: &str = "4f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
/// A Kubernetes pod `vision/train-7`, container `trainer`.
const POD_PID: u32 = 101;
/// `train-llm.service`, run by alice.
const UNIT_PID: u32 = 102;
/// A login session of uid 1001: matches no rule.
const STRAY_PID: u32 = 103;

/// A fake `/proc`, `/etc` and kubelet log tree under `root`.
fn proc_tree(root: &Path) {
    let proc = root.join("proc");
    let write = |pid: u32, cgroup: &str, uid: u32| {
        let d = proc.join(pid.to_string());
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("cgroup"), cgroup).unwrap();
        fs::write(
            d.join("status"),
            format!("Name:\tpython3\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        )
        .unwrap();
    };
    let uid = POD_UID.replace('-', "_");
    write(
        POD_PID,
        &format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{CID}.scope\n"
        ),
        0,
    );
    write(UNIT_PID, "0::/system.slice/train-llm.service\n", 1000);
    write(
        STRAY_PID,
        "0::/user.slice/user-1001.slice/session-2.scope\n",
        1001,
    );
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    )
    .unwrap();
    fs::create_dir_all(root.join(format!("pods/vision_train-7_{POD_UID}/trainer"))).unwrap();
    fs::create_dir_all(root.join("containers")).unwrap();
}

/// GPUs on the fake NVML (350 W each), owners of record, no host and no
/// fixed costs: every joule on the rows is a GPU's, × PUE 1.5.
fn config(dir: &Path, nvml: &Path, idle: &str) -> PathBuf {
    config_with(dir, nvml, idle, "")
}

/// `config`, with `first` (more `[attribution]` keys, and rules tried before
/// the others) after the roots.
fn config_with(dir: &Path, nvml: &Path, idle: &str, first: &str) -> PathBuf {
    let root = dir.join("tree");
    proc_tree(&root);
    let cfg = format!(
        r#"
[sampling]
interval_secs = 0.1

[gpu]
source = "nvml"
nvml_library = "{nvml}"
[[gpu.owners]]
gpu_uuid = "{G0}"
team = "platform"
workload = "shared"
[[gpu.owners]]
gpu_uuid = "{G2}"
team = "ops"
workload = "batch"

[attribution]
mode = "process"
idle = "{idle}"
proc_root = "{root}/proc"
etc_root = "{root}/etc"
pods_log_root = "{root}/pods"
containers_log_root = "{root}/containers"
{first}

[[attribution.rules]]
name = "vision-training"
namespace = "vision"
pod = "train-*"
team = "vision"
workload = "training"

[[attribution.rules]]
name = "llm-service"
unit = "train-*.service"
user = "alice"
team = "nlp"
workload = "llm"

[host]
enabled = false

[facility]
pue = 1.5

[price]
source = "static"
currency = "EUR"
price_per_kwh = 0.30

[server]
listen = "127.0.0.1:0"

[state]
dir = "{state}"
checkpoint_interval_secs = 0.2
"#,
        nvml = nvml.display(),
        root = root.display(),
        state = dir.join("state").display(),
    );
    let path = dir.join("roimon.toml");
    fs::write(&path, cfg).unwrap();
    path
}

/// `roimon_gpu_facility_energy_joules_total` by (gpu_uuid, team, workload).
fn rows(m: &str) -> BTreeMap<(String, String, String), f64> {
    let name = "roimon_gpu_facility_energy_joules_total{";
    m.lines()
        .filter_map(|l| l.strip_prefix(name))
        .map(|l| {
            let (labels, v) = l.rsplit_once(' ').unwrap();
            let get = |k: &str| {
                let at = labels.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
                labels[at..].split('"').next().unwrap().to_string()
            };
            (
                (get("gpu_uuid"), get("team"), get("workload")),
                v.parse().unwrap(),
            )
        })
        .collect()
}

fn row(m: &str, uuid: &str, team: &str, workload: &str) -> f64 {
    rows(m)
        .get(&(uuid.into(), team.into(), workload.into()))
        .copied()
        .unwrap_or(0.0)
}

/// The facility energy of `uuid` (its own × PUE), from the same scrape.
fn gpu_facility(m: &str, uuid: &str) -> f64 {
    1.5 * value(
        m,
        &format!(
            "roimon_gpu_energy_joules_total{{gpu=\"{}\",gpu_uuid=\"{uuid}\"}}",
            &uuid[uuid.len() - 1..]
        ),
    )
    .unwrap_or(0.0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9)
}

/// Rows add up to the node, and nothing names a process.
fn assert_books_add_up(m: &str) {
    let node = value(m, "roimon_facility_energy_joules_total").unwrap();
    let rows: f64 = rows(m).values().sum();
    assert!(close(node, rows), "rows {rows} node {node}");
    let cost_node = sum(m, "roimon_cost_total");
    let cost_rows = sum(m, "roimon_gpu_cost_total");
    assert!(
        close(cost_node, cost_rows),
        "cost rows {cost_rows} node {cost_node}"
    );
    assert!(
        !m.lines()
            .any(|l| !l.starts_with('#') && (l.contains("pid=") || l.contains("cmdline"))),
        "a process label on /metrics"
    );
}

#[test]
fn two_teams_on_one_gpu_split_by_utilisation_idle_and_unmatched_go_where_configured() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeNvml::new(&[FakeGpu::new(0), FakeGpu::new(1), FakeGpu::new(2)]).unwrap();
    // GPU 0: the pod at 60 % SM, the service at 20 %: 3 : 1.
    fake.set_processes(
        0,
        &[
            FakeProcess::compute(POD_PID, Some(60)),
            FakeProcess::compute(UNIT_PID, Some(20)),
        ],
    );
    // GPU 1 idle (no owner of record: idle = "idle" makes it visible).
    // GPU 2: a process no rule matches: the owner of record, ops.
    fake.set_processes(2, &[FakeProcess::compute(STRAY_PID, Some(90))]);
    let cfg = config(dir.path(), &fake.library(), "idle");
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("a second of attributed energy", |m| {
        row(m, G0, "nlp", "llm") > 0.0 && gpu_facility(m, G0) > 1.5 * 350.0
    });
    let (vision, nlp, g0) = (
        row(&m, G0, "vision", "training"),
        row(&m, G0, "nlp", "llm"),
        gpu_facility(&m, G0),
    );
    assert!(close(vision, 0.75 * g0), "vision {vision} of {g0}");
    assert!(close(nlp, 0.25 * g0), "nlp {nlp} of {g0}");
    // The owner of record of GPU 0 gets nothing while processes run there.
    assert_eq!(row(&m, G0, "platform", "shared"), 0.0);
    // Idle power is the idle bucket's.
    assert!(close(row(&m, G1, "idle", "idle"), gpu_facility(&m, G1)));
    assert!(gpu_facility(&m, G1) > 0.0);
    // Unmatched: the UUID table's owner, counted once.
    assert!(close(row(&m, G2, "ops", "batch"), gpu_facility(&m, G2)));
    assert_eq!(value(&m, "roimon_attribution_unmatched_total"), Some(1.0));
    for (uuid, n) in [(G0, 2.0), (G1, 0.0), (G2, 1.0)] {
        let idx = &uuid[uuid.len() - 1..];
        assert_eq!(
            value(
                &m,
                &format!("roimon_gpu_processes{{gpu=\"{idx}\",gpu_uuid=\"{uuid}\"}}")
            ),
            Some(n),
            "{uuid}"
        );
    }
    // roimon_gpu_info keeps the owner of record.
    assert!(m.contains(&format!("roimon_gpu_info{{gpu=\"0\",gpu_uuid=\"{G0}\",model=\"NVIDIA H100 80GB HBM3\",team=\"platform\",workload=\"shared\"}} 1")));
    assert_books_add_up(&m);
    // The summary's rows say how each owner was found.
    let (_, body) = d.get("/api/v1/summary");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let how = |uuid: &str, team: &str| -> String {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["gpu_uuid"] == uuid && r["team"] == team)
            .map(|r| r["attributed_by"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(how(G0, "vision"), "rule:vision-training");
    assert_eq!(how(G0, "nlp"), "rule:llm-service");
    assert_eq!(how(G1, "idle"), "idle");
    assert_eq!(how(G2, "ops"), "gpu_owner");
    let (st, _) = d.stop("TERM");
    assert!(st.success());
}

#[test]
fn a_job_moving_from_gpu0_to_gpu1_takes_its_cost_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeNvml::new(&[FakeGpu::new(0), FakeGpu::new(1)]).unwrap();
    fake.set_processes(0, &[FakeProcess::compute(POD_PID, Some(80))]);
    let cfg = config(dir.path(), &fake.library(), "owner");
    let d = Daemon::start(&cfg, &[]);
    let before = d.wait_metrics("the job's cost on GPU 0", |m| {
        row(m, G0, "vision", "training") > 0.0
    });
    // GPU 1 has no owner of record: idle = "owner" gives it to unallocated.
    assert!(row(&before, G1, "unallocated", "unallocated") > 0.0);
    assert_eq!(row(&before, G1, "vision", "training"), 0.0);
    // The job moves.
    fake.set_processes(0, &[]);
    fake.set_processes(1, &[FakeProcess::compute(POD_PID, Some(80))]);
    let moved = d.wait_metrics("the job's cost on GPU 1", |m| {
        row(m, G1, "vision", "training") > 0.0
    });
    let on_g0 = row(&moved, G0, "vision", "training");
    let idle_g0 = row(&moved, G0, "platform", "shared");
    assert!(idle_g0 > 0.0, "GPU 0 idle goes to its owner of record");
    let later = d.wait_metrics("more of the job on GPU 1", |m| {
        row(m, G1, "vision", "training") > row(&moved, G1, "vision", "training")
            && row(m, G0, "platform", "shared") > idle_g0
    });
    // The job's row on GPU 0 stopped where it left; the history stays.
    assert_eq!(row(&later, G0, "vision", "training"), on_g0);
    assert!(on_g0 >= row(&before, G0, "vision", "training"));
    assert_books_add_up(&later);
    let (st, _) = d.stop("TERM");
    assert!(st.success());
}

#[test]
fn a_mig_gpu_splits_by_instance_slices_and_an_empty_instance_is_idle() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    // 4 + 2 + 1 slices: the pod's instance, the service's, an empty one.
    fake.set_mig(0, &[4, 2, 1]);
    fake.set_mig_processes(0, 0, &[FakeProcess::compute(POD_PID, None)]);
    fake.set_mig_processes(0, 1, &[FakeProcess::compute(UNIT_PID, None)]);
    let cfg = config(dir.path(), &fake.library(), "idle");
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("energy on every instance", |m| {
        row(m, G0, "idle", "idle") > 0.0 && gpu_facility(m, G0) > 1.5 * 350.0
    });
    let g0 = gpu_facility(&m, G0);
    assert!(close(row(&m, G0, "vision", "training"), g0 * 4.0 / 7.0));
    assert!(close(row(&m, G0, "nlp", "llm"), g0 * 2.0 / 7.0));
    assert!(close(row(&m, G0, "idle", "idle"), g0 / 7.0));
    assert_eq!(
        value(
            &m,
            &format!("roimon_gpu_processes{{gpu=\"0\",gpu_uuid=\"{G0}\"}}")
        ),
        Some(2.0)
    );
    assert_books_add_up(&m);
    let (st, _) = d.stop("TERM");
    assert!(st.success());
}

#[test]
fn pod_labels_from_the_pod_list_match_rules_and_the_token_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let list = format!(
        r#"{{"kind":"PodList","items":[{{"metadata":{{"uid":"{POD_UID}","namespace":"vision","name":"train-7",
            "labels":{{"app":"trainer","tier":"gpu-large"}}}},
            "status":{{"containerStatuses":[{{"name":"trainer","containerID":"containerd://{CID}"}}]}}}}]}}"#
    );
    // The first answer fails: the pod list is late, the labels unknown.
    // (The client retries once: two answers per failed fetch.)
    let mock = Mock::start(vec![
        Step::Status(503, "busy".into(), None),
        Step::Status(503, "busy".into(), None),
        Step::Ok(list),
    ]);
    let token = dir.path().join("sa-token");
    fs::write(&token, "sa-secret-1\n").unwrap();
    let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    fake.set_processes(0, &[FakeProcess::compute(POD_PID, Some(50))]);
    let first = format!(
        r#"pods_url = "{}/pods"
pods_token_file = "{}"
pods_refresh_secs = 1

[[attribution.rules]]
name = "by-label"
labels = {{ app = "trainer", tier = "gpu-*" }}
team = "labelled"
workload = "training"
"#,
        mock.url,
        token.display()
    );
    let cfg = config_with(dir.path(), &fake.library(), "idle", &first);
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("the label rule", |m| {
        row(m, G0, "labelled", "training") > 0.0
    });
    // Before the list arrived the namespace rule matched; afterwards only
    // the label rule grows.
    let (vision, labelled) = (
        row(&m, G0, "vision", "training"),
        row(&m, G0, "labelled", "training"),
    );
    assert!(vision > 0.0, "the namespace rule held until the list came");
    let later = d.wait_metrics("more under the label rule", |l| {
        row(l, G0, "labelled", "training") > labelled
    });
    assert_eq!(row(&later, G0, "vision", "training"), vision);
    assert_books_add_up(&later);
    assert!(
        value(&later, "roimon_collector_errors_total{collector=\"pods\"}").unwrap_or(0.0) >= 1.0,
        "the failed fetch is counted"
    );
    let seen = mock.seen.lock().unwrap().clone();
    assert!(seen[0].line.starts_with("GET /pods "), "{:?}", seen[0].line);
    assert!(
        seen.iter().all(|r| r
            .headers
            .iter()
            .any(|h| h == "authorization: Bearer sa-secret-1")),
        "{:?}",
        seen[0].headers
    );
    let (st, log) = d.stop("TERM");
    assert!(st.success());
    assert!(
        !log.iter().any(|l| l.contains("sa-secret-1")),
        "the token in a log line"
    );
}

#[test]
fn a_hostile_pod_list_is_refused_within_a_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    // Four pods with 100,000 labels each, then 100,000 pods: each refused
    // where its cap is crossed, not after the whole list was built.
    let labels: Vec<String> = (0..100_000).map(|i| format!(r#""k{i}":"v""#)).collect();
    let labels = labels.join(",");
    let fat: Vec<String> = (0..4)
        .map(|i| {
            format!(r#"{{"metadata":{{"uid":"u{i}","namespace":"n","name":"p{i}","labels":{{{labels}}}}}}}"#)
        })
        .collect();
    let fat = format!(r#"{{"kind":"PodList","items":[{}]}}"#, fat.join(","));
    let many: Vec<String> = (0..100_000)
        .map(|i| format!(r#"{{"metadata":{{"uid":"u{i}","namespace":"n","name":"p{i}"}}}}"#))
        .collect();
    let many = format!(r#"{{"kind":"PodList","items":[{}]}}"#, many.join(","));
    let mock = Mock::start(vec![Step::Ok(fat), Step::Ok(many)]);
    let fake = FakeNvml::new(&[FakeGpu::new(0)]).unwrap();
    fake.set_processes(0, &[FakeProcess::compute(POD_PID, Some(50))]);
    let first = format!("pods_url = \"{}/pods\"\npods_refresh_secs = 1\n", mock.url);
    let cfg = config_with(dir.path(), &fake.library(), "idle", &first);
    let d = Daemon::start(&cfg, &[]);
    let m = d.wait_metrics("both lists refused", |m| {
        value(m, "roimon_collector_errors_total{collector=\"pods\"}").unwrap_or(0.0) >= 2.0
            && mock.count() >= 2
    });
    assert_books_add_up(&m);
    let status = fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(hwm_kib <= 128 * 1024, "peak RSS {hwm_kib} KiB");
    let (st, log) = d.stop("TERM");
    assert!(st.success());
    let log = log.join("\n");
    assert!(log.contains("more than 256 labels"), "{log}");
}
