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
//!
//! Also their statement (`roimon report --budgets`) as a table, CSV or JSON.

use crate::report::{Format, csv_text, fixed, month_bounds, show};
use crate::store::{Error, Ledger, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use roimon_core::BudgetView;
use rusqlite::params;
use std::fmt::Write as _;

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

/// Seconds of history the run rate of [`Ledger::budgets`] rests on at
/// `now`: from max(start of the current UTC hour − 23 h, when the state
/// began) to now, so at most 24 h and, on a young state, its age. A
/// forecast from a few seconds of spend is an extrapolation of almost
/// nothing: alerts wait until this is long enough.
pub fn forecast_basis_seconds(now: DateTime<Utc>, created: Option<DateTime<Utc>>) -> f64 {
    let w = crate::book::hour_of(now) - 23 * 3600;
    let since = created.map_or(w, |c| c.timestamp().max(w));
    ((now - DateTime::from_timestamp(since, 0).unwrap_or(now)).num_milliseconds() as f64 / 1000.0)
        .max(0.0)
}

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
        let span = forecast_basis_seconds(now, created);
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

/// What the ledger's checkpoint says of its clock: when the state began,
/// its last tick and its currency (for budgets read outside the daemon).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clock {
    /// When the state began.
    pub created: Option<DateTime<Utc>>,
    /// The last tick booked.
    pub last_wall: Option<DateTime<Utc>>,
    /// The price currency.
    pub currency: String,
}

impl Ledger {
    /// The checkpoint's clock (all empty without a checkpoint).
    pub fn clock(&self) -> Result<Clock> {
        let Some(stored) = self.load()? else {
            return Ok(Clock::default());
        };
        let c: serde_json::Value = serde_json::from_str(&stored.counters).map_err(|e| Error {
            path: self.path().to_path_buf(),
            message: format!("checkpoint.counters: {e}"),
        })?;
        let time = |k: &str| {
            c.get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Ok(Clock {
            created: time("created"),
            last_wall: time("last_wall"),
            currency: c
                .get("currency")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// Budgets of the month `month` (`YYYY-MM`) as of `as_of`: columns `team,
/// workload, monthly, spent, forecast, currency`. CSV money has 6
/// decimals and neutralised text; JSON is `{"month", "as_of", "complete",
/// "budgets": [{…same keys…}]}` at full precision; the table ends with the
/// month and the time it is as of.
pub fn render(
    views: &[BudgetView],
    month: &str,
    as_of: DateTime<Utc>,
    complete: bool,
    tz: Tz,
    format: Format,
) -> String {
    const HEADER: [&str; 6] = [
        "team", "workload", "monthly", "spent", "forecast", "currency",
    ];
    match format {
        Format::Json => {
            let mut s = serde_json::json!({
                "month": month,
                "as_of": show(as_of, tz),
                "complete": complete,
                "budgets": views,
            })
            .to_string();
            s.push('\n');
            s
        }
        Format::Csv => {
            let mut s = HEADER.join(",");
            s.push('\n');
            for v in views {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{}",
                    csv_text(&v.team),
                    csv_text(&v.workload),
                    fixed(v.monthly, 6),
                    fixed(v.spent, 6),
                    fixed(v.forecast, 6),
                    csv_text(&v.currency)
                );
            }
            s
        }
        Format::Table => {
            let mut lines: Vec<Vec<String>> = vec![HEADER.iter().map(|h| h.to_string()).collect()];
            for v in views {
                lines.push(vec![
                    v.team.clone(),
                    v.workload.clone(),
                    fixed(v.monthly, 2),
                    fixed(v.spent, 2),
                    fixed(v.forecast, 2),
                    v.currency.clone(),
                ]);
            }
            let widths: Vec<usize> = (0..HEADER.len())
                .map(|c| {
                    lines
                        .iter()
                        .map(|l| l[c].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let mut s = String::new();
            for l in &lines {
                let cells: Vec<String> = l
                    .iter()
                    .enumerate()
                    .map(|(c, v)| {
                        if (2..5).contains(&c) {
                            format!("{v:>w$}", w = widths[c])
                        } else {
                            format!("{v:<w$}", w = widths[c])
                        }
                    })
                    .collect();
                let _ = writeln!(s, "{}", cells.join("  ").trim_end());
            }
            let _ = writeln!(
                s,
                "{month}{} as of {}",
                if complete { "" } else { " to date" },
                show(as_of, tz)
            );
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views() -> Vec<BudgetView> {
        vec![
            BudgetView {
                team: "search".into(),
                workload: String::new(),
                currency: "EUR".into(),
                monthly: 12000.0,
                spent: 0.1 + 0.2,
                forecast: 12345678901.5,
            },
            BudgetView {
                team: "=evil".into(),
                workload: "chat".into(),
                currency: "EUR".into(),
                monthly: 50.0,
                spent: 1e-9,
                forecast: 2.4000000000000004,
            },
        ]
    }

    #[test]
    fn the_forecast_rests_on_the_state_age_up_to_the_last_day() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = t("2026-12-06T23:10:00Z");
        // A state 15 s old: 15 s of history, not a day.
        assert_eq!(
            forecast_basis_seconds(now, Some(t("2026-12-06T23:09:45Z"))),
            15.0
        );
        // An old state: from 23 h before the current hour's start.
        assert_eq!(
            forecast_basis_seconds(now, Some(t("2026-11-01T00:00:00Z"))),
            23.0 * 3600.0 + 600.0
        );
        assert_eq!(forecast_basis_seconds(now, None), 23.0 * 3600.0 + 600.0);
        // A clock behind the state's start: 0, never negative.
        assert_eq!(
            forecast_basis_seconds(now, Some(t("2026-12-07T00:00:00Z"))),
            0.0
        );
    }

    #[test]
    fn budgets_render_as_csv_json_and_table() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T23:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let csv = render(&views(), "2026-12", at, false, chrono_tz::UTC, Format::Csv);
        assert_eq!(
            csv,
            "team,workload,monthly,spent,forecast,currency\n\
             search,,12000.000000,0.300000,12345678901.500000,EUR\n\
             '=evil,chat,50.000000,0.000000,2.400000,EUR\n"
        );
        let j: serde_json::Value = serde_json::from_str(&render(
            &views(),
            "2026-12",
            at,
            false,
            chrono_tz::UTC,
            Format::Json,
        ))
        .unwrap();
        assert_eq!(j["month"], "2026-12");
        assert_eq!(j["as_of"], "2026-12-06T23:10:00Z");
        assert_eq!(j["complete"], false);
        assert_eq!(j["budgets"][0]["team"], "search");
        assert_eq!(j["budgets"][0]["monthly"], 12000.0);
        assert_eq!(j["budgets"][1]["forecast"], 2.4000000000000004);
        let t = render(
            &views(),
            "2026-12",
            at,
            false,
            chrono_tz::UTC,
            Format::Table,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("team    workload"), "{t}");
        assert!(
            lines[1].contains("12000.00") && lines[1].contains("12345678901.50"),
            "{t}"
        );
        assert_eq!(lines[3], "2026-12 to date as of 2026-12-06T23:10:00Z");
    }
}
