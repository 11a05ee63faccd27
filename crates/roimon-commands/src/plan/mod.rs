//! `roimon plan`: the planner's command line. `roimon plan FILE` plans an
//! allocation file, or, when the file is a scenario file with `[select]`,
//! chooses among its scenarios; `roimon plan window` finds the cheapest
//! start of a deferrable job in the known price schedule. Exit codes: 0 a
//! plan (or window) found, 1 infeasible or no window fits (a message names
//! why), 2 a file, flag or coefficient error.

pub mod allocate;
pub mod analysis;
pub mod measure_hook;
pub mod select;
pub mod window;

use chrono::{DateTime, Duration as TimeDelta, SecondsFormat, Utc};
use roimon_config::{ConfigError, parse_toml, read_file};
use std::path::PathBuf;
use std::process::ExitCode;

/// The longest `--time-limit` (s).
pub const MAX_TIME_LIMIT_SECS: f64 = 3600.0;

/// `roimon plan`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PlanArgs {
    /// `roimon plan window …`.
    #[command(subcommand)]
    pub command: Option<PlanCommand>,
    /// The allocation file, or a scenario file with `[select]`.
    #[arg(required = true)]
    pub file: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Read measured coefficients from this state dir's ledger.
    #[arg(long, conflicts_with = "ledger")]
    pub state_dir: Option<PathBuf>,
    /// Read measured coefficients from these ledger files (collected from
    /// nodes).
    #[arg(long, num_args = 1.., action = clap::ArgAction::Append)]
    pub ledger: Vec<PathBuf>,
    /// Start of the measuring window, RFC 3339 (default: 7 days before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the measuring window, RFC 3339 (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Wall-clock limit of the solve (s); the best plan found by then is
    /// reported with its gap.
    #[arg(long, default_value_t = 10.0)]
    pub time_limit: f64,
    /// The analysis flags (--sensitivity, --swing, --monte-carlo, --seed,
    /// --pareto, --points, --svg).
    #[command(flatten)]
    pub analysis: analysis::AnalysisArgs,
}

/// `roimon plan`'s subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PlanCommand {
    /// The cheapest (or cleanest) start of a deferrable job in the known
    /// price schedule: exit 0 with the window, 1 when none fits.
    Window(window::WindowArgs),
}

/// The callback `roimon_planner::resolve` asks for each `"measured"`
/// coefficient (built by [`measure_hook::measurer`]).
pub type Measurer =
    Box<dyn FnMut(&roimon_planner::CoefKey) -> Result<roimon_planner::Measured, String>>;

/// What measuring coefficients from the ledger needs: where the ledger is
/// and the window.
#[derive(Debug, Clone)]
pub struct MeasureArgs {
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--ledger` files.
    pub ledger: Vec<PathBuf>,
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
}

impl MeasureArgs {
    /// `"<from>/<to>"`, RFC 3339.
    pub fn window_text(&self) -> String {
        format!(
            "{}/{}",
            self.from.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.to.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

fn flag_error(key: &str, message: String) -> ExitCode {
    crate::config_error(&ConfigError {
        file: "command line".into(),
        line: None,
        key: Some(key.into()),
        message,
    })
}

/// Whether the file is a scenario file with `[select]`.
#[derive(Debug, serde::Deserialize)]
struct Probe {
    select: Option<serde::de::IgnoredAny>,
}

/// Run `roimon plan`.
pub fn main(args: PlanArgs) -> ExitCode {
    if let Some(PlanCommand::Window(w)) = &args.command {
        return window::main(w);
    }
    let Some(path) = &args.file else {
        return flag_error("FILE", "the file to plan is required".into());
    };
    if !(args.time_limit.is_finite()
        && args.time_limit > 0.0
        && args.time_limit <= MAX_TIME_LIMIT_SECS)
    {
        return flag_error(
            "--time-limit",
            format!(
                "must be a number of seconds in (0, {MAX_TIME_LIMIT_SECS}], got {}",
                args.time_limit
            ),
        );
    }
    let now = Utc::now();
    let to = match args.to.as_deref().map(|s| window::parse_time(s, "--to")) {
        None => now,
        Some(Ok(t)) => t,
        Some(Err(m)) => return flag_error("--to", m),
    };
    let from = match args
        .from
        .as_deref()
        .map(|s| window::parse_time(s, "--from"))
    {
        None => to - TimeDelta::days(7),
        Some(Ok(t)) => t,
        Some(Err(m)) => return flag_error("--from", m),
    };
    if from >= to {
        return flag_error("--from", "must be before --to".into());
    }
    let src = match read_file(path) {
        Ok(s) => s,
        Err(e) => return crate::config_error(&e),
    };
    let file = path.display().to_string();
    let probe: Probe = match parse_toml(&src, &file) {
        Ok(p) => p,
        Err(e) => return crate::config_error(&e),
    };
    if probe.select.is_some() {
        if let Some(flag) = args.analysis.first_given() {
            return flag_error(
                flag,
                format!("analyses an allocation plan; {file} is a scenario file with [select]"),
            );
        }
        return select::main(&src, &file, args.json);
    }
    let measure = MeasureArgs {
        state_dir: args.state_dir.clone(),
        ledger: args.ledger.clone(),
        from,
        to,
    };
    allocate::main(&src, &file, &args, &measure)
}
