//! `[attribution]`: whether GPUs are attributed by what runs on them
//! (process → cgroup → owner, through ordered rules) or by the UUID table.

use serde::Deserialize;
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
        if keys.iter().all(|k| k.is_none()) {
            return Err((
                "team".into(),
                "a rule needs at least one match key (namespace, pod, container, unit, user, cgroup)"
                    .into(),
            ));
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
