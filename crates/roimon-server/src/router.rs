//! The router and its handlers: `/metrics`, `/healthz`, `/readyz`,
//! `/api/v1/summary`, `/api/v1/report`, `/api/v1/window`, `/api/v1/plan` (and
//! its pictures), the push endpoint's route and a human status page at `/`
//! (rendered by [`crate::status_page`]); the listener (`crate::listener`)
//! serves it. Handlers read the latest published snapshot; they never touch
//! collectors or the engine.

use crate::status_page::esc;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use roimon_core::{Component, Snapshot};
use roimon_daemon::published::Published;
use roimon_export_prometheus::{CONTENT_TYPE, ProcessInfo, encode};
use std::sync::Arc;

/// The router's state: where handlers read the sampler's publication, and
/// the figures and endpoints the daemon's parts register once at start.
#[derive(Debug)]
pub struct AppState {
    /// What the sampler publishes (snapshot, readiness, checkpoint health).
    published: Arc<Published>,
    version: String,
    http: Arc<crate::listener::Stats>,
    /// The push endpoint, once configured.
    push: std::sync::OnceLock<crate::push::Push>,
    /// The InfluxDB stream's figures, when it runs.
    influx: std::sync::OnceLock<Arc<roimon_daemon::influx_stream::Stats>>,
    /// Where `/api/v1/report` reads the ledger, once configured.
    report: std::sync::OnceLock<ReportSource>,
    /// Where `/api/v1/window` reads the known schedule, once configured.
    window: std::sync::OnceLock<roimon_commands::plan::window::Source>,
    /// The daemon's planner (`[plan]`), once configured.
    plan: std::sync::OnceLock<Arc<crate::plan_daemon::PlanState>>,
}

/// The ledger the report endpoint reads, and the zone of its months.
#[derive(Debug, Clone)]
pub struct ReportSource {
    /// `<state dir>/ledger.sqlite3`.
    pub path: std::path::PathBuf,
    /// `report.timezone`.
    pub tz: chrono_tz::Tz,
}

impl AppState {
    /// Start with an initial snapshot; `/healthz` fails once no snapshot
    /// has been published for `stale_after` (the sampler has stalled or died).
    pub fn new(initial: Snapshot, version: &str, stale_after: std::time::Duration) -> Self {
        Self {
            published: Arc::new(Published::new(initial, stale_after)),
            version: version.into(),
            http: Arc::default(),
            push: std::sync::OnceLock::new(),
            report: std::sync::OnceLock::new(),
            influx: std::sync::OnceLock::new(),
            window: std::sync::OnceLock::new(),
            plan: std::sync::OnceLock::new(),
        }
    }

    /// Configure the planner whose last plan `/api/v1/plan` serves (once).
    pub fn set_plan(&self, p: Arc<crate::plan_daemon::PlanState>) {
        let _ = self.plan.set(p);
    }

    /// The daemon's planner, when `[plan]` names a file (the status page's
    /// plan: `plan_state().and_then(|p| p.summary())`).
    pub fn plan_state(&self) -> Option<&Arc<crate::plan_daemon::PlanState>> {
        self.plan.get()
    }

    /// Configure the window endpoint's schedule (once).
    pub fn set_window(&self, s: roimon_commands::plan::window::Source) {
        let _ = self.window.set(s);
    }

    /// Where the sampler publishes and the handlers read.
    pub fn published(&self) -> &Arc<Published> {
        &self.published
    }

    /// Configure the push endpoint (once).
    pub fn set_push(&self, p: crate::push::Push) {
        let _ = self.push.set(p);
    }

    /// The push endpoint, when configured.
    pub fn push(&self) -> Option<&crate::push::Push> {
        self.push.get()
    }

    /// Configure the report endpoint (once).
    pub fn set_report(&self, r: ReportSource) {
        let _ = self.report.set(r);
    }

    /// Show the InfluxDB stream's figures on `/metrics` (once).
    pub fn set_influx(&self, stats: Arc<roimon_daemon::influx_stream::Stats>) {
        let _ = self.influx.set(stats);
    }

    /// The HTTP connection counters (the accept loop counts into them).
    pub fn http_stats(&self) -> &Arc<crate::listener::Stats> {
        &self.http
    }

    fn process(&self) -> ProcessInfo {
        ProcessInfo {
            version: self.version.clone(),
            checkpoint_failures_in_a_row: self.published.checkpoint_failures_in_a_row(),
            influx: self.influx.get().map(|s| s.view()),
            http: Some(self.http.figures()),
            web: self.http.web_figures(),
            push: self.push().map(|p| p.stats.figures()),
            plan: self.plan.get().map(|p| p.figures()),
        }
    }
}

async fn healthz(State(st): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if st.published.live() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "sampler stalled: no snapshot published recently\n",
        )
    }
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    // The raw body may be gzip; the decoded size is checked in the handler.
    let push_limit = state
        .push()
        .map_or(8 << 20, |p| p.rules.max_body_bytes)
        .saturating_add(1024);
    Router::new()
        .route(
            "/api/v2/write",
            axum::routing::post(push_write).layer(axum::extract::DefaultBodyLimit::max(push_limit)),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/report", get(report))
        .route("/api/v1/window", get(window))
        .merge(plan_routes())
        .route("/", get(index))
        .with_state(state)
}

/// `POST /api/v2/write`: the push endpoint, handed its configuration (not
/// ready until configured).
async fn push_write(
    State(st): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    query: axum::extract::Query<std::collections::HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    crate::push::write(st.push(), headers, query, body).await
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let (generation, snap) = st.published.snapshot_gen();
    let body = encode(&snap, &st.process());
    st.published.note_served(generation);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// `GET /api/v1/report?from=&to=&month=&by=&team=&format=csv|json|table`:
/// the same report as `roimon report`, read from the ledger off the async
/// thread (JSON by default). CSV comes as a download,
/// `roimon-<node>-<period>.csv`, its text cells neutralised against
/// formula injection. As the CLI: `month` with `from` or `to`, and a `team`
/// without rows in the span (named with the span's teams), are 400.
async fn report(
    State(st): State<Arc<AppState>>,
    axum::extract::Query(p): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let bad = |m: String| (StatusCode::BAD_REQUEST, format!("{m}\n")).into_response();
    let Some(src) = st.report.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no ledger configured\n").into_response();
    };
    let get = |k: &str| p.get(k).map(String::as_str);
    let format: roimon_ledger::Format = match get("format").unwrap_or("json").parse() {
        Ok(f) => f,
        Err(e) => return bad(format!("format: {e}")),
    };
    let q = match roimon_commands::report::query(
        get("from"),
        get("to"),
        get("month"),
        get("by").unwrap_or(""),
        get("team"),
        src.tz,
        chrono::Utc::now(),
    ) {
        Ok(q) => q,
        Err(e) => return bad(e),
    };
    let done = tokio::task::spawn_blocking(move || {
        let l = roimon_ledger::Ledger::open_read_only(&src.path)?;
        Ok(match l.unknown_team(&q)? {
            Some(why) => Err(why),
            None => Ok(l.report(&q)?),
        })
    })
    .await;
    match done {
        Ok(Ok(Err(why))) => bad(why),
        Ok(Ok(Ok(r))) => {
            let ct = match format {
                roimon_ledger::Format::Csv => "text/csv; charset=utf-8",
                roimon_ledger::Format::Json => "application/json",
                roimon_ledger::Format::Table => "text/plain; charset=utf-8",
            };
            let mut resp = ([(header::CONTENT_TYPE, ct)], r.render(format)).into_response();
            if format == roimon_ledger::Format::Csv {
                // The name holds only [A-Za-z0-9._-]: always a valid header.
                let disposition = format!("attachment; filename=\"{}\"", r.file_name());
                if let Ok(v) = header::HeaderValue::from_str(&disposition) {
                    resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
                }
            }
            resp
        }
        Ok(Err(e)) => {
            let e: roimon_ledger::Error = e;
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "report failed\n").into_response(),
    }
}

/// `GET /api/v1/window?hours=H&kwh=E[&after=T][&before=T][&by=cost|carbon]`:
/// the cheapest start of a deferrable job in the schedule the daemon holds,
/// the same JSON as `roimon plan window --json`. 400 (JSON `{"error"}`) for
/// a missing, unknown or out-of-range parameter; 422 when no window fits;
/// 503 before the schedule is configured.
async fn window(
    State(st): State<Arc<AppState>>,
    axum::extract::Query(p): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    use roimon_commands::plan::window as w;
    let reply = |code: StatusCode, m: String| {
        (code, axum::Json(serde_json::json!({ "error": m }))).into_response()
    };
    let bad = |m: String| reply(StatusCode::BAD_REQUEST, m);
    if let Some(k) = p
        .keys()
        .find(|k| !["hours", "kwh", "after", "before", "by"].contains(&k.as_str()))
    {
        let k: String = k.chars().take(64).collect();
        return bad(format!(
            "unknown parameter {k:?}: expected hours, kwh, after, before, by"
        ));
    }
    let number = |k: &str| -> Result<f64, String> {
        let v = p.get(k).ok_or_else(|| format!("{k} is required"))?;
        v.trim()
            .parse::<f64>()
            .map_err(|_| format!("{k} must be a number"))
    };
    let (hours, kwh) = match (number("hours"), number("kwh")) {
        (Ok(h), Ok(k)) => (h, k),
        (Err(m), _) | (_, Err(m)) => return bad(m),
    };
    if let Err(m) = w::check_job(hours, kwh) {
        return bad(m);
    }
    let now = chrono::Utc::now();
    let time = |k: &str| p.get(k).map(|v| w::parse_time(v, k)).transpose();
    let (after, before) = match (time("after"), time("before")) {
        (Ok(a), Ok(b)) => (a.unwrap_or(now), b),
        (Err(m), _) | (_, Err(m)) => return bad(m),
    };
    if before.is_some_and(|b| b <= after) {
        return bad("before must be later than after (default: now)".into());
    }
    let by = match p.get("by").map(String::as_str) {
        None | Some("cost") => roimon_planner::window::By::Cost,
        Some("carbon") => roimon_planner::window::By::Carbon,
        Some(_) => return bad("by must be cost or carbon".into()),
    };
    let Some(src) = st.window.get().cloned() else {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "no schedule configured".into(),
        );
    };
    let job = roimon_planner::window::Job {
        hours,
        kwh,
        after: after.timestamp(),
        before: before.map(|b| b.timestamp()),
        by,
    };
    let done = tokio::task::spawn_blocking(move || {
        src.known(now, (after, before)).map(|k| w::find(&k, &job))
    })
    .await;
    match done {
        Ok(Ok(Ok(found))) => axum::Json(found).into_response(),
        Ok(Ok(Err(e))) if w::is_bad_request(&e) => bad(e.to_string()),
        Ok(Ok(Err(e))) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no window fits: {e}"),
        ),
        Ok(Err(e)) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no window fits: {e}"),
        ),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "window search failed".into(),
        ),
    }
}

/// What `/readyz` says: ready, or why not.
fn readiness(p: &Published) -> Result<(), String> {
    if let Some(why) = p.not_ready() {
        Err(why)
    } else if p.ready() {
        Ok(())
    } else {
        Err("waiting for every enabled collector to report once".into())
    }
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    match readiness(&st.published) {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// The summary document (see the README's API section).
pub fn summary_json(s: &Snapshot) -> serde_json::Value {
    let c = &s.counters;
    let cost: serde_json::Map<String, serde_json::Value> = Component::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_string(),
                c.cost.get(k).map_or(0.0, |a| a.total()).into(),
            )
        })
        .collect();
    let cost_total: f64 = Component::ALL
        .iter()
        .map(|k| c.cost.get(k).map_or(0.0, |a| a.total()))
        .sum::<f64>()
        + 0.0;
    // `+ 0.0` turns the empty sum's -0.0 into 0.0 for JSON readers.
    let credit_total: f64 = c.credit.values().map(|a| a.total()).sum::<f64>() + 0.0;
    let rate: serde_json::Map<String, serde_json::Value> = Component::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_string(),
                (s.cost_rate_per_sec.get(k).copied().unwrap_or(0.0) * 3600.0).into(),
            )
        })
        .collect();
    let rate_total: f64 = s.cost_rate_per_sec.values().sum::<f64>() * 3600.0 + 0.0;
    let gpu_power: f64 = s
        .gpus
        .values()
        .filter(|g| g.present)
        .filter_map(|g| g.reading.power.map(|w| w.0))
        .sum::<f64>()
        + 0.0;
    let rows = summary_rows(s);
    let value_rows: Vec<serde_json::Value> = c
        .value
        .iter()
        .map(|(k, r)| {
            serde_json::json!({
                "team": k.team,
                "workload": k.workload,
                "source": k.source,
                "value": r.value.total(),
                "models": r.models.iter().map(|(m, mc)| serde_json::json!({
                    "model": m,
                    "input_tokens": mc.input_tokens.total(),
                    "cached_input_tokens": mc.cached_input_tokens.total(),
                    "output_tokens": mc.output_tokens.total(),
                    "requests": mc.requests.total(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let gpus = summary_gpus(s);
    serde_json::json!({
        "at": s.at,
        "currency": s.price.currency,
        "price": {
            "price_per_kwh": s.price.price_per_kwh,
            "source": s.price.source,
            "fallback": s.price.fallback,
        },
        "power_watts": {
            "gpu": gpu_power,
            "host": s.host.as_ref().and_then(|h| h.power.map(|w| w.0)),
            "host_source": s.host.as_ref().map(|h| h.source.as_str()),
            "facility": s.facility_power_watts,
        },
        "pue": s.pue,
        "cost_rate_per_hour": { "by_component": rate, "total": rate_total },
        "totals": {
            "cost": { "by_component": cost, "total": cost_total },
            "credit": credit_total,
            "facility_energy_joules": c.facility_energy_joules.total(),
            "facility_energy_kwh": c.facility_energy_joules.total() / 3.6e6,
        },
        "gpus": gpus,
        "rows": rows,
        "collectors": s.collectors,
        "value": {
            "total": c.value_total.total(),
            "rows": value_rows,
        },
        "scores": s.scores,
        "budgets": s.budgets,
        "roi": {
            "windows": s.windows,
            "note": if c.value.is_empty() {
                "no value source has reported yet: configure [[value.scrape]] or push to /api/v2/write"
            } else {
                "financial ROI = (value - money cost) / money cost over each window; weighted efficiency = P / (C / hours of the window), P from the node's own owners"
            },
        },
    })
}

/// The summary's rows: every row that carries money, current and past
/// owners, GPUs present or gone. They add up to the totals.
fn summary_rows(s: &Snapshot) -> Vec<serde_json::Value> {
    let c = &s.counters;
    c.rows
        .iter()
        .map(|(k, r)| {
            let by: serde_json::Map<String, serde_json::Value> = Component::ALL
                .iter()
                .map(|comp| {
                    (
                        comp.as_str().to_string(),
                        r.cost.get(comp).map_or(0.0, |a| a.total()).into(),
                    )
                })
                .collect();
            let current = s
                .gpus
                .get(&k.gpu_uuid)
                .is_some_and(|g| g.owner.team == k.team && g.owner.workload == k.workload)
                || (k.gpu_uuid == roimon_core::engine::NO_GPU && s.gpus.is_empty());
            serde_json::json!({
                "gpu_uuid": k.gpu_uuid,
                "team": k.team,
                "workload": k.workload,
                "current": current,
                "present": s.gpus.get(&k.gpu_uuid).is_some_and(|g| g.present),
                "cost": { "by_component": by, "total": r.cost_total() },
                "credit": r.credit_total(),
                "facility_energy_joules": r.facility_energy_joules.total(),
                "emissions_grams": r.emissions_grams.total(),
                "attributed_by": r.attributed_by,
            })
        })
        .collect()
}

/// The summary's GPUs, each with its lifetime cost over every owner.
fn summary_gpus(s: &Snapshot) -> Vec<serde_json::Value> {
    let c = &s.counters;
    s.gpus
        .iter()
        .map(|(uuid, g)| {
            // The GPU's lifetime cost, over every owner it has had.
            let cost: f64 = c
                .rows
                .iter()
                .filter(|(k, _)| &k.gpu_uuid == uuid)
                .map(|(_, r)| r.cost_total())
                .sum::<f64>()
                + 0.0;
            serde_json::json!({
                "gpu": g.reading.index,
                "gpu_uuid": uuid,
                "model": g.reading.name,
                "team": g.owner.team,
                "workload": g.owner.workload,
                "present": g.present,
                "power_watts": g.reading.power.map(|w| w.0),
                "utilization_ratio": g.reading.utilization,
                "energy_joules": c.gpu_energy_joules.get(uuid).map_or(0.0, |a| a.total()),
                "cost": cost,
                "cost_rate_per_hour": s.gpu_cost_rate_per_sec.get(uuid).map(|r| r * 3600.0),
                "up": g.present,
                "unaccounted_seconds": c.unaccounted_seconds.get(uuid).map_or(0.0, |a| a.total()),
            })
        })
        .collect()
}

async fn summary(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(summary_json(&st.published.booked())).into_response()
}

/// Monthly spend per owner from the ledger (net cost this month and the
/// month-end forecast), as of the booked counters' last tick; empty when
/// the ledger cannot be read.
async fn month_to_date(
    src: &ReportSource,
    s: &Snapshot,
) -> std::collections::BTreeMap<crate::status_page::OwnerKey, crate::status_page::MonthToDate> {
    let owners: std::collections::BTreeSet<(String, String)> = s
        .counters
        .rows
        .keys()
        .filter(|k| k.gpu_uuid != roimon_core::engine::NO_GPU || s.gpus.is_empty())
        .map(|k| (k.team.clone(), k.workload.clone()))
        .collect();
    let budgets: Vec<roimon_ledger::Budget> = owners
        .iter()
        .map(|(t, w)| roimon_ledger::Budget {
            team: t.clone(),
            workload: Some(w.clone()),
            monthly: 0.0,
        })
        .collect();
    let (path, tz) = (src.path.clone(), src.tz);
    let now = s.counters.last_wall.unwrap_or_else(chrono::Utc::now);
    let (created, currency) = (s.counters.created, s.counters.currency.clone());
    let views = tokio::task::spawn_blocking(move || {
        roimon_ledger::Ledger::open_read_only(&path)
            .and_then(|l| l.budgets(&budgets, now, created, tz, &currency))
    })
    .await;
    match views {
        Ok(Ok(v)) => v
            .into_iter()
            .map(|b| {
                (
                    (b.team, b.workload),
                    crate::status_page::MonthToDate {
                        spent: b.spent,
                        forecast: b.forecast,
                    },
                )
            })
            .collect(),
        _ => Default::default(),
    }
}

/// This month's CSV statement links, one per team: (href, label).
fn statement_links(src: &ReportSource, s: &Snapshot) -> Vec<(String, String)> {
    let now = s.at.unwrap_or_else(chrono::Utc::now);
    let (from, to) = roimon_ledger::report::month_bounds(now, src.tz);
    let month = now.with_timezone(&src.tz).format("%Y-%m").to_string();
    let teams: std::collections::BTreeSet<&str> = s
        .counters
        .rows
        .keys()
        .map(|k| k.team.as_str())
        .chain(s.counters.value.keys().map(|k| k.team.as_str()))
        .collect();
    let enc = |t: &str| {
        t.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    teams
        .into_iter()
        .map(|t| {
            let q = format!(
                "/api/v1/report?from={}&to={}&by=team,workload,component&team={}&format=csv",
                enc(&from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                enc(&to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                enc(t)
            );
            (q, format!("{t} — {month}"))
        })
        .collect()
}

/// The cheapest 1 h and 4 h windows of the known schedule from now on
/// (read off the async thread: it reads the kept schedule's file).
async fn cheapest(
    src: &roimon_commands::plan::window::Source,
) -> Result<Vec<roimon_commands::plan::window::WindowJson>, String> {
    let src = src.clone();
    tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now();
        src.known(now, (now, None))
            .map(|k| roimon_commands::plan::window::cheapest_windows(&k, now))
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err("reading the schedule failed".into()))
}

/// `GET /`: the status page (see [`crate::status_page`]), from the booked
/// snapshot the summary shows.
async fn index(State(st): State<Arc<AppState>>) -> Html<String> {
    let s = st.published.booked();
    let (month_to_date, statements) = match st.report.get() {
        Some(src) => (month_to_date(src, &s).await, statement_links(src, &s)),
        None => Default::default(),
    };
    let board = st.published.board();
    let history = st.published.history();
    let inputs = crate::status_page::Inputs {
        snap: &s,
        version: &st.version,
        not_ready: readiness(&st.published).err(),
        live: st.published.live(),
        checkpoint_failures: st.published.checkpoint_failures_in_a_row(),
        board: &board,
        history: &history,
        month_to_date: &month_to_date,
        statements: &statements,
        cheapest: match st.window.get() {
            Some(src) => Some(cheapest(src).await),
            None => None,
        },
        plan: plan_links(&st),
    };
    Html(crate::status_page::render(&inputs))
}

/// The status page's links to the last plan and its pictures, when
/// `[plan]` is configured.
fn plan_links(st: &AppState) -> String {
    let Some(p) = st.plan_state() else {
        return String::new();
    };
    let body = match (p.summary(), p.document()) {
        (Some(s), _) => {
            let mut links = vec!["<a href=/api/v1/plan>JSON</a>".to_string()];
            for url in &s.svg_urls {
                let name = url.rsplit('/').next().unwrap_or(url);
                links.push(format!("<a href={url}>{name}</a>"));
            }
            let stale = s.last_error.as_deref().map_or(String::new(), |e| {
                format!("; stale: the last run failed: {}", esc(e))
            });
            format!(
                "{} ({}{stale}): {}",
                esc(&s.status),
                s.planned_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                links.join(" · ")
            )
        }
        (None, Err(why)) => esc(&why),
        (None, Ok(_)) => "not planned yet".to_string(),
    };
    format!("<h2>Plan</h2><p>{body}</p>")
}

fn plan_error(code: StatusCode, message: String) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `GET /api/v1/plan`: the last plan's JSON; 404 (JSON `{"error"}`)
/// before the first plan or without `[plan] file`.
async fn plan_json(State(st): State<Arc<AppState>>) -> Response {
    let Some(p) = st.plan_state() else {
        return plan_error(
            StatusCode::NOT_FOUND,
            "no plan: the configuration has no [plan] file".into(),
        );
    };
    match p.document() {
        Ok(doc) => axum::Json(doc).into_response(),
        Err(why) => plan_error(StatusCode::NOT_FOUND, why),
    }
}

fn picture(st: &AppState, name: &str) -> Response {
    match st.plan_state().and_then(|p| p.picture(name)) {
        Some(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        None => plan_error(
            StatusCode::NOT_FOUND,
            format!(
                "no {name}: no plan yet, no [plan] file, [plan] svg = false, or not drawn for this plan"
            ),
        ),
    }
}

/// The planner's routes (merged into [`router`]; the planner itself is [`crate::plan_daemon`]).
fn plan_routes() -> Router<Arc<AppState>> {
    let mut r = Router::new().route("/api/v1/plan", get(plan_json));
    for name in crate::plan_daemon::PICTURES {
        r = r.route(
            &format!("/api/v1/plan/{name}"),
            get(move |State(st): State<Arc<AppState>>| async move { picture(&st, name) }),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A ledger with rows finance must open safely: owner names that a
    /// spreadsheet would run, a negative credit and a negative cost.
    /// The router's state of a daemon on the built-in configuration,
    /// fresh (every figure 0).
    fn fresh_state() -> Arc<AppState> {
        let cfg = roimon_config::Config::builtin();
        let engine = roimon_core::Engine::new(cfg.engine_config(), None);
        Arc::new(AppState::new(
            engine.snapshot(),
            "0",
            std::time::Duration::from_secs(60),
        ))
    }

    /// A router whose report reads the ledger [`ledger`] writes in `dir`.
    fn report_app(dir: &std::path::Path) -> axum::Router {
        let st = fresh_state();
        st.set_report(ReportSource {
            path: ledger(dir),
            tz: chrono_tz::UTC,
        });
        router(st)
    }

    fn ledger(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join(roimon_ledger::FILE);
        let l = roimon_ledger::Ledger::open(&path).unwrap();
        let hour = chrono::DateTime::parse_from_rfc3339("2025-12-03T10:00:00Z")
            .unwrap()
            .timestamp();
        l.connection()
            .execute_batch(&format!(
                "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, \
                 currency, price_source, written_at, cost_energy, credit) VALUES \
                 ({hour}, 'node-7', 'GPU-1', '=HYPERLINK(\"http://x\",\"y\")', '-w', 'hour', 1, 'EUR', 'static', 'now', 1.5, -0.0123), \
                 ({hour}, 'node-7', 'GPU-2', '@t', 'plain', 'hour', 1, 'EUR', 'static', 'now', -0.25, 0.0);"
            ))
            .unwrap();
        path
    }

    async fn get(app: &mut Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let req = axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower_service::Service::call(app, req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_csv_report_is_a_named_download_with_neutralised_text_and_exact_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut app = report_app(dir.path());
        let (status, headers, body) = get(
            &mut app,
            "/api/v1/report?month=2025-12&by=team,workload&format=csv",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "attachment; filename=\"roimon-node-7-2025-12.csv\""
        );
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 4, "{body}");
        // Rows sort by team: `=…` before `@…`.
        assert_eq!(
            lines[1],
            "2025-12-01T00:00:00Z,2026-01-01T00:00:00Z,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'-w,0.000000,0.000000,1.500000,0.000000,0.000000,0.000000,0.000000,1.500000,-0.012300,0.000,0.000000,0,EUR,0,1.512300,-1.000000",
            "{body}"
        );
        assert_eq!(
            lines[2],
            "2025-12-01T00:00:00Z,2026-01-01T00:00:00Z,'@t,plain,0.000000,0.000000,-0.250000,0.000000,0.000000,0.000000,0.000000,-0.250000,0.000000,0.000,0.000000,0,EUR,0,-0.250000,",
            "{body}"
        );
        assert_eq!(
            lines[3],
            "TOTAL,,,,0.000000,0.000000,1.250000,0.000000,0.000000,0.000000,0.000000,1.250000,-0.012300,0.000,0.000000,0,EUR,0,1.262300,-1.000000"
        );
        // A range names both ends; JSON is not a download and keeps the
        // names as they are.
        let (_, headers, _) = get(
            &mut app,
            "/api/v1/report?from=2025-12-01&to=2025-12-15&format=csv",
        )
        .await;
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "attachment; filename=\"roimon-node-7-2025-12-01_2025-12-15.csv\""
        );
        let (status, headers, body) =
            get(&mut app, "/api/v1/report?month=2025-12&by=team&format=json").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(header::CONTENT_DISPOSITION).is_none());
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["rows"][0]["team"], "=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(j["rows"][0]["credit"], -0.0123);
    }

    #[tokio::test]
    async fn the_report_refuses_month_with_a_span_and_an_unknown_team_and_has_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mut app = report_app(dir.path());
        for uri in [
            "/api/v1/report?month=2025-12&from=2025-12-01&format=csv",
            "/api/v1/report?month=2025-12&to=2025-12-15",
        ] {
            let (status, _, body) = get(&mut app, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert!(body.contains("month cannot be combined"), "{body}");
        }
        let (status, _, body) = get(
            &mut app,
            "/api/v1/report?month=2025-12&team=nosuchteam&format=csv",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("\"nosuchteam\""), "{body}");
        assert!(body.contains("=HYPERLINK") && body.contains("@t"), "{body}");
        let (status, _, body) = get(
            &mut app,
            "/api/v1/report?month=2025-12&team=%40t&format=csv",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let lines: Vec<&str> = body.lines().collect();
        assert!(
            lines[0].ends_with(",value,tokens,currency,requests,net_cost,roi"),
            "{body}"
        );
        assert_eq!(lines.len(), 3, "{body}");
        // A past month is complete and ends at its end.
        let (_, _, body) = get(&mut app, "/api/v1/report?month=2025-12&format=json").await;
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["complete"], true, "{j}");
        assert_eq!(j["period_end"], "2026-01-01T00:00:00Z", "{j}");
        assert!((j["totals"]["net_cost"].as_f64().unwrap() - 1.2623).abs() < 1e-12);
        assert_eq!(j["totals"]["roi"], -1.0);
    }

    #[test]
    fn the_summary_lists_the_budgets() {
        let cfg = roimon_config::Config::builtin();
        let engine = roimon_core::Engine::new(cfg.engine_config(), None);
        let mut snap = engine.snapshot();
        assert_eq!(summary_json(&snap)["budgets"], serde_json::json!([]));
        snap.budgets.push(roimon_core::BudgetView {
            team: "search".into(),
            workload: String::new(),
            currency: "EUR".into(),
            monthly: 12000.0,
            spent: 300.5,
            forecast: 11000.25,
        });
        let j = summary_json(&snap);
        assert_eq!(
            j["budgets"],
            serde_json::json!([{"team": "search", "workload": "", "currency": "EUR",
                "monthly": 12000.0, "spent": 300.5, "forecast": 11000.25}])
        );
    }

    /// `/metrics` ends with the listener's series and, once the push endpoint
    /// is configured, its series: the same text as before these figures were
    /// named by the exporter (values 0 on a fresh state).
    #[tokio::test]
    async fn metrics_end_with_the_listener_and_push_series() {
        let st = fresh_state();
        let http_tail = TAIL.split("# HELP roimon_push_").next().unwrap();
        let (status, _, body) = get(&mut router(st.clone()), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.ends_with(http_tail), "{body}");
        assert!(!body.contains("roimon_push_") && !body.contains("roimon_web_config_"));
        let (tx, _rx) = std::sync::mpsc::channel();
        st.set_push(crate::push::Push {
            token: None,
            rules: roimon_value::PushRules {
                currency: "EUR".into(),
                max_past_secs: 60,
                max_future_secs: 60,
                max_body_bytes: 1024,
                max_points: 10,
                max_amount: 1.0,
                max_tag_bytes: 128,
                kpi_names: None,
                owners: None,
            },
            tx: std::sync::Mutex::new(tx),
            stats: Default::default(),
            in_flight: tokio::sync::Semaphore::new(1),
            refuse_unauthenticated: false,
            web: None,
        });
        let (_, _, body) = get(&mut router(st), "/metrics").await;
        assert!(body.ends_with(TAIL), "{body}");
        assert_eq!(
            body.matches("# TYPE roimon_http_connections gauge").count(),
            1
        );
    }

    /// A daemon on a fetched price source whose kept schedule (hourly,
    /// from two hours ago for a day) has its cheapest two hours 5–7 h from
    /// the current hour: `/api/v1/window` finds them, with the same JSON as
    /// `roimon plan window --json` computes from that schedule, and refuses
    /// bad parameters with 400 and an impossible job with 422.
    #[tokio::test]
    async fn the_window_endpoint_finds_the_cheapest_hours_of_the_kept_schedule() {
        use roimon_feeds::schedule::{Store, Stored};
        let dir = tempfile::tempdir().unwrap();
        let cfg = roimon_config::Config::parse(
            &format!(
                "[price]\nsource = \"awattar\"\ncurrency = \"EUR\"\n[state]\ndir = {:?}\n",
                dir.path().display().to_string()
            ),
            "t.toml",
        )
        .unwrap();
        let now = chrono::Utc::now();
        let hour = chrono::DateTime::from_timestamp(now.timestamp() / 3600 * 3600, 0).unwrap();
        let slots: Vec<roimon_price::PriceSlot> = (-2..22)
            .map(|i: i64| {
                let p = match i {
                    5 => 0.02,
                    6 => 0.03,
                    _ => 0.30 + (i as f64) / 100.0,
                };
                roimon_price::PriceSlot {
                    start: hour + chrono::Duration::hours(i),
                    end: hour + chrono::Duration::hours(i + 1),
                    market_per_kwh: p,
                    price_per_kwh: p,
                }
            })
            .collect();
        Store::new(dir.path())
            .save(&Stored {
                source: "awattar".into(),
                identity: roimon_feeds::price::identity(&cfg.price),
                fetched_at: now,
                schedule: roimon_price::Schedule {
                    currency: "EUR".into(),
                    slots,
                    adjustments: Default::default(),
                },
            })
            .unwrap();
        let st = fresh_state();
        st.set_window(roimon_commands::plan::window::Source::new(&cfg));
        let mut app = router(st);
        let (status, headers, body) = get(&mut app, "/api/v1/window?hours=2&kwh=4").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        let start =
            (hour + chrono::Duration::hours(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert_eq!(j["start"], start, "{j}");
        assert!(
            (j["cost"].as_f64().unwrap() - 2.0 * (0.02 + 0.03)).abs() < 1e-12,
            "{j}"
        );
        assert_eq!(j["currency"], "EUR");
        assert_eq!(j["emissions_kg"], serde_json::Value::Null);
        for k in [
            "end",
            "energy_kwh",
            "avg_price_per_kwh",
            "cost_now",
            "cost_worst",
            "saving_vs_now",
        ] {
            assert!(j.get(k).is_some(), "{k} missing: {j}");
        }
        // With an explicit span, exactly what the command line computes.
        let after = hour + chrono::Duration::minutes(30);
        let before = hour + chrono::Duration::hours(6);
        let f =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let uri = format!(
            "/api/v1/window?hours=1.5&kwh=3&after={}&before={}",
            f(after),
            f(before)
        );
        let (status, _, body) = get(&mut app, &uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let known =
            roimon_commands::plan::window::from_config(&cfg, now, (after, Some(before)), None)
                .unwrap();
        let want = roimon_commands::plan::window::find(
            &known,
            &roimon_planner::window::Job {
                hours: 1.5,
                kwh: 3.0,
                after: after.timestamp(),
                before: Some(before.timestamp()),
                by: roimon_planner::window::By::Cost,
            },
        )
        .unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::to_value(&want).unwrap()
        );
        assert_eq!(want.start, f(hour + chrono::Duration::hours(4)));
        for bad in [
            "/api/v1/window?kwh=1",
            "/api/v1/window?hours=1",
            "/api/v1/window?hours=0&kwh=1",
            "/api/v1/window?hours=168.5&kwh=1",
            "/api/v1/window?hours=NaN&kwh=1",
            "/api/v1/window?hours=1&kwh=1e8",
            "/api/v1/window?hours=1&kwh=-1",
            "/api/v1/window?hours=1&kwh=inf",
            "/api/v1/window?hours=1&kwh=1&after=tomorrow",
            "/api/v1/window?hours=1&kwh=1&by=wind",
            "/api/v1/window?hours=1&kwh=1&by=carbon",
            "/api/v1/window?hours=1&kwh=1&hour=2",
        ] {
            let (status, _, body) = get(&mut app, bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            let j: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(
                j["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{bad}: {j}"
            );
        }
        // Longer than what is known: 422, naming where the schedule ends.
        let (status, _, body) = get(&mut app, "/api/v1/window?hours=48&kwh=1").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains("schedule ends at"), "{body}");
    }

    const TAIL: &str = "\
             # HELP roimon_http_connections Open HTTP connections.\n\
             # TYPE roimon_http_connections gauge\n\
             roimon_http_connections 0\n\
             # HELP roimon_http_connections_dropped_total HTTP connections roimon closed to protect itself: refused (at capacity, every connection busy), evicted (oldest idle connection closed to admit a new one), header_timeout, idle_timeout, tls_handshake (failed or not done before the header deadline).\n\
             # TYPE roimon_http_connections_dropped_total counter\n\
             roimon_http_connections_dropped_total{reason=\"refused\"} 0\n\
             roimon_http_connections_dropped_total{reason=\"evicted\"} 0\n\
             roimon_http_connections_dropped_total{reason=\"header_timeout\"} 0\n\
             roimon_http_connections_dropped_total{reason=\"idle_timeout\"} 0\n\
             roimon_http_connections_dropped_total{reason=\"tls_handshake\"} 0\n\
             # HELP roimon_push_points_total Points received on /api/v2/write: accepted (booked) or duplicate (already counted, e.g. a client's retry).\n\
             # TYPE roimon_push_points_total counter\n\
             roimon_push_points_total{result=\"accepted\"} 0\n\
             roimon_push_points_total{result=\"duplicate\"} 0\n\
             # HELP roimon_push_rejected_total Requests to /api/v2/write refused, nothing of them booked: a bad line (400), an owner this node does not know (400), over a cap of owners or KPIs (400), too large (413), without the token (401), unauthenticated on a non-loopback listener (403) or too many in flight (429).\n\
             # TYPE roimon_push_rejected_total counter\n\
             roimon_push_rejected_total{reason=\"bad_request\"} 0\n\
             roimon_push_rejected_total{reason=\"unknown_owner\"} 0\n\
             roimon_push_rejected_total{reason=\"over_cap\"} 0\n\
             roimon_push_rejected_total{reason=\"too_large\"} 0\n\
             roimon_push_rejected_total{reason=\"unauthorized\"} 0\n\
             roimon_push_rejected_total{reason=\"forbidden\"} 0\n\
             roimon_push_rejected_total{reason=\"busy\"} 0\n\
         ";

    #[tokio::test]
    async fn the_last_plan_and_its_pictures_are_served_once_configured() {
        // Without [plan]: 404, and the page has no plan section.
        let mut app = router(fresh_state());
        let (status, _, body) = get(&mut app, "/api/v1/plan").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("[plan]"));
        let (_, _, page) = get(&mut app, "/").await;
        assert!(!page.contains("<h2>Plan</h2>"));
        // Configured, not planned yet: 404 saying so.
        let st = fresh_state();
        let p = Arc::new(crate::plan_daemon::PlanState::new("plan.toml".into()));
        st.set_plan(p.clone());
        let mut app = router(st);
        let (status, _, body) = get(&mut app, "/api/v1/plan").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("no plan yet"), "{body}");
        // Planned: the JSON, the pictures, and links on the page.
        p.record(Ok(crate::plan_daemon::Outcome {
            planned_at: chrono::DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            doc: serde_json::json!({"status": "optimal", "profit": 57.0,
                                    "planned_at": "2026-12-07T00:00:00Z"}),
            infeasible: false,
            svg: [(
                "tornado.svg",
                "<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_string(),
            )]
            .into(),
        }));
        let (status, _, body) = get(&mut app, "/api/v1/plan").await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["profit"], 57.0);
        let (status, headers, body) = get(&mut app, "/api/v1/plan/tornado.svg").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
        assert!(body.starts_with("<svg"));
        let (status, _, _) = get(&mut app, "/api/v1/plan/pareto.svg").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, _, page) = get(&mut app, "/").await;
        assert!(
            page.contains("<a href=/api/v1/plan/tornado.svg>tornado.svg</a>"),
            "{page}"
        );
        // A failed run: the last plan, stale, with the reason.
        p.record(Err(
            "plan.toml: coefficient energy.price_per_kwh: no ledger".into(),
        ));
        let (status, _, body) = get(&mut app, "/api/v1/plan").await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["stale"], true);
        assert!(
            v["last_error"]
                .as_str()
                .unwrap()
                .contains("energy.price_per_kwh")
        );
        let (_, _, page) = get(&mut app, "/").await;
        assert!(page.contains("stale: the last run failed"), "{page}");
    }
}
