//! Monthly budgets against the ledger: month-to-date net spend of a team
//! (or one of its workloads) and the month-end forecast at the recent run
//! rate. Months are calendar months in the report time zone.
//!
//! - spent = Σ (cost − credit) of the owner's rows whose hour starts in
//!   the current month, the open hour included;
//! - run rate = Σ (cost − credit) of the owner's rows whose hour starts at
//!   or after W = (start of the current UTC hour − 23 h), divided by the
//!   seconds from max(W, the state's first tick) to now;
//! - forecast = spent + run rate × seconds left in the month.

use crate::report::month_bounds;
use crate::store::{Error, Ledger, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use roimon_core::BudgetView;
use rusqlite::params;

/// A configured budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Team.
    pub team: String,
    /// One workload of the team, or the whole team.
    pub workload: Option<String>,
    /// Money per month, in the price currency.
    pub monthly: f64,
}

const NET: &str = "cost_energy + cost_capex + cost_maintenance + cost_staff + cost_carbon - credit";

impl Ledger {
    fn net_since(&self, b: &Budget, from: i64, to: i64) -> Result<f64> {
        let sql = format!(
            "SELECT TOTAL({NET}) FROM ledger WHERE team = ?1 AND (?2 IS NULL OR workload = ?2) \
             AND gpu_uuid <> ?3 AND hour_start >= ?4 AND hour_start < ?5"
        );
        self.connection()
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_row(
                    params![b.team, b.workload, crate::figures::VALUE_GPU, from, to],
                    |r| r.get::<_, f64>(0),
                )
            })
            .map_err(|e| Error {
                path: self.path().to_path_buf(),
                message: e.to_string(),
            })
    }

    /// Every budget's gauges as of `now` (the time the ledger covers up
    /// to); `created` is when the state began.
    pub fn budgets(
        &self,
        budgets: &[Budget],
        now: DateTime<Utc>,
        created: Option<DateTime<Utc>>,
        tz: Tz,
        currency: &str,
    ) -> Result<Vec<BudgetView>> {
        let (month_start, month_end) = month_bounds(now, tz);
        let w = crate::book::hour_of(now) - 23 * 3600;
        let since = created.map_or(w, |c| c.timestamp().max(w));
        let span = (now - DateTime::from_timestamp(since, 0).unwrap_or(now)).num_milliseconds()
            as f64
            / 1000.0;
        let left = ((month_end - now).num_milliseconds() as f64 / 1000.0).max(0.0);
        let far = i64::MAX / 2;
        let mut out = Vec::with_capacity(budgets.len());
        for b in budgets {
            let spent = self.net_since(b, month_start.timestamp(), month_end.timestamp())?;
            let recent = self.net_since(b, w, far)?;
            let rate = if span > 0.0 { recent / span } else { 0.0 };
            out.push(BudgetView {
                team: b.team.clone(),
                workload: b.workload.clone().unwrap_or_default(),
                currency: currency.to_string(),
                monthly: b.monthly,
                spent,
                forecast: spent + rate.max(0.0) * left,
            });
        }
        Ok(out)
    }
}
