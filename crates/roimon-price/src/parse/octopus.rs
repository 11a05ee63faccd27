//! Parser: Octopus Energy Agile unit rates (JSON, pence/kWh, paginated).
//!
//! Reads one page of
//! `GET https://api.octopus.energy/v1/products/{PRODUCT}/electricity-tariffs/E-1R-{PRODUCT}-{GSP}/standard-unit-rates/`
//! (documented at <https://developer.octopus.energy/>):
//!
//! ```json
//! {"count": 11518, "next": "...?page=2", "previous": null,
//!  "results": [{"value_exc_vat": 19.63, "value_inc_vat": 20.6115,
//!               "valid_from": "2025-05-12T22:30:00Z", "valid_to": "2025-05-12T23:00:00Z",
//!               "payment_method": null}]}
//! ```
//!
//! Results come newest first, one per half hour for Agile, in pence per kWh
//! ([`Unit::MinorPerKwh`], currency GBP). The caller follows `next` (returned
//! beside the slots) for older pages.
//!
//! How the body is read:
//!
//! - `include_vat` chooses `value_inc_vat` (what a domestic customer pays,
//!   5 % VAT included) or `value_exc_vat`. A `null` in the chosen column
//!   leaves that half hour out (a gap).
//! - `valid_to: null` means an open-ended rate. Agile rates are never
//!   open-ended, so it is accepted only on the newest entry of the page (the
//!   greatest `valid_from`), which then ends 30 minutes after it starts (one
//!   Agile period). A `null` `valid_to` on any other entry is
//!   [`PriceError::Invalid`]: it would cover every later slot.
//! - An empty `results` is [`PriceError::NoData`] (nothing published for the
//!   period asked). A body without `results` but with a `detail` (how the API
//!   words a 4xx, e.g. "No EnergyTariff matches the given query.") is
//!   [`PriceError::Invalid`] with that text; without either it is
//!   [`PriceError::Parse`].

use super::util::parse_time;
use crate::schedule::{Parsed, PriceError, RawSlot, Unit};
use chrono::TimeDelta;
use serde::Deserialize;

/// The length given to an open-ended newest rate: one Agile period.
pub const OPEN_ENDED_LENGTH: TimeDelta = TimeDelta::minutes(30);

#[derive(Debug, Deserialize)]
struct Page {
    next: Option<String>,
    results: Option<Vec<Rate>>,
    detail: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Rate {
    value_exc_vat: Option<f64>,
    value_inc_vat: Option<f64>,
    valid_from: Option<String>,
    valid_to: Option<String>,
}

/// Parse one page of standard unit rates. Returns the slots (pence per kWh,
/// GBP, with or without VAT as `include_vat` says) and the URL of the next
/// (older) page, if any.
pub fn parse_page(json: &str, include_vat: bool) -> Result<(Parsed, Option<String>), PriceError> {
    super::util::bounded_json(json, "Octopus")?;
    let page: Page = serde_json::from_str(json)
        .map_err(|e| PriceError::Parse(format!("Octopus: not the expected JSON: {e}")))?;
    let results = match (page.results, page.detail) {
        (Some(r), _) => r,
        (None, Some(detail)) => {
            return Err(PriceError::Invalid(format!("Octopus: {detail}")));
        }
        (None, None) => {
            return Err(PriceError::Parse(
                "Octopus: the body has no results array".into(),
            ));
        }
    };
    if results.is_empty() {
        return Err(PriceError::NoData(
            "Octopus: no unit rates for the period asked".into(),
        ));
    }

    let mut timed = Vec::with_capacity(results.len());
    for r in &results {
        let from = r
            .valid_from
            .as_deref()
            .ok_or_else(|| PriceError::Parse("Octopus: a rate has no valid_from".into()))?;
        let from = parse_time(from)?;
        let to = r.valid_to.as_deref().map(parse_time).transpose()?;
        let value = if include_vat {
            r.value_inc_vat
        } else {
            r.value_exc_vat
        };
        timed.push((from, to, value));
    }
    let newest = timed.iter().map(|&(from, _, _)| from).max();

    let mut slots = Vec::with_capacity(timed.len());
    for (start, to, value) in timed {
        let end = match to {
            Some(end) => end,
            None if Some(start) == newest => start + OPEN_ENDED_LENGTH,
            None => {
                return Err(PriceError::Invalid(format!(
                    "Octopus: the rate from {start} has no valid_to but is not the newest"
                )));
            }
        };
        if let Some(value) = value {
            slots.push(RawSlot { start, end, value });
        }
    }
    if slots.is_empty() {
        return Err(PriceError::NoData(format!(
            "Octopus: every value_{}_vat is null",
            if include_vat { "inc" } else { "exc" }
        )));
    }
    Ok((
        Parsed {
            currency: Some("GBP".into()),
            unit: Unit::MinorPerKwh,
            slots,
        },
        page.next.filter(|n| !n.trim().is_empty()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(exc: &str, inc: &str, from: &str, to: &str) -> String {
        format!(
            r#"{{"value_exc_vat":{exc},"value_inc_vat":{inc},"valid_from":{from},"valid_to":{to},"payment_method":null}}"#
        )
    }

    fn page(next: &str, rates: &[String]) -> String {
        format!(
            r#"{{"count":{},"next":{next},"previous":null,"results":[{}]}}"#,
            rates.len(),
            rates.join(",")
        )
    }

    #[test]
    fn vat_choice_and_next() {
        let b = page(
            r#""https://api.octopus.energy/v1/x/?page=2""#,
            &[
                rate(
                    "-1.26",
                    "-1.323",
                    r#""2025-05-12T12:30:00Z""#,
                    r#""2025-05-12T13:00:00Z""#,
                ),
                rate(
                    "10.0",
                    "10.5",
                    r#""2025-05-12T12:00:00Z""#,
                    r#""2025-05-12T12:30:00Z""#,
                ),
            ],
        );
        let (p, next) = parse_page(&b, true).unwrap();
        assert_eq!(
            next.as_deref(),
            Some("https://api.octopus.energy/v1/x/?page=2")
        );
        assert_eq!(p.currency.as_deref(), Some("GBP"));
        assert_eq!(p.unit, Unit::MinorPerKwh);
        let v: Vec<f64> = p.slots.iter().map(|s| s.value).collect();
        assert_eq!(v, vec![-1.323, 10.5]);
        let (p, _) = parse_page(&b, false).unwrap();
        let v: Vec<f64> = p.slots.iter().map(|s| s.value).collect();
        assert_eq!(v, vec![-1.26, 10.0]);
        assert_eq!(p.slots[0].end, parse_time("2025-05-12T13:00Z").unwrap());
    }

    #[test]
    fn open_ended_newest_gets_thirty_minutes_others_fail() {
        let b = page(
            "null",
            &[
                rate("20.0", "21.0", r#""2025-05-12T13:00:00Z""#, "null"),
                rate(
                    "10.0",
                    "10.5",
                    r#""2025-05-12T12:30:00Z""#,
                    r#""2025-05-12T13:00:00Z""#,
                ),
            ],
        );
        let (p, next) = parse_page(&b, true).unwrap();
        assert_eq!(next, None);
        assert_eq!(p.slots[0].end, parse_time("2025-05-12T13:30Z").unwrap());

        let b = page(
            "null",
            &[
                rate(
                    "20.0",
                    "21.0",
                    r#""2025-05-12T13:00:00Z""#,
                    r#""2025-05-12T13:30:00Z""#,
                ),
                rate("10.0", "10.5", r#""2025-05-12T12:30:00Z""#, "null"),
            ],
        );
        let e = parse_page(&b, true).unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("2025-05-12 12:30:00")),
            "{e:?}"
        );
    }

    #[test]
    fn null_value_is_a_gap() {
        let b = page(
            "null",
            &[
                rate(
                    "null",
                    "null",
                    r#""2025-05-12T13:00:00Z""#,
                    r#""2025-05-12T13:30:00Z""#,
                ),
                rate(
                    "10.0",
                    "10.5",
                    r#""2025-05-12T12:30:00Z""#,
                    r#""2025-05-12T13:00:00Z""#,
                ),
            ],
        );
        let (p, _) = parse_page(&b, true).unwrap();
        assert_eq!(p.slots.len(), 1);
        assert_eq!(p.slots[0].value, 10.5);
        let only_null = page(
            "null",
            &[rate(
                "null",
                "null",
                r#""2025-05-12T13:00:00Z""#,
                r#""2025-05-12T13:30:00Z""#,
            )],
        );
        assert!(matches!(
            parse_page(&only_null, false),
            Err(PriceError::NoData(_))
        ));
    }

    #[test]
    fn empty_errors_and_broken_bodies() {
        assert!(matches!(
            parse_page(&page("null", &[]), true),
            Err(PriceError::NoData(_))
        ));
        let e = parse_page(
            r#"{"detail":"No EnergyTariff matches the given query."}"#,
            true,
        )
        .unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("No EnergyTariff")),
            "{e:?}"
        );
        assert!(matches!(
            parse_page(r#"{"count":0}"#, true),
            Err(PriceError::Parse(_))
        ));
        assert!(matches!(parse_page("[]", true), Err(PriceError::Parse(_))));
        let no_from = page(
            "null",
            &[rate("1.0", "1.05", "null", r#""2025-05-12T13:00:00Z""#)],
        );
        assert!(matches!(
            parse_page(&no_from, true),
            Err(PriceError::Parse(_))
        ));
        let bad_time = page("null", &[rate("1.0", "1.05", r#""noon""#, "null")]);
        assert!(matches!(
            parse_page(&bad_time, true),
            Err(PriceError::Parse(_))
        ));
    }
}
