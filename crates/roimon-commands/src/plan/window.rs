//! `roimon plan window` and `GET /api/v1/window`: the known price (and
//! carbon) schedule read from the state dir (or, on the command line,
//! fetched from the configured source as `roimon prices` does when the kept
//! one falls short), the cheapest start of a deferrable job in it, and the
//! JSON and table both print. [`cheapest_windows`] gives the status page the
//! cheapest 1 h and 4 h windows of the same schedule.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use roimon_config::{CarbonSource, Config, ConfigError};
use roimon_feeds::FetchError;
use roimon_feeds::schedule::{KEEP_HISTORY_DAYS, Store, Stored, kept_range};
use roimon_planner::window::{self, By, Job, Slot, Window, WindowError};
use roimon_price::{Adjustments, CARBON_UNIT, Schedule};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The largest job energy accepted (kWh).
pub const MAX_KWH: f64 = 1e7;

/// How far a tariff known at all times (static, time-of-use) is searched
/// when no `--before` is given: a week.
pub const OPEN_HORIZON_DAYS: i64 = 7;

/// A known schedule: prices in one currency and, when known, carbon
/// intensity (g CO2e per kWh), as unix-second slots.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// Currency of the prices.
    pub currency: String,
    /// Price slots (per kWh), sorted.
    pub prices: Vec<Slot>,
    /// Intensity slots (g/kWh), sorted, when known.
    pub carbon: Option<Vec<Slot>>,
}

/// Why no schedule could be had.
#[derive(Debug)]
pub enum LoadError {
    /// A file or configuration problem (exit 2).
    Config(ConfigError),
    /// The source has no data, or cannot be reached (exit 1).
    NoData(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Config(e) => write!(f, "{e}"),
            LoadError::NoData(m) => write!(f, "{m}"),
        }
    }
}

fn slots_of(s: &Schedule) -> Vec<Slot> {
    s.slots
        .iter()
        .map(|x| Slot {
            start: x.start.timestamp(),
            end: x.end.timestamp(),
            value: x.price_per_kwh,
        })
        .collect()
}

fn file_error(path: &Path, message: String) -> LoadError {
    LoadError::Config(ConfigError {
        file: path.display().to_string(),
        line: None,
        key: None,
        message,
    })
}

/// Read a kept schedule file as it is (no configuration to check it
/// against); `None` when the file does not exist.
fn read_stored(path: &Path) -> Result<Option<Stored>, LoadError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error(path, format!("cannot read: {e}"))),
    };
    let s: Stored = serde_json::from_str(&text)
        .map_err(|e| file_error(path, format!("not a kept schedule: {e}")))?;
    if !s.schedule.is_ordered() {
        return Err(file_error(
            path,
            "the kept schedule has overlapping or unsorted slots".into(),
        ));
    }
    Ok(Some(s))
}

/// The schedule kept in a state dir: `prices.json` (required) and
/// `carbon.json` (when there).
pub fn from_state_dir(dir: &Path) -> Result<Known, LoadError> {
    let path = dir.join("prices.json");
    let Some(p) = read_stored(&path)? else {
        return Err(file_error(
            &path,
            "no kept price schedule here (only a fetched price source keeps one; for a static or time-of-use tariff use --config)".into(),
        ));
    };
    let carbon = read_stored(&dir.join("carbon.json"))?.map(|c| slots_of(&c.schedule));
    Ok(Known {
        currency: p.schedule.currency.clone(),
        prices: slots_of(&p.schedule),
        carbon,
    })
}

/// Where the daemon's window endpoint reads its schedule: the price and
/// carbon configuration and the state dir its feeds keep their schedules in.
#[derive(Debug, Clone)]
pub struct Source {
    cfg: Config,
}

impl Source {
    /// The daemon's configuration.
    pub fn new(cfg: &Config) -> Self {
        Self { cfg: cfg.clone() }
    }

    /// The schedule the daemon holds at `now` (its feeds' kept schedules,
    /// or the configured tariff), never fetched: reads files, so call it off
    /// the async thread.
    pub fn known(
        &self,
        now: DateTime<Utc>,
        span: (DateTime<Utc>, Option<DateTime<Utc>>),
    ) -> Result<Known, LoadError> {
        from_config(&self.cfg, now, span, None)
    }
}

/// A fetch allowed when the kept schedule falls short: the job's hours
/// and whether carbon is needed.
#[derive(Debug, Clone, Copy)]
pub struct Fetch {
    /// Where the job must be able to end by.
    pub need_until: DateTime<Utc>,
    /// Whether the carbon schedule is needed (`--by carbon`).
    pub carbon: bool,
}

/// The schedule for a configuration: the kept one in its state dir for a
/// fetched source (fetched and merged when `fetch` says so and the kept one
/// ends before it is needed), the tariff's own segments otherwise, over
/// `span` (`after`, `before`; a week when open).
pub fn from_config(
    cfg: &Config,
    now: DateTime<Utc>,
    span: (DateTime<Utc>, Option<DateTime<Utc>>),
    fetch: Option<Fetch>,
) -> Result<Known, LoadError> {
    let (after, before) = span;
    let horizon = before.unwrap_or(after + TimeDelta::days(OPEN_HORIZON_DAYS));
    let dir = &cfg.state.dir;
    let currency = cfg.price.currency.clone();
    let prices = if cfg.price.source.is_fetched() {
        let label = cfg.price.source.label();
        let id = roimon_feeds::price::identity(&cfg.price);
        let adj = roimon_feeds::price::adjustments(&cfg.price);
        let win = roimon_feeds::price::window(now, cfg.price.days_ahead);
        let range = kept_range(now, win.1);
        let kept = Store::new(dir).load(label, &id, &currency, &adj, range);
        let short = |s: &Option<Stored>, until: DateTime<Utc>| {
            s.as_ref()
                .and_then(|k| k.schedule.end())
                .is_none_or(|e| e < until)
        };
        let kept = match fetch {
            Some(f) if short(&kept, f.need_until) => {
                let from = win.0.min(after);
                let to = win.1.max(horizon.min(now + TimeDelta::days(9)));
                match fetch_prices(cfg, from, to) {
                    Ok(new) => Some(match kept {
                        Some(mut k) => {
                            k.schedule
                                .merge(new, now - TimeDelta::days(KEEP_HISTORY_DAYS));
                            k
                        }
                        None => Stored {
                            source: label.into(),
                            identity: id,
                            fetched_at: now,
                            schedule: new,
                        },
                    }),
                    Err(FetchError::Local(m)) => {
                        return Err(LoadError::Config(ConfigError {
                            file: "configuration".into(),
                            line: None,
                            key: Some("price".into()),
                            message: m,
                        }));
                    }
                    // What is kept still answers what it can.
                    Err(e) if kept.is_some() => {
                        eprintln!("warning: {label}: {e}; using the kept schedule");
                        kept
                    }
                    Err(e) => return Err(LoadError::NoData(format!("{label}: {e}"))),
                }
            }
            _ => kept,
        };
        match kept {
            Some(k) => slots_of(&k.schedule),
            None => {
                return Err(LoadError::NoData(format!(
                    "no {label} price schedule is kept in {} yet",
                    dir.join("prices.json").display()
                )));
            }
        }
    } else {
        cfg.engine_config()
            .tariff
            .segments(after, horizon)
            .into_iter()
            .filter(|s| !s.fallback)
            .map(|s| Slot {
                start: s.start.timestamp(),
                end: s.end.timestamp(),
                value: s.price.0,
            })
            .collect()
    };
    let carbon = match cfg.carbon.source {
        CarbonSource::None => None,
        CarbonSource::Static => cfg.carbon.grams_per_kwh.map(|g| {
            // Known at all times: one slot over everything searched.
            let lo = prices.first().map_or(after.timestamp(), |s| s.start);
            let hi = prices.last().map_or(horizon.timestamp(), |s| s.end);
            vec![Slot {
                start: lo.min(after.timestamp()),
                end: hi.max(horizon.timestamp()),
                value: g,
            }]
        }),
        CarbonSource::Electricitymaps | CarbonSource::Uk => {
            let label = cfg.carbon.source.label();
            let id = roimon_feeds::carbon::identity(&cfg.carbon);
            let range = kept_range(now, now + TimeDelta::days(1));
            let kept = Store::named(dir, "carbon.json").load(
                label,
                &id,
                CARBON_UNIT,
                &Adjustments::default(),
                range,
            );
            let kept = kept.map(|k| k.schedule);
            match fetch {
                Some(f)
                    if f.carbon
                        && kept
                            .as_ref()
                            .and_then(Schedule::end)
                            .is_none_or(|e| e < f.need_until) =>
                {
                    match fetch_carbon(cfg, now) {
                        Ok(new) => Some(match kept {
                            Some(mut k) => {
                                k.merge(new, now - TimeDelta::days(KEEP_HISTORY_DAYS));
                                k
                            }
                            None => new,
                        }),
                        Err(e) => {
                            eprintln!("warning: carbon {label}: {e}");
                            kept
                        }
                    }
                }
                _ => kept,
            }
            .map(|s| slots_of(&s))
        }
    };
    Ok(Known {
        currency,
        prices,
        carbon,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, FetchError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Local(format!("runtime: {e}")))
}

fn fetch_prices(
    cfg: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Schedule, FetchError> {
    let fetcher = roimon_feeds::price::Fetcher::new(
        &cfg.price,
        std::time::Duration::from_secs_f64(cfg.price.retry_initial_secs),
    )?;
    runtime()?.block_on(fetcher.fetch(from, to))
}

fn fetch_carbon(cfg: &Config, now: DateTime<Utc>) -> Result<Schedule, FetchError> {
    let f = roimon_feeds::carbon::CarbonFetcher::new(&cfg.carbon)?;
    runtime()?.block_on(f.fetch(now))
}

/// The contract's window JSON (plus `hours`, `power_kw`, `by`, and the
/// emissions if started now and at the worst start).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowJson {
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
    /// The job's duration (h).
    pub hours: f64,
    /// Its flat power (kW).
    pub power_kw: f64,
    /// Its energy (kWh).
    pub energy_kwh: f64,
    /// Its cost at the start found.
    pub cost: f64,
    /// cost / energy.
    pub avg_price_per_kwh: f64,
    /// Currency of the money figures.
    pub currency: String,
    /// Emissions at the start found (kg), null without carbon.
    pub emissions_kg: Option<f64>,
    /// Cost when started at `after`; null when the schedule does not cover it.
    pub cost_now: Option<f64>,
    /// Cost at the dearest candidate start.
    pub cost_worst: f64,
    /// cost_now − cost.
    pub saving_vs_now: Option<f64>,
    /// `cost` or `carbon`: what was minimised.
    pub by: &'static str,
    /// Emissions when started at `after` (kg).
    pub emissions_now_kg: Option<f64>,
    /// Emissions at the dirtiest candidate start (kg).
    pub emissions_worst_kg: Option<f64>,
}

/// The JSON of a window found for `job`.
pub fn to_json(w: &Window, job: &Job, currency: &str) -> WindowJson {
    WindowJson {
        start: window::rfc3339(w.start),
        end: window::rfc3339(w.end),
        hours: job.hours,
        power_kw: job.kwh / job.hours,
        energy_kwh: w.energy_kwh,
        cost: w.cost,
        avg_price_per_kwh: w.avg_price_per_kwh,
        currency: currency.to_string(),
        emissions_kg: w.emissions_kg,
        cost_now: w.cost_now,
        cost_worst: w.cost_worst,
        saving_vs_now: w.saving_vs_now,
        by: job.by.as_str(),
        emissions_now_kg: w.emissions_now_kg,
        emissions_worst_kg: w.emissions_worst_kg,
    }
}

/// The cheapest window for `job` in `known`.
pub fn find(known: &Known, job: &Job) -> Result<WindowJson, WindowError> {
    let w = window::cheapest(&known.prices, known.carbon.as_deref(), job)?;
    Ok(to_json(&w, job, &known.currency))
}

/// For the status page: the cheapest 1 h and 4 h windows of the known
/// schedule from `now` on, for a job drawing 1 kW (so `cost` is the price
/// of 1 kWh per hour run); a length that does not fit is left out.
#[allow(dead_code)] // the status page's
pub fn cheapest_windows(known: &Known, now: DateTime<Utc>) -> Vec<WindowJson> {
    [1.0, 4.0]
        .into_iter()
        .filter_map(|hours| {
            let job = Job {
                hours,
                kwh: hours,
                after: now.timestamp(),
                before: None,
                by: By::Cost,
            };
            find(known, &job).ok()
        })
        .collect()
}

/// Whether a window error is the caller's fault (bad job, carbon asked for
/// without a carbon schedule: exit 2 / 400) rather than no window fitting
/// (exit 1 / 422).
pub fn is_bad_request(e: &WindowError) -> bool {
    matches!(
        e,
        WindowError::BadJob(_) | WindowError::NoSchedule("carbon intensity")
    )
}

/// Check `hours` and `kwh` as the CLI and the endpoint bound them.
pub fn check_job(hours: f64, kwh: f64) -> Result<(), String> {
    if !(hours.is_finite() && hours > 0.0 && hours <= window::MAX_HOURS) {
        return Err(format!(
            "hours must be a number in (0, {}], got {hours}",
            window::MAX_HOURS
        ));
    }
    if !(kwh.is_finite() && kwh > 0.0 && kwh <= MAX_KWH) {
        return Err(format!("kwh must be a number in (0, {MAX_KWH}], got {kwh}"));
    }
    Ok(())
}

/// Parse an RFC 3339 time.
pub fn parse_time(s: &str, key: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{key}: not an RFC 3339 time: {s:?}"))
}

/// What `--by` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ByArg {
    /// Minimise the job's cost.
    #[default]
    Cost,
    /// Minimise the job's emissions.
    Carbon,
}

impl From<ByArg> for By {
    fn from(b: ByArg) -> Self {
        match b {
            ByArg::Cost => By::Cost,
            ByArg::Carbon => By::Carbon,
        }
    }
}

/// `roimon plan window`.
#[derive(Debug, clap::Args)]
pub struct WindowArgs {
    /// How long the job runs (h), in (0, 168].
    #[arg(long)]
    pub hours: f64,
    /// The energy it uses over the whole run (kWh), drawn at a flat power.
    #[arg(long)]
    pub kwh: f64,
    /// The earliest start, RFC 3339 (default: now).
    #[arg(long)]
    pub after: Option<String>,
    /// The latest end, RFC 3339 (default: the end of the known schedule).
    #[arg(long)]
    pub before: Option<String>,
    /// Minimise the cost or the emissions.
    #[arg(long, value_enum, default_value_t)]
    pub by: ByArg,
    /// Configuration file: its price source's kept schedule (fetched when
    /// it falls short) or its tariff (default: the built-in configuration).
    #[arg(long, conflicts_with = "state_dir")]
    pub config: Option<PathBuf>,
    /// Read the schedule kept in this state dir (prices.json, carbon.json).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn flag_error(key: &str, message: String) -> ExitCode {
    crate::config_error(&ConfigError {
        file: "command line".into(),
        line: None,
        key: Some(key.into()),
        message,
    })
}

/// Run `roimon plan window`.
pub fn main(a: &WindowArgs) -> ExitCode {
    if let Err(m) = check_job(a.hours, a.kwh) {
        let key = if m.starts_with("hours") {
            "--hours"
        } else {
            "--kwh"
        };
        return flag_error(key, m);
    }
    let now = Utc::now();
    let after = match a.after.as_deref().map(|s| parse_time(s, "--after")) {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(m)) => return flag_error("--after", m),
    };
    let before = match a.before.as_deref().map(|s| parse_time(s, "--before")) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(m)) => return flag_error("--before", m),
    };
    if before.is_some_and(|b| b <= after) {
        return flag_error("--before", "must be after --after".into());
    }
    let job = Job {
        hours: a.hours,
        kwh: a.kwh,
        after: after.timestamp(),
        before: before.map(|b| b.timestamp()),
        by: a.by.into(),
    };
    let known = match &a.state_dir {
        Some(d) => from_state_dir(d),
        None => {
            let cfg = match a
                .config
                .as_deref()
                .map_or_else(|| Ok(Config::builtin()), Config::load)
            {
                Ok(c) => c,
                Err(e) => return crate::config_error(&e),
            };
            let need = before
                .unwrap_or_else(|| after + TimeDelta::seconds((a.hours * 3600.0).round() as i64));
            let fetch = Fetch {
                need_until: need,
                carbon: job.by == By::Carbon,
            };
            from_config(&cfg, now, (after, before), Some(fetch))
        }
    };
    let known = match known {
        Ok(k) => k,
        Err(LoadError::Config(e)) => return crate::config_error(&e),
        Err(LoadError::NoData(m)) => return no_window(a.json, &m),
    };
    match find(&known, &job) {
        Ok(w) => {
            if a.json {
                match serde_json::to_string_pretty(&w) {
                    Ok(t) => crate::outln!("{t}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                crate::out!("{}", to_table(&w));
            }
            ExitCode::SUCCESS
        }
        Err(e) if is_bad_request(&e) => {
            let key = if job.by == By::Carbon {
                "--by"
            } else {
                "--hours"
            };
            flag_error(key, e.to_string())
        }
        Err(e) => no_window(a.json, &e.to_string()),
    }
}

/// No window fits: the message on stderr (and, with --json, as
/// `{"status": "no_window", "error"}` on stdout), exit 1.
fn no_window(json: bool, why: &str) -> ExitCode {
    if json {
        crate::outln!(
            "{}",
            serde_json::json!({"status": "no_window", "error": why})
        );
    }
    eprintln!("error: no window fits: {why}");
    ExitCode::from(1)
}

/// A readable table of a window.
pub fn to_table(w: &WindowJson) -> String {
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |x| format!("{x:.6} {unit}"));
    let cur = &w.currency;
    let mut out = String::new();
    out.push_str(&format!("start (UTC)        {}\n", w.start));
    out.push_str(&format!("end (UTC)          {}\n", w.end));
    out.push_str(&format!(
        "job                {} h at {:.4} kW = {} kWh (minimising {})\n",
        w.hours, w.power_kw, w.energy_kwh, w.by
    ));
    out.push_str(&format!("cost               {:.6} {cur}\n", w.cost));
    out.push_str(&format!(
        "average price      {:.6} {cur}/kWh\n",
        w.avg_price_per_kwh
    ));
    out.push_str(&format!("cost if now        {}\n", opt(w.cost_now, cur)));
    out.push_str(&format!("cost at worst      {:.6} {cur}\n", w.cost_worst));
    out.push_str(&format!(
        "saving vs now      {}\n",
        opt(w.saving_vs_now, cur)
    ));
    out.push_str(&format!(
        "emissions          {}\n",
        opt(w.emissions_kg, "kg")
    ));
    out.push_str(&format!(
        "emissions if now   {}\n",
        opt(w.emissions_now_kg, "kg")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(t0: i64, prices: &[f64]) -> Known {
        Known {
            currency: "EUR".into(),
            prices: prices
                .iter()
                .enumerate()
                .map(|(i, &p)| Slot {
                    start: t0 + 3600 * i as i64,
                    end: t0 + 3600 * (i as i64 + 1),
                    value: p,
                })
                .collect(),
            carbon: None,
        }
    }

    #[test]
    fn the_status_page_gets_the_cheapest_one_and_four_hours_at_one_kw() {
        let t0 = 1_767_225_600; // 2026-01-01T00:00:00Z
        let k = known(t0, &[0.5, 0.1, 0.4, 0.2, 0.2, 0.2, 0.2, 0.9]);
        let now = DateTime::from_timestamp(t0 + 600, 0).unwrap();
        let w = cheapest_windows(&k, now);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].start, "2026-01-01T01:00:00Z");
        assert_eq!(
            (w[0].hours, w[0].energy_kwh, w[0].power_kw),
            (1.0, 1.0, 1.0)
        );
        assert!((w[0].cost - 0.1).abs() < 1e-12);
        assert_eq!(w[1].start, "2026-01-01T03:00:00Z");
        assert!((w[1].cost - 0.8).abs() < 1e-12);
        assert_eq!(w[1].currency, "EUR");
        // Less than four hours known: only the one-hour window.
        let k = known(t0, &[0.5, 0.1, 0.4]);
        let w = cheapest_windows(&k, now);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn jobs_are_bounded_as_the_contract_says() {
        assert!(check_job(168.0, 1e7).is_ok());
        assert!(check_job(0.25, 0.001).is_ok());
        for (h, k) in [
            (0.0, 1.0),
            (168.01, 1.0),
            (f64::NAN, 1.0),
            (1.0, 0.0),
            (1.0, 1e7 + 1.0),
            (1.0, f64::INFINITY),
        ] {
            assert!(check_job(h, k).is_err(), "{h} {k}");
        }
    }
}
