//! The generic JSON mapping on real recorded bodies of publishers that have
//! their own parsers: proof that an unlisted utility publishing JSON of the
//! same shapes can be priced by configuration alone.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use roimon_price::parse::generic::{self, Mapping, TimeFormat};
use roimon_price::{Adjustments, PriceError, Unit, normalise};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn mapping(items: &str, start: &str, price: &str, unit: &str) -> Mapping {
    Mapping {
        items: items.into(),
        start: start.into(),
        end: None,
        duration: None,
        duration_secs: None,
        price: price.into(),
        unit: unit.into(),
        time_format: TimeFormat::Rfc3339,
    }
}

fn min_max(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

#[test]
fn awattar_epoch_ms_with_end_field() {
    let Some(body) = common::recorded("awattar-marketdata-de-2023-10-26-default-window.json")
    else {
        return;
    };
    let mut m = mapping("data", "start_timestamp", "marketprice", "Eur/MWh");
    m.end = Some("end_timestamp".into());
    m.time_format = TimeFormat::EpochMs;
    let p = generic::parse(&body, &m).unwrap();
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.unit, Unit::PerMwh);
    assert_eq!(p.slots.len(), 13);
    assert_eq!(p.slots[0].start, t("2023-10-26T09:00:00Z"));
    assert_eq!(p.slots[0].value, 140.0);
    assert_eq!(p.slots[12].end, t("2023-10-26T22:00:00Z"));
    assert_eq!(p.slots[12].value, 104.85);
    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 13);
    assert!((s.slots[8].market_per_kwh - 0.15099).abs() < 1e-12);
    // Epoch milliseconds read as seconds would be out of range: the wrong
    // format is an error naming the item and field, not a far-future slot.
    m.time_format = TimeFormat::EpochS;
    let e = generic::parse(&body, &m).unwrap_err();
    assert!(
        e.to_string().contains("item 0: field `start_timestamp`"),
        "{e}"
    );
}

#[test]
fn tibber_nested_path_with_array_index_and_next_start_ends() {
    let Some(body) = common::recorded("tibber-priceinfo-hourly-2025-01-04.json") else {
        return;
    };
    let base = "data.viewer.homes.0.currentSubscription.priceInfo";
    let m = mapping(&format!("{base}.today"), "startsAt", "total", "EUR/kWh");
    let p = generic::parse(&body, &m).unwrap();
    assert_eq!(p.slots.len(), 24);
    assert_eq!(p.slots[0].start, t("2025-01-03T23:00:00Z"));
    assert_eq!(p.slots[0].value, 0.2822);
    assert!(
        p.slots
            .iter()
            .all(|s| s.end - s.start == TimeDelta::hours(1))
    );
    assert_eq!(p.slots[23].end, t("2025-01-04T23:00:00Z"));
    assert_eq!(min_max(p.slots.iter().map(|s| s.value)), (0.2819, 0.3545));
    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots[17].price_per_kwh, 0.3545);
    // Tomorrow was not yet published: an empty array.
    let m = mapping(&format!("{base}.tomorrow"), "startsAt", "total", "EUR/kWh");
    assert!(matches!(
        generic::parse(&body, &m),
        Err(PriceError::NoData(_))
    ));
}

#[test]
fn nordpool_end_field_and_fixed_duration() {
    let Some(body) = common::recorded("nordpool-dayaheadpriceindices-fi-2025-05-07-60min.json")
    else {
        return;
    };
    let mut m = mapping(
        "multiIndexEntries",
        "deliveryStart",
        "entryPerArea.FI",
        "EUR/MWh",
    );
    m.end = Some("deliveryEnd".into());
    let p = generic::parse(&body, &m).unwrap();
    assert_eq!(p.slots.len(), 24);
    assert_eq!(p.slots[0].start, t("2025-05-06T22:00:00Z"));
    assert_eq!(p.slots[0].value, 22.34);
    assert_eq!(p.slots[23].end, t("2025-05-07T22:00:00Z"));
    assert_eq!(min_max(p.slots.iter().map(|s| s.value)), (12.59, 158.78));
    normalise(p, "EUR", &Adjustments::default(), None).unwrap();

    m.price = "entryPerArea.SE3".into();
    let e = generic::parse(&body, &m).unwrap_err();
    assert_eq!(
        e,
        PriceError::Parse("item 0: field `entryPerArea.SE3`: missing".into())
    );

    let Some(body) = common::recorded("nordpool-dayaheadpriceindices-fi-2025-05-07-15min.json")
    else {
        return;
    };
    let mut m = mapping(
        "multiIndexEntries",
        "deliveryStart",
        "entryPerArea.FI",
        "EUR/MWh",
    );
    m.duration_secs = Some(900);
    let p = generic::parse(&body, &m).unwrap();
    assert_eq!(p.slots.len(), 96);
    assert_eq!(p.slots[95].end, t("2025-05-07T22:00:00Z"));
    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 96);
}

#[test]
fn nordpool_not_yet_available_is_no_data() {
    let Some(body) =
        common::recorded("nordpool-dayaheadpriceindices-fi-2025-05-10-not-yet-available.json")
    else {
        return;
    };
    let m = mapping(
        "multiIndexEntries",
        "deliveryStart",
        "entryPerArea.FI",
        "EUR/MWh",
    );
    assert!(matches!(
        generic::parse(&body, &m),
        Err(PriceError::NoData(_))
    ));
}

#[test]
fn electricitymaps_history_as_grams_matches_the_carbon_parser_values() {
    let Some(body) = common::recorded("electricitymaps-carbon-intensity-history-de-24h.json")
    else {
        return;
    };
    let m = mapping("history", "datetime", "carbonIntensity", "gCO2eq/kWh");
    let p = generic::parse(&body, &m).unwrap();
    assert_eq!(p.unit, Unit::GramsPerKwh);
    assert_eq!(p.currency, None);
    assert_eq!(p.slots.len(), 24);
    assert_eq!(p.slots[0].value, 599.0);
    assert_eq!(p.slots[23].value, 689.0);
    assert_eq!(p.slots[23].end, t("2024-03-06T20:00:00Z"));
}

#[test]
fn mapping_from_config_json() {
    let m: Mapping = serde_json::from_str(
        r#"{"items":"data","start":"start_timestamp","end":"end_timestamp",
            "price":"marketprice","unit":"EUR/MWh","time_format":"epoch_ms"}"#,
    )
    .unwrap();
    assert_eq!(m.check(), Ok(()));
    assert_eq!(m.time_format, TimeFormat::EpochMs);
    let bad: Mapping = serde_json::from_str(
        r#"{"start":"s","end":"e","duration_secs":900,"price":"p","unit":"EUR/MWh"}"#,
    )
    .unwrap();
    assert!(bad.check().is_err());
    assert!(matches!(
        generic::parse("[]", &bad),
        Err(PriceError::Invalid(_))
    ));
    assert!(
        serde_json::from_str::<Mapping>(
            r#"{"start":"s","price":"p","unit":"x","time_format":"unix"}"#
        )
        .is_err()
    );
}
