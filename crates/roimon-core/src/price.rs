//! Electricity price schedules (static, time-of-use, explicit slots) and the
//! rule that prices energy slot by slot, splitting an interval at slot
//! boundaries in proportion to time.

use crate::units::{Joules, Money, PricePerKwh};
use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A stretch of time `[start, end)` with one price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// Inclusive start, UTC.
    pub start: DateTime<Utc>,
    /// Exclusive end, UTC.
    pub end: DateTime<Utc>,
    /// Price per kWh in the schedule's currency.
    pub price: PricePerKwh,
}

/// One time-of-use rule: on these weekdays, between these local hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TouRule {
    /// A name for humans (`peak`, `off_peak`).
    pub name: String,
    /// Weekdays the rule applies to; empty means every day.
    pub days: Vec<Weekday>,
    /// First local hour (0..=23) the rule covers.
    pub from_hour: u32,
    /// Local hour (1..=24) the rule stops at; `to_hour <= from_hour` wraps past midnight.
    pub to_hour: u32,
    /// The price.
    pub price: PricePerKwh,
}

impl TouRule {
    fn matches(&self, weekday: Weekday, hour: u32) -> bool {
        let day_ok = self.days.is_empty() || self.days.contains(&weekday);
        let hour_ok = if self.from_hour < self.to_hour {
            hour >= self.from_hour && hour < self.to_hour
        } else {
            hour >= self.from_hour || hour < self.to_hour
        };
        day_ok && hour_ok
    }
}

/// A time-of-use tariff in a local time zone; the first matching rule wins.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeOfUse {
    /// Local time zone the rules are written in.
    pub tz: Tz,
    /// Rules in priority order.
    pub rules: Vec<TouRule>,
    /// Price when no rule matches.
    pub default_price: PricePerKwh,
}

impl TimeOfUse {
    /// Price in force at `t`.
    pub fn price_at(&self, t: DateTime<Utc>) -> PricePerKwh {
        let local = t.with_timezone(&self.tz);
        let (wd, h) = (local.weekday(), local.hour());
        self.rules
            .iter()
            .find(|r| r.matches(wd, h))
            .map_or(self.default_price, |r| r.price)
    }
}

/// Where prices come from, as the core sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Tariff {
    /// One price at all times.
    Static(PricePerKwh),
    /// Weekday/hour rules in a time zone.
    TimeOfUse(TimeOfUse),
    /// Explicit slots (from a market); outside them the fallback applies.
    Slots {
        /// Sorted, non-overlapping slots.
        slots: Vec<Slot>,
        /// Price where no slot covers the time (and, with `last_known`, no
        /// earlier slot exists).
        fallback: PricePerKwh,
        /// Where no slot covers the time, keep the price of the last slot
        /// before it instead of the fallback.
        last_known: bool,
    },
}

/// What the price in force rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The source covers the time (static and time-of-use always do).
    Source,
    /// No slot covers it: the configured fallback price.
    Fallback,
    /// No slot covers it: the price of the last slot before it.
    LastKnown,
}

impl Basis {
    /// Lowercase label value.
    pub fn label(self) -> &'static str {
        match self {
            Basis::Source => "source",
            Basis::Fallback => "fallback",
            Basis::LastKnown => "last_known",
        }
    }
}

/// A piece of an interval with the price in force on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Start, UTC.
    pub start: DateTime<Utc>,
    /// End, UTC.
    pub end: DateTime<Utc>,
    /// Price on it.
    pub price: PricePerKwh,
    /// Whether the price came from the fallback (no slot covered it).
    pub fallback: bool,
}

/// The price in a gap before `slots[i]`: the last known slot's price when
/// asked for and one exists, else the fallback.
fn gap_price(
    slots: &[Slot],
    i: usize,
    fallback: PricePerKwh,
    last_known: bool,
) -> (PricePerKwh, Basis) {
    match (last_known, i.checked_sub(1).and_then(|j| slots.get(j))) {
        (true, Some(prev)) => (prev.price, Basis::LastKnown),
        _ => (fallback, Basis::Fallback),
    }
}

/// Every real time-zone offset is a multiple of 15 minutes, so local hour
/// boundaries always fall on this UTC grid.
const GRID_MINUTES: i64 = 15;

impl Tariff {
    /// Price in force at `t`, and whether it is a fallback.
    pub fn price_at(&self, t: DateTime<Utc>) -> (PricePerKwh, bool) {
        let (p, basis) = self.price_basis_at(t);
        (p, basis != Basis::Source)
    }

    /// Price in force at `t` and what it rests on.
    pub fn price_basis_at(&self, t: DateTime<Utc>) -> (PricePerKwh, Basis) {
        match self {
            Tariff::Static(p) => (*p, Basis::Source),
            Tariff::TimeOfUse(tou) => (tou.price_at(t), Basis::Source),
            Tariff::Slots {
                slots,
                fallback,
                last_known,
            } => {
                let i = slots.partition_point(|s| s.end <= t);
                match slots.get(i) {
                    Some(s) if s.start <= t => (s.price, Basis::Source),
                    _ => gap_price(slots, i, *fallback, *last_known),
                }
            }
        }
    }

    /// Split `[from, to)` at every price change. Empty when `to <= from`.
    pub fn segments(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::with_capacity(2);
        if to <= from {
            return out;
        }
        let mut push = |start, end, (price, fallback): (PricePerKwh, bool)| {
            if let Some(last) = out.last_mut() {
                if last.price == price && last.fallback == fallback && last.end == start {
                    last.end = end;
                    return;
                }
            }
            out.push(Segment {
                start,
                end,
                price,
                fallback,
            });
        };
        match self {
            Tariff::Static(p) => push(from, to, (*p, false)),
            Tariff::TimeOfUse(tou) => {
                let step = Duration::minutes(GRID_MINUTES);
                let mut t = from;
                while t < to {
                    let next = (t.duration_trunc(step).unwrap_or(t) + step).min(to);
                    push(t, next, (tou.price_at(t), false));
                    t = next;
                }
            }
            Tariff::Slots {
                slots,
                fallback,
                last_known,
            } => {
                let gap = |i: usize| {
                    let (p, _) = gap_price(slots, i, *fallback, *last_known);
                    (p, true)
                };
                let mut t = from;
                let mut i = slots.partition_point(|s| s.end <= from);
                while t < to {
                    match slots.get(i) {
                        Some(s) if s.start <= t => {
                            let end = s.end.min(to);
                            push(t, end, (s.price, false));
                            t = end;
                            i += 1;
                        }
                        Some(s) => {
                            let end = s.start.min(to);
                            push(t, end, gap(i));
                            t = end;
                        }
                        None => {
                            push(t, to, gap(i));
                            t = to;
                        }
                    }
                }
            }
        }
        out
    }

    /// Price `energy` drawn evenly over `[from, to)`: each segment gets its
    /// share of the energy in proportion to its length. A zero-length interval
    /// is priced at the price in force at `from`.
    pub fn cost(&self, energy: Joules, from: DateTime<Utc>, to: DateTime<Utc>) -> Money {
        if to <= from {
            return self.price_at(from).0.cost(energy);
        }
        let total = (to - from).num_nanoseconds().unwrap_or(i64::MAX) as f64;
        let mut money = 0.0;
        for s in self.segments(from, to) {
            let len = (s.end - s.start).num_nanoseconds().unwrap_or(0) as f64;
            money += s.price.cost(Joules(energy.0 * len / total)).0;
        }
        Money(money)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn peak_offpeak() -> Tariff {
        Tariff::TimeOfUse(TimeOfUse {
            tz: chrono_tz::Europe::Berlin,
            rules: vec![TouRule {
                name: "peak".into(),
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                from_hour: 8,
                to_hour: 20,
                price: PricePerKwh(0.30),
            }],
            default_price: PricePerKwh(0.10),
        })
    }

    #[test]
    fn tou_switches_at_local_hour() {
        let t = peak_offpeak();
        // 2026-06-01 is a Monday; Berlin is UTC+2 in summer: 08:00 local = 06:00 UTC.
        assert_eq!(t.price_at(utc(2026, 6, 1, 5, 59)).0, PricePerKwh(0.10));
        assert_eq!(t.price_at(utc(2026, 6, 1, 6, 0)).0, PricePerKwh(0.30));
        assert_eq!(t.price_at(utc(2026, 6, 1, 18, 0)).0, PricePerKwh(0.10));
        // Saturday: off-peak all day.
        assert_eq!(t.price_at(utc(2026, 6, 6, 10, 0)).0, PricePerKwh(0.10));
    }

    #[test]
    fn interval_across_boundary_is_split_in_proportion() {
        let t = peak_offpeak();
        // 05:30..06:30 UTC on a Monday: half off-peak, half peak. 1 kWh.
        let c = t.cost(
            Joules(3_600_000.0),
            utc(2026, 6, 1, 5, 30),
            utc(2026, 6, 1, 6, 30),
        );
        assert!((c.0 - 0.20).abs() < 1e-12, "{c:?}");
        let segs = t.segments(utc(2026, 6, 1, 5, 30), utc(2026, 6, 1, 6, 30));
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].end, utc(2026, 6, 1, 6, 0));
    }

    #[test]
    fn wrapping_rule_covers_midnight() {
        let r = TouRule {
            name: "night".into(),
            days: vec![],
            from_hour: 22,
            to_hour: 6,
            price: PricePerKwh(0.05),
        };
        assert!(r.matches(Weekday::Mon, 23));
        assert!(r.matches(Weekday::Mon, 0));
        assert!(r.matches(Weekday::Mon, 5));
        assert!(!r.matches(Weekday::Mon, 6));
        assert!(!r.matches(Weekday::Mon, 21));
    }

    /// Berlin midnight of a local date, in UTC.
    fn berlin_midnight(y: i32, mo: u32, d: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(y, mo, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn dst_days_have_23_and_25_local_hours_of_rules() {
        // One rule for local 02:00..03:00 (0.50), 0.10 otherwise. On the
        // spring-forward day local 02:00 never happens; on the fall-back day it
        // happens twice. A tariff read in UTC would charge 0.50 for 02:00 UTC
        // on both days instead.
        let t = Tariff::TimeOfUse(TimeOfUse {
            tz: chrono_tz::Europe::Berlin,
            rules: vec![TouRule {
                name: "two".into(),
                days: vec![],
                from_hour: 2,
                to_hour: 3,
                price: PricePerKwh(0.50),
            }],
            default_price: PricePerKwh(0.10),
        });
        let prices = |segs: &[Segment]| -> Vec<(DateTime<Utc>, DateTime<Utc>, f64)> {
            segs.iter().map(|s| (s.start, s.end, s.price.0)).collect()
        };

        // 2026-03-29 (spring forward, 02:00 CET -> 03:00 CEST): 23 h, no 02:00.
        let (from, to) = (berlin_midnight(2026, 3, 29), berlin_midnight(2026, 3, 30));
        assert_eq!(
            (from, to),
            (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0))
        );
        assert_eq!(prices(&t.segments(from, to)), vec![(from, to, 0.10)]);
        // 00:59 UTC is 01:59 CET, 01:00 UTC is 03:00 CEST, 02:00 UTC is 04:00 CEST.
        for (h, m) in [(0, 59), (1, 0), (1, 30), (2, 0), (2, 30)] {
            assert_eq!(
                t.price_at(utc(2026, 3, 29, h, m)).0,
                PricePerKwh(0.10),
                "{h}:{m}"
            );
        }
        // 1 kWh per hour all day: 23 kWh at 0.10.
        let c = t.cost(Joules(23.0 * 3.6e6), from, to).0;
        assert!((c - 2.3).abs() < 1e-12, "{c}");

        // 2026-10-25 (fall back, 03:00 CEST -> 02:00 CET): 25 h, two 02:00s:
        // 00:00..01:00 UTC (02:00 CEST) and 01:00..02:00 UTC (02:00 CET).
        let (from, to) = (berlin_midnight(2026, 10, 25), berlin_midnight(2026, 10, 26));
        assert_eq!(
            (from, to),
            (utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0))
        );
        assert_eq!(
            prices(&t.segments(from, to)),
            vec![
                (from, utc(2026, 10, 25, 0, 0), 0.10),
                (utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0), 0.50),
                (utc(2026, 10, 25, 2, 0), to, 0.10),
            ]
        );
        assert_eq!(t.price_at(utc(2026, 10, 24, 23, 59)).0, PricePerKwh(0.10));
        assert_eq!(t.price_at(utc(2026, 10, 25, 0, 0)).0, PricePerKwh(0.50));
        assert_eq!(t.price_at(utc(2026, 10, 25, 1, 59)).0, PricePerKwh(0.50));
        assert_eq!(t.price_at(utc(2026, 10, 25, 2, 0)).0, PricePerKwh(0.10));
        // 1 kWh per hour all day: 23 kWh at 0.10 and 2 kWh at 0.50.
        let c = t.cost(Joules(25.0 * 3.6e6), from, to).0;
        assert!((c - 3.3).abs() < 1e-12, "{c}");
    }

    /// A weekday 09:00..17:00 peak (0.40, else 0.20) in `tz`.
    fn office_hours(tz: Tz) -> Tariff {
        Tariff::TimeOfUse(TimeOfUse {
            tz,
            rules: vec![TouRule {
                name: "peak".into(),
                days: vec![],
                from_hour: 9,
                to_hour: 17,
                price: PricePerKwh(0.40),
            }],
            default_price: PricePerKwh(0.20),
        })
    }

    #[test]
    fn half_hour_offset_zone_switches_at_half_past_utc() {
        // Asia/Kolkata is UTC+05:30: 09:00 local = 03:30 UTC, 17:00 = 11:30 UTC.
        let t = office_hours(chrono_tz::Asia::Kolkata);
        assert_eq!(t.price_at(utc(2026, 6, 1, 3, 29)).0, PricePerKwh(0.20));
        assert_eq!(t.price_at(utc(2026, 6, 1, 3, 30)).0, PricePerKwh(0.40));
        assert_eq!(t.price_at(utc(2026, 6, 1, 11, 29)).0, PricePerKwh(0.40));
        assert_eq!(t.price_at(utc(2026, 6, 1, 11, 30)).0, PricePerKwh(0.20));
        let segs = t.segments(utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 12, 0));
        let got: Vec<_> = segs.iter().map(|s| (s.start, s.end, s.price.0)).collect();
        assert_eq!(
            got,
            vec![
                (utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 3, 30), 0.20),
                (utc(2026, 6, 1, 3, 30), utc(2026, 6, 1, 11, 30), 0.40),
                (utc(2026, 6, 1, 11, 30), utc(2026, 6, 1, 12, 0), 0.20),
            ]
        );
        // 1 kWh over 03:00..04:00 UTC: half at 0.20, half at 0.40.
        let c = t.cost(Joules(3.6e6), utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 4, 0));
        assert!((c.0 - 0.30).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn three_quarter_hour_offset_zone_switches_at_quarter_past_utc() {
        // Asia/Kathmandu is UTC+05:45: 09:00 local = 03:15 UTC, 17:00 = 11:15 UTC.
        let t = office_hours(chrono_tz::Asia::Kathmandu);
        assert_eq!(t.price_at(utc(2026, 6, 1, 3, 14)).0, PricePerKwh(0.20));
        assert_eq!(t.price_at(utc(2026, 6, 1, 3, 15)).0, PricePerKwh(0.40));
        assert_eq!(t.price_at(utc(2026, 6, 1, 11, 14)).0, PricePerKwh(0.40));
        assert_eq!(t.price_at(utc(2026, 6, 1, 11, 15)).0, PricePerKwh(0.20));
        let segs = t.segments(utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 12, 0));
        let got: Vec<_> = segs.iter().map(|s| (s.start, s.end, s.price.0)).collect();
        assert_eq!(
            got,
            vec![
                (utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 3, 15), 0.20),
                (utc(2026, 6, 1, 3, 15), utc(2026, 6, 1, 11, 15), 0.40),
                (utc(2026, 6, 1, 11, 15), utc(2026, 6, 1, 12, 0), 0.20),
            ]
        );
        // 1 kWh over 03:00..04:00 UTC: a quarter at 0.20, three at 0.40.
        let c = t.cost(Joules(3.6e6), utc(2026, 6, 1, 3, 0), utc(2026, 6, 1, 4, 0));
        assert!((c.0 - 0.35).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn slots_with_hole_use_fallback() {
        let t = Tariff::Slots {
            slots: vec![
                Slot {
                    start: utc(2026, 1, 1, 0, 0),
                    end: utc(2026, 1, 1, 1, 0),
                    price: PricePerKwh(0.2),
                },
                Slot {
                    start: utc(2026, 1, 1, 2, 0),
                    end: utc(2026, 1, 1, 3, 0),
                    price: PricePerKwh(-0.05),
                },
            ],
            fallback: PricePerKwh(0.3),
            last_known: false,
        };
        let segs = t.segments(utc(2025, 12, 31, 23, 30), utc(2026, 1, 1, 3, 30));
        let prices: Vec<(f64, bool)> = segs.iter().map(|s| (s.price.0, s.fallback)).collect();
        assert_eq!(
            prices,
            vec![
                (0.3, true),
                (0.2, false),
                (0.3, true),
                (-0.05, false),
                (0.3, true)
            ]
        );
        assert_eq!(
            t.price_at(utc(2026, 1, 1, 2, 30)),
            (PricePerKwh(-0.05), false)
        );
        assert_eq!(t.price_at(utc(2026, 1, 1, 1, 30)), (PricePerKwh(0.3), true));
    }

    #[test]
    fn last_known_policy_keeps_the_previous_slot_price() {
        let slot = |h0, h1, p| Slot {
            start: utc(2026, 1, 1, h0, 0),
            end: utc(2026, 1, 1, h1, 0),
            price: PricePerKwh(p),
        };
        let t = Tariff::Slots {
            slots: vec![slot(1, 2, 0.2), slot(3, 4, -0.05)],
            fallback: PricePerKwh(0.3),
            last_known: true,
        };
        // Before any slot: nothing is known, the fallback applies.
        assert_eq!(
            t.price_basis_at(utc(2026, 1, 1, 0, 30)),
            (PricePerKwh(0.3), Basis::Fallback)
        );
        assert_eq!(
            t.price_basis_at(utc(2026, 1, 1, 2, 30)),
            (PricePerKwh(0.2), Basis::LastKnown)
        );
        assert_eq!(
            t.price_basis_at(utc(2026, 1, 1, 9, 0)),
            (PricePerKwh(-0.05), Basis::LastKnown)
        );
        assert_eq!(
            t.price_basis_at(utc(2026, 1, 1, 3, 0)),
            (PricePerKwh(-0.05), Basis::Source)
        );
        // 1 kWh over 00:00..05:00 evenly: 0.2 kWh at each hour's price.
        let c = t
            .cost(Joules(3.6e6), utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 5, 0))
            .0;
        let want = 0.2 * (0.3 + 0.2 + 0.2 - 0.05 - 0.05);
        assert!((c - want).abs() < 1e-12, "{c} vs {want}");
    }

    #[test]
    fn a_working_day_is_split_into_hand_computed_shares() {
        let t = peak_offpeak();
        // Monday 2026-06-01, 05:30..18:45 UTC = 07:30..20:45 CEST: 0.5 h
        // off-peak, 12 h peak, 0.75 h off-peak; 13.25 kWh drawn evenly.
        let (from, to) = (utc(2026, 6, 1, 5, 30), utc(2026, 6, 1, 18, 45));
        let segs = t.segments(from, to);
        let hours: Vec<(f64, f64)> = segs
            .iter()
            .map(|s| ((s.end - s.start).num_seconds() as f64 / 3600.0, s.price.0))
            .collect();
        assert_eq!(hours, vec![(0.5, 0.10), (12.0, 0.30), (0.75, 0.10)]);
        // 0.5 * 0.10 + 12 * 0.30 + 0.75 * 0.10 = 0.05 + 3.6 + 0.075.
        let c = t.cost(Joules(13.25 * 3.6e6), from, to).0;
        assert!((c - 3.725).abs() < 1e-12, "{c}");
        // Uneven split of an interval: 10 min off-peak, 20 min peak, 600 kJ.
        let c = t.cost(
            Joules(600_000.0),
            utc(2026, 6, 1, 5, 50),
            utc(2026, 6, 1, 6, 20),
        );
        // 200 kJ at 0.10 + 400 kJ at 0.30 per 3.6 MJ.
        let want = (200_000.0 * 0.10 + 400_000.0 * 0.30) / 3.6e6;
        assert!((c.0 - want).abs() < 1e-12, "{c:?} vs {want}");
    }

    /// A random slot layout: boundaries (minutes from 2026-03-29T00:00Z,
    /// across the spring DST change) with gaps, prices incl. negative ones.
    fn layout() -> impl Strategy<Value = (Vec<Slot>, bool)> {
        (
            prop::collection::vec((1i64..240, 0i64..3, -0.5f64..2.0), 1..40),
            any::<bool>(),
        )
            .prop_map(|(v, last_known)| {
                let mut t = utc(2026, 3, 29, 0, 0);
                let mut slots = Vec::new();
                for (len, gap, price) in v {
                    t += Duration::minutes(gap * 15);
                    let end = t + Duration::minutes(len);
                    slots.push(Slot {
                        start: t,
                        end,
                        price: PricePerKwh(price),
                    });
                    t = end;
                }
                (slots, last_known)
            })
    }

    proptest! {
        #[test]
        fn any_layout_prices_energy_as_the_integral_of_power_times_price(
            (slots, last_known) in layout(),
            cuts in prop::collection::vec(1i64..4_000, 1..30),
            watts in prop::collection::vec(0.0f64..3000.0, 30),
        ) {
            // Piecewise-constant power over consecutive sampling intervals.
            let fallback = PricePerKwh(0.25);
            let t = Tariff::Slots { slots: slots.clone(), fallback, last_known };
            let mut from = utc(2026, 3, 28, 23, 0);
            let mut priced = 0.0;
            let mut integral = 0.0;
            for (k, c) in cuts.iter().enumerate() {
                let to = from + Duration::seconds(*c);
                let w = watts[k];
                priced += t.cost(Joules(w * *c as f64), from, to).0;
                // Reference: integrate second by second with price_at.
                let mut s = from;
                while s < to {
                    integral += w * t.price_at(s).0.0 / 3.6e6;
                    s += Duration::seconds(1);
                }
                from = to;
            }
            prop_assert!((priced - integral).abs() <= 1e-9 * integral.abs().max(1.0),
                "priced {} vs integral {}", priced, integral);
        }

        #[test]
        fn split_energy_sums_to_whole(start_min in 0i64..20_000, len_s in 1i64..200_000, kwh in 0.0f64..1000.0) {
            let t = peak_offpeak();
            let from = utc(2026, 3, 20, 0, 0) + Duration::minutes(start_min);
            let to = from + Duration::seconds(len_s);
            let segs = t.segments(from, to);
            // Contiguous cover of [from, to).
            prop_assert_eq!(segs.first().unwrap().start, from);
            prop_assert_eq!(segs.last().unwrap().end, to);
            for w in segs.windows(2) { prop_assert_eq!(w[0].end, w[1].start); }
            // The cost equals an independent count of peak and off-peak time:
            // Berlin's hours start on whole UTC hours, so walk minute by minute.
            let (mut peak_s, mut off_s) = (0i64, 0i64);
            let mut m = from;
            while m < to {
                let next = (m + Duration::minutes(1)).min(to);
                let local = m.with_timezone(&chrono_tz::Europe::Berlin);
                let weekday = local.weekday().num_days_from_monday() < 5;
                if weekday && (8..20).contains(&local.hour()) {
                    peak_s += (next - m).num_seconds();
                } else {
                    off_s += (next - m).num_seconds();
                }
                m = next;
            }
            let total = (to - from).num_seconds() as f64;
            let want = kwh * (peak_s as f64 * 0.30 + off_s as f64 * 0.10) / total;
            let c = t.cost(Joules(kwh * 3.6e6), from, to).0;
            prop_assert!((c - want).abs() <= 1e-9 * want.max(1.0), "{} vs {}", c, want);
        }

        #[test]
        fn cost_is_additive_over_consecutive_windows(start_min in 0i64..20_000, a in 1i64..50_000, b in 1i64..50_000, watts in 0.0f64..2000.0) {
            // Constant power: cost over [t0,t2) equals cost[t0,t1) + cost[t1,t2).
            let t = peak_offpeak();
            let t0 = utc(2026, 10, 20, 0, 0) + Duration::minutes(start_min);
            let t1 = t0 + Duration::seconds(a);
            let t2 = t1 + Duration::seconds(b);
            let whole = t.cost(Joules(watts * (a + b) as f64), t0, t2).0;
            let parts = t.cost(Joules(watts * a as f64), t0, t1).0 + t.cost(Joules(watts * b as f64), t1, t2).0;
            prop_assert!((whole - parts).abs() <= 1e-9 * whole.abs().max(1.0));
        }
    }

    #[test]
    fn a_rule_from_an_hour_to_the_same_hour_covers_the_whole_day() {
        // from 7 to 7 wraps: 07:00..24:00 and 00:00..07:00, every hour.
        let r = TouRule {
            name: "all day".into(),
            days: vec![Weekday::Sun],
            from_hour: 7,
            to_hour: 7,
            price: PricePerKwh(0.05),
        };
        assert!((0..24).all(|h| r.matches(Weekday::Sun, h)));
        assert!(!r.matches(Weekday::Mon, 7));
    }

    #[test]
    fn basis_labels() {
        let labels: Vec<&str> = [Basis::Source, Basis::Fallback, Basis::LastKnown]
            .iter()
            .map(|b| b.label())
            .collect();
        assert_eq!(labels, ["source", "fallback", "last_known"]);
    }

    #[test]
    fn a_slot_priced_like_the_fallback_stays_a_segment_of_its_own() {
        // Slot 01:00..02:00 at 0.3, the fallback 0.3 around it: the same
        // price, but only the slot rests on the source.
        let t = Tariff::Slots {
            slots: vec![Slot {
                start: utc(2026, 1, 1, 1, 0),
                end: utc(2026, 1, 1, 2, 0),
                price: PricePerKwh(0.3),
            }],
            fallback: PricePerKwh(0.3),
            last_known: false,
        };
        let segs = t.segments(utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 2, 30));
        let got: Vec<(DateTime<Utc>, bool)> = segs.iter().map(|s| (s.start, s.fallback)).collect();
        assert_eq!(
            got,
            vec![
                (utc(2026, 1, 1, 0, 30), true),
                (utc(2026, 1, 1, 1, 0), false),
                (utc(2026, 1, 1, 2, 0), true)
            ]
        );
        // An interval ending exactly where the slot starts holds no slot.
        let segs = t.segments(utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 1, 0));
        assert_eq!(segs.len(), 1);
        assert!(segs[0].fallback);
    }

    #[test]
    fn a_zero_length_interval_is_priced_at_the_price_in_force_at_its_start() {
        let t = peak_offpeak();
        // Monday 2026-06-01 06:00 UTC = 08:00 CEST, peak (0.30): 1 kWh at
        // one instant costs 0.30, not the 0.10 off-peak price a minute before.
        let at = utc(2026, 6, 1, 6, 0);
        let c = t.cost(Joules(3.6e6), at, at);
        assert!((c.0 - 0.30).abs() < 1e-12, "{c:?}");
        // An end before the start is priced the same way.
        let c = t.cost(Joules(3.6e6), at, utc(2026, 6, 1, 5, 0));
        assert!((c.0 - 0.30).abs() < 1e-12, "{c:?}");
        assert!(t.segments(at, at).is_empty());
    }
}
