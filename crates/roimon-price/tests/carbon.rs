//! The carbon-intensity parsers on real recorded Electricity Maps and UK
//! Carbon Intensity API responses (`$ROIMON_FIXTURES/prices`).

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use roimon_price::parse::carbon;
use roimon_price::{Adjustments, PriceError, Unit, normalise};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn min_max(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

#[test]
fn electricitymaps_latest_us_car_duk() {
    let Some(body) = common::recorded("electricitymaps-carbon-intensity-latest-us-car-duk.json")
    else {
        return;
    };
    for p in [
        carbon::electricitymaps_latest(&body).unwrap(),
        carbon::electricitymaps(&body).unwrap(),
    ] {
        assert_eq!(p.unit, Unit::GramsPerKwh);
        assert_eq!(p.currency, None);
        assert_eq!(p.slots.len(), 1);
        assert_eq!(p.slots[0].start, t("2024-03-06T19:00:00Z"));
        assert_eq!(p.slots[0].end, t("2024-03-06T20:00:00Z"));
        assert_eq!(p.slots[0].value, 216.0);
    }
}

#[test]
fn electricitymaps_history_de_24_hours() {
    let Some(body) = common::recorded("electricitymaps-carbon-intensity-history-de-24h.json")
    else {
        return;
    };
    let p = carbon::electricitymaps(&body).unwrap();
    assert_eq!(p, carbon::electricitymaps_history(&body).unwrap());
    assert_eq!(p.slots.len(), 24);
    assert_eq!(p.slots[0].start, t("2024-03-05T20:00:00Z"));
    assert_eq!(p.slots[23].end, t("2024-03-06T20:00:00Z"));
    assert!(
        p.slots
            .iter()
            .all(|s| s.end - s.start == TimeDelta::hours(1))
    );
    assert!(p.slots.windows(2).all(|w| w[0].end == w[1].start));
    assert_eq!(min_max(p.slots.iter().map(|s| s.value)), (492.0, 689.0));
    assert_eq!(p.slots[0].value, 599.0);
    assert_eq!(p.slots[15].value, 492.0);
    assert_eq!(p.slots[15].start, t("2024-03-06T11:00:00Z"));
    let mean = p.slots.iter().map(|s| s.value).sum::<f64>() / 24.0;
    assert!((mean - 14399.0 / 24.0).abs() < 1e-9, "{mean}");
}

#[test]
fn electricitymaps_home_assistant_de() {
    let Some(body) = common::recorded("electricitymaps-v3-home-assistant-endpoint-de.json") else {
        return;
    };
    let p = carbon::electricitymaps(&body).unwrap();
    assert_eq!(p.slots.len(), 1);
    assert_eq!(p.slots[0].start, t("2023-10-02T08:00:00Z"));
    assert_eq!(p.slots[0].end, t("2023-10-02T09:00:00Z"));
    assert_eq!(p.slots[0].value, 474.0);
}

#[test]
fn electricitymaps_home_assistant_no_data() {
    let Some(body) = common::recorded("electricitymaps-v3-home-assistant-endpoint-no-data.json")
    else {
        return;
    };
    assert!(matches!(
        carbon::electricitymaps(&body),
        Err(PriceError::NoData(_))
    ));
}

#[test]
fn uk_regional_bh1_forecast_48_half_hours() {
    let Some(body) =
        common::recorded("carbonintensity-uk-regional-postcode-bh1-fw24h-2020-05-19.json")
    else {
        return;
    };
    let p = carbon::uk(&body).unwrap();
    assert_eq!(p.unit, Unit::GramsPerKwh);
    assert_eq!(p.slots.len(), 48);
    assert_eq!(p.slots[0].start, t("2020-05-19T20:00:00Z"));
    assert_eq!(p.slots[47].end, t("2020-05-20T20:00:00Z"));
    assert!(
        p.slots
            .iter()
            .all(|s| s.end - s.start == TimeDelta::minutes(30))
    );
    assert!(p.slots.windows(2).all(|w| w[0].end == w[1].start));
    assert_eq!(min_max(p.slots.iter().map(|s| s.value)), (161.0, 316.0));
    assert_eq!(p.slots[0].value, 307.0);
    assert_eq!(p.slots[36].value, 161.0);
    assert_eq!(p.slots[36].start, t("2020-05-20T14:00:00Z"));
    // Carbon intensity is not a price.
    assert!(matches!(
        normalise(p, "GBP", &Adjustments::default(), None),
        Err(PriceError::Invalid(_))
    ));
}

#[test]
fn uk_national_uses_actual_over_forecast() {
    let Some(body) = common::recorded("carbonintensity-uk-national-intensity-2017-10-01.json")
    else {
        return;
    };
    let p = carbon::uk(&body).unwrap();
    assert_eq!(p.slots.len(), 49);
    assert_eq!(p.slots[0].start, t("2017-10-01T11:30:00Z"));
    assert_eq!(p.slots[48].end, t("2017-10-02T12:00:00Z"));
    assert!(p.slots.windows(2).all(|w| w[0].end == w[1].start));
    // First half-hour: forecast 145, actual 143.
    assert_eq!(p.slots[0].value, 143.0);
    // 2017-10-02T05:00Z: forecast 97, actual 149.
    assert_eq!(p.slots[35].start, t("2017-10-02T05:00:00Z"));
    assert_eq!(p.slots[35].value, 149.0);
    // Last: forecast 155, actual 184.
    assert_eq!(p.slots[48].value, 184.0);
    assert_eq!(min_max(p.slots.iter().map(|s| s.value)), (73.0, 201.0));
}
