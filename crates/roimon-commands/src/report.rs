//! `roimon report`: the ledger of a state dir (also of a running daemon,
//! read-only) as a table, CSV or JSON over a span, grouped as asked, with a
//! totals row; `--verify` reconciles the ledger with the counters stored
//! beside it and exits 1 on any difference; `--budgets` prints the month's
//! budgets against the ledger. A `--team` without rows in the span exits 1
//! naming the teams it has. Shared with `GET /api/v1/report`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use roimon_config::Config;
use roimon_ledger::report::{month_bounds, month_span, parse_time};
use roimon_ledger::{Dim, Format, Ledger, Query};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where a command run beside (or without) the daemon finds its state.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// Configuration file: state.dir, report.timezone, node.name and
    /// price.source (default: the built-in configuration).
    #[arg(long, env = "ROIMON_CONFIG")]
    pub config: Option<PathBuf>,
    /// State directory holding ledger.sqlite3 (config: state.dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    /// The configuration and the state dir, or the exit code of a
    /// configuration error (already reported).
    pub fn resolve(&self) -> Result<(Config, PathBuf), ExitCode> {
        let cfg = self
            .config
            .as_deref()
            .map_or_else(|| Ok(Config::builtin()), Config::load)
            .map_err(|e| crate::config_error(&e))?;
        let dir = self.state_dir.clone().unwrap_or(cfg.state.dir.clone());
        Ok((cfg, dir))
    }
}

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Span start (inclusive): RFC 3339, a date YYYY-MM-DD or a month
    /// YYYY-MM (in report.timezone). Default: the start of this month.
    #[arg(long)]
    pub from: Option<String>,
    /// Span end (exclusive), same forms. Default: the end of the current hour.
    #[arg(long)]
    pub to: Option<String>,
    /// A whole calendar month YYYY-MM in report.timezone (instead of --from/--to).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub month: Option<String>,
    /// Group by: team, workload, gpu, component, node, hour, day, month
    /// (comma-separated, in column order).
    #[arg(long, default_value = "")]
    pub by: String,
    /// Output: table, csv or json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only this team's rows (its statement).
    #[arg(long)]
    pub team: Option<String>,
    /// Time zone of days, months and printed times (config: report.timezone).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Check that the ledger's sums equal the counters (exit 1 if not).
    #[arg(long)]
    pub verify: bool,
    /// Print the configured budgets of the month (this one, or --month)
    /// with what was spent and the month-end forecast: team, workload,
    /// monthly, spent, forecast, currency, in --format.
    #[arg(long, conflicts_with_all = ["verify", "from", "to", "by", "team"])]
    pub budgets: bool,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// The span, grouping and zone of a report request (CLI or HTTP).
pub fn query(
    from: Option<&str>,
    to: Option<&str>,
    month: Option<&str>,
    by: &str,
    team: Option<&str>,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Query, String> {
    let by = Dim::parse_list(by)?;
    if month.is_some() && (from.is_some() || to.is_some()) {
        return Err("month cannot be combined with from or to: give a month, or a span".into());
    }
    let (from, to) = match month {
        Some(m) => month_span(m, tz)?,
        None => {
            let from = match from {
                Some(s) => parse_time(s, tz).map_err(|e| format!("--from: {e}"))?,
                None => month_bounds(now, tz).0,
            };
            let to = match to {
                Some(s) => parse_time(s, tz).map_err(|e| format!("--to: {e}"))?,
                None => {
                    DateTime::from_timestamp(roimon_ledger::hour_of(now) + 3600, 0).unwrap_or(now)
                }
            };
            (from, to)
        }
    };
    if to <= from {
        return Err("--to must be after --from".into());
    }
    Ok(Query {
        from,
        to,
        by,
        tz,
        team: team.map(String::from),
    })
}

/// Run the command.
pub fn main(a: ReportArgs) -> ExitCode {
    let (cfg, dir) = match a.state.resolve() {
        Ok(x) => x,
        Err(code) => return code,
    };
    let tz: Tz = match &a.timezone {
        Some(z) => match z.parse() {
            Ok(t) => t,
            Err(_) => return usage(format!("--timezone: unknown IANA time zone {z:?}")),
        },
        None => cfg.report.tz(),
    };
    let path = dir.join(roimon_ledger::FILE);
    // Usage errors first, --verify or not.
    let format: Format = match a.format.parse() {
        Ok(f) => f,
        Err(e) => return usage(format!("--format: {e}")),
    };
    if a.verify {
        return verify(&path);
    }
    if a.budgets {
        return budgets(&path, &cfg, a.month.as_deref(), tz, format);
    }
    let q = match query(
        a.from.as_deref(),
        a.to.as_deref(),
        a.month.as_deref(),
        &a.by,
        a.team.as_deref(),
        tz,
        Utc::now(),
    ) {
        Ok(q) => q,
        Err(e) => return usage(e),
    };
    let ledger = match Ledger::open_read_only(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match ledger.unknown_team(&q) {
        Ok(None) => {}
        Ok(Some(why)) => {
            eprintln!("error: {why}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    match ledger.report(&q) {
        Ok(r) => {
            crate::out!("{}", r.render(format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--budgets`: the month's budgets as of the ledger's last tick (a past
/// month: as of its last second).
fn budgets(path: &Path, cfg: &Config, month: Option<&str>, tz: Tz, format: Format) -> ExitCode {
    let now = Utc::now();
    let (start, end) = match month {
        Some(m) => match month_span(m, tz) {
            Ok(s) => s,
            Err(e) => return usage(format!("--month: {e}")),
        },
        None => month_bounds(now, tz),
    };
    if start > now {
        return usage(format!(
            "--month: {} has not begun",
            start.with_timezone(&tz).format("%Y-%m")
        ));
    }
    let budgets: Vec<roimon_ledger::Budget> = cfg
        .budget
        .iter()
        .map(|b| roimon_ledger::Budget {
            team: b.team.clone(),
            workload: b.workload.clone(),
            monthly: b.monthly,
        })
        .collect();
    let done = Ledger::open_read_only(path).and_then(|l| {
        let clock = l.clock()?;
        let last = end - chrono::Duration::seconds(1);
        let as_of = clock.last_wall.unwrap_or(now).min(now).min(last).max(start);
        let complete = end <= now;
        let currency = if clock.currency.is_empty() {
            cfg.price.currency.clone()
        } else {
            clock.currency
        };
        let views = l.budgets(&budgets, as_of, clock.created, tz, &currency)?;
        Ok((views, as_of, complete))
    });
    match done {
        Ok((views, as_of, complete)) => {
            if views.is_empty() {
                eprintln!("note: no [[budget]] is configured");
            }
            let month = start.with_timezone(&tz).format("%Y-%m").to_string();
            crate::out!(
                "{}",
                roimon_ledger::budget::render(&views, &month, as_of, complete, tz, format)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn verify(path: &Path) -> ExitCode {
    let v = match Ledger::open_read_only(path).and_then(|l| l.verify()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if v.differences.is_empty() {
        let out = roimon_ledger::report::out_of(&v.totals);
        crate::outln!(
            "OK: the ledger equals the counters ({} rows, {} hours): cost_total {} {}, credit {}, energy_kwh {}, facility_energy_kwh {}, emissions_kg {}, value {}, tokens {}",
            v.rows,
            v.hours,
            out[7],
            v.currency,
            out[8],
            out[0],
            out[1],
            out[9],
            out[10],
            out[11]
        );
        ExitCode::SUCCESS
    } else {
        for d in &v.differences {
            crate::outln!("DIFFERENCE: {d}");
        }
        eprintln!(
            "error: the ledger does not equal the counters ({} differences)",
            v.differences.len()
        );
        ExitCode::from(1)
    }
}
