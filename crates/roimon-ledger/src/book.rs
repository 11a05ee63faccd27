//! The hour book: which UTC hour is open, the cumulative totals at its
//! start, and the hours closed since the last write. The daemon calls
//! [`HourBook::observe`] with the wall time before it changes any counter;
//! when that time is in a later hour, the open hour is closed at the
//! counters as they stand (so a tick is booked wholly to the hour in which
//! it ends; one ending exactly on the hour to the hour before) and the new
//! hour starts from them. Every hour row is a difference
//! of cumulative totals, so the rows add up to the counters by telescoping.

use crate::figures::{Figures, Key, Priced, Totals, totals};
use chrono::{DateTime, Utc};
use roimon_core::Counters;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Seconds in an hour.
pub const HOUR: i64 = 3600;

/// The start (Unix seconds) of the UTC hour holding `t`.
pub fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(HOUR) * HOUR
}

/// The hour an interval ending at `t` is booked to: the hour holding the
/// instant just before `t` (an interval ending exactly on the hour lies
/// wholly in the hour before).
pub fn hour_of_end(t: DateTime<Utc>) -> i64 {
    hour_of(t - chrono::Duration::nanoseconds(1))
}

/// What kind of row: an hour, the opening balance (everything counted
/// before the ledger existed), a correction of a closed hour, money of an
/// hour that was already closed when the wall clock came back to it, or
/// the state starting over from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The figures of one UTC hour.
    Hour,
    /// Totals carried over from counters that predate the ledger.
    Opening,
    /// A visible correction of a closed hour.
    Correction,
    /// Money booked to an hour that was already closed (the wall clock
    /// was stepped back into it); the closed row stays as it was.
    Late,
    /// The state dir started over from zero (`roimon run --reset-state`):
    /// the reason, and what undoes the figures before it.
    Reset,
}

impl Kind {
    /// The `kind` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hour => "hour",
            Kind::Opening => "opening",
            Kind::Correction => "correction",
            Kind::Late => "late",
            Kind::Reset => "reset",
        }
    }
}

/// The rows of one hour (or the opening balance), ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct HourRows {
    /// Hour start, Unix seconds (UTC).
    pub hour: i64,
    /// Row kind.
    pub kind: Kind,
    /// Non-zero rows by key.
    pub rows: Vec<(Key, Figures)>,
    /// Seconds priced by the source and by a fallback in this hour.
    pub priced: Priced,
    /// GPU-seconds by key in this hour; `None` where unknown (the opening
    /// balance, corrections, resets, the hour in which a ledger written
    /// before GPU-seconds were counted was upgraded).
    pub gpu_seconds: Option<BTreeMap<Key, f64>>,
}

/// The part of the book that is checkpointed with the counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookState {
    /// The open hour (Unix seconds); `None` before the first observation.
    pub open_hour: Option<i64>,
    /// Cumulative totals when the open hour began.
    pub base: Totals,
    /// The open hour was closed before (the clock came back into it): its
    /// rows are of kind `late`.
    #[serde(default)]
    pub open_late: bool,
    /// The latest hour closed so far (Unix seconds). An hour at or before
    /// it may hold a closed row already, so money for it goes to `late`
    /// rows; rows after the open hour up to it are a clock that was ahead.
    #[serde(default)]
    pub last_closed: Option<i64>,
}

/// A wall time this far before the open hour's start moves booking back
/// (a clock stepped back); less is jitter and stays in the open hour.
pub const STEP_BACK_TOLERANCE_SECS: i64 = 60;

/// The hour book.
#[derive(Debug, Clone)]
pub struct HourBook {
    state: BookState,
    /// Closed since the last successful write.
    pending: Vec<HourRows>,
}

/// GPU-seconds of each key between two totals; unknown when either is.
fn seconds_diff(now: &Totals, base: &Totals) -> Option<BTreeMap<Key, f64>> {
    let (now, base) = (now.gpu_seconds.as_ref()?, base.gpu_seconds.as_ref()?);
    Some(
        now.iter()
            .map(|(k, v)| (k.clone(), v - base.get(k).copied().unwrap_or(0.0)))
            .collect(),
    )
}

fn diff(now: &Totals, base: &Totals) -> (Vec<(Key, Figures)>, Priced) {
    let zero = Figures::default();
    let rows = now
        .rows
        .iter()
        .map(|(k, f)| (k.clone(), f.minus(base.rows.get(k).unwrap_or(&zero))))
        .filter(|(_, f)| !f.is_zero())
        .collect();
    let priced = [
        now.priced[0] - base.priced[0],
        now.priced[1] - base.priced[1],
    ];
    (rows, priced)
}

impl HourBook {
    /// Resume a book. `state` is what the last checkpoint stored with
    /// `counters`; `None` with counters means the counters predate the
    /// ledger: their totals become an opening balance, stamped at the hour
    /// the state began, and the book starts from them.
    pub fn resume(state: Option<BookState>, counters: Option<&Counters>) -> Self {
        match (state, counters) {
            (Some(state), _) => Self {
                state,
                pending: Vec::new(),
            },
            (None, Some(c)) => {
                let base = totals(c);
                let (rows, priced) = diff(&base, &Totals::default());
                let at = c.created.or(c.last_wall).map(hour_of).unwrap_or(0);
                let pending = if rows.is_empty() {
                    Vec::new()
                } else {
                    vec![HourRows {
                        hour: at,
                        kind: Kind::Opening,
                        rows,
                        priced,
                        gpu_seconds: None,
                    }]
                };
                Self {
                    state: BookState {
                        open_hour: None,
                        base,
                        ..Default::default()
                    },
                    pending,
                }
            }
            (None, None) => Self {
                state: BookState::default(),
                pending: Vec::new(),
            },
        }
    }

    /// Called with the wall time before any counter changes at that time:
    /// when `wall` lies in another hour than the open one, the open hour is
    /// closed at the counters as they stand and `wall`'s hour opens. A
    /// clock stepped back (more than [`STEP_BACK_TOLERANCE_SECS`] before
    /// the open hour) moves booking back to the hour holding `wall`; a
    /// closed row is never rewritten: an hour closed before gets rows of
    /// kind `late`.
    pub fn observe(&mut self, wall: DateTime<Utc>, counters: &Counters) {
        let h = hour_of_end(wall);
        let late = |last: Option<i64>, h: i64| last.is_some_and(|c| c >= h);
        match self.state.open_hour {
            None => {
                self.state.open_hour = Some(h);
                self.state.open_late = late(self.state.last_closed, h);
            }
            Some(open)
                if h > open
                    || (h < open && wall.timestamp() + STEP_BACK_TOLERANCE_SECS <= open) =>
            {
                let now = totals(counters);
                let (rows, priced) = diff(&now, &self.state.base);
                let gpu_seconds = seconds_diff(&now, &self.state.base);
                self.pending.push(HourRows {
                    hour: open,
                    kind: if self.state.open_late {
                        Kind::Late
                    } else {
                        Kind::Hour
                    },
                    rows,
                    priced,
                    gpu_seconds,
                });
                let last_closed = Some(self.state.last_closed.map_or(open, |c| c.max(open)));
                self.state = BookState {
                    open_hour: Some(h),
                    base: now,
                    open_late: late(last_closed, h),
                    last_closed,
                };
            }
            Some(_) => {}
        }
    }

    /// The open hour's rows as of `counters`.
    pub fn open_rows(&self, counters: &Counters) -> Option<HourRows> {
        let hour = self.state.open_hour?;
        let now = totals(counters);
        let (rows, priced) = diff(&now, &self.state.base);
        let gpu_seconds = seconds_diff(&now, &self.state.base);
        Some(HourRows {
            hour,
            kind: if self.state.open_late {
                Kind::Late
            } else {
                Kind::Hour
            },
            rows,
            priced,
            gpu_seconds,
        })
    }

    /// Hours closed (and the opening balance) not yet written.
    pub fn pending(&self) -> &[HourRows] {
        &self.pending
    }

    /// The state to checkpoint.
    pub fn state(&self) -> &BookState {
        &self.state
    }

    /// The pending hours are on disk.
    pub fn written(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use roimon_core::units::Accumulator;
    use roimon_core::{Component, RowKey};

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    fn counters(capex: f64) -> Counters {
        let mut c = Counters {
            currency: "EUR".into(),
            ..Default::default()
        };
        let key = RowKey {
            gpu_uuid: "GPU-a".into(),
            team: "t".into(),
            workload: "w".into(),
        };
        c.rows
            .entry(key)
            .or_default()
            .cost
            .insert(Component::Capex, Accumulator::from_total(capex));
        c
    }

    #[test]
    fn an_hour_closes_at_the_counters_before_the_first_tick_of_the_next() {
        let mut b = HourBook::resume(None, None);
        b.observe(at(9, 10), &counters(0.0));
        b.observe(at(9, 59), &counters(5.0));
        assert!(b.pending().is_empty());
        b.observe(at(10, 0), &counters(7.0));
        assert!(
            b.pending().is_empty(),
            "an interval ending at 10:00 is 09:00's"
        );
        b.observe(
            at(10, 0) + chrono::Duration::milliseconds(1),
            &counters(7.0),
        );
        assert_eq!(b.pending().len(), 1);
        let closed = &b.pending()[0];
        assert_eq!(closed.hour, at(9, 0).timestamp());
        assert_eq!(closed.rows[0].1.0[crate::figures::COST + 1], 7.0);
        let open = b.open_rows(&counters(9.5)).unwrap();
        assert_eq!(open.hour, at(10, 0).timestamp());
        assert_eq!(open.rows[0].1.0[crate::figures::COST + 1], 2.5);
        // Jitter of a few seconds back across the hour stays in 10:00.
        b.observe(at(10, 0) - chrono::Duration::seconds(5), &counters(9.5));
        assert_eq!(b.open_rows(&counters(9.5)).unwrap().hour, open.hour);
        assert_eq!(b.pending().len(), 1);
    }

    #[test]
    fn a_clock_stepped_forward_and_back_books_to_the_hour_of_the_wall_time() {
        let mut b = HourBook::resume(None, None);
        b.observe(at(9, 10), &counters(0.0));
        // A day ahead: 09:00 closes, tomorrow's hour opens.
        let ahead = at(9, 20) + chrono::Duration::days(1);
        b.observe(ahead, &counters(1.0));
        assert_eq!(b.open_rows(&counters(1.0)).unwrap().hour, hour_of(ahead));
        // Back: tomorrow's hour closes with what it got; booking returns
        // to 09:00, which is closed, so its new money is a `late` row.
        b.observe(at(9, 30), &counters(1.5));
        let open = b.open_rows(&counters(4.0)).unwrap();
        assert_eq!(open.hour, at(9, 0).timestamp());
        assert_eq!(open.kind, Kind::Late);
        assert_eq!(open.rows[0].1.0[crate::figures::COST + 1], 2.5);
        let closed: Vec<(i64, Kind)> = b.pending().iter().map(|h| (h.hour, h.kind)).collect();
        assert_eq!(
            closed,
            vec![
                (at(9, 0).timestamp(), Kind::Hour),
                (hour_of(ahead), Kind::Hour)
            ]
        );
        // 10:00 was skipped by the jump forward but is before the latest
        // closed hour: late too, never a second `hour` row of an hour.
        b.observe(at(10, 5), &counters(4.0));
        assert_eq!(b.pending()[2].kind, Kind::Late);
        assert_eq!(b.open_rows(&counters(4.0)).unwrap().kind, Kind::Late);
        // Once real time is past the latest closed hour, hours are hours.
        b.observe(ahead + chrono::Duration::hours(1), &counters(5.0));
        assert_eq!(b.open_rows(&counters(5.0)).unwrap().kind, Kind::Hour);
    }

    #[test]
    fn counters_from_before_the_ledger_become_an_opening_balance() {
        let mut c = counters(42.0);
        c.created = Some(at(3, 17));
        let b = HourBook::resume(None, Some(&c));
        assert_eq!(b.pending()[0].kind, Kind::Opening);
        assert_eq!(b.pending()[0].hour, at(3, 0).timestamp());
        assert_eq!(b.state().base.rows.len(), 1);
    }

    fn priced(source: f64, fallback: f64) -> Counters {
        let mut c = counters(0.0);
        c.priced_seconds = [
            ("source".to_string(), Accumulator::from_total(source)),
            ("fallback".to_string(), Accumulator::from_total(fallback)),
        ]
        .into();
        c
    }

    #[test]
    fn kind_labels() {
        let labels: Vec<&str> = [
            Kind::Hour,
            Kind::Opening,
            Kind::Correction,
            Kind::Late,
            Kind::Reset,
        ]
        .iter()
        .map(|k| k.as_str())
        .collect();
        assert_eq!(labels, ["hour", "opening", "correction", "late", "reset"]);
    }

    #[test]
    fn hours_are_utc_hour_starts_and_an_end_on_the_hour_is_the_hour_before() {
        // 2026-12-01 00:00 UTC is day 20 788 since 1970 (56 years, 14 of
        // them leap, + 334 days to December): 20 788 * 86 400 =
        // 1 796 083 200 s. 09:59:59 is 35 999 s later, 1 796 119 199 s;
        // its hour starts 3 599 s earlier, at 09:00 = 1 796 115 600 s.
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 9, 59, 59).unwrap();
        assert_eq!(t.timestamp(), 1_796_119_199);
        assert_eq!(hour_of(t), 1_796_115_600);
        // Before 1970 the hour still starts before the instant:
        // -1 s is in the hour starting at -3600 s.
        assert_eq!(hour_of(Utc.timestamp_opt(-1, 0).unwrap()), -3_600);
        // 10:00:00 ends an interval of 09:00; 10:00:01 one of 10:00.
        assert_eq!(hour_of_end(at(10, 0)), 1_796_115_600);
        assert_eq!(
            hour_of_end(at(10, 0) + chrono::Duration::seconds(1)),
            1_796_119_200
        );
    }

    #[test]
    fn priced_seconds_of_an_hour_are_the_difference_of_the_totals() {
        // A book started with the state: its first hour counts from zero.
        let mut b = HourBook::resume(None, None);
        b.observe(at(9, 10), &priced(0.0, 0.0));
        let open = b.open_rows(&priced(30.0, 5.0)).unwrap();
        assert_eq!(open.priced, [30.0, 5.0]);
        assert_eq!(open.kind, Kind::Hour);
        // 09:00 closes at source 60 s, fallback 10 s.
        b.observe(at(10, 1), &priced(60.0, 10.0));
        assert_eq!(b.pending()[0].priced, [60.0, 10.0]);
        // 10:00 counts from there: 100 - 60 = 40 s and 12 - 10 = 2 s.
        let open = b.open_rows(&priced(100.0, 12.0)).unwrap();
        assert_eq!(open.priced, [40.0, 2.0]);
        // Nothing moved: no rows, nothing priced.
        let open = b.open_rows(&priced(60.0, 10.0)).unwrap();
        assert!(open.rows.is_empty());
        assert_eq!(open.priced, [0.0, 0.0]);
        b.written();
        assert!(b.pending().is_empty());
    }

    #[test]
    fn a_step_back_of_exactly_the_tolerance_moves_booking_back() {
        let mut b = HourBook::resume(None, None);
        b.observe(at(9, 10), &counters(0.0));
        b.observe(at(10, 5), &counters(1.0));
        assert_eq!(b.pending().len(), 1);
        // 10:00 - 59 s: jitter, still 10:00.
        b.observe(at(10, 0) - chrono::Duration::seconds(59), &counters(2.0));
        assert_eq!(b.pending().len(), 1);
        // 10:00 - 60 s = 09:59:00 (STEP_BACK_TOLERANCE_SECS): a step back.
        // 10:00 closes with 2 - 1 = 1; 09:00 opens again, closed before, so
        // its new money is late: 3.5 - 2 = 1.5.
        b.observe(at(9, 59), &counters(2.0));
        assert_eq!(b.pending().len(), 2);
        assert_eq!(b.pending()[1].hour, at(10, 0).timestamp());
        assert_eq!(b.pending()[1].rows[0].1.0[crate::figures::COST + 1], 1.0);
        let open = b.open_rows(&counters(3.5)).unwrap();
        assert_eq!(open.hour, at(9, 0).timestamp());
        assert_eq!(open.kind, Kind::Late);
        assert_eq!(open.rows[0].1.0[crate::figures::COST + 1], 1.5);
        assert_eq!(b.state().last_closed, Some(at(10, 0).timestamp()));
    }

    #[test]
    fn the_first_observation_after_a_checkpoint_in_a_closed_hour_is_late() {
        // Resumed with 10:00 closed and no hour open: booking into 10:00
        // (at or before the latest closed hour) is late; into 11:00 is not.
        let state = BookState {
            open_hour: None,
            base: Totals::default(),
            open_late: false,
            last_closed: Some(at(10, 0).timestamp()),
        };
        let mut b = HourBook::resume(Some(state.clone()), Some(&counters(9.0)));
        assert!(b.pending().is_empty(), "a stored state has no opening row");
        b.observe(at(10, 30), &counters(9.0));
        assert_eq!(b.open_rows(&counters(9.0)).unwrap().kind, Kind::Late);
        let mut b = HourBook::resume(Some(state), None);
        b.observe(at(11, 30), &counters(9.0));
        assert_eq!(b.open_rows(&counters(9.0)).unwrap().kind, Kind::Hour);
        assert_eq!(b.state().open_hour, Some(at(11, 0).timestamp()));
    }

    #[test]
    fn an_opening_balance_is_stamped_at_the_last_tick_when_the_start_is_unknown() {
        // No `created`: the hour of the last tick, 05:00.
        let mut c = counters(42.0);
        c.last_wall = Some(at(5, 45));
        let b = HourBook::resume(None, Some(&c));
        assert_eq!(b.pending()[0].hour, at(5, 0).timestamp());
        assert_eq!(b.pending()[0].rows[0].1.0[crate::figures::COST + 1], 42.0);
        assert_eq!(b.state().open_hour, None);
        // Counters with nothing in them: no opening row.
        let b = HourBook::resume(None, Some(&counters(0.0)));
        assert!(b.pending().is_empty());
        assert_eq!(b.state().open_hour, None);
    }
}
