//! The aWATTar `/v1/marketdata` parser against a real recorded response (see
//! `$ROIMON_FIXTURES/prices/SOURCES.md`): a partial day of 13 hourly entries
//! with an integer first price, and its normalisation.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use roimon_price::parse::awattar;
use roimon_price::{Adjustments, Unit, normalise};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn de_2023_10_26_default_window_is_13_hourly_slots() {
    let Some(json) = common::recorded("awattar-marketdata-de-2023-10-26-default-window.json")
    else {
        return;
    };
    let p = awattar::parse(&json).unwrap();
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.unit, Unit::PerMwh);
    assert_eq!(p.slots.len(), 13);
    let from = t("2023-10-26T09:00:00Z");
    for (i, s) in p.slots.iter().enumerate() {
        let i = i32::try_from(i).unwrap();
        assert_eq!(s.start, from + TimeDelta::hours(i.into()), "slot {i}");
        assert_eq!(s.end, s.start + TimeDelta::hours(1), "slot {i}");
    }
    assert_eq!(p.slots[12].end, t("2023-10-26T22:00:00Z"));
    assert_eq!(p.slots[0].value, 140.0);
    assert_eq!(p.slots[8].value, 150.99);
    assert_eq!(p.slots[12].value, 104.85);
    let (lo, hi) = p
        .slots
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.value), hi.max(s.value))
        });
    assert_eq!((lo, hi), (104.85, 150.99));

    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 13);
    assert_eq!(s.slots[0].market_per_kwh, 0.14);
    assert_eq!(s.slots[12].market_per_kwh, 104.85 / 1000.0);
}
