//! Tibber parser against the real recorded GraphQL response
//! (`$ROIMON_FIXTURES/prices/tibber-priceinfo-hourly-2025-01-04.json`).

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use roimon_price::parse::tibber::parse;
use roimon_price::{Adjustments, PriceError, Unit, normalise};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn hourly_today_with_empty_tomorrow() {
    let Some(body) = common::recorded("tibber-priceinfo-hourly-2025-01-04.json") else {
        return;
    };
    let p = parse(&body, 0).unwrap();
    assert_eq!(p.unit, Unit::PerKwh);
    // The query did not ask for `currency`.
    assert_eq!(p.currency, None);
    assert_eq!(p.slots.len(), 24);
    // startsAt 2025-01-04T00:00:00.000+01:00.
    assert_eq!(p.slots[0].start, t("2025-01-03T23:00:00Z"));
    assert_eq!(p.slots[23].start, t("2025-01-04T22:00:00Z"));
    assert_eq!(p.slots[23].end, t("2025-01-04T23:00:00Z"));
    for w in p.slots.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
    for s in &p.slots {
        assert_eq!(s.end - s.start, TimeDelta::hours(1));
    }
    assert_eq!(p.slots[0].value, 0.2822);
    assert_eq!(p.slots[23].value, 0.3048);
    let v: Vec<f64> = p.slots.iter().map(|s| s.value).collect();
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!((min, max), (0.2819, 0.3545));

    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 24);
    assert_eq!(s.slots[2].price_per_kwh, 0.2819);
}

#[test]
fn recorded_response_has_one_home() {
    let Some(body) = common::recorded("tibber-priceinfo-hourly-2025-01-04.json") else {
        return;
    };
    let e = parse(&body, 1).unwrap_err();
    assert!(
        matches!(&e, PriceError::Invalid(m) if m.contains("home 1")),
        "{e:?}"
    );
}
