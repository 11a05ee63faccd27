//! The daemon's own planner run (`[plan]`): every `interval_secs` a
//! background thread (never the sampler's) reads the allocation file,
//! resolves its `"measured"` coefficients from the daemon's ledger
//! (read-only, over the last `window_days`, as `roimon plan --state-dir`
//! does), solves it and keeps the result, with the tornado, Monte Carlo and
//! Pareto pictures when `svg` is on. `GET /api/v1/plan` serves the last
//! plan's JSON, `GET /api/v1/plan/{tornado,monte-carlo,pareto}.svg` its
//! pictures. A run that fails or panics is logged once per streak and
//! counted in `roimon_plan_runs_total`; the last good plan stays, served as
//! stale, and the daemon goes on.

use chrono::{DateTime, SecondsFormat, Utc};
use roimon_commands::plan::MeasureArgs;
use roimon_commands::plan_measured::{LedgerMeasure, ledger_paths};
use roimon_config::{ConfigError, PlanCfg, parse_toml, read_file};
use roimon_export_prometheus::PlanFigures;
use roimon_planner::analysis::monte_carlo;
use roimon_planner::analysis::sensitivity::Swing;
use roimon_planner::{Instance, Objective, PlanFile, ResolveError, SolveOptions};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The ±swing of the daemon's tornado and Monte Carlo (as `roimon plan`'s
/// default).
pub const SWING: f64 = 0.2;
/// Monte Carlo draws per run.
pub const DRAWS: usize = 1000;
/// The Monte Carlo's fixed seed: the same plan gives the same picture.
pub const SEED: u64 = 0;
/// Emissions caps of the Pareto front.
pub const POINTS: usize = 11;
/// The pictures a plan may have, by file name.
pub const PICTURES: [&str; 3] = ["tornado.svg", "monte-carlo.svg", "pareto.svg"];

/// What one run found: a plan (or the answer that none is feasible), as
/// the JSON it is served as and its pictures.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When the run started.
    pub planned_at: DateTime<Utc>,
    /// `roimon plan FILE --json`'s document plus `planned_at` and `file`.
    pub doc: Value,
    /// Whether the file has no feasible plan.
    pub infeasible: bool,
    /// SVG text by file name ([`PICTURES`]).
    pub svg: BTreeMap<&'static str, String>,
}

/// The last plan as the status page shows it
/// ([`PlanState::summary`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    /// When the plan shown was made.
    pub planned_at: DateTime<Utc>,
    /// `optimal`, `feasible` or `infeasible`.
    pub status: String,
    /// The plan's profit over its period (None when infeasible).
    pub profit: Option<f64>,
    /// The plan's ROI (None when infeasible).
    pub roi: Option<f64>,
    /// The plan's currency.
    pub currency: String,
    /// The plan's period, hours.
    pub hours: Option<f64>,
    /// Whether the last run failed (the plan shown is an older one).
    pub stale: bool,
    /// Why the last run failed.
    pub last_error: Option<String>,
    /// The URLs of the pictures this plan has, e.g.
    /// `/api/v1/plan/tornado.svg`.
    pub svg_urls: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streak {
    Ok,
    Infeasible,
    Error,
}

#[derive(Debug, Default)]
struct Inner {
    last: Option<Arc<Outcome>>,
    last_error: Option<String>,
    streak: Option<Streak>,
}

/// The planner's state shared by its thread and the HTTP handlers.
#[derive(Debug)]
pub struct PlanState {
    file: PathBuf,
    inner: Mutex<Inner>,
    ok: AtomicU64,
    infeasible: AtomicU64,
    error: AtomicU64,
}

impl PlanState {
    /// A planner of `file` that has not run yet.
    pub fn new(file: PathBuf) -> Self {
        Self {
            file,
            inner: Mutex::default(),
            ok: AtomicU64::new(0),
            infeasible: AtomicU64::new(0),
            error: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The runs so far, for `/metrics`.
    pub fn figures(&self) -> PlanFigures {
        PlanFigures {
            ok: self.ok.load(Ordering::Relaxed),
            infeasible: self.infeasible.load(Ordering::Relaxed),
            error: self.error.load(Ordering::Relaxed),
        }
    }

    /// Keeps a run's result: a plan (feasible or not) replaces the last
    /// one; an error keeps it and marks it stale. Logs when a streak of
    /// results of one kind starts (so a file that stays broken is logged
    /// once, not every interval).
    pub fn record(&self, result: Result<Outcome, String>) {
        let file = self.file.display().to_string();
        let mut inner = self.lock();
        let kind = match &result {
            Ok(o) if o.infeasible => Streak::Infeasible,
            Ok(_) => Streak::Ok,
            Err(_) => Streak::Error,
        };
        let new_streak = inner.streak != Some(kind);
        inner.streak = Some(kind);
        match result {
            Ok(o) => {
                let counter = if o.infeasible {
                    &self.infeasible
                } else {
                    &self.ok
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let status = o.doc["status"].as_str().unwrap_or("").to_string();
                if new_streak && o.infeasible {
                    let message = o.doc["message"].as_str().unwrap_or("").to_string();
                    tracing::warn!(file = %file, message = %message, "planning: no plan meets the file's constraints");
                } else if new_streak {
                    tracing::info!(file = %file, planned_at = %o.planned_at, status = %status, profit = ?o.doc["profit"].as_f64(), "planning: a plan is served on /api/v1/plan");
                } else {
                    tracing::debug!(file = %file, status = %status, "planning: re-planned");
                }
                inner.last = Some(Arc::new(o));
                inner.last_error = None;
            }
            Err(e) => {
                self.error.fetch_add(1, Ordering::Relaxed);
                if new_streak {
                    tracing::warn!(file = %file, error = %e, "planning failed; the last plan stays, served as stale (logged once until a run succeeds)");
                } else {
                    tracing::debug!(file = %file, error = %e, "planning failed again");
                }
                inner.last_error = Some(e);
            }
        }
    }

    /// The last plan's document as served (with `stale` and, when the last
    /// run failed, `last_error`), or why there is none.
    pub fn document(&self) -> Result<Value, String> {
        let inner = self.lock();
        let Some(last) = &inner.last else {
            return Err(match &inner.last_error {
                Some(e) => format!("no plan yet: the last run failed: {e}"),
                None => "no plan yet: the first run has not finished".into(),
            });
        };
        let mut doc = last.doc.clone();
        if let Some(o) = doc.as_object_mut() {
            o.insert("stale".into(), json!(inner.last_error.is_some()));
            if let Some(e) = &inner.last_error {
                o.insert("last_error".into(), json!(e));
            }
        }
        Ok(doc)
    }

    /// The last plan's picture `name` (one of [`PICTURES`]).
    pub fn picture(&self, name: &str) -> Option<String> {
        self.lock().last.as_ref()?.svg.get(name).cloned()
    }

    /// The last plan in brief, for the status page: when, its status,
    /// profit and ROI, whether it is stale, and which picture URLs exist.
    /// None before the first plan.
    pub fn summary(&self) -> Option<PlanSummary> {
        let inner = self.lock();
        let last = inner.last.as_ref()?;
        let d = &last.doc;
        Some(PlanSummary {
            planned_at: last.planned_at,
            status: d["status"].as_str().unwrap_or("").to_string(),
            profit: d["profit"].as_f64(),
            roi: d["roi"].as_f64(),
            currency: d["currency"].as_str().unwrap_or("").to_string(),
            hours: d["hours"].as_f64(),
            stale: inner.last_error.is_some(),
            last_error: inner.last_error.clone(),
            svg_urls: last
                .svg
                .keys()
                .map(|n| format!("/api/v1/plan/{n}"))
                .collect(),
        })
    }
}

fn config_error(src: &str, file: &str, key: String, message: String) -> String {
    ConfigError {
        file: file.to_string(),
        line: roimon_commands::plan::allocate::locate_key(src, &key),
        key: Some(key),
        message,
    }
    .to_string()
}

/// One run: read `file`, resolve it (measured coefficients from the ledger
/// in `state_dir` over the `cfg.window_days` ending at `now`), solve it
/// and, with `cfg.svg`, analyse and draw it. Err: why, naming file:line:key
/// or the coefficient and window.
pub fn plan_once(
    cfg: &PlanCfg,
    file: &Path,
    state_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Outcome, String> {
    let src = read_file(file).map_err(|e| e.to_string())?;
    let name = file.display().to_string();
    let pf: PlanFile = parse_toml(&src, &name).map_err(|e| e.to_string())?;
    let measure = MeasureArgs {
        state_dir: Some(state_dir.to_path_buf()),
        ledger: Vec::new(),
        from: now - chrono::Duration::days(i64::from(cfg.window_days)),
        to: now,
    };
    let mut ledger = LedgerMeasure::new(
        ledger_paths(measure.state_dir.as_deref(), &measure.ledger),
        measure.from,
        measure.to,
        &pf.currency,
    );
    let inst = match roimon_planner::resolve(&pf, &mut |k| ledger.measure(k)) {
        Ok(i) => i,
        Err(ResolveError::Invalid { key, message }) => {
            return Err(config_error(&src, &name, key, message));
        }
        Err(ResolveError::Unmeasured {
            name: coef,
            message,
        }) => {
            return Err(format!("{name}: coefficient {coef}: {message}"));
        }
    };
    let opts = SolveOptions {
        time_limit: Duration::from_secs_f64(cfg.time_limit_secs),
        ..SolveOptions::default()
    };
    let (mut doc, infeasible, svg) = match roimon_planner::solve(&inst, &opts) {
        Ok(plan) => {
            let mut doc = roimon_planner::to_json(&inst, &plan);
            let svg = if cfg.svg {
                analyse(&inst, &plan, &opts, &measure, &mut doc)
            } else {
                BTreeMap::new()
            };
            (doc, false, svg)
        }
        Err(inf) => (
            roimon_planner::infeasible_json(&inst, &inf),
            true,
            BTreeMap::new(),
        ),
    };
    if let Some(o) = doc.as_object_mut() {
        o.insert(
            "planned_at".into(),
            json!(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
        o.insert("file".into(), json!(name));
    }
    Ok(Outcome {
        planned_at: now,
        doc,
        infeasible,
        svg,
    })
}

/// The analysis of a plan, as `roimon plan FILE --sensitivity --monte-carlo
/// 1000 --seed 0 [--pareto carbon]` computes it: the contract's keys added
/// to `doc`, the pictures returned.
fn analyse(
    inst: &Instance,
    plan: &roimon_planner::Plan,
    opts: &SolveOptions,
    measure: &MeasureArgs,
    doc: &mut Value,
) -> BTreeMap<&'static str, String> {
    use roimon_planner::analysis;
    let mut svg = BTreeMap::new();
    let mut keys = Vec::new();
    let rows = analysis::sensitivity(inst, plan, Swing::Fixed(SWING), opts);
    svg.insert(
        "tornado.svg",
        roimon_planner::svg::tornado(&rows, &inst.currency, inst.hours),
    );
    keys.push(("sensitivity", analysis::sensitivity_json(&rows)));
    let days = roimon_commands::plan::analysis::daily_prices(inst, measure);
    let mc = monte_carlo::run(
        inst,
        &plan.allocation,
        &monte_carlo::Options {
            draws: DRAWS,
            seed: SEED,
            swing: SWING,
            spread: None,
            daily_prices: days.as_deref(),
        },
    );
    svg.insert(
        "monte-carlo.svg",
        roimon_planner::svg::monte_carlo(&mc, &inst.currency, inst.hours),
    );
    keys.push(("monte_carlo", analysis::monte_carlo_json(&mc)));
    if inst.carbon_g_per_kwh.is_some() {
        let most = (inst.objective == Objective::Profit).then_some(plan);
        match analysis::pareto(inst, opts, POINTS, most) {
            Ok(front) => {
                let chosen = plan.totals.emissions_kg.map(|e| (e, plan.totals.profit));
                svg.insert(
                    "pareto.svg",
                    roimon_planner::svg::pareto(&front, chosen, &inst.currency, inst.hours),
                );
                keys.push(("pareto", analysis::pareto_json(inst, &front)));
            }
            Err(e) => tracing::debug!(error = %e, "planning: no Pareto front"),
        }
    }
    if let Some(o) = doc.as_object_mut() {
        for (k, v) in keys {
            o.insert(k.into(), v);
        }
    }
    svg
}

/// Runs `run`, turning a panic into an error (the planner's thread, and
/// the daemon, go on).
pub fn guarded(run: impl FnOnce() -> Result<Outcome, String>) -> Result<Outcome, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(format!("the planner failed unexpectedly: {why}"))
    })
}

/// Starts the planner's thread: a run at once, then one every
/// `cfg.interval_secs` after the previous ended. The thread ends when the
/// returned sender is dropped (between runs; a run in progress is left to
/// the process's exit).
pub fn start(
    cfg: &PlanCfg,
    file: PathBuf,
    state_dir: PathBuf,
    state: Arc<PlanState>,
) -> std::io::Result<Sender<()>> {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let cfg = cfg.clone();
    let interval = Duration::from_secs_f64(cfg.interval_secs);
    std::thread::Builder::new()
        .name("roimon-plan".into())
        .spawn(move || {
            loop {
                let now = Utc::now();
                state.record(guarded(|| plan_once(&cfg, &file, &state_dir, now)));
                match stop_rx.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        })?;
    Ok(stop_tx)
}

#[cfg(test)]
mod tests;
