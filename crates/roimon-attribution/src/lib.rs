//! Attribution by what actually runs: a GPU's processes (from NVML) are
//! resolved to a systemd unit, a container or a Kubernetes pod through
//! `/proc/<pid>/cgroup`, and to an owner through the ordered
//! `[[attribution.rules]]`; what matches no rule goes to the GPU's owner of
//! record. Every root is a parameter, so tests use fake trees. Pod labels
//! come, where configured, from a `PodList` the daemon fetches and this
//! crate reads ([`parse_pod_list`]). No network, no async runtime.

pub mod pod_list;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roimon_config::{Attribution, AttributionMode, IdleOwner, Rule};
use roimon_core::engine::UNALLOCATED;
use roimon_core::{BY_GPU_OWNER, Claim, Engine, GpuReading, Owner, OwnerShare, Reading, Report};

/// What a cgroup path says about a process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgroup {
    /// The path (of the unified hierarchy, else the systemd or the first
    /// named controller's).
    pub path: String,
    /// The innermost systemd unit (`*.service` or `*.scope`).
    pub unit: Option<String>,
    /// A container id (docker, containerd, CRI-O, podman).
    pub container_id: Option<String>,
    /// A Kubernetes pod UID (with dashes).
    pub pod_uid: Option<String>,
}

/// Parses the text of `/proc/<pid>/cgroup` (cgroup v1 or v2).
pub fn parse_cgroup(text: &str) -> Cgroup {
    let mut unified = None;
    let mut systemd = None;
    let mut longest: Option<&str> = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            unified = Some(path);
        } else if controllers == "name=systemd" {
            systemd = Some(path);
        } else if longest.is_none_or(|l| path.len() > l.len()) {
            longest = Some(path);
        }
    }
    // Under cgroup v1 with a hybrid layout the unified line is often "/":
    // the v1 paths say more then.
    let path = [unified, longest, systemd]
        .into_iter()
        .flatten()
        .find(|p| *p != "/")
        .or(unified)
        .unwrap_or("")
        .trim()
        .to_string();
    let mut cg = Cgroup {
        path: path.clone(),
        ..Cgroup::default()
    };
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        if let Some(uid) = pod_uid(comp) {
            cg.pod_uid = Some(uid);
        }
        if let Some(id) = container_id(comp) {
            cg.container_id = Some(id);
        }
        if comp.ends_with(".service") || comp.ends_with(".scope") {
            cg.unit = Some(comp.to_string());
        }
    }
    cg
}

/// `pod<uid>` (cgroupfs driver) or `kubepods-<qos>-pod<uid_with_underscores>.slice`
/// (systemd driver).
fn pod_uid(comp: &str) -> Option<String> {
    let comp = comp.strip_suffix(".slice").unwrap_or(comp);
    let at = comp.rfind("pod")?;
    let before = &comp[..at];
    if !(before.is_empty() || before.starts_with("kubepods")) {
        return None;
    }
    let uid = comp[at + 3..].replace('_', "-");
    let ok = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    ok.then_some(uid)
}

/// A container id: `docker-<id>.scope`, `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `libpod-<id>.scope`, or a bare 64-hex component
/// (cgroupfs drivers: `/docker/<id>`, `/kubepods/…/<id>`).
fn container_id(comp: &str) -> Option<String> {
    let id = match comp.strip_suffix(".scope") {
        Some(s) => ["docker-", "cri-containerd-", "crio-", "libpod-"]
            .iter()
            .find_map(|p| s.strip_prefix(p))?,
        None => comp,
    };
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// Everything roimon knows about a process, for matching rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// From its cgroup.
    pub cgroup: Cgroup,
    /// User name, else the numeric uid.
    pub user: Option<String>,
    /// Kubernetes namespace (from the pod log directory).
    pub namespace: Option<String>,
    /// Kubernetes pod name.
    pub pod: Option<String>,
    /// Container name.
    pub container: Option<String>,
    /// Pod labels (from the pod list, where configured).
    pub labels: BTreeMap<String, String>,
}

/// What the pod list says about one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Container id (without the `containerd://` scheme) → container name.
    pub containers: HashMap<String, String>,
}

/// Pods by UID.
pub type PodIndex = HashMap<String, PodMeta>;

/// Reads a Kubernetes `PodList` (JSON, as the kubelet's `/pods` and the API
/// server's `/api/v1/pods` answer) into pods by UID, within a memory bound
/// (see [`crate::pod_list`]).
pub fn parse_pod_list(text: &str) -> Result<PodIndex, String> {
    crate::pod_list::parse(text)
}

/// `*` (any run) and `?` (any one character) glob match of the whole text.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether every match key the rule gives matches the process.
pub fn matches(rule: &Rule, info: &ProcInfo) -> bool {
    let key = |pattern: &Option<String>, value: Option<&str>| match pattern {
        None => true,
        Some(p) => value.is_some_and(|v| glob(p, v)),
    };
    key(&rule.namespace, info.namespace.as_deref())
        && key(&rule.pod, info.pod.as_deref())
        && key(&rule.container, info.container.as_deref())
        && key(&rule.unit, info.cgroup.unit.as_deref())
        && key(&rule.user, info.user.as_deref())
        && key(&rule.cgroup, Some(info.cgroup.path.as_str()))
        && rule
            .labels
            .iter()
            .all(|(k, p)| info.labels.get(k).is_some_and(|v| glob(p, v)))
}

/// Reads what `/proc` (and the kubelet's log directories, and `passwd`) say
/// about processes. `None`: the process is gone (or was never visible).
#[derive(Debug, Clone)]
pub struct Resolver {
    proc_root: PathBuf,
    etc_root: PathBuf,
    pods_log_root: PathBuf,
    containers_log_root: PathBuf,
}

impl Resolver {
    /// A resolver over these roots.
    pub fn new(cfg: &Attribution) -> Self {
        Self {
            proc_root: cfg.proc_root.clone(),
            etc_root: cfg.etc_root.clone(),
            pods_log_root: cfg.pods_log_root.clone(),
            containers_log_root: cfg.containers_log_root.clone(),
        }
    }

    /// What is known about `pid`, or `None` when it has exited.
    pub fn resolve(&self, pid: u32) -> Option<ProcInfo> {
        let dir = self.proc_root.join(pid.to_string());
        let cgroup = parse_cgroup(&fs::read_to_string(dir.join("cgroup")).ok()?);
        let uid = fs::read_to_string(dir.join("status")).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|u| u.parse::<u32>().ok())
        });
        let user = uid.map(|u| self.user_name(u).unwrap_or_else(|| u.to_string()));
        let mut info = ProcInfo {
            cgroup,
            user,
            ..ProcInfo::default()
        };
        if let Some(uid) = info.cgroup.pod_uid.clone() {
            if let Some((ns, pod, dir)) = self.pod(&uid) {
                info.namespace = Some(ns);
                info.pod = Some(pod);
                info.container = info
                    .cgroup
                    .container_id
                    .as_deref()
                    .and_then(|id| self.container_name(id))
                    .or_else(|| only_subdir(&dir));
            }
        }
        Some(info)
    }

    fn user_name(&self, uid: u32) -> Option<String> {
        let text = fs::read_to_string(self.etc_root.join("passwd")).ok()?;
        text.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?;
            (id.parse::<u32>().ok() == Some(uid)).then(|| name.to_string())
        })
    }

    /// `<pods_log_root>/<namespace>_<pod>_<uid>`: (namespace, pod, dir).
    fn pod(&self, uid: &str) -> Option<(String, String, PathBuf)> {
        let suffix = format!("_{uid}");
        for e in fs::read_dir(&self.pods_log_root).ok()?.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(rest) = name.strip_suffix(&suffix) {
                // Namespaces have no '_' (DNS labels); pod names neither.
                if let Some((ns, pod)) = rest.split_once('_') {
                    return Some((ns.to_string(), pod.to_string(), e.path()));
                }
            }
        }
        None
    }

    /// `<containers_log_root>/<pod>_<namespace>_<container>-<id>.log`.
    fn container_name(&self, id: &str) -> Option<String> {
        let suffix = format!("-{id}.log");
        for e in fs::read_dir(&self.containers_log_root).ok()?.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(rest) = name.strip_suffix(&suffix) {
                return rest.splitn(3, '_').nth(2).map(str::to_string);
            }
        }
        None
    }
}

/// The one container directory of a pod's log directory, if there is one.
fn only_subdir(dir: &Path) -> Option<String> {
    let mut names = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string));
    let first = names.next()?;
    names.next().is_none().then_some(first)
}

/// How one process was attributed.
#[derive(Debug, Clone, PartialEq)]
struct Resolved {
    /// The matching rule's index, or `None` (no rule matched, or gone).
    rule: Option<usize>,
}

/// The daemon side of attribution: per tick, turns every GPU reading's
/// processes into owner shares and puts them in force in the engine.
#[derive(Debug)]
pub struct Attributor {
    mode: AttributionMode,
    idle: IdleOwner,
    rules: Vec<Rule>,
    resolver: Resolver,
    owners: HashMap<String, Owner>,
    cache: HashMap<u32, Resolved>,
    max_cached: usize,
    /// GPUs already warned about (mode = process, no process list).
    warned: HashSet<String>,
    /// Pods by UID from the pod list (`None` until one arrives, or when
    /// no `pods_url` is set).
    pods: Option<Arc<PodIndex>>,
    /// Pids already counted as unmatched (while they stay on a GPU).
    counted: HashSet<u32>,
}

impl Attributor {
    /// `None` in `static` mode (nothing to do).
    pub fn new(cfg: &Attribution, owners: HashMap<String, Owner>) -> Option<Self> {
        if cfg.mode == AttributionMode::Static {
            return None;
        }
        Some(Self {
            mode: cfg.mode,
            idle: cfg.idle,
            rules: cfg.rules.clone(),
            resolver: Resolver::new(cfg),
            owners,
            cache: HashMap::new(),
            max_cached: cfg.max_cached_processes,
            warned: Default::default(),
            pods: None,
            counted: HashSet::new(),
        })
    }

    /// Put a new pod list in force: every process is resolved afresh (its
    /// pod's labels may have changed, or it was resolved before the pod was
    /// listed).
    pub fn set_pods(&mut self, pods: Arc<PodIndex>) {
        self.pods = Some(pods);
        self.cache.clear();
    }

    /// What is known about `pid`, the pod list included.
    fn info(&self, pid: u32) -> Option<ProcInfo> {
        let mut info = self.resolver.resolve(pid)?;
        let meta = info
            .cgroup
            .pod_uid
            .as_ref()
            .and_then(|uid| self.pods.as_ref()?.get(uid));
        if let Some(m) = meta {
            info.namespace.get_or_insert_with(|| m.namespace.clone());
            info.pod.get_or_insert_with(|| m.name.clone());
            if info.container.is_none() {
                info.container = info
                    .cgroup
                    .container_id
                    .as_ref()
                    .and_then(|id| m.containers.get(id).cloned());
            }
            info.labels.clone_from(&m.labels);
        }
        Some(info)
    }

    fn rule_name(&self, i: usize) -> String {
        let name = self.rules[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("rules[{i}]"));
        format!("rule:{name}")
    }

    /// The owner of record of `uuid` and how it was found.
    fn of_record(&self, uuid: &str) -> (Owner, &'static str) {
        match self.owners.get(uuid) {
            Some(o) => (o.clone(), BY_GPU_OWNER),
            None => (Owner::unallocated(), UNALLOCATED),
        }
    }

    /// Resolve `pid` (cached); returns (resolution, first seen unmatched).
    fn lookup(&mut self, pid: u32) -> (Resolved, bool) {
        if let Some(r) = self.cache.get(&pid) {
            return (r.clone(), false);
        }
        let r = self.resolve_uncached(pid);
        let first_unmatched = r.rule.is_none() && self.counted.insert(pid);
        (r, first_unmatched)
    }

    fn resolve_uncached(&mut self, pid: u32) -> Resolved {
        let info = self.info(pid);
        let rule = info
            .as_ref()
            .and_then(|i| self.rules.iter().position(|r| matches(r, i)));
        let r = Resolved { rule };
        match &info {
            Some(i) => {
                tracing::debug!(pid, cgroup = %i.cgroup.path, rule = ?rule.map(|r| self.rule_name(r)), "attribution: process resolved")
            }
            None => tracing::debug!(pid, "attribution: process gone before it could be resolved"),
        }
        // A pid NVML lists but /proc does not show (roimon in another pid
        // namespace, or the process just exited) is remembered too, so it
        // is counted unmatched once; the entry goes when the pid leaves
        // the GPUs (see `apply`), so a reused pid is resolved afresh.
        if self.cache.len() < self.max_cached {
            self.cache.insert(pid, r.clone());
        }
        r
    }

    /// The owner shares of one GPU reading; `None` when it has no process
    /// list (the engine keeps what it had). Counts newly seen processes
    /// that matched no rule in `unmatched`.
    fn shares(&mut self, g: &GpuReading, unmatched: &mut u64) -> Option<Vec<OwnerShare>> {
        let procs = g.processes.as_ref()?;
        let claims: Vec<Claim> = procs.claims();
        let mut out = Vec::with_capacity(claims.len());
        for c in claims {
            let (owner, rule) = match c.pid {
                None => {
                    let owner = match self.idle {
                        IdleOwner::Owner => self.of_record(&g.uuid).0,
                        IdleOwner::Idle => Owner {
                            team: "idle".into(),
                            workload: "idle".into(),
                        },
                    };
                    (owner, "idle".to_string())
                }
                Some(pid) => {
                    let (r, new) = self.lookup(pid);
                    match r.rule {
                        Some(i) => {
                            let rule = &self.rules[i];
                            (
                                Owner {
                                    team: rule.team.clone(),
                                    workload: rule.workload.clone(),
                                },
                                self.rule_name(i),
                            )
                        }
                        None => {
                            if new {
                                *unmatched += 1;
                            }
                            let (o, how) = self.of_record(&g.uuid);
                            (o, how.to_string())
                        }
                    }
                }
            };
            out.push(OwnerShare {
                owner,
                share: c.share,
                rule,
            });
        }
        Some(out)
    }

    /// Put this tick's owners of every GPU read in force in `engine`.
    pub fn apply(&mut self, reports: &[Report], engine: &mut Engine) {
        let mut unmatched = 0;
        let mut live: std::collections::HashSet<u32> = Default::default();
        let mut any_gpu = false;
        for r in reports {
            let Ok(readings) = &r.outcome else { continue };
            for reading in readings {
                let Reading::Gpu(g) = reading else { continue };
                any_gpu = true;
                if let Some(p) = &g.processes {
                    live.extend(p.running.iter().map(|p| p.pid));
                }
                match self.shares(g, &mut unmatched) {
                    Some(s) => engine.set_attribution(&g.uuid, s),
                    None => {
                        if self.mode == AttributionMode::Process
                            && self.warned.insert(g.uuid.clone())
                        {
                            tracing::warn!(gpu_uuid = %g.uuid, "attribution.mode = \"process\" but NVML does not list this GPU's processes: it stays with its owner of record (or the last owners seen)");
                        }
                    }
                }
            }
        }
        // Processes no longer on any GPU are forgotten (their pid may be
        // reused); only when the GPU collector answered this tick.
        if any_gpu {
            self.cache.retain(|pid, _| live.contains(pid));
            self.counted.retain(|pid| live.contains(pid));
        }
        if unmatched > 0 {
            engine.note_unmatched(unmatched);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b7c5e2a-3d4f-4a1b-9c8d-123456789abc";
    const CID: &str = "4f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    #[test]
    fn cgroup_v2_systemd_service_and_user_session() {
        let c = parse_cgroup("0::/system.slice/train-llm.service\n");
        assert_eq!(c.path, "/system.slice/train-llm.service");
        assert_eq!(c.unit.as_deref(), Some("train-llm.service"));
        assert_eq!((c.container_id, c.pod_uid), (None, None));
        let c = parse_cgroup("0::/user.slice/user-1000.slice/session-4.scope\n");
        assert_eq!(c.unit.as_deref(), Some("session-4.scope"));
    }

    #[test]
    fn cgroup_v1_prefers_a_real_path_over_the_root() {
        let text = "12:memory:/slurm/uid_1000/job_42/step_0\n\
                    11:cpu,cpuacct:/slurm/uid_1000/job_42\n\
                    1:name=systemd:/system.slice/slurmd.service\n\
                    0::/\n";
        let c = parse_cgroup(text);
        assert_eq!(c.path, "/slurm/uid_1000/job_42/step_0");
        assert_eq!(c.unit, None);
        // Only the systemd hierarchy says something: it is used.
        let c = parse_cgroup("1:name=systemd:/system.slice/jupyter.service\n0::/\n");
        assert_eq!(c.unit.as_deref(), Some("jupyter.service"));
    }

    #[test]
    fn cgroup_docker_both_drivers() {
        let c = parse_cgroup(&format!("0::/system.slice/docker-{CID}.scope\n"));
        assert_eq!(c.container_id.as_deref(), Some(CID));
        assert_eq!(c.pod_uid, None);
        let c = parse_cgroup(&format!("4:devices:/docker/{CID}\n"));
        assert_eq!(c.container_id.as_deref(), Some(CID));
    }

    #[test]
    fn cgroup_kubernetes_containerd_systemd_driver() {
        let uid = UID.replace('-', "_");
        let c = parse_cgroup(&format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{CID}.scope\n"
        ));
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        assert_eq!(c.container_id.as_deref(), Some(CID));
        // Guaranteed QoS has no class level.
        let c = parse_cgroup(&format!(
            "0::/kubepods.slice/kubepods-pod{uid}.slice/cri-containerd-{CID}.scope\n"
        ));
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn cgroup_kubernetes_cri_o_and_cgroupfs_driver() {
        let uid = UID.replace('-', "_");
        let c = parse_cgroup(&format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/crio-{CID}.scope\n"
        ));
        assert_eq!(
            (c.pod_uid.as_deref(), c.container_id.as_deref()),
            (Some(UID), Some(CID))
        );
        let c = parse_cgroup(&format!("7:memory:/kubepods/burstable/pod{UID}/{CID}\n"));
        assert_eq!(
            (c.pod_uid.as_deref(), c.container_id.as_deref()),
            (Some(UID), Some(CID))
        );
        // Something that only looks like a pod or a container is neither.
        let c = parse_cgroup("0::/system.slice/podman.service/docker-abc.scope\n");
        assert_eq!((c.pod_uid, c.container_id), (None, None));
    }

    #[test]
    fn globs() {
        assert!(glob("train-*", "train-llm-7"));
        assert!(glob("*.service", "a.service"));
        assert!(glob("job_??", "job_42"));
        assert!(!glob("job_??", "job_4"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("a*b", "a-b-c"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
    }

    fn rule(team: &str) -> Rule {
        Rule {
            team: team.into(),
            workload: "w".into(),
            ..Rule::default()
        }
    }

    #[test]
    fn a_rule_matches_only_when_every_key_it_gives_does() {
        let info = ProcInfo {
            cgroup: Cgroup {
                path: "/kubepods/x".into(),
                unit: None,
                container_id: Some(CID.into()),
                pod_uid: Some(UID.into()),
            },
            user: Some("alice".into()),
            namespace: Some("vision".into()),
            pod: Some("train-7".into()),
            container: Some("trainer".into()),
            labels: [("app".to_string(), "trainer".to_string())].into(),
        };
        let r = Rule {
            labels: [("app".to_string(), "train*".to_string())].into(),
            ..rule("l")
        };
        assert!(matches(&r, &info));
        let r = Rule {
            labels: [("tier".to_string(), "*".to_string())].into(),
            ..rule("l")
        };
        assert!(!matches(&r, &info), "a label the pod lacks");
        let r = Rule {
            namespace: Some("vision".into()),
            pod: Some("train-*".into()),
            ..rule("v")
        };
        assert!(matches(&r, &info));
        let r = Rule {
            container: Some("sidecar".into()),
            ..r
        };
        assert!(!matches(&r, &info));
        // A key the process has no value for does not match.
        let r = Rule {
            unit: Some("*".into()),
            ..rule("u")
        };
        assert!(!matches(&r, &info));
        let r = Rule {
            user: Some("al*".into()),
            cgroup: Some("/kubepods/*".into()),
            ..rule("u")
        };
        assert!(matches(&r, &info));
    }

    /// A fake `/proc`, `/etc` and kubelet log tree.
    fn tree(root: &Path) -> Attribution {
        let proc = root.join("proc");
        let write = |pid: u32, cgroup: &str, uid: u32| {
            let d = proc.join(pid.to_string());
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("cgroup"), cgroup).unwrap();
            fs::write(
                d.join("status"),
                format!("Name:\tpython\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
            )
            .unwrap();
        };
        let uid = UID.replace('-', "_");
        write(
            10,
            &format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{CID}.scope\n"
            ),
            0,
        );
        write(20, "0::/system.slice/train-llm.service\n", 1000);
        write(30, "0::/user.slice/user-1001.slice/session-2.scope\n", 1001);
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        let pods = root.join("pods");
        fs::create_dir_all(pods.join(format!("vision_train-7_{UID}/trainer"))).unwrap();
        fs::create_dir_all(pods.join(format!("vision_train-7_{UID}/sidecar"))).unwrap();
        let containers = root.join("containers");
        fs::create_dir_all(&containers).unwrap();
        fs::write(
            containers.join(format!("train-7_vision_trainer-{CID}.log")),
            "",
        )
        .unwrap();
        Attribution {
            proc_root: proc,
            etc_root: root.join("etc"),
            pods_log_root: pods,
            containers_log_root: containers,
            ..Attribution::default()
        }
    }

    #[test]
    fn resolves_pods_units_and_users_from_a_fake_tree() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = tree(dir.path());
        let r = Resolver::new(&cfg);
        let pod = r.resolve(10).unwrap();
        assert_eq!(pod.namespace.as_deref(), Some("vision"));
        assert_eq!(pod.pod.as_deref(), Some("train-7"));
        assert_eq!(pod.container.as_deref(), Some("trainer"));
        assert_eq!(pod.user.as_deref(), Some("root"));
        let svc = r.resolve(20).unwrap();
        assert_eq!(svc.cgroup.unit.as_deref(), Some("train-llm.service"));
        assert_eq!(svc.user.as_deref(), Some("alice"));
        assert_eq!(svc.namespace, None);
        // A uid without a passwd entry is its number.
        assert_eq!(r.resolve(30).unwrap().user.as_deref(), Some("1001"));
        // An exited process is None, not an error.
        assert_eq!(r.resolve(99), None);
    }

    #[test]
    fn first_matching_rule_wins_and_the_rest_falls_back_to_the_owner_of_record() {
        use roimon_core::{GpuProcess, GpuProcesses};
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = tree(dir.path());
        cfg.rules = vec![
            Rule {
                name: Some("vision".into()),
                namespace: Some("vision".into()),
                ..rule("vision")
            },
            Rule {
                user: Some("alice".into()),
                ..rule("nlp")
            },
            Rule {
                namespace: Some("*".into()),
                ..rule("never")
            },
        ];
        let owners: HashMap<String, Owner> = [("GPU-0".to_string(), owner(&rule("ops")))]
            .into_iter()
            .collect();
        let mut a = Attributor::new(&cfg, owners).unwrap();
        let proc = |pid, util| GpuProcess {
            pid,
            used_memory_bytes: None,
            sm_utilization: Some(util),
            mig_instance: None,
        };
        let g = GpuReading {
            index: 0,
            uuid: "GPU-0".into(),
            name: "x".into(),
            power: None,
            energy_counter: None,
            utilization: None,
            memory_used_bytes: None,
            memory_total_bytes: None,
            temperature_celsius: None,
            power_limit: None,
            processes: Some(GpuProcesses {
                running: vec![proc(10, 0.5), proc(20, 0.3), proc(30, 0.2)],
                mig: vec![],
            }),
        };
        let mut unmatched = 0;
        let s = a.shares(&g, &mut unmatched).unwrap();
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.owner.team.as_str(), s.rule.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("vision", "rule:vision"),
                ("nlp", "rule:rules[1]"),
                ("ops", BY_GPU_OWNER)
            ]
        );
        assert_eq!(unmatched, 1);
        // Cached: the tree can go, the answer stays; unmatched counted once.
        fs::remove_dir_all(dir.path().join("proc/20")).unwrap();
        let s = a.shares(&g, &mut unmatched).unwrap();
        assert_eq!(s[1].owner.team, "nlp");
        assert_eq!(unmatched, 1);
    }

    #[test]
    fn a_pod_list_gives_labels_and_container_names_and_bad_lists_are_refused() {
        let text = format!(
            r#"{{"kind":"PodList","items":[
              {{"metadata":{{"uid":"{UID}","namespace":"vision","name":"train-7","labels":{{"app":"trainer","n":1}}}},
               "status":{{"containerStatuses":[{{"name":"trainer","containerID":"containerd://{CID}"}}]}}}},
              {{"metadata":{{"name":"no-uid"}}}}]}}"#
        );
        let idx = parse_pod_list(&text).unwrap();
        assert_eq!(idx.len(), 1, "an item without uid is skipped");
        let p = &idx[UID];
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str()),
            ("vision", "train-7")
        );
        // Non-string label values are not labels.
        assert_eq!(p.labels.len(), 1);
        assert_eq!(p.labels["app"], "trainer");
        assert_eq!(p.containers[CID], "trainer");
        assert!(parse_pod_list("[]").is_err());
        assert!(parse_pod_list("<html>").is_err());

        // Labels reach the rules; a missing label does not match.
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = tree(dir.path());
        fs::remove_dir_all(dir.path().join("pods")).unwrap();
        cfg.rules = vec![
            Rule {
                labels: [
                    ("app".to_string(), "train*".to_string()),
                    ("x".to_string(), "*".to_string()),
                ]
                .into(),
                ..rule("never")
            },
            Rule {
                labels: [("app".to_string(), "train*".to_string())].into(),
                ..rule("by-label")
            },
        ];
        let mut a = Attributor::new(&cfg, HashMap::new()).unwrap();
        // Without a pod list (and no kubelet log dir), nothing is known.
        assert_eq!(a.lookup(10).0.rule, None);
        a.set_pods(Arc::new(idx));
        assert_eq!(a.lookup(10).0.rule, Some(1));
        let info = a.info(10).unwrap();
        assert_eq!(info.namespace.as_deref(), Some("vision"));
        assert_eq!(info.container.as_deref(), Some("trainer"));
    }

    /// The owner a rule names.
    fn owner(r: &Rule) -> Owner {
        Owner {
            team: r.team.clone(),
            workload: r.workload.clone(),
        }
    }
}
