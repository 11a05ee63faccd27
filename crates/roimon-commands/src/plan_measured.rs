//! `roimon plan`'s measured coefficients: the `measure` callback of
//! `roimon_planner::resolve::resolve`, answered from the daemon's ledger
//! (`--state-dir`) or ledgers collected from nodes (`--ledger`) over
//! `--from/--to` (the command line's window). The ledgers are opened only
//! when the file leaves a coefficient `"measured"`, and once.

use chrono::{DateTime, Utc};
use roimon_ledger::measure::{Figure, Measure};
use roimon_planner::resolve::{CoefKey, Measured};
use std::path::{Path, PathBuf};

/// The ledger files to read: the state dir's `ledger.sqlite3`, then every
/// `--ledger` file, in that order.
pub fn ledger_paths(state_dir: Option<&Path>, ledgers: &[PathBuf]) -> Vec<PathBuf> {
    state_dir
        .map(|d| d.join(roimon_ledger::FILE))
        .into_iter()
        .chain(ledgers.iter().cloned())
        .collect()
}

/// Answers the resolver's questions from the ledgers.
#[derive(Debug)]
pub struct LedgerMeasure {
    paths: Vec<PathBuf>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The allocation file's currency: money coefficients must be in it.
    currency: String,
    opened: Option<Result<Measure, String>>,
}

impl LedgerMeasure {
    /// Measure from `paths` over `[from, to)`, money in `currency`.
    pub fn new(
        paths: Vec<PathBuf>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        currency: &str,
    ) -> Self {
        Self {
            paths,
            from,
            to,
            currency: currency.to_string(),
            opened: None,
        }
    }

    fn ledgers(&mut self) -> Result<&Measure, String> {
        if self.opened.is_none() {
            let r = if self.paths.is_empty() {
                Err(format!(
                    "\"measured\" needs a ledger: give --state-dir DIR (the daemon's ledger) or --ledger FILE (window {})",
                    roimon_ledger::measure::window_string(self.from, self.to)
                ))
            } else {
                Measure::open(&self.paths, self.from, self.to).map_err(|e| e.to_string())
            };
            self.opened = Some(r);
        }
        match self.opened.as_ref() {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no ledger opened".into()),
        }
    }

    /// The coefficient `key` from the ledgers, or why not (the resolver
    /// names the coefficient; the message names the window).
    pub fn measure(&mut self, key: &CoefKey) -> Result<Measured, String> {
        let currency = self.currency.clone();
        let m = self.ledgers()?;
        let money = matches!(
            key,
            CoefKey::PricePerKwh
                | CoefKey::GpuCostPerHour { .. }
                | CoefKey::ValuePerMillionTokens { .. }
        );
        if money {
            let found = m.currencies();
            if !found.is_empty() && (found.len() > 1 || !found.contains(&currency)) {
                return Err(format!(
                    "the ledger's rows from {} are in {}, the file's currency is {currency}",
                    m.window().replace('/', " to "),
                    found.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let f: Figure = match key {
            CoefKey::PricePerKwh => m.price_per_kwh(),
            CoefKey::CarbonGPerKwh => m.carbon_g_per_kwh(),
            CoefKey::GpuCostPerHour { gpu } => m.cost_per_gpu_hour(gpu),
            CoefKey::Demand { workload } => m.demand_tokens_per_second(workload),
            CoefKey::ValuePerMillionTokens { workload } => m.value_per_million_tokens(workload),
            CoefKey::TokensPerSecond { workload, gpu } => m.tokens_per_second(workload, gpu),
            CoefKey::JoulesPerToken {
                workload,
                gpu,
                idle_watts,
            } => m.joules_per_token(workload, gpu, *idle_watts),
        }?;
        Ok(Measured {
            value: f.value,
            window: f.window,
            samples: f.samples,
            p10: f.p10,
            p90: f.p90,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn without_a_ledger_a_measured_coefficient_says_how_to_give_one() {
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 1, 30, 0).unwrap();
        let mut m = LedgerMeasure::new(Vec::new(), now - chrono::Duration::days(7), now, "EUR");
        let e = m.measure(&CoefKey::PricePerKwh).unwrap_err();
        assert_eq!(
            e,
            "\"measured\" needs a ledger: give --state-dir DIR (the daemon's ledger) or --ledger FILE (window 2026-11-30T01:30:00Z/2026-12-07T01:30:00Z)"
        );
        assert_eq!(
            ledger_paths(Some(Path::new("/s")), &[PathBuf::from("a.sqlite3")]),
            vec![
                PathBuf::from("/s/ledger.sqlite3"),
                PathBuf::from("a.sqlite3")
            ]
        );
    }
}
