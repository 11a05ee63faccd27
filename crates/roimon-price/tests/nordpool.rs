//! Nord Pool parser against the real recorded data portal responses
//! (`$ROIMON_FIXTURES/prices/nordpool-*.json`), and DST days written inline.

mod common;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use roimon_price::parse::nordpool::parse;
use roimon_price::{Adjustments, Parsed, PriceError, Unit, normalise};
use std::collections::{BTreeMap, BTreeSet};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn values(p: &Parsed) -> Vec<f64> {
    p.slots.iter().map(|s| s.value).collect()
}

fn min_max(p: &Parsed) -> (f64, f64) {
    let v = values(p);
    (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// Every slot lasts `len` and starts where the one before ended.
fn assert_contiguous(p: &Parsed, len: TimeDelta) {
    for w in p.slots.windows(2) {
        assert_eq!(w[0].end, w[1].start, "gap or overlap at {}", w[0].end);
    }
    for s in &p.slots {
        assert_eq!(s.end - s.start, len, "slot at {}", s.start);
    }
}

#[test]
fn fi_hourly_day() {
    let Some(body) = common::recorded("nordpool-dayaheadpriceindices-fi-2025-05-07-60min.json")
    else {
        return;
    };
    let p = parse(&body, "FI").unwrap();
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.unit, Unit::PerMwh);
    assert_eq!(p.slots.len(), 24);
    assert_contiguous(&p, TimeDelta::hours(1));
    assert_eq!(p.slots[0].start, t("2025-05-06T22:00:00Z"));
    assert_eq!(p.slots[23].end, t("2025-05-07T22:00:00Z"));
    assert_eq!(&values(&p)[..3], &[22.34, 14.26, 12.59]);
    assert_eq!(min_max(&p), (12.59, 158.78));

    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 24);
    assert_eq!(s.currency, "EUR");
    assert!((s.slots[0].market_per_kwh - 0.02234).abs() < 1e-12);
}

#[test]
fn fi_quarter_hours_repeat_the_hourly_price_before_mtu15() {
    let (Some(hourly), Some(quarters)) = (
        common::recorded("nordpool-dayaheadpriceindices-fi-2025-05-07-60min.json"),
        common::recorded("nordpool-dayaheadpriceindices-fi-2025-05-07-15min.json"),
    ) else {
        return;
    };
    let h = parse(&hourly, "FI").unwrap();
    let q = parse(&quarters, "FI").unwrap();
    assert_eq!(q.slots.len(), 96);
    assert_contiguous(&q, TimeDelta::minutes(15));
    let by_hour: BTreeMap<DateTime<Utc>, f64> =
        h.slots.iter().map(|s| (s.start, s.value)).collect();
    for s in &q.slots {
        let hour = s.start.with_minute(0).unwrap();
        assert_eq!(Some(&s.value), by_hour.get(&hour), "quarter {}", s.start);
    }
    assert_eq!(min_max(&q), (12.59, 158.78));
    let s = normalise(q, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 96);
}

#[test]
fn fi_day_not_yet_published_is_no_data() {
    let Some(body) =
        common::recorded("nordpool-dayaheadpriceindices-fi-2025-05-10-not-yet-available.json")
    else {
        return;
    };
    let e = parse(&body, "FI").unwrap_err();
    assert!(matches!(e, PriceError::NoData(_)), "{e:?}");
}

#[test]
fn se1_in_sek_needs_sek_in_the_config() {
    let Some(body) =
        common::recorded("nordpool-dayaheadpriceindices-se1-2025-05-07-60min-sek.json")
    else {
        return;
    };
    let p = parse(&body, "SE1").unwrap();
    assert_eq!(p.currency.as_deref(), Some("SEK"));
    assert_eq!(p.slots.len(), 24);
    assert_eq!(min_max(&p), (137.16, 1569.51));

    let e = normalise(p.clone(), "EUR", &Adjustments::default(), None).unwrap_err();
    assert!(
        matches!(&e, PriceError::Invalid(m) if m.contains("SEK")),
        "{e:?}"
    );
    let s = normalise(p, "SEK", &Adjustments::default(), None).unwrap();
    assert_eq!(s.currency, "SEK");
    assert_eq!(s.slots.len(), 24);
}

#[test]
fn se1_to_se4_choose_the_area() {
    let Some(body) =
        common::recorded("nordpool-dayaheadpriceindices-se1-se4-2025-05-07-60min.json")
    else {
        return;
    };
    let se1 = parse(&body, "SE1").unwrap();
    let se4 = parse(&body, "SE4").unwrap();
    assert_eq!(se1.slots.len(), 24);
    assert_eq!(se4.slots.len(), 24);
    assert_eq!(&values(&se1)[..3], &[22.34, 14.25, 12.58]);
    assert_eq!(&values(&se4)[..3], &[90.32, 84.73, 83.35]);
    assert_eq!(min_max(&se1), (12.58, 143.95));
    assert_eq!(min_max(&se4), (61.75, 149.02));
    assert_ne!(values(&se1), values(&se4));
    assert_eq!(
        se1.slots.iter().map(|s| s.start).collect::<Vec<_>>(),
        se4.slots.iter().map(|s| s.start).collect::<Vec<_>>()
    );

    let e = parse(&body, "XX").unwrap_err();
    let PriceError::Invalid(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(
        msg.contains("XX") && msg.contains("SE1, SE2, SE3, SE4"),
        "{msg}"
    );

    for p in [se1, se4] {
        normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    }
}

#[test]
fn se3_first_mtu15_day_has_distinct_quarters() {
    let Some(body) = common::recorded(
        "nordpool-dayaheadpriceindices-se3-2025-10-01-15min-sek-first-sdac-mtu15-day.json",
    ) else {
        return;
    };
    let p = parse(&body, "SE3").unwrap();
    assert_eq!(p.currency.as_deref(), Some("SEK"));
    assert_eq!(p.slots.len(), 96);
    assert_contiguous(&p, TimeDelta::minutes(15));
    assert_eq!(p.slots[0].start, t("2025-09-30T22:00:00Z"));
    assert_eq!(p.slots[95].end, t("2025-10-01T22:00:00Z"));
    assert_eq!(&values(&p)[..4], &[556.68, 519.88, 508.28, 509.93]);
    let distinct: BTreeSet<u64> = p.slots.iter().map(|s| s.value.to_bits()).collect();
    assert_eq!(distinct.len(), 92);
    assert_eq!(min_max(&p), (441.96, 3828.03));

    // 3828.03 SEK/MWh = 3.83 SEK/kWh, well inside the default SEK bound.
    let bound = roimon_price::schedule::default_bound("SEK").unwrap();
    assert!(3.82803 < bound, "default SEK bound {bound}");
    let s = normalise(p, "SEK", &Adjustments::default(), None).unwrap();
    let max = s
        .slots
        .iter()
        .map(|s| s.market_per_kwh)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!((max - 3.82803).abs() < 1e-9, "{max}");
}

#[test]
fn nl_day_ahead_prices_endpoint() {
    let Some(body) = common::recorded("nordpool-dayaheadprices-nl-2024-11-05-60min.json") else {
        return;
    };
    let p = parse(&body, "NL").unwrap();
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.slots.len(), 24);
    assert_contiguous(&p, TimeDelta::hours(1));
    assert_eq!(p.slots[0].start, t("2024-11-04T23:00:00Z"));
    assert_eq!(p.slots[23].end, t("2024-11-05T23:00:00Z"));
    assert_eq!(&values(&p)[..3], &[83.63, 94.0, 90.68]);
    assert_eq!(min_max(&p), (83.63, 472.99));
    assert!(matches!(parse(&body, "BE"), Err(PriceError::Invalid(_))));
    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 24);
}

/// A `DayAheadPriceIndices` body at 60 minutes for the local (CET/CEST) day
/// from `from` to `to` (local midnights written with their UTC offsets).
fn hourly_day(from: &str, to: &str) -> String {
    let (from, to) = (t(from), t(to));
    let mut entries = Vec::new();
    let mut s = from;
    let mut i = 0;
    while s < to {
        let e = s + TimeDelta::hours(1);
        entries.push(format!(
            r#"{{"deliveryStart":"{}","deliveryEnd":"{}","entryPerArea":{{"SE3":{}.5}}}}"#,
            s.format("%Y-%m-%dT%H:%M:%SZ"),
            e.format("%Y-%m-%dT%H:%M:%SZ"),
            40 + i
        ));
        s = e;
        i += 1;
    }
    format!(
        r#"{{"market":"DayAhead","indexNames":["SE3"],"currency":"EUR","resolutionInMinutes":60,
        "areaStates":[{{"state":"Final","areas":["SE3"]}}],"multiIndexEntries":[{}]}}"#,
        entries.join(",")
    )
}

#[test]
fn dst_autumn_day_has_25_hours() {
    let body = hourly_day("2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00");
    let p = parse(&body, "SE3").unwrap();
    assert_eq!(p.slots.len(), 25);
    assert_eq!(p.slots[0].start, t("2025-10-25T22:00:00Z"));
    assert_eq!(p.slots[24].end, t("2025-10-26T23:00:00Z"));
    assert_contiguous(&p, TimeDelta::hours(1));
    let covered: TimeDelta = p.slots.iter().map(|s| s.end - s.start).sum();
    assert_eq!(covered, TimeDelta::hours(25));
    assert_eq!(p.slots[24].value, 64.5);
    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 25);
}

#[test]
fn dst_spring_day_has_23_hours() {
    let body = hourly_day("2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00");
    let p = parse(&body, "SE3").unwrap();
    assert_eq!(p.slots.len(), 23);
    assert_eq!(p.slots[0].start, t("2025-03-29T23:00:00Z"));
    assert_eq!(p.slots[22].end, t("2025-03-30T22:00:00Z"));
    assert_contiguous(&p, TimeDelta::hours(1));
    let covered: TimeDelta = p.slots.iter().map(|s| s.end - s.start).sum();
    assert_eq!(covered, TimeDelta::hours(23));
    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 23);
}
