//! Parser: Energi Data Service DayAheadPrices (Denmark).
//!
//! Reads `GET https://api.energidataservice.dk/dataset/DayAheadPrices`
//! (the successor of `Elspotprices`, which stopped at 2025-09-30):
//!
//! ```json
//! {"total": 96, "filters": "{\"PriceArea\":[\"DK1\"]}", "limit": 100, "dataset": "DayAheadPrices",
//!  "records": [{"TimeUTC": "2025-10-01T00:00:00", "TimeDK": "2025-10-01T02:00:00",
//!               "PriceArea": "DK1", "DayAheadPriceEUR": 85.1, "DayAheadPriceDKK": 635.2}]}
//! ```
//!
//! How the body is read:
//!
//! - Only records whose `PriceArea` equals `area` (ignoring ASCII case) are
//!   used; the body may hold several areas. None for the area is
//!   [`PriceError::NoData`], naming the areas the body does hold.
//! - The price column follows `currency`: `EUR` reads `DayAheadPriceEUR`,
//!   `DKK` reads `DayAheadPriceDKK` (case ignored); anything else is
//!   [`PriceError::Invalid`]. Values are per MWh ([`Unit::PerMwh`]). A `null`
//!   price leaves its slot out (a gap).
//! - `TimeUTC` is naive but UTC and is the start of the slot; `TimeDK` (local,
//!   ambiguous in the autumn DST hour) is ignored.
//! - Records may come newest first; they are sorted. Two records of the area
//!   with the same start and different prices are [`PriceError::Invalid`];
//!   exact repeats collapse.
//! - Ends. The body states starts only. The market time unit (MTU) of the
//!   day-ahead market is 60 minutes before, and 15 minutes from, the first
//!   15-minute SDAC delivery day, 2025-10-01 CEST, whose first quarter starts
//!   at **2025-09-30T22:00Z** ([`MTU15_FROM`]). A slot ends at the next
//!   start of the same area, but never later than its start plus the MTU at
//!   that start; so the last slot (and a lone record) lasts one MTU, and a
//!   missing record leaves a gap instead of stretching the slot before it.

use super::util::parse_time;
use crate::schedule::{Parsed, PriceError, RawSlot, Unit};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use std::collections::BTreeSet;

/// The start of the first 15-minute day-ahead slot: 2025-10-01T00:00 CEST.
pub const MTU15_FROM: &str = "2025-09-30T22:00:00Z";

#[derive(Debug, Deserialize)]
struct Body {
    records: Option<Vec<Record>>,
}

#[derive(Debug, Deserialize)]
struct Record {
    #[serde(rename = "TimeUTC")]
    time_utc: String,
    #[serde(rename = "PriceArea")]
    price_area: String,
    #[serde(rename = "DayAheadPriceEUR")]
    eur: Option<f64>,
    #[serde(rename = "DayAheadPriceDKK")]
    dkk: Option<f64>,
}

/// The day-ahead market time unit in force at `start`.
pub fn mtu_at(start: DateTime<Utc>) -> TimeDelta {
    match parse_time(MTU15_FROM) {
        Ok(cut) if start >= cut => TimeDelta::minutes(15),
        _ => TimeDelta::hours(1),
    }
}

/// Parse a `DayAheadPrices` response body: the slots of price area `area`
/// (`DK1`, `DK2`) in `currency` (`EUR` or `DKK`) per MWh.
pub fn parse(json: &str, area: &str, currency: &str) -> Result<Parsed, PriceError> {
    let cur = currency.trim().to_ascii_uppercase();
    let pick: fn(&Record) -> Option<f64> = match cur.as_str() {
        "EUR" => |r| r.eur,
        "DKK" => |r| r.dkk,
        _ => {
            return Err(PriceError::Invalid(format!(
                "Energi Data Service: DayAheadPrices has EUR and DKK prices, not {currency:?}"
            )));
        }
    };
    super::util::bounded_json(json, "Energi Data Service")?;
    let body: Body = serde_json::from_str(json).map_err(|e| {
        PriceError::Parse(format!("Energi Data Service: not the expected JSON: {e}"))
    })?;
    let records = body.records.ok_or_else(|| {
        PriceError::Parse("Energi Data Service: the body has no records array".into())
    })?;

    let area = area.trim();
    let mut mine = Vec::new();
    let mut areas = BTreeSet::new();
    for r in &records {
        if r.price_area.eq_ignore_ascii_case(area) {
            mine.push((parse_time(&r.time_utc)?, pick(r)));
        } else {
            areas.insert(r.price_area.as_str());
        }
    }
    if mine.is_empty() {
        let others: Vec<&str> = areas.into_iter().collect();
        return Err(PriceError::NoData(format!(
            "Energi Data Service: no records for price area {area:?}{}",
            if others.is_empty() {
                String::new()
            } else {
                format!(" (the response holds {})", others.join(", "))
            }
        )));
    }
    mine.sort_by_key(|&(t, _)| t);
    mine.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
    if let Some(w) = mine.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(PriceError::Invalid(format!(
            "Energi Data Service: two prices for {area} at {}",
            w[0].0
        )));
    }

    let mut slots = Vec::with_capacity(mine.len());
    for (i, &(start, value)) in mine.iter().enumerate() {
        let Some(value) = value else { continue };
        let by_mtu = start + mtu_at(start);
        let end = match mine.get(i + 1) {
            Some(&(next, _)) => next.min(by_mtu),
            None => by_mtu,
        };
        slots.push(RawSlot { start, end, value });
    }
    if slots.is_empty() {
        return Err(PriceError::NoData(format!(
            "Energi Data Service: every {cur} price for {area} is null"
        )));
    }
    Ok(Parsed {
        currency: Some(cur),
        unit: Unit::PerMwh,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(utc: &str, area: &str, eur: &str, dkk: &str) -> String {
        format!(
            r#"{{"TimeUTC":"{utc}","TimeDK":"x","PriceArea":"{area}","DayAheadPriceEUR":{eur},"DayAheadPriceDKK":{dkk}}}"#
        )
    }

    fn body(recs: &[String]) -> String {
        format!(
            r#"{{"total":{n},"filters":"{{}}","limit":{n},"dataset":"DayAheadPrices","records":[{}]}}"#,
            recs.join(","),
            n = recs.len()
        )
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn filters_area_sorts_and_picks_the_column() {
        let b = body(&[
            rec("2025-10-01T00:15:00", "DK1", "-2.5", "-18.65"),
            rec("2025-10-01T00:15:00", "DK2", "99.0", "738.5"),
            rec("2025-10-01T00:00:00", "DK1", "85.1", "635.2"),
        ]);
        let p = parse(&b, "dk1", "eur").unwrap();
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.unit, Unit::PerMwh);
        let v: Vec<f64> = p.slots.iter().map(|s| s.value).collect();
        assert_eq!(v, vec![85.1, -2.5]);
        assert_eq!(p.slots[0].start, t("2025-10-01T00:00Z"));
        assert_eq!(p.slots[0].end, t("2025-10-01T00:15Z"));
        assert_eq!(p.slots[1].end, t("2025-10-01T00:30Z"));
        let p = parse(&b, "DK1", "DKK").unwrap();
        let v: Vec<f64> = p.slots.iter().map(|s| s.value).collect();
        assert_eq!(v, vec![635.2, -18.65]);
        assert_eq!(p.currency.as_deref(), Some("DKK"));
    }

    #[test]
    fn mtu_switches_at_the_first_quarter_hour_day() {
        // The last hourly slot (23:00-24:00 CEST on 30 Sep) and the first quarter.
        let b = body(&[rec("2025-09-30T21:00:00", "DK1", "1.0", "7.0")]);
        let p = parse(&b, "DK1", "EUR").unwrap();
        assert_eq!(p.slots[0].end, t("2025-09-30T22:00Z"));
        let b = body(&[rec("2025-09-30T22:00:00", "DK1", "1.0", "7.0")]);
        let p = parse(&b, "DK1", "EUR").unwrap();
        assert_eq!(p.slots[0].end, t("2025-09-30T22:15Z"));
    }

    #[test]
    fn nulls_and_missing_records_leave_gaps() {
        let b = body(&[
            rec("2025-10-01T00:00:00", "DK1", "1.0", "7.0"),
            rec("2025-10-01T00:15:00", "DK1", "null", "null"),
            rec("2025-10-01T00:30:00", "DK1", "3.0", "21.0"),
            // 00:45 missing
            rec("2025-10-01T01:00:00", "DK1", "5.0", "35.0"),
        ]);
        let p = parse(&b, "DK1", "EUR").unwrap();
        let got: Vec<_> = p.slots.iter().map(|s| (s.start, s.end, s.value)).collect();
        assert_eq!(
            got,
            vec![
                (t("2025-10-01T00:00Z"), t("2025-10-01T00:15Z"), 1.0),
                (t("2025-10-01T00:30Z"), t("2025-10-01T00:45Z"), 3.0),
                (t("2025-10-01T01:00Z"), t("2025-10-01T01:15Z"), 5.0),
            ]
        );
        let all_null = body(&[rec("2025-10-01T00:00:00", "DK1", "null", "1.0")]);
        assert!(matches!(
            parse(&all_null, "DK1", "EUR"),
            Err(PriceError::NoData(_))
        ));
        assert_eq!(parse(&all_null, "DK1", "DKK").unwrap().slots.len(), 1);
    }

    #[test]
    fn no_area_unknown_currency_conflicts_and_junk() {
        let b = body(&[rec("2025-10-01T00:00:00", "DK2", "1.0", "7.0")]);
        let e = parse(&b, "DK1", "EUR").unwrap_err();
        assert!(
            matches!(&e, PriceError::NoData(m) if m.contains("DK2")),
            "{e:?}"
        );
        assert!(matches!(
            parse(&body(&[]), "DK1", "EUR"),
            Err(PriceError::NoData(_))
        ));
        let e = parse(&b, "DK2", "SEK").unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("SEK")),
            "{e:?}"
        );
        let twice = body(&[
            rec("2025-10-01T00:00:00", "DK1", "1.0", "7.0"),
            rec("2025-10-01T00:00:00", "DK1", "2.0", "14.0"),
        ]);
        assert!(matches!(
            parse(&twice, "DK1", "EUR"),
            Err(PriceError::Invalid(_))
        ));
        let repeat = body(&[
            rec("2025-10-01T00:00:00", "DK1", "1.0", "7.0"),
            rec("2025-10-01T00:00:00", "DK1", "1.0", "7.0"),
        ]);
        assert_eq!(parse(&repeat, "DK1", "EUR").unwrap().slots.len(), 1);
        assert!(matches!(
            parse(r#"{"total":0}"#, "DK1", "EUR"),
            Err(PriceError::Parse(_))
        ));
        assert!(matches!(
            parse("{", "DK1", "EUR"),
            Err(PriceError::Parse(_))
        ));
        let bad_time = body(&[rec("tomorrow", "DK1", "1.0", "7.0")]);
        assert!(matches!(
            parse(&bad_time, "DK1", "EUR"),
            Err(PriceError::Parse(_))
        ));
    }
}
