//! `[attribution]`: whether GPUs are attributed by what runs on them
//! (process → cgroup → owner, through ordered rules) or by the UUID table.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[attribution] mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AttributionMode {
    /// By process where NVML lists a GPU's processes, else the UUID table.
    #[default]
    Auto,
    /// By process; a GPU that cannot list its processes is a WARN (and
    /// falls back to the UUID table, so its cost is still booked).
    Process,
    /// The UUID table only (`[[gpu.owners]]`); processes are not read.
    Static,
}

/// `[attribution] idle`: who pays for a GPU (or MIG instance) nothing runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdleOwner {
    /// The GPU's owner of record (`[[gpu.owners]]`, else unallocated).
    #[default]
    Owner,
    /// team = "idle", workload = "idle", so idle cost is its own series.
    Idle,
}

/// `[attribution]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Attribution {
    /// auto | process | static
    pub mode: AttributionMode,
    /// owner | idle
    pub idle: IdleOwner,
    /// Where `<pid>/cgroup` and `<pid>/status` are read.
    pub proc_root: PathBuf,
    /// Where `passwd` is read (user names of uids).
    pub etc_root: PathBuf,
    /// The kubelet's pod log directory: `<namespace>_<pod>_<uid>/<container>/`.
    pub pods_log_root: PathBuf,
    /// The kubelet's container log links: `<pod>_<namespace>_<container>-<id>.log`.
    pub containers_log_root: PathBuf,
    /// Most processes whose resolution is remembered.
    pub max_cached_processes: usize,
    /// A URL answering a Kubernetes `PodList` for this node (the kubelet's
    /// `/pods`, or the API server's `/api/v1/pods?fieldSelector=spec.nodeName=…`):
    /// the source of pod labels. Unset: labels are not known.
    pub pods_url: Option<String>,
    /// Bearer token for `pods_url` (a service account token; re-read at
    /// every fetch, as projected tokens rotate).
    pub pods_token_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted for `pods_url` besides the system's.
    pub pods_ca_file: Option<PathBuf>,
    /// Seconds between fetches of `pods_url`.
    pub pods_refresh_secs: f64,
    /// Limit for one fetch of `pods_url`, seconds.
    pub pods_timeout_secs: f64,
    /// Ordered rules; the first that matches a process names its owner.
    pub rules: Vec<Rule>,
}

impl Default for Attribution {
    fn default() -> Self {
        Self {
            mode: AttributionMode::Auto,
            idle: IdleOwner::Owner,
            proc_root: PathBuf::from("/proc"),
            etc_root: PathBuf::from("/etc"),
            pods_log_root: PathBuf::from("/var/log/pods"),
            containers_log_root: PathBuf::from("/var/log/containers"),
            max_cached_processes: 4096,
            pods_url: None,
            pods_token_file: None,
            pods_ca_file: None,
            pods_refresh_secs: 30.0,
            pods_timeout_secs: 5.0,
            rules: Vec::new(),
        }
    }
}

/// `[[attribution.rules]]`: match keys (globs with `*` and `?`; every key
/// given must match) and the owner they name.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Shown in logs and recorded with the rows it attributed
    /// (`rule:<name>`); default `rules[<index>]`.
    pub name: Option<String>,
    /// Team.
    pub team: String,
    /// Workload.
    #[serde(default = "unallocated")]
    pub workload: String,
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Kubernetes pod name.
    pub pod: Option<String>,
    /// Container name (Kubernetes).
    pub container: Option<String>,
    /// systemd unit (`*.service` or `*.scope`).
    pub unit: Option<String>,
    /// User name, or numeric uid where the name is unknown.
    pub user: Option<String>,
    /// The process's cgroup path.
    pub cgroup: Option<String>,
    /// Pod labels (from `pods_url`): every label given must be present
    /// and match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn unallocated() -> String {
    roimon_core::engine::UNALLOCATED.to_string()
}

impl Rule {
    /// Checks one rule: (key suffix, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.team.trim().is_empty() {
            return Err(("team".into(), "must not be empty".into()));
        }
        if self.workload.trim().is_empty() {
            return Err(("workload".into(), "must not be empty".into()));
        }
        let keys = [
            &self.namespace,
            &self.pod,
            &self.container,
            &self.unit,
            &self.user,
            &self.cgroup,
        ];
        if keys.iter().all(|k| k.is_none()) && self.labels.is_empty() {
            return Err((
                "team".into(),
                "a rule needs at least one match key (namespace, pod, labels, container, unit, user, cgroup)"
                    .into(),
            ));
        }
        if self.labels.keys().any(|k| k.is_empty()) {
            return Err(("labels".into(), "a label name must not be empty".into()));
        }
        for (k, v) in [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("container", &self.container),
            ("unit", &self.unit),
            ("user", &self.user),
            ("cgroup", &self.cgroup),
        ] {
            if v.as_deref().is_some_and(|s| s.is_empty()) {
                return Err((k.into(), "must not be empty (leave the key out)".into()));
            }
        }
        Ok(())
    }
}
