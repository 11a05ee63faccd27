//! Energi Data Service parser against our hand-written DayAheadPrices body
//! (`tests/data/energidataservice-dk1-2025-10-01-15min.json`, see
//! tests/data/README.md), and a DST day written inline.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use roimon_price::parse::energidataservice::parse;
use roimon_price::{Adjustments, Parsed, PriceError, Unit, normalise};
use std::collections::BTreeSet;

const FILE: &str = "energidataservice-dk1-2025-10-01-15min.json";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn values(p: &Parsed) -> Vec<f64> {
    p.slots.iter().map(|s| s.value).collect()
}

fn assert_quarters(p: &Parsed) {
    for w in p.slots.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
    for s in &p.slots {
        assert_eq!(s.end - s.start, TimeDelta::minutes(15), "{}", s.start);
    }
}

#[test]
fn dk1_full_quarter_hour_day_in_eur() {
    let p = parse(&common::own(FILE), "DK1", "EUR").unwrap();
    assert_eq!(p.currency.as_deref(), Some("EUR"));
    assert_eq!(p.unit, Unit::PerMwh);
    assert_eq!(p.slots.len(), 96);
    assert_quarters(&p);
    assert_eq!(p.slots[0].start, t("2025-09-30T22:00:00Z"));
    assert_eq!(p.slots[95].end, t("2025-10-01T22:00:00Z"));
    assert_eq!(p.slots[0].value, 91.56);
    assert_eq!(p.slots[95].value, 89.5);
    let v = values(&p);
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!((min, max), (-10.58, 177.29));
    assert_eq!(v.iter().filter(|v| **v < 0.0).count(), 10);
    let distinct: BTreeSet<u64> = v.iter().map(|v| v.to_bits()).collect();
    assert_eq!(distinct.len(), 95);

    let s = normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    assert_eq!(s.slots.len(), 96);
    assert!((s.slots[0].market_per_kwh - 0.09156).abs() < 1e-12);
}

#[test]
fn dkk_column_and_dk2_filter() {
    let body = common::own(FILE);
    let dkk = parse(&body, "DK1", "DKK").unwrap();
    assert_eq!(dkk.currency.as_deref(), Some("DKK"));
    assert_eq!(dkk.slots.len(), 96);
    assert_eq!(dkk.slots[0].value, 683.367216);
    let min = values(&dkk).into_iter().fold(f64::INFINITY, f64::min);
    assert_eq!(min, -78.964888);
    normalise(dkk, "DKK", &Adjustments::default(), None).unwrap();

    let dk2 = parse(&body, "DK2", "EUR").unwrap();
    assert_eq!(values(&dk2), vec![97.15, 95.02, 93.88, 92.4]);
    assert_eq!(dk2.slots[0].start, t("2025-10-01T21:00:00Z"));
    assert_quarters(&dk2);

    let e = parse(&body, "SE3", "EUR").unwrap_err();
    assert!(
        matches!(&e, PriceError::NoData(m) if m.contains("DK1, DK2")),
        "{e:?}"
    );
    let e = parse(&body, "DK1", "NOK").unwrap_err();
    assert!(
        matches!(&e, PriceError::Invalid(m) if m.contains("NOK")),
        "{e:?}"
    );
    // The stated currency guards the config.
    let eur = parse(&body, "DK1", "EUR").unwrap();
    assert!(matches!(
        normalise(eur, "DKK", &Adjustments::default(), None),
        Err(PriceError::Invalid(_))
    ));
}

/// 2025-10-26, the autumn DST day in Denmark: 25 local hours, 100 quarters,
/// with `TimeDK` repeating 02:00 to 02:45. Only `TimeUTC` counts.
#[test]
fn dst_autumn_day_by_time_utc() {
    let from = t("2025-10-26T00:00:00+02:00");
    let to = t("2025-10-27T00:00:00+01:00");
    let switch = t("2025-10-26T01:00:00Z");
    let mut records = Vec::new();
    let mut s = from;
    let mut i = 0;
    while s < to {
        let local = s + if s < switch {
            TimeDelta::hours(2)
        } else {
            TimeDelta::hours(1)
        };
        records.push(format!(
            r#"{{"TimeUTC":"{}","TimeDK":"{}","PriceArea":"DK1","DayAheadPriceEUR":{}.25,"DayAheadPriceDKK":null}}"#,
            s.format("%Y-%m-%dT%H:%M:%S"),
            local.format("%Y-%m-%dT%H:%M:%S"),
            i - 20
        ));
        s += TimeDelta::minutes(15);
        i += 1;
    }
    records.reverse();
    let body = format!(
        r#"{{"total":{n},"filters":"{{\"PriceArea\":[\"DK1\"]}}","limit":{n},"dataset":"DayAheadPrices","records":[{}]}}"#,
        records.join(","),
        n = records.len()
    );
    let p = parse(&body, "DK1", "EUR").unwrap();
    assert_eq!(p.slots.len(), 100);
    assert_quarters(&p);
    assert_eq!(p.slots[0].start, t("2025-10-25T22:00:00Z"));
    assert_eq!(p.slots[99].end, t("2025-10-26T23:00:00Z"));
    let covered: TimeDelta = p.slots.iter().map(|s| s.end - s.start).sum();
    assert_eq!(covered, TimeDelta::hours(25));
    assert_eq!(p.slots[0].value, -20.25);
    normalise(p, "EUR", &Adjustments::default(), None).unwrap();
    // Every DKK price is null: nothing to price in DKK.
    assert!(matches!(
        parse(&body, "DK1", "DKK"),
        Err(PriceError::NoData(_))
    ));
}
