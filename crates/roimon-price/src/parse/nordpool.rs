//! Parser: Nord Pool data portal day-ahead prices (JSON).
//!
//! The public, unauthenticated data portal API
//! (`https://dataportal-api.nordpoolgroup.com/api/...`) has two endpoints
//! that carry day-ahead prices, and both are read here:
//!
//! - `DayAheadPriceIndices?date=D&market=DayAhead&indexNames=A,B&currency=C&resolutionInMinutes=15|60`:
//!   `multiIndexEntries[]`, plus `currency`, `resolutionInMinutes` and
//!   `areaStates`.
//! - `DayAheadPrices?date=D&market=DayAhead&deliveryArea=A,B&currency=C`:
//!   `multiAreaEntries[]`, plus `currency`, block aggregates and averages
//!   (ignored).
//!
//! Every entry is `{deliveryStart, deliveryEnd, entryPerArea: {AREA: price}}`
//! with UTC time stamps and prices in the body's `currency` per MWh
//! ([`Unit::PerMwh`]). The entry's own start and end are used, so DST days
//! (23 or 25 local hours) and 15-minute days need no special handling.
//!
//! How the body is read:
//!
//! - A day not yet published answers HTTP 200 with empty arrays
//!   (`"multiIndexEntries":[]`, `"areaStates":[]`): [`PriceError::NoData`].
//!   An empty body (the HTTP 204 that `DayAheadPrices` sends for such a day)
//!   is [`PriceError::NoData`] too.
//! - An area that is a key in no entry is [`PriceError::Invalid`], naming the
//!   areas the body does hold (a typo in the config, or an area the request
//!   did not ask for). Area codes are compared ignoring ASCII case.
//! - An entry whose price for the area is `null`, or that lacks the area while
//!   other entries have it, is skipped: a gap, not a failure. If that leaves
//!   no slot at all, it is [`PriceError::NoData`].
//! - A body with neither entry array is [`PriceError::Parse`].

use super::util::parse_time;
use crate::schedule::{Parsed, PriceError, RawSlot, Unit};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The parts of either endpoint's body that matter here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    currency: Option<String>,
    multi_index_entries: Option<Vec<Entry>>,
    multi_area_entries: Option<Vec<Entry>>,
}

/// One delivery period with a price per area.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    delivery_start: String,
    delivery_end: String,
    #[serde(default)]
    entry_per_area: BTreeMap<String, Option<f64>>,
}

/// Parse a `DayAheadPriceIndices` or `DayAheadPrices` response body and
/// return the slots of delivery area `area` (e.g. `FI`, `SE3`, `NL`), in the
/// body's currency per MWh.
pub fn parse(json: &str, area: &str) -> Result<Parsed, PriceError> {
    let json = json.trim_start_matches('\u{feff}').trim();
    if json.is_empty() {
        return Err(PriceError::NoData(
            "Nord Pool: empty response (prices not yet published)".into(),
        ));
    }
    super::util::bounded_json(json, "Nord Pool")?;
    let body: Body = serde_json::from_str(json)
        .map_err(|e| PriceError::Parse(format!("Nord Pool: not the expected JSON: {e}")))?;
    let entries = match (body.multi_index_entries, body.multi_area_entries) {
        (Some(e), _) if !e.is_empty() => e,
        (_, Some(e)) if !e.is_empty() => e,
        (None, None) => {
            return Err(PriceError::Parse(
                "Nord Pool: the body has neither multiIndexEntries nor multiAreaEntries".into(),
            ));
        }
        _ => {
            return Err(PriceError::NoData(
                "Nord Pool: no entries (prices for that day not yet published)".into(),
            ));
        }
    };

    let present: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.entry_per_area.keys().map(String::as_str))
        .collect();
    let Some(key) = present
        .iter()
        .find(|k| k.eq_ignore_ascii_case(area.trim()))
        .map(|k| k.to_string())
    else {
        let list: Vec<&str> = present.into_iter().collect();
        return Err(PriceError::Invalid(format!(
            "Nord Pool: area {area:?} is not in the response; it holds: {}",
            if list.is_empty() {
                "no areas".to_string()
            } else {
                list.join(", ")
            }
        )));
    };

    let mut slots = Vec::with_capacity(entries.len());
    for e in &entries {
        let Some(Some(value)) = e.entry_per_area.get(&key) else {
            continue;
        };
        slots.push(RawSlot {
            start: parse_time(&e.delivery_start)?,
            end: parse_time(&e.delivery_end)?,
            value: *value,
        });
    }
    if slots.is_empty() {
        return Err(PriceError::NoData(format!(
            "Nord Pool: every price for area {key} is null"
        )));
    }
    Ok(Parsed {
        currency: body.currency.map(|c| c.trim().to_ascii_uppercase()),
        unit: Unit::PerMwh,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_AREAS: &str = r#"{"currency":"EUR","resolutionInMinutes":60,
        "areaStates":[{"state":"Final","areas":["SE3","SE4"]}],
        "multiIndexEntries":[
          {"deliveryStart":"2025-05-06T22:00:00Z","deliveryEnd":"2025-05-06T23:00:00Z","entryPerArea":{"SE3":10.5,"SE4":-3.25}},
          {"deliveryStart":"2025-05-06T23:00:00Z","deliveryEnd":"2025-05-07T00:00:00Z","entryPerArea":{"SE3":null,"SE4":7.0}},
          {"deliveryStart":"2025-05-07T00:00:00Z","deliveryEnd":"2025-05-07T01:00:00Z","entryPerArea":{"SE3":12.0,"SE4":8.0}}
        ]}"#;

    #[test]
    fn picks_the_area_and_skips_nulls() {
        let p = parse(TWO_AREAS, "SE3").unwrap();
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.unit, Unit::PerMwh);
        let v: Vec<f64> = p.slots.iter().map(|s| s.value).collect();
        assert_eq!(v, vec![10.5, 12.0]);
        assert_eq!(p.slots[1].start, parse_time("2025-05-07T00:00Z").unwrap());
        assert_eq!(p.slots[1].end, parse_time("2025-05-07T01:00Z").unwrap());
        let se4 = parse(TWO_AREAS, "se4").unwrap();
        let v: Vec<f64> = se4.slots.iter().map(|s| s.value).collect();
        assert_eq!(v, vec![-3.25, 7.0, 8.0]);
    }

    #[test]
    fn unknown_area_lists_the_present_ones() {
        let e = parse(TWO_AREAS, "FI").unwrap_err();
        let PriceError::Invalid(msg) = &e else {
            panic!("{e:?}")
        };
        assert!(msg.contains("\"FI\"") && msg.contains("SE3, SE4"), "{msg}");
    }

    #[test]
    fn all_null_is_no_data() {
        let body = r#"{"currency":"EUR","multiAreaEntries":[
            {"deliveryStart":"2025-05-06T22:00:00Z","deliveryEnd":"2025-05-06T23:00:00Z","entryPerArea":{"NL":null}}]}"#;
        assert!(matches!(parse(body, "NL"), Err(PriceError::NoData(_))));
    }

    #[test]
    fn empty_and_unpublished_are_no_data() {
        assert!(matches!(parse("", "FI"), Err(PriceError::NoData(_))));
        assert!(matches!(parse("  \n", "FI"), Err(PriceError::NoData(_))));
        let body = r#"{"deliveryDateCET":"2025-05-10","version":0,"currency":"EUR",
            "resolutionInMinutes":60,"areaStates":[],"multiIndexEntries":[]}"#;
        assert!(matches!(parse(body, "FI"), Err(PriceError::NoData(_))));
        let body = r#"{"currency":"EUR","multiAreaEntries":[]}"#;
        assert!(matches!(parse(body, "NL"), Err(PriceError::NoData(_))));
    }

    #[test]
    fn wrong_shapes_are_parse_errors() {
        for body in [
            "not json",
            r#"{"currency":"EUR"}"#,
            r#"{"multiIndexEntries":[{"deliveryStart":"soon","deliveryEnd":"2025-05-06T23:00:00Z","entryPerArea":{"FI":1.0}}]}"#,
            r#"{"multiIndexEntries":[{"deliveryStart":"2025-05-06T22:00:00Z","deliveryEnd":"2025-05-06T23:00:00Z","entryPerArea":{"FI":"1.0"}}]}"#,
        ] {
            assert!(
                matches!(parse(body, "FI"), Err(PriceError::Parse(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn missing_currency_is_none() {
        let body = r#"{"multiAreaEntries":[
            {"deliveryStart":"2025-05-06T22:00:00Z","deliveryEnd":"2025-05-06T22:15:00Z","entryPerArea":{"NL":1.5}}]}"#;
        let p = parse(body, "NL").unwrap();
        assert_eq!(p.currency, None);
        assert_eq!(p.slots.len(), 1);
        assert_eq!(
            p.slots[0].end - p.slots[0].start,
            chrono::TimeDelta::minutes(15)
        );
    }
}
