//! Every parser of outside input survives any input: arbitrary bytes and
//! mutated real responses (truncated, spliced, with bytes flipped, inserted
//! or deleted) never panic, and every error names where it went wrong (a
//! line, position, index or field). Real responses come from `tests/data`,
//! from small inline samples, and from `$ROIMON_FIXTURES` where it is set.
//!
//! Cases per parser and run: 48 arbitrary-byte inputs + 48 mutated
//! responses = 96 (the `CASES` constant), for 12 parsers: 1152 in all.

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use roimon_price::parse::generic::{Mapping, TimeFormat};
use roimon_price::parse::{awattar, carbon, csv, energidataservice, entsoe, generic};
use roimon_price::parse::{nordpool, octopus, tibber};
use roimon_price::{PriceError, Unit};

/// Cases per strategy (arbitrary bytes, mutated responses) per parser.
const CASES: u32 = 48;

type Parser<'a> = &'a dyn Fn(&str) -> Result<(), PriceError>;

/// Whether an error text points at a place: a line, column, position or
/// index (a digit); a field, element or value it quotes or names (`x`,
/// "x", `price.amount`, `valid_from`); or the part of the document that is
/// wrong as a whole (its body, root, header, or its end).
fn names_a_place(msg: &str) -> bool {
    const WHOLE: &[&str] = &["end of", "body", "root", "header", "document"];
    let field = msg
        .split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .any(|w| {
            let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            w.len() > 2
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                && (w.contains('_') || w.contains('.'))
        });
    msg.chars().any(|c| c.is_ascii_digit())
        || msg.contains('`')
        || msg.contains('"')
        || field
        || WHOLE.iter().any(|w| msg.contains(w))
}

/// What an error must say: a publisher's "no data" is about the whole
/// response and only has to say so; any other error names its place.
fn error_is_clear(e: &PriceError) -> bool {
    match e {
        PriceError::NoData(m) => !m.trim().is_empty(),
        PriceError::Parse(m) | PriceError::Invalid(m) => names_a_place(m),
    }
}

/// What one mutation does to a response.
#[derive(Debug, Clone)]
enum Mutation {
    /// Keep only the first `at` bytes.
    Truncate(usize),
    /// Delete `len` bytes at `at`.
    Delete(usize, usize),
    /// Insert these bytes at `at`.
    Insert(usize, Vec<u8>),
    /// Overwrite the byte at `at`.
    Flip(usize, u8),
    /// Copy `len` bytes from `from` to `at` (a duplicated element).
    Splice(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<prop::sample::Index>();
    prop_oneof![
        pos.clone()
            .prop_map(|i| Mutation::Truncate(i.index(1 << 20))),
        (any::<prop::sample::Index>(), 1usize..64)
            .prop_map(|(i, n)| Mutation::Delete(i.index(1 << 20), n)),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    prop::sample::select(b"{}[]<>\",:;0-.eE/ \n\\&".to_vec())
                ],
                1..8
            )
        )
            .prop_map(|(i, b)| Mutation::Insert(i.index(1 << 20), b)),
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(i, b)| Mutation::Flip(i.index(1 << 20), b)),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            1usize..400
        )
            .prop_map(|(a, b, n)| Mutation::Splice(a.index(1 << 20), b.index(1 << 20), n)),
    ]
}

fn apply(base: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut v = base.to_vec();
    for m in ms {
        let n = v.len().max(1);
        match m {
            Mutation::Truncate(at) => v.truncate(at % n),
            Mutation::Delete(at, len) => {
                let at = at % n;
                let end = (at + len).min(v.len());
                if at < end {
                    v.drain(at..end);
                }
            }
            Mutation::Insert(at, b) => {
                let at = (at % n).min(v.len());
                v.splice(at..at, b.iter().copied());
            }
            Mutation::Flip(at, b) => {
                if let Some(x) = v.get_mut(at % n) {
                    *x = *b;
                }
            }
            Mutation::Splice(at, from, len) => {
                let from = from % n;
                let end = (from + len).min(v.len());
                let piece: Vec<u8> = v.get(from..end).unwrap_or_default().to_vec();
                let at = (at % n).min(v.len());
                v.splice(at..at, piece);
            }
        }
    }
    v
}

/// Feed `parse` arbitrary bytes and mutated `seeds` (each must parse as
/// given, so that the mutations start from a real response).
fn survives(name: &str, parse: Parser, seeds: &[String]) {
    let check = |input: &[u8]| -> Result<(), TestCaseError> {
        let text = String::from_utf8_lossy(input);
        if let Err(e) = parse(&text) {
            let msg = e.to_string();
            prop_assert!(
                error_is_clear(&e),
                "{name}: an error that names no place: {msg:?}\ninput: {text:?}"
            );
        }
        Ok(())
    };
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config.clone())
        .run(&prop::collection::vec(any::<u8>(), 0..2048), |b| check(&b))
        .unwrap_or_else(|e| panic!("{name}, arbitrary bytes: {e}"));

    assert!(!seeds.is_empty(), "{name}: no seed response");
    for s in seeds {
        if let Err(e) = parse(s) {
            panic!("{name}: a seed does not parse: {e}");
        }
    }
    let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    let strategy = (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 1..6),
    );
    TestRunner::new(config)
        .run(&strategy, |(seed, ms)| check(&apply(&seed, &ms)))
        .unwrap_or_else(|e| panic!("{name}, mutated responses: {e}"));
}

/// Recorded responses that are present (none when fixture tests skip).
fn recorded(names: &[&str]) -> Vec<String> {
    names.iter().filter_map(|n| common::recorded(n)).collect()
}

fn with(mut seeds: Vec<String>, more: &[&str]) -> Vec<String> {
    seeds.extend(more.iter().map(|s| s.to_string()));
    seeds
}

#[test]
fn entsoe_survives_any_input_96_cases() {
    let inline = r#"<?xml version="1.0" encoding="UTF-8"?>
<Publication_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3">
  <TimeSeries>
    <currency_Unit.name>EUR</currency_Unit.name>
    <price_Measure_Unit.name>MWH</price_Measure_Unit.name>
    <Period>
      <timeInterval><start>2024-09-01T22:00Z</start><end>2024-09-02T00:00Z</end></timeInterval>
      <resolution>PT60M</resolution>
      <Point><position>1</position><price.amount>80.5</price.amount></Point>
      <Point><position>2</position><price.amount>-3</price.amount></Point>
    </Period>
  </TimeSeries>
</Publication_MarketDocument>"#;
    let seeds = with(
        recorded(&[
            "entsoe-a44-nl-2024-09-02-pt60m.xml",
            "entsoe-a44-de-lu-2024-10-06-pt60m-and-pt15m-series.xml",
        ]),
        &[inline],
    );
    survives("ENTSO-E", &|s| entsoe::parse(s).map(drop), &seeds);
}

#[test]
fn nordpool_survives_any_input_96_cases() {
    let seeds = recorded(&["nordpool-dayaheadpriceindices-fi-2025-05-07-60min.json"]);
    let inline = r#"{"deliveryDateCET":"2025-05-07","version":1,"updatedAt":"2025-05-06T11:00:00Z","market":"DayAhead","indexNames":["FI"],"currency":"EUR","resolutionInMinutes":60,"areaStates":[{"state":"Final","areas":["FI"]}],"multiIndexEntries":[{"deliveryStart":"2025-05-06T22:00:00Z","deliveryEnd":"2025-05-06T23:00:00Z","entryPerArea":{"FI":1.5}},{"deliveryStart":"2025-05-06T23:00:00Z","deliveryEnd":"2025-05-07T00:00:00Z","entryPerArea":{"FI":-0.2}}]}"#;
    let seeds = if seeds.is_empty() {
        vec![inline.to_string()]
    } else {
        seeds
    };
    survives("Nord Pool", &|s| nordpool::parse(s, "FI").map(drop), &seeds);
}

#[test]
fn awattar_survives_any_input_96_cases() {
    let inline = r#"{"object":"list","data":[{"start_timestamp":1698307200000,"end_timestamp":1698310800000,"marketprice":140,"unit":"Eur/MWh"},{"start_timestamp":1698310800000,"end_timestamp":1698314400000,"marketprice":-1.5,"unit":"Eur/MWh"}],"url":"/at/v1/marketdata"}"#;
    let seeds = with(
        recorded(&["awattar-marketdata-de-2023-10-26-default-window.json"]),
        &[inline],
    );
    survives("aWATTar", &|s| awattar::parse(s).map(drop), &seeds);
}

#[test]
fn tibber_survives_any_input_96_cases() {
    let inline = r#"{"data":{"viewer":{"homes":[{"currentSubscription":{"priceInfo":{"today":[{"total":0.25,"energy":0.2,"tax":0.05,"startsAt":"2025-01-04T00:00:00.000+01:00","currency":"EUR"},{"total":0.3,"energy":0.24,"tax":0.06,"startsAt":"2025-01-04T01:00:00.000+01:00","currency":"EUR"}],"tomorrow":[]}}}]}}}"#;
    let seeds = with(
        recorded(&["tibber-priceinfo-hourly-2025-01-04.json"]),
        &[inline],
    );
    survives("Tibber", &|s| tibber::parse(s, 0).map(drop), &seeds);
}

#[test]
fn octopus_survives_any_input_96_cases() {
    let seeds = vec![
        common::own("octopus-agile-page1.json"),
        common::own("octopus-agile-page2.json"),
    ];
    survives(
        "Octopus",
        &|s| octopus::parse_page(s, true).map(drop),
        &seeds,
    );
}

#[test]
fn energidataservice_survives_any_input_96_cases() {
    let seeds = vec![common::own("energidataservice-dk1-2025-10-01-15min.json")];
    survives(
        "Energi Data Service",
        &|s| energidataservice::parse(s, "DK1", "EUR").map(drop),
        &seeds,
    );
}

#[test]
fn csv_survives_any_input_96_cases() {
    let seeds = vec![
        common::own("contract-2026.csv"),
        "start;end;price\n2026-01-01T00:00:00Z;2026-01-01T01:00:00Z;0,25\n".to_string(),
    ];
    survives(
        "CSV",
        &|s| csv::parse(s, Unit::PerKwh, Some("EUR")).map(drop),
        &seeds,
    );
}

#[test]
fn generic_json_survives_any_input_96_cases() {
    let mapping = Mapping {
        items: "data.rows".into(),
        start: "from".into(),
        end: Some("to".into()),
        duration: None,
        duration_secs: None,
        price: "p.value".into(),
        unit: "EUR/MWh".into(),
        time_format: TimeFormat::Rfc3339,
    };
    let seeds = vec![
        r#"{"data":{"rows":[{"from":"2026-01-01T00:00:00Z","to":"2026-01-01T01:00:00Z","p":{"value":81.5}},{"from":"2026-01-01T01:00:00Z","to":"2026-01-01T02:00:00Z","p":{"value":"-2.25"}}]}}"#.to_string(),
    ];
    survives(
        "generic JSON",
        &|s| generic::parse(s, &mapping).map(drop),
        &seeds,
    );
}

#[test]
fn electricitymaps_survives_any_input_96_cases() {
    let inline = r#"{"zone":"DE","history":[{"zone":"DE","carbonIntensity":350,"datetime":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T01:00:00.000Z","isEstimated":false},{"zone":"DE","carbonIntensity":340,"datetime":"2026-01-01T01:00:00.000Z","updatedAt":"2026-01-01T02:00:00.000Z","isEstimated":true}]}"#;
    let seeds = with(
        recorded(&[
            "electricitymaps-carbon-intensity-history-de-24h.json",
            "electricitymaps-carbon-intensity-latest-us-car-duk.json",
            "electricitymaps-v3-home-assistant-endpoint-de.json",
        ]),
        &[inline],
    );
    survives(
        "Electricity Maps",
        &|s| carbon::electricitymaps(s).map(drop),
        &seeds,
    );
}

#[test]
fn electricitymaps_latest_survives_any_input_96_cases() {
    let inline = r#"{"zone":"DE","carbonIntensity":302,"datetime":"2026-01-01T10:00:00.000Z","updatedAt":"2026-01-01T10:05:00.000Z","isEstimated":true}"#;
    let seeds = with(
        recorded(&["electricitymaps-carbon-intensity-latest-us-car-duk.json"]),
        &[inline],
    );
    survives(
        "Electricity Maps latest",
        &|s| carbon::electricitymaps_latest(s).map(drop),
        &seeds,
    );
}

#[test]
fn electricitymaps_history_survives_any_input_96_cases() {
    let inline = r#"{"zone":"DE","history":[{"zone":"DE","carbonIntensity":350,"datetime":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T01:00:00.000Z","isEstimated":false}]}"#;
    let seeds = with(
        recorded(&["electricitymaps-carbon-intensity-history-de-24h.json"]),
        &[inline],
    );
    survives(
        "Electricity Maps history",
        &|s| carbon::electricitymaps_history(s).map(drop),
        &seeds,
    );
}

#[test]
fn uk_carbon_intensity_survives_any_input_96_cases() {
    let inline = r#"{"data":[{"from":"2026-01-01T00:00Z","to":"2026-01-01T00:30Z","intensity":{"forecast":180,"actual":175,"index":"moderate"}},{"from":"2026-01-01T00:30Z","to":"2026-01-01T01:00Z","intensity":{"forecast":170,"actual":null,"index":"moderate"}}]}"#;
    let seeds = with(
        recorded(&[
            "carbonintensity-uk-national-intensity-2017-10-01.json",
            "carbonintensity-uk-regional-postcode-bh1-fw24h-2020-05-19.json",
        ]),
        &[inline],
    );
    survives("UK Carbon Intensity", &|s| carbon::uk(s).map(drop), &seeds);
}

/// Bare JSON values and empty containers: the smallest inputs a fuzzer finds
/// first, and each error must still say where (here: the body as a whole).
#[test]
fn a_bare_value_instead_of_a_response_is_named_as_the_body() {
    let parsers: &[(&str, Parser)] = &[
        ("ENTSO-E", &|s| entsoe::parse(s).map(drop)),
        ("Nord Pool", &|s| nordpool::parse(s, "FI").map(drop)),
        ("aWATTar", &|s| awattar::parse(s).map(drop)),
        ("Tibber", &|s| tibber::parse(s, 0).map(drop)),
        ("Octopus", &|s| octopus::parse_page(s, true).map(drop)),
        ("Energi Data Service", &|s| {
            energidataservice::parse(s, "DK1", "EUR").map(drop)
        }),
        ("Electricity Maps", &|s| {
            carbon::electricitymaps(s).map(drop)
        }),
        ("Electricity Maps latest", &|s| {
            carbon::electricitymaps_latest(s).map(drop)
        }),
        ("Electricity Maps history", &|s| {
            carbon::electricitymaps_history(s).map(drop)
        }),
        ("UK Carbon Intensity", &|s| carbon::uk(s).map(drop)),
    ];
    for (name, parse) in parsers {
        for input in ["0", "1", "true", "null", "\"x\"", "[]", "{}", ""] {
            if let Err(e) = parse(input) {
                assert!(
                    error_is_clear(&e),
                    "{name}: input {input:?}: an error that names no place: {e}"
                );
            }
        }
    }
}

#[test]
fn mutations_change_the_input() {
    let base = b"0123456789";
    assert_eq!(apply(base, &[Mutation::Truncate(3)]), b"012");
    assert_eq!(apply(base, &[Mutation::Delete(2, 3)]), b"0156789");
    assert_eq!(
        apply(base, &[Mutation::Insert(1, b"ab".to_vec())]),
        b"0ab123456789"
    );
    assert_eq!(apply(base, &[Mutation::Flip(12, b'x')]), b"01x3456789");
    assert_eq!(apply(base, &[Mutation::Splice(0, 7, 2)]), b"780123456789");
    assert!(names_a_place("line 3: bad") && names_a_place("field `x`"));
    assert!(names_a_place("a Point has no price.amount"));
    assert!(!names_a_place("response does not parse: bad"));
    assert!(!names_a_place("Octopus: a rate is wrong"));
}

#[test]
fn tibber_errors_name_the_entry() {
    let entry = |at: &str, cur: &str| {
        format!(r#"{{"total":0.25,"energy":0.2,"tax":0.05,"startsAt":"{at}","currency":"{cur}"}}"#)
    };
    let body = |today: &[String], tomorrow: &[String]| {
        format!(
            r#"{{"data":{{"viewer":{{"homes":[{{"currentSubscription":{{"priceInfo":{{"today":[{}],"tomorrow":[{}]}}}}}}]}}}}}}"#,
            today.join(","),
            tomorrow.join(",")
        )
    };
    let a = entry("2025-01-04T00:00:00.000+01:00", "EUR");
    let e = tibber::parse(
        &body(
            std::slice::from_ref(&a),
            &[entry("2025-01-05T00:00:00.000+01:00", "SEK")],
        ),
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("priceInfo.tomorrow[0]"), "{e}");
    let e = tibber::parse(&body(&[a, entry("yesterday", "EUR")], &[]), 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("priceInfo.today[1].startsAt"), "{e}");
}
