//! `[attribution]`: whether GPUs are attributed by what runs on them
//! (process → cgroup → owner, through ordered rules) or by the UUID table.

use crate::{Check, Ctx, Failure};
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

impl Check for Rule {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.team.trim().is_empty() {
            return ctx.fail("team", "must not be empty");
        }
        if self.workload.trim().is_empty() {
            return ctx.fail("workload", "must not be empty");
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
            return ctx.fail(
                "team",
                "a rule needs at least one match key (namespace, pod, labels, container, unit, user, cgroup)",
            );
        }
        if self.labels.keys().any(|k| k.is_empty()) {
            return ctx.fail("labels", "a label name must not be empty");
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
                return ctx.fail(k, "must not be empty (leave the key out)");
            }
        }
        Ok(())
    }
}

impl Check for Attribution {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        let rules = ctx.at("rules");
        for (i, r) in self.rules.iter().enumerate() {
            r.check(&rules.item(i))?;
        }
        if !(1..=1_000_000).contains(&self.max_cached_processes) {
            return ctx.fail(
                "max_cached_processes",
                format!(
                    "must be between 1 and 1000000, got {}",
                    self.max_cached_processes
                ),
            );
        }
        if let Some(u) = &self.pods_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return ctx.fail(
                    "pods_url",
                    format!("must start with http:// or https://, got {u:?}"),
                );
            }
        }
        for (k, v, min, max) in [
            ("pods_refresh_secs", self.pods_refresh_secs, 1.0, 86_400.0),
            ("pods_timeout_secs", self.pods_timeout_secs, 0.1, 300.0),
        ] {
            if !(v.is_finite() && (min..=max).contains(&v)) {
                return ctx.fail(
                    k,
                    format!("must be between {min} and {max} seconds, got {v}"),
                );
            }
        }
        if self.pods_url.is_none() {
            if let Some(i) = self.rules.iter().position(|r| !r.labels.is_empty()) {
                return rules.item(i).fail(
                    "labels",
                    "pod labels come from attribution.pods_url, which is not set: without it this rule never matches",
                );
            }
        }
        for (k, p) in [
            ("proc_root", &self.proc_root),
            ("etc_root", &self.etc_root),
            ("pods_log_root", &self.pods_log_root),
            ("containers_log_root", &self.containers_log_root),
        ] {
            if p.as_os_str().is_empty() {
                return ctx.fail(k, "must not be empty");
            }
        }
        Ok(())
    }
}
