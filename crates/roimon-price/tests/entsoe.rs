//! The ENTSO-E A44 parser against real recorded responses (see
//! `$ROIMON_FIXTURES/prices/SOURCES.md`): hourly days, negative and integer
//! prices, a DE-LU document with competing PT60M/PT15M series and an A03 gap,
//! and the "no matching data" acknowledgement; plus normalisation of each.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use roimon_price::parse::entsoe;
use roimon_price::{Adjustments, Parsed, PriceError, Unit, normalise};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn min_max(p: &Parsed) -> (f64, f64) {
    p.slots
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.value), hi.max(s.value))
        })
}

/// Sorted, hourly, contiguous from `from` for `n` hours.
fn assert_hourly(p: &Parsed, from: &str, n: usize) {
    assert_eq!(p.slots.len(), n);
    let from = t(from);
    for (i, s) in p.slots.iter().enumerate() {
        let i = i32::try_from(i).unwrap();
        assert_eq!(s.start, from + TimeDelta::hours(i.into()), "slot {i}");
        assert_eq!(s.end, s.start + TimeDelta::hours(1), "slot {i}");
    }
}

fn value_at(p: &Parsed, at: &str) -> f64 {
    let at = t(at);
    p.slots
        .iter()
        .find(|s| s.start == at)
        .unwrap_or_else(|| panic!("no slot at {at}"))
        .value
}

#[test]
fn nl_2024_09_02_is_24_hourly_slots() {
    let Some(xml) = common::recorded("entsoe-a44-nl-2024-09-02-pt60m.xml") else {
        return;
    };
    let p = entsoe::parse(&xml).unwrap();
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.unit, Unit::PerMwh);
    assert_hourly(&p, "2024-09-01T22:00:00Z", 24);
    assert_eq!(p.slots[23].end, t("2024-09-02T22:00:00Z"));
    assert_eq!(min_max(&p), (81.02, 255.53));
    assert_eq!(p.slots[0].value, 91.24);
    // Position 14 (11:00Z) is the minimum, position 20 (17:00Z) the maximum,
    // position 24 is the integer-looking "104".
    assert_eq!(value_at(&p, "2024-09-02T11:00:00Z"), 81.02);
    assert_eq!(value_at(&p, "2024-09-02T17:00:00Z"), 255.53);
    assert_eq!(p.slots[23].value, 104.0);

    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.currency, "EUR");
    assert_eq!(s.slots.len(), 24);
    assert_eq!(s.slots[13].start, t("2024-09-02T11:00:00Z"));
    assert_eq!(s.slots[13].market_per_kwh, 0.08102);
    assert_eq!(s.slots[13].price_per_kwh, 0.08102);
}

#[test]
fn at_2024_07_28_keeps_negative_prices() {
    let Some(xml) = common::recorded("entsoe-a44-at-2024-07-28-pt60m-negative.xml") else {
        return;
    };
    let p = entsoe::parse(&xml).unwrap();
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_hourly(&p, "2024-07-27T22:00:00Z", 24);
    assert_eq!(min_max(&p), (-38.91, 100.99));
    let negative: Vec<f64> = p
        .slots
        .iter()
        .map(|s| s.value)
        .filter(|v| *v < 0.0)
        .collect();
    assert_eq!(negative, vec![-0.01, -14.84, -38.91, -9.91]);
    // Position 15 is 2024-07-28T12:00Z.
    assert_eq!(value_at(&p, "2024-07-28T12:00:00Z"), -38.91);

    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 24);
    assert_eq!(s.slots[14].market_per_kwh, -38.91 / 1000.0);
    assert!(s.slots[14].market_per_kwh < 0.0);
}

#[test]
fn be_2024_10_08_reads_integer_amounts() {
    let Some(xml) = common::recorded("entsoe-a44-be-2024-10-08-pt60m.xml") else {
        return;
    };
    let p = entsoe::parse(&xml).unwrap();
    assert_hourly(&p, "2024-10-07T22:00:00Z", 24);
    assert_eq!(min_max(&p), (47.05, 115.47));
    // Positions 9 and 24 are written "100" and "50".
    assert_eq!(p.slots[8].value, 100.0);
    assert_eq!(p.slots[23].value, 50.0);
    assert_eq!(p.slots[23].end, t("2024-10-08T22:00:00Z"));

    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots[8].market_per_kwh, 0.1);
    assert_eq!(s.slots[23].market_per_kwh, 0.05);
}

#[test]
fn de_lu_2024_10_06_chooses_the_pt60m_sequence_1_series_over_two_days() {
    let Some(xml) = common::recorded("entsoe-a44-de-lu-2024-10-06-pt60m-and-pt15m-series.xml")
    else {
        return;
    };
    let p = entsoe::parse(&xml).unwrap();
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.unit, Unit::PerMwh);
    // Both days of the PT60M series, nothing from the PT15M one.
    assert_hourly(&p, "2024-10-05T22:00:00Z", 48);
    assert_eq!(p.slots[47].end, t("2024-10-07T22:00:00Z"));
    for w in p.slots.windows(2) {
        assert!(w[0].end <= w[1].start, "overlap: {w:?}");
    }
    // Day 1 lacks position 15 (12:00Z): it repeats position 14 (11:00Z).
    assert_eq!(value_at(&p, "2024-10-06T11:00:00Z"), -0.01);
    assert_eq!(value_at(&p, "2024-10-06T12:00:00Z"), -0.01);
    assert_eq!(value_at(&p, "2024-10-06T13:00:00Z"), 0.2);
    // Day 2 starts with PT60M position 1 and holds its peak.
    assert_eq!(value_at(&p, "2024-10-06T22:00:00Z"), 34.58);
    assert_eq!(value_at(&p, "2024-10-07T16:00:00Z"), 237.65);
    // The PT15M series' minimum (-29.91) is not among the chosen values.
    assert_eq!(min_max(&p), (-0.01, 237.65));

    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 48);
    assert_eq!(s.slots[0].market_per_kwh, 67.04 / 1000.0);
}

#[test]
fn acknowledgement_no_matching_data_is_no_data() {
    let Some(xml) = common::recorded("entsoe-acknowledgement-no-matching-data.xml") else {
        return;
    };
    match entsoe::parse(&xml) {
        Err(PriceError::NoData(m)) => {
            assert!(m.contains("No matching data"), "{m}");
            assert!(
                m.contains("2024-09-01T22:00:00Z/2024-09-02T22:00:00Z"),
                "{m}"
            );
        }
        other => panic!("expected NoData, got {other:?}"),
    }
}
