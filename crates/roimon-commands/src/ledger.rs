//! `roimon ledger repair`: a checkpoint that holds a non-finite, negative
//! or absurd figure (which the daemon refuses to resume) is made resumable
//! while keeping the ledger: the bad figures are reset, and a visible row
//! of kind `correction`, with the reason, keeps Σ ledger equal to the
//! counters. Runs on a stopped daemon's state dir (it takes the lock).

use std::process::ExitCode;

/// `roimon ledger …`.
#[derive(Debug, clap::Subcommand)]
pub enum LedgerCommand {
    /// Reset impossible figures (not finite, negative, absurd) in the
    /// stored counters with a visible correction row, keeping the ledger;
    /// exit 0 when repaired or nothing needed it, 1 when it cannot be.
    Repair(RepairArgs),
}

/// Arguments of `roimon ledger repair`.
#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub state: crate::report::StateArgs,
}

/// Run the command.
pub fn main(cmd: LedgerCommand) -> ExitCode {
    let LedgerCommand::Repair(a) = cmd;
    let (cfg, dir) = match a.state.resolve() {
        Ok(x) => x,
        Err(code) => return code,
    };
    let path = dir.join(roimon_ledger::FILE);
    if !path.exists() {
        eprintln!(
            "error: {}: no ledger here, nothing to repair (is this the state dir?)",
            path.display()
        );
        return ExitCode::from(1);
    }
    // The daemon must not write meanwhile: hold the state dir's lock.
    let mut checkpoint = match roimon_daemon::checkpoint::Checkpoint::open(&dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let meta = roimon_ledger::Meta {
        node: cfg.node.name(),
        price_source: cfg.price.source.label().to_string(),
    };
    match checkpoint.ledger_mut().repair(&meta, chrono::Utc::now()) {
        Ok(said) if said.is_empty() => {
            crate::outln!(
                "OK: nothing to repair in {} (the checkpoint is sound and the ledger equals the counters)",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Ok(said) => {
            for l in &said {
                crate::outln!("REPAIRED: {l}");
            }
            crate::outln!(
                "OK: {} repaired; a row of kind correction records it and the ledger equals the counters again",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
