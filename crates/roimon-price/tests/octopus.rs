//! Octopus Agile parser against our hand-written pages in the documented
//! format (`tests/data/octopus-agile-page{1,2}.json`, see tests/data/README.md).

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use roimon_price::parse::octopus::parse_page;
use roimon_price::{Adjustments, Unit, normalise};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn page_one_is_a_full_day_newest_first_with_next() {
    let (p, next) = parse_page(&common::own("octopus-agile-page1.json"), true).unwrap();
    assert_eq!(p.currency.as_deref(), Some("GBP"));
    assert_eq!(p.unit, Unit::MinorPerKwh);
    assert_eq!(p.slots.len(), 48);
    assert!(next.as_deref().unwrap().contains("?page=2&"), "{next:?}");
    // Newest first, as the API sends them.
    assert_eq!(p.slots[0].start, t("2025-05-13T22:30:00Z"));
    assert_eq!(p.slots[47].start, t("2025-05-12T23:00:00Z"));
    for s in &p.slots {
        assert_eq!(s.end - s.start, TimeDelta::minutes(30));
    }
    let negative: Vec<f64> = p
        .slots
        .iter()
        .map(|s| s.value)
        .filter(|v| *v < 0.0)
        .collect();
    assert_eq!(negative, vec![-0.6615, -2.205, -3.3075, -2.8665, -1.1025]);

    let (exc, _) = parse_page(&common::own("octopus-agile-page1.json"), false).unwrap();
    let min = exc
        .slots
        .iter()
        .map(|s| s.value)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(min, -3.15);
}

#[test]
fn both_pages_make_one_schedule() {
    let (p1, next1) = parse_page(&common::own("octopus-agile-page1.json"), true).unwrap();
    let (p2, next2) = parse_page(&common::own("octopus-agile-page2.json"), true).unwrap();
    assert!(next1.is_some());
    assert_eq!(next2, None);
    assert_eq!(p2.slots.len(), 12);

    let mut all = p1;
    all.slots.extend(p2.slots);
    let s = normalise(all, "GBP", &Adjustments::default(), None).unwrap();
    assert_eq!(s.currency, "GBP");
    assert_eq!(s.slots.len(), 60);
    assert_eq!(s.slots[0].start, t("2025-05-12T17:00:00Z"));
    assert_eq!(s.end(), Some(t("2025-05-13T23:00:00Z")));
    for w in s.slots.windows(2) {
        assert_eq!(w[0].end, w[1].start);
    }
    // 35.28 p excl. VAT at 17:00Z (18:00 BST): 0.37044 GBP/kWh incl. VAT.
    assert!((s.slots[0].market_per_kwh - 0.37044).abs() < 1e-12);
    let min = s
        .slots
        .iter()
        .map(|s| s.market_per_kwh)
        .fold(f64::INFINITY, f64::min);
    assert!((min - -0.033075).abs() < 1e-12, "{min}");
    // Pence in a GBP schedule with the wrong currency is refused.
    let (p1, _) = parse_page(&common::own("octopus-agile-page1.json"), true).unwrap();
    assert!(normalise(p1, "EUR", &Adjustments::default(), None).is_err());
}
