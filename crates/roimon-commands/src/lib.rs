//! What roimon's subcommands do, apart from running the daemon: `roimon plan`
//! (allocation, scenario selection, the cheapest window and the analysis,
//! over given or measured coefficients), `roimon prices` (one fetch of the
//! configured price source), `roimon report` and `roimon ledger` (the
//! finance ledger read and checked). The binary only parses the command line
//! and calls in; the server reuses the window and the report query.

pub mod ledger;
pub mod out;
pub mod plan;
pub mod plan_measured;
pub mod prices;
pub mod report;
pub mod scenario;

use std::process::ExitCode;

/// Print a configuration error (it names file, line and key) and give the
/// exit code of a usage or configuration error, 2.
pub fn config_error(e: &roimon_config::ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
