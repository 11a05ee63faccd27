//! Parser: aWATTar market data (`/v1/marketdata`, JSON, EUR/MWh, epoch
//! milliseconds): `{"object":"list","data":[{"start_timestamp", "end_timestamp",
//! "marketprice", "unit"}...],"url":...}`.
//!
//! Each entry carries its own `[start, end)` in epoch milliseconds, so no end
//! is inferred. The unit comes from each entry's `unit` (`Eur/MWh`) through
//! [`Unit::from_str`]; the currency is the part before `/`, upper-cased, when
//! it is a three-letter code (`Eur` → `EUR`). All entries must agree on both.
//! An empty `data` array (nothing published for the window) is
//! [`PriceError::NoData`].

use super::util::from_epoch_ms;
use crate::schedule::{Parsed, PriceError, RawSlot, Unit};
use serde::Deserialize;
use std::str::FromStr;

/// The response envelope; other fields (`object`, `url`) are ignored.
#[derive(Debug, Deserialize)]
struct Response {
    data: Vec<Entry>,
}

/// One market price entry.
#[derive(Debug, Deserialize)]
struct Entry {
    start_timestamp: i64,
    end_timestamp: i64,
    /// Integers (`140`) deserialise here as well as decimals.
    marketprice: f64,
    unit: String,
}

/// Parse an aWATTar `/v1/marketdata` response body.
///
/// Returns one slot per entry, in the entries' unit (EUR/MWh in practice) and
/// currency. Errors: malformed JSON or fields ([`PriceError::Parse`]), entries
/// with differing or unknown units ([`PriceError::Invalid`]), an empty `data`
/// array ([`PriceError::NoData`]).
pub fn parse(json: &str) -> Result<Parsed, PriceError> {
    super::util::bounded_json(json, "aWATTar")?;
    let resp: Response =
        serde_json::from_str(json).map_err(|e| PriceError::Parse(format!("aWATTar: {e}")))?;
    let Some(first) = resp.data.first() else {
        return Err(PriceError::NoData(
            "aWATTar: the data array is empty (nothing published for the window)".into(),
        ));
    };
    let unit_text = first.unit.trim().to_string();
    let unit =
        Unit::from_str(&unit_text).map_err(|e| PriceError::Invalid(format!("aWATTar: {e}")))?;
    let currency = currency_of(&unit_text);
    let mut slots = Vec::with_capacity(resp.data.len());
    for (i, e) in resp.data.iter().enumerate() {
        if !e.unit.trim().eq_ignore_ascii_case(&unit_text) {
            return Err(PriceError::Invalid(format!(
                "aWATTar: entry {} is in {:?}, the first in {unit_text:?}",
                i + 1,
                e.unit
            )));
        }
        slots.push(RawSlot {
            start: from_epoch_ms(e.start_timestamp)?,
            end: from_epoch_ms(e.end_timestamp)?,
            value: e.marketprice,
        });
    }
    Ok(Parsed {
        currency,
        unit,
        slots,
    })
}

/// `Eur/MWh` → `EUR`; `None` when the numerator is not a three-letter code
/// (`ct/kWh`, `MWh`).
fn currency_of(unit: &str) -> Option<String> {
    let (num, _) = unit.split_once('/')?;
    let num = num.trim();
    (num.len() == 3 && num.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| num.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeDelta};

    const H: i64 = 3_600_000;
    const T0: i64 = 1_698_310_800_000; // 2023-10-26T09:00Z

    fn entry(start: i64, price: &str, unit: &str) -> String {
        format!(
            r#"{{"start_timestamp":{start},"end_timestamp":{},"marketprice":{price},"unit":"{unit}"}}"#,
            start + H
        )
    }

    fn body(entries: &[String]) -> String {
        format!(
            r#"{{"object":"list","data":[{}],"url":"/de/v1/marketdata"}}"#,
            entries.join(",")
        )
    }

    #[test]
    fn integer_and_decimal_prices_with_their_times() {
        let p = parse(&body(&[
            entry(T0, "140", "Eur/MWh"),
            entry(T0 + H, "-5.25", "Eur/MWh"),
        ]))
        .unwrap();
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.unit, Unit::PerMwh);
        assert_eq!(p.slots.len(), 2);
        assert_eq!(p.slots[0].value, 140.0);
        assert_eq!(p.slots[1].value, -5.25);
        let t0 = DateTime::parse_from_rfc3339("2023-10-26T09:00:00Z").unwrap();
        assert_eq!(p.slots[0].start, t0);
        assert_eq!(p.slots[1].end, t0 + TimeDelta::hours(2));
    }

    #[test]
    fn empty_data_is_no_data() {
        assert!(matches!(parse(&body(&[])), Err(PriceError::NoData(_))));
    }

    #[test]
    fn mixed_or_unknown_units_are_invalid() {
        let e = parse(&body(&[
            entry(T0, "1", "Eur/MWh"),
            entry(T0 + H, "1", "Eur/kWh"),
        ]))
        .unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("Eur/kWh")),
            "{e}"
        );
        let e = parse(&body(&[entry(T0, "1", "Eur/GJ")])).unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("Eur/GJ")),
            "{e}"
        );
    }

    #[test]
    fn minor_unit_states_no_currency() {
        let p = parse(&body(&[entry(T0, "12.5", "ct/kWh")])).unwrap();
        assert_eq!(p.unit, Unit::MinorPerKwh);
        assert_eq!(p.currency, None);
    }

    #[test]
    fn malformed_bodies_are_parse_errors() {
        for b in [
            "",
            "[]",
            r#"{"object":"list"}"#,
            &body(&[entry(T0, "\"140\"", "Eur/MWh")]),
            &body(&[r#"{"start_timestamp":1,"marketprice":1,"unit":"Eur/MWh"}"#.to_string()]),
        ] {
            assert!(matches!(parse(b), Err(PriceError::Parse(_))), "{b}");
        }
    }

    #[test]
    fn out_of_range_timestamp_is_a_parse_error() {
        let e = parse(&body(&[entry(i64::MAX - H, "1", "Eur/MWh")])).unwrap_err();
        assert!(matches!(e, PriceError::Parse(_)), "{e}");
    }
}
