//! Where `roimon plan` gets the coefficients an allocation file leaves
//! `"measured"`: the daemon's ledger (`--state-dir`) or ledgers collected
//! from nodes (`--ledger`), read over the window by
//! [`crate::plan_measured`]. Without a ledger every measured coefficient is
//! an error naming it and the window.

use super::{MeasureArgs, Measurer};
use crate::plan_measured::{LedgerMeasure, ledger_paths};
use roimon_planner::CoefKey;

/// The callback `roimon_planner::resolve` asks for each measured
/// coefficient (its error names the window; `resolve` adds the name).
/// Money coefficients must be in `currency`, the file's.
pub fn measurer(args: &MeasureArgs, currency: &str) -> Measurer {
    let paths = ledger_paths(args.state_dir.as_deref(), &args.ledger);
    if paths.is_empty() {
        let window = args.window_text();
        return Box::new(move |_: &CoefKey| {
            Err(format!(
                "\"measured\" needs a ledger: give --state-dir DIR (the daemon's ledger) or --ledger FILE (window {window})"
            ))
        });
    }
    let mut m = LedgerMeasure::new(paths, args.from, args.to, currency);
    Box::new(move |key: &CoefKey| m.measure(key))
}
