//! Parser: Grid carbon intensity: Electricity Maps v3 and the UK Carbon Intensity API.
//!
//! Carbon intensity is priced like energy (a value per kWh over a slot), so it
//! shares [`Parsed`]: unit [`Unit::GramsPerKwh`] (gCO2eq/kWh), currency `None`.
//!
//! - Electricity Maps v3: `/v3/carbon-intensity/latest` (one value, taken to
//!   hold for the hour starting at `datetime`), `/v3/carbon-intensity/history`
//!   (entries with a null intensity are skipped), and the legacy
//!   `/v3/home-assistant` (CO2-Signal) shape. [`electricitymaps`] tells them
//!   apart by their keys.
//! - UK Carbon Intensity API (api.carbonintensity.org.uk): national
//!   `/intensity/...` and regional `/regional/...` half-hours. The value of a
//!   half-hour is `actual` when present and non-null, else `forecast`: the
//!   measured figure is the better record of what a past half-hour emitted,
//!   and the forecast is all there is for the future (regional endpoints only
//!   ever give a forecast). One schedule can therefore mix the two, split at
//!   the last half-hour with an actual.

use crate::parse::util;
use crate::schedule::{Parsed, PriceError, RawSlot, Unit};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

fn carbon(slots: Vec<RawSlot>) -> Parsed {
    Parsed {
        currency: None,
        unit: Unit::GramsPerKwh,
        slots,
    }
}

fn json(body: &str) -> Result<Value, PriceError> {
    super::util::bounded_json(body, "carbon")?;
    serde_json::from_str(body).map_err(|e| PriceError::Parse(format!("not JSON: {e}")))
}

fn object<'v>(v: &'v Value, what: &str) -> Result<&'v Map<String, Value>, PriceError> {
    v.as_object()
        .ok_or_else(|| PriceError::Parse(format!("{what}: expected an object")))
}

/// A required time string.
fn time_field(o: &Map<String, Value>, key: &str, what: &str) -> Result<DateTime<Utc>, PriceError> {
    match o.get(key) {
        Some(Value::String(s)) => {
            util::parse_time(s).map_err(|e| PriceError::Parse(format!("{what}: `{key}`: {e}")))
        }
        Some(v) => Err(PriceError::Parse(format!(
            "{what}: `{key}`: expected a time string, got {v}"
        ))),
        None => Err(PriceError::Parse(format!("{what}: `{key}` is missing"))),
    }
}

/// An optional number: `None` when absent or null, an error when not a number.
fn opt_number(o: &Map<String, Value>, key: &str, what: &str) -> Result<Option<f64>, PriceError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| PriceError::Parse(format!("{what}: `{key}`: {n} is not finite"))),
        Some(v) => Err(PriceError::Parse(format!(
            "{what}: `{key}`: expected a number, got {v}"
        ))),
    }
}

fn hour_after(t: DateTime<Utc>) -> Result<DateTime<Utc>, PriceError> {
    t.checked_add_signed(TimeDelta::hours(1))
        .ok_or_else(|| PriceError::Parse(format!("time out of range: {t}")))
}

/// An error body (`{"error": ...}` or `{"message": ...}`, as Electricity
/// Maps and the UK API send with 4xx), as a message.
fn error_body(o: &Map<String, Value>) -> Option<String> {
    let e = o.get("error").or_else(|| o.get("message"))?;
    Some(match e {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| e.to_string(), str::to_string),
        other => other.to_string(),
    })
}

/// Any Electricity Maps carbon-intensity body: `history` present → history,
/// `status` present → the legacy home-assistant shape, `carbonIntensity`
/// present → latest.
pub fn electricitymaps(json_body: &str) -> Result<Parsed, PriceError> {
    let v = json(json_body)?;
    let o = object(&v, "Electricity Maps body")?;
    if o.contains_key("history") {
        history(o)
    } else if o.contains_key("status") {
        home_assistant(o)
    } else if o.contains_key("carbonIntensity") {
        latest(o)
    } else if let Some(msg) = error_body(o) {
        Err(PriceError::Parse(format!("Electricity Maps error: {msg}")))
    } else {
        Err(PriceError::Parse(
            "not an Electricity Maps carbon-intensity body (no `history`, `status` or `carbonIntensity`)"
                .into(),
        ))
    }
}

/// `/v3/carbon-intensity/latest`: one slot `[datetime, datetime + 1 h)`.
/// A null intensity is [`PriceError::NoData`].
pub fn electricitymaps_latest(json_body: &str) -> Result<Parsed, PriceError> {
    let v = json(json_body)?;
    latest(object(&v, "Electricity Maps latest body")?)
}

/// `/v3/carbon-intensity/history`: one slot per entry with an intensity.
///
/// Each slot lasts as long as the smallest spacing between consecutive
/// entries, at most 1 h (1 h when there is one entry): the endpoint is hourly,
/// and a finer granularity then gives finer slots instead of overlaps.
pub fn electricitymaps_history(json_body: &str) -> Result<Parsed, PriceError> {
    let v = json(json_body)?;
    history(object(&v, "Electricity Maps history body")?)
}

fn latest(o: &Map<String, Value>) -> Result<Parsed, PriceError> {
    let what = "Electricity Maps latest";
    let Some(value) = opt_number(o, "carbonIntensity", what)? else {
        return Err(PriceError::NoData(
            "Electricity Maps gave no carbon intensity".into(),
        ));
    };
    let start = time_field(o, "datetime", what)?;
    Ok(carbon(vec![RawSlot {
        start,
        end: hour_after(start)?,
        value,
    }]))
}

fn history(o: &Map<String, Value>) -> Result<Parsed, PriceError> {
    let Some(list) = o.get("history").and_then(Value::as_array) else {
        return Err(PriceError::Parse(
            "Electricity Maps history: `history` is not an array".into(),
        ));
    };
    let mut points = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let what = format!("Electricity Maps history entry {i}");
        let e = object(e, &what)?;
        if let Some(value) = opt_number(e, "carbonIntensity", &what)? {
            points.push((time_field(e, "datetime", &what)?, value));
        }
    }
    if points.is_empty() {
        return Err(PriceError::NoData(
            "Electricity Maps history holds no carbon intensity".into(),
        ));
    }
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    let step = points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .min()
        .map_or(TimeDelta::hours(1), |d| d.min(TimeDelta::hours(1)));
    let slots = points
        .into_iter()
        .map(|(start, value)| {
            let end = start
                .checked_add_signed(step)
                .ok_or_else(|| PriceError::Parse(format!("time out of range: {start}")))?;
            Ok(RawSlot { start, end, value })
        })
        .collect::<Result<_, PriceError>>()?;
    Ok(carbon(slots))
}

fn home_assistant(o: &Map<String, Value>) -> Result<Parsed, PriceError> {
    let what = "Electricity Maps home-assistant";
    match o.get("status").and_then(Value::as_str) {
        Some("ok") => {}
        Some("no-data") => {
            return Err(PriceError::NoData(
                "Electricity Maps: status \"no-data\"".into(),
            ));
        }
        other => {
            let msg = o.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(PriceError::Parse(format!(
                "{what}: status {}{}{msg}",
                other.map_or_else(|| "missing".into(), |s| format!("{s:?}")),
                if msg.is_empty() { "" } else { ": " }
            )));
        }
    }
    let data = object(
        o.get("data").unwrap_or(&Value::Null),
        &format!("{what}: `data`"),
    )?;
    latest(data)
}

/// UK Carbon Intensity API, national (`data` is an array of half-hours) or
/// regional (`data` is a region object with its own `data` array, or an array
/// holding one such region). A half-hour's value is `actual` when present and
/// non-null, else `forecast`; a half-hour with neither is skipped.
///
/// A body holding several regions (the all-regions `/regional` endpoints)
/// is [`PriceError::Invalid`]: ask for one region by postcode or region id.
pub fn uk(json_body: &str) -> Result<Parsed, PriceError> {
    let v = json(json_body)?;
    let o = object(&v, "Carbon Intensity body")?;
    let data = match o.get("data") {
        Some(d) => d,
        None => {
            return Err(PriceError::Parse(match error_body(o) {
                Some(msg) => format!("Carbon Intensity API error: {msg}"),
                None => "Carbon Intensity body: `data` is missing".into(),
            }));
        }
    };
    let periods: &[Value] = match data {
        Value::Object(region) => region_periods(region)?,
        Value::Array(list) => {
            let regions: Vec<&Map<String, Value>> = list
                .iter()
                .filter_map(Value::as_object)
                .filter(|e| {
                    e.contains_key("regionid") || e.get("data").is_some_and(Value::is_array)
                })
                .collect();
            match (regions.as_slice(), list.len()) {
                ([], _) => list,
                ([one], 1) => region_periods(one)?,
                (r, n) if r.len() == n => return Err(several_regions(n)),
                _ => {
                    return Err(PriceError::Parse(
                        "Carbon Intensity body: `data` mixes regions and half-hours".into(),
                    ));
                }
            }
        }
        other => {
            return Err(PriceError::Parse(format!(
                "Carbon Intensity body: `data` is neither an array nor an object: {other}"
            )));
        }
    };
    let mut slots = Vec::with_capacity(periods.len());
    for (i, p) in periods.iter().enumerate() {
        let what = format!("Carbon Intensity half-hour {i}");
        let p = object(p, &what)?;
        if let Some(r) = p.get("regions").and_then(Value::as_array) {
            return Err(several_regions(r.len()));
        }
        let start = time_field(p, "from", &what)?;
        let end = time_field(p, "to", &what)?;
        let intensity = object(
            p.get("intensity").unwrap_or(&Value::Null),
            &format!("{what}: `intensity`"),
        )?;
        let actual = opt_number(intensity, "actual", &what)?;
        let forecast = opt_number(intensity, "forecast", &what)?;
        if let Some(value) = actual.or(forecast) {
            slots.push(RawSlot { start, end, value });
        }
    }
    if slots.is_empty() {
        return Err(PriceError::NoData(
            "the Carbon Intensity API gave no intensity".into(),
        ));
    }
    Ok(carbon(slots))
}

fn region_periods(region: &Map<String, Value>) -> Result<&[Value], PriceError> {
    region
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| PriceError::Parse("Carbon Intensity region: `data` is not an array".into()))
}

fn several_regions(n: usize) -> PriceError {
    PriceError::Invalid(format!(
        "the Carbon Intensity body holds {n} regions; ask for one (by postcode or region id)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        util::parse_time(s).unwrap()
    }

    #[test]
    fn latest_is_one_hour() {
        let p = electricitymaps(
            r#"{"zone":"FR","carbonIntensity":38,"datetime":"2025-06-01T10:00:00.000Z"}"#,
        )
        .unwrap();
        assert_eq!(p.unit, Unit::GramsPerKwh);
        assert_eq!(p.currency, None);
        assert_eq!(
            p.slots,
            vec![RawSlot {
                start: t("2025-06-01T10:00Z"),
                end: t("2025-06-01T11:00Z"),
                value: 38.0
            }]
        );
        assert!(matches!(
            electricitymaps_latest(
                r#"{"zone":"FR","carbonIntensity":null,"datetime":"2025-06-01T10:00:00.000Z"}"#
            ),
            Err(PriceError::NoData(_))
        ));
    }

    #[test]
    fn history_skips_nulls_and_keeps_hourly_slots() {
        let body = r#"{"zone":"SE-SE3","history":[
            {"carbonIntensity":21,"datetime":"2025-06-01T00:00:00.000Z"},
            {"carbonIntensity":null,"datetime":"2025-06-01T01:00:00.000Z"},
            {"carbonIntensity":19.5,"datetime":"2025-06-01T02:00:00.000Z"}]}"#;
        let p = electricitymaps(body).unwrap();
        assert_eq!(p.slots.len(), 2);
        assert_eq!(p.slots[0].end, t("2025-06-01T01:00Z"));
        assert_eq!(p.slots[1].start, t("2025-06-01T02:00Z"));
        assert_eq!(p.slots[1].end, t("2025-06-01T03:00Z"));
        assert_eq!(p.slots[1].value, 19.5);
        let fine = r#"{"history":[{"carbonIntensity":1,"datetime":"2025-06-01T00:00Z"},
            {"carbonIntensity":2,"datetime":"2025-06-01T00:15Z"}]}"#;
        let p = electricitymaps_history(fine).unwrap();
        assert_eq!(p.slots[1].end, t("2025-06-01T00:30Z"));
        assert!(matches!(
            electricitymaps_history(r#"{"zone":"DE","history":[]}"#),
            Err(PriceError::NoData(_))
        ));
    }

    #[test]
    fn electricitymaps_errors() {
        let e = electricitymaps(
            r#"{"history":[{"carbonIntensity":"high","datetime":"2025-06-01T00:00Z"}]}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("entry 0: `carbonIntensity`: expected a number"),
            "{e}"
        );
        let e = electricitymaps(r#"{"error":"Invalid authentication token"}"#).unwrap_err();
        assert!(
            e.to_string().contains("Invalid authentication token"),
            "{e}"
        );
        let e = electricitymaps(r#"{"status":"error","message":"zone unknown"}"#).unwrap_err();
        assert!(
            e.to_string().contains("status \"error\": zone unknown"),
            "{e}"
        );
        assert!(electricitymaps("[]").is_err());
    }

    #[test]
    fn uk_prefers_actual_then_forecast() {
        let body = r#"{"data":[
            {"from":"2025-01-01T00:00Z","to":"2025-01-01T00:30Z","intensity":{"forecast":150,"actual":142,"index":"moderate"}},
            {"from":"2025-01-01T00:30Z","to":"2025-01-01T01:00Z","intensity":{"forecast":148,"actual":null,"index":"moderate"}},
            {"from":"2025-01-01T01:00Z","to":"2025-01-01T01:30Z","intensity":{"forecast":null,"actual":null,"index":"moderate"}}]}"#;
        let p = uk(body).unwrap();
        assert_eq!(p.slots.len(), 2);
        assert_eq!(p.slots[0].value, 142.0);
        assert_eq!(p.slots[1].value, 148.0);
        assert_eq!(p.slots[1].end, t("2025-01-01T01:00Z"));
    }

    #[test]
    fn uk_regional_object_array_and_all_regions() {
        let period = r#"{"from":"2025-01-01T00:00Z","to":"2025-01-01T00:30Z","intensity":{"forecast":201,"index":"high"},"generationmix":[]}"#;
        let object = format!(
            r#"{{"data":{{"regionid":3,"shortname":"North West England","data":[{period}]}}}}"#
        );
        let array = format!(
            r#"{{"data":[{{"regionid":3,"shortname":"North West England","data":[{period}]}}]}}"#
        );
        for body in [object, array] {
            let p = uk(&body).unwrap();
            assert_eq!(p.slots.len(), 1);
            assert_eq!(p.slots[0].value, 201.0);
        }
        let two = format!(
            r#"{{"data":[{{"regionid":1,"data":[{period}]}},{{"regionid":2,"data":[{period}]}}]}}"#
        );
        assert!(matches!(uk(&two), Err(PriceError::Invalid(_))));
        let all = r#"{"data":[{"from":"2025-01-01T00:00Z","to":"2025-01-01T00:30Z","regions":[{"regionid":1},{"regionid":2}]}]}"#;
        assert!(matches!(uk(all), Err(PriceError::Invalid(_))));
        assert!(matches!(uk(r#"{"data":[]}"#), Err(PriceError::NoData(_))));
        let e =
            uk(r#"{"error":{"code":"400 Bad Request","message":"Please enter a valid postcode"}}"#)
                .unwrap_err();
        assert!(e.to_string().contains("valid postcode"), "{e}");
        let e = uk(r#"{"data":[{"from":"2025-01-01T00:00Z","intensity":{"forecast":1}}]}"#)
            .unwrap_err();
        assert!(
            e.to_string().contains("half-hour 0: `to` is missing"),
            "{e}"
        );
    }
}
