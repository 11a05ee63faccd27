//! A price or carbon response is read within a memory bound: a body with
//! far more slots than one fetch may hold is refused before its tree is
//! built, naming the cap, while a body at the slot cap still parses.

use roimon_price::parse::{awattar, carbon, csv, entsoe};
use roimon_price::{MAX_SLOTS, PriceError, Unit};

fn awattar_body(n: usize) -> String {
    let t0: i64 = 1_767_225_600_000;
    let entries: Vec<String> = (0..n as i64)
        .map(|i| {
            format!(
                r#"{{"start_timestamp":{},"end_timestamp":{},"marketprice":42.5,"unit":"Eur/MWh"}}"#,
                t0 + i * 3_600_000,
                t0 + (i + 1) * 3_600_000
            )
        })
        .collect();
    format!(r#"{{"object":"list","data":[{}]}}"#, entries.join(","))
}

fn refused(r: Result<impl std::fmt::Debug, PriceError>, what: &str) {
    match r {
        Err(PriceError::Parse(m)) => assert!(m.contains(what), "{m}"),
        other => panic!("expected a refusal naming {what:?}, got {other:?}"),
    }
}

#[test]
fn a_feed_of_500000_slots_is_refused_before_it_is_parsed() {
    refused(
        awattar::parse(&awattar_body(500_000)),
        "JSON objects and arrays",
    );
    // The cap of slots still reads.
    let p = awattar::parse(&awattar_body(MAX_SLOTS)).unwrap();
    assert_eq!(p.slots.len(), MAX_SLOTS);
}

#[test]
fn a_carbon_feed_of_500000_half_hours_is_refused_before_it_is_parsed() {
    let half: Vec<String> = (0..500_000)
        .map(|_| r#"{"from":"2026-01-01T00:00Z","to":"2026-01-01T00:30Z","intensity":{"forecast":100,"actual":null}}"#.to_string())
        .collect();
    let body = format!(r#"{{"data":[{}]}}"#, half.join(","));
    refused(carbon::uk(&body), "JSON objects and arrays");
}

#[test]
fn an_entsoe_document_of_500000_points_is_refused_before_its_tree_is_built() {
    let points: String = (1..=500_000)
        .map(|i| format!("<Point><position>{i}</position><price.amount>1</price.amount></Point>"))
        .collect();
    let body = format!(
        "<Publication_MarketDocument><TimeSeries><Period>{points}</Period></TimeSeries></Publication_MarketDocument>"
    );
    refused(entsoe::parse(&body), "XML tags");
}

#[test]
fn a_price_sheet_of_500000_lines_is_refused_before_its_rows_are_read() {
    let mut body = String::from("start,price\n");
    for i in 0..500_000 {
        body.push_str(&format!("2026-01-01T00:{:02}:00Z,1\n", i % 60));
    }
    refused(csv::parse(&body, Unit::PerKwh, Some("EUR")), "lines");
}
