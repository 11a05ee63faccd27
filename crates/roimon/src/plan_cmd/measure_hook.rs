//! Where `roimon plan` gets the coefficients an allocation file leaves
//! `"measured"`: one function building the callback `resolve` asks. Without
//! a ledger (`--state-dir` or `--ledger`) every measured coefficient is an
//! error naming it; reading them from the ledger replaces this file.

use super::MeasureArgs;
use roimon_planner::{CoefKey, Measured};

/// The callback `roimon_planner::resolve` asks for each measured
/// coefficient (its error names the window; `resolve` adds the name).
pub fn measurer(args: &MeasureArgs) -> Box<dyn FnMut(&CoefKey) -> Result<Measured, String>> {
    let window = args.window_text();
    let has_ledger = args.state_dir.is_some() || !args.ledger.is_empty();
    Box::new(move |_key: &CoefKey| {
        Err(if has_ledger {
            format!(
                "this build cannot read measured coefficients from the ledger (window {window}); give the number in the file"
            )
        } else {
            format!(
                "\"measured\" needs a ledger: give --state-dir DIR or --ledger FILE (window {window})"
            )
        })
    })
}
