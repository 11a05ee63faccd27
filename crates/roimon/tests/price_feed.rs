//! The live price feed end to end: the real daemon against a scripted local
//! price server that fails in every way a publisher does (500, 429 with
//! Retry-After, garbage, a stalled body, a token echoed back). Costing must go
//! on throughout, at the fallback, and the schedule must survive a restart
//! without network. Also `roimon prices` against recorded real responses.

mod common;

use common::mock::{Mock, Step};
use common::{BIN, Daemon, value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// An aWATTar body: hourly slots from 3 h ago to 27 h ahead at `eur_mwh`.
fn awattar_body(eur_mwh: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let h = 3_600_000;
    let first = now - now % h - 3 * h;
    let data: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "{{\"start_timestamp\":{},\"end_timestamp\":{},\"marketprice\":{eur_mwh},\"unit\":\"Eur/MWh\"}}",
                first + i * h,
                first + (i + 1) * h
            )
        })
        .collect();
    format!(
        "{{\"object\":\"list\",\"data\":[{}],\"url\":\"/de/v1/marketdata\"}}",
        data.join(",")
    )
}

fn config(dir: &Path, price: &str) -> std::path::PathBuf {
    let cfg = format!(
        "[sampling]\ninterval_secs = 0.2\n[gpu]\nsource = \"none\"\n[host]\npower = \"model\"\nidle_watts = 360.0\nmax_watts = 360.0\nrapl_root = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[state]\ndir = \"{}\"\ncheckpoint_interval_secs = 0.5\n{price}",
        dir.join("no-rapl").display(),
        dir.join("state").display()
    );
    let path = dir.join("roimon.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

const FALLBACK: &str =
    "roimon_electricity_price_per_kwh{basis=\"fallback\",currency=\"EUR\",source=\"awattar\"}";
const LIVE: &str =
    "roimon_electricity_price_per_kwh{basis=\"source\",currency=\"EUR\",source=\"awattar\"}";
const ENERGY_COST: &str = "roimon_cost_total{component=\"energy\",currency=\"EUR\"}";
const PRICE_ERRORS: &str = "roimon_collector_errors_total{collector=\"price\"}";

#[test]
fn failing_publisher_never_stops_costing_and_the_schedule_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mock = Mock::start(vec![
        Step::Status(500, "{\"error\":\"boom\"}".into(), None),
        Step::Status(429, "slow down".into(), Some("1".into())),
        Step::Ok("<html>not json".into()),
        Step::StallBody(Duration::from_secs(4)),
        Step::Status(503, "maintenance".into(), None),
        Step::Ok(awattar_body(200.0)),
    ]);
    // Hold the good answer back until the failures have been observed.
    let good = mock.clone();
    let price = format!(
        "[price]\nsource = \"awattar\"\ncurrency = \"EUR\"\nprice_per_kwh = 0.5\nbase_url = \"{}\"\ntimeout_secs = 1.0\nretries = 2\nretry_initial_secs = 0.05\nretry_max_secs = 5.0\nrefresh_secs = 30.0\n",
        mock.url
    );
    let config = config(tmp.path(), &price);
    let d = Daemon::start(&config, &[]);

    // While the publisher fails: errors are counted, the fallback prices
    // energy, and the cost keeps rising.
    let m = d.wait_metrics("a price failure on the fallback", |m| {
        value(m, PRICE_ERRORS).unwrap_or(0.0) >= 1.0 && value(m, FALLBACK) == Some(0.5)
    });
    assert_eq!(
        value(&m, "roimon_collector_up{collector=\"price\"}"),
        Some(0.0)
    );
    let c0 = value(&m, ENERGY_COST).unwrap_or(0.0);
    d.wait_metrics("energy cost rising on the fallback", |m| {
        value(m, ENERGY_COST).unwrap_or(0.0) > c0
    });

    // Then the good schedule arrives and prices at 0.2 EUR/kWh.
    let m = d.wait_metrics("the fetched price in force", |m| {
        value(m, LIVE) == Some(0.2)
    });
    assert!(value(&m, FALLBACK).is_none(), "one basis at a time");
    assert!(
        value(
            &m,
            "roimon_electricity_price_age_seconds{source=\"awattar\"}"
        )
        .unwrap()
            < 10.0
    );
    assert!(
        value(
            &m,
            "roimon_electricity_price_known_until_timestamp_seconds{source=\"awattar\"}"
        )
        .unwrap()
            > (chrono::Utc::now().timestamp() + 20 * 3600) as f64
    );
    assert_eq!(
        value(&m, "roimon_collector_up{collector=\"price\"}"),
        Some(1.0)
    );
    // Every failure kind was tried before the success: 500, 429, garbage
    // (one fetch: the 429 is retried within it), then stall (timeout), 503,
    // 200 (the next fetch).
    let seen = good.seen.lock().unwrap().clone();
    assert!(seen.len() >= 6, "{} requests", seen.len());
    assert!(
        seen[0].line.starts_with("GET /v1/marketdata?start="),
        "{}",
        seen[0].line
    );
    // Retry-After: 1 on the 429 was honoured before the next try (the
    // backoff alone would be under 0.2 s).
    let gap = seen[2].at - seen[1].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After ignored: {gap:?}"
    );
    // The first fetch (500, 429, garbage) failed and was counted; the second
    // survived a stalled body and a 503 by retrying within the fetch.
    assert!(value(&m, PRICE_ERRORS).unwrap() >= 1.0);
    // Cost stayed between the fetched and the fallback price for all energy.
    let kwh = value(&m, "roimon_facility_energy_joules_total").unwrap() / 3.6e6;
    let cost = value(&m, ENERGY_COST).unwrap();
    assert!(
        cost >= kwh * 0.2 * 0.999 && cost <= kwh * 0.5 * 1.001,
        "{cost} for {kwh} kWh"
    );

    // The schedule is kept in the state dir.
    let kept = tmp.path().join("state/prices.json");
    assert!(kept.exists());
    let errors_before = value(&d.metrics(), PRICE_ERRORS).unwrap();
    let (status, _) = d.stop("TERM");
    assert_eq!(status.code(), Some(0));

    // Restart with the publisher down for good: the kept schedule prices.
    mock.set(vec![Step::Status(500, "down".into(), None)]);
    let d = Daemon::start(&config, &[]);
    let m = d.wait_metrics("kept schedule in force, new failures counted", |m| {
        value(m, LIVE) == Some(0.2) && value(m, PRICE_ERRORS).unwrap_or(0.0) > errors_before
    });
    assert!(value(&m, FALLBACK).is_none());
    let (status, _) = d.stop("TERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn tokens_never_reach_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let token = "sekrit-token-6f1e2d";
    // ENTSO-E puts the token in the query string; the server echoes it back.
    // First the token echoed in full, then across the 200-character cut of
    // error texts (redacted before the cut: not even a prefix survives).
    let mock = Mock::start(vec![Step::Echo(401, 0), Step::Echo(401, 190)]);
    let price = format!(
        "[price]\nsource = \"entsoe\"\narea = \"10YNL----------L\"\ntoken_env = \"ROIMON_TEST_ENTSOE_TOKEN\"\ncurrency = \"EUR\"\nprice_per_kwh = 0.3\nbase_url = \"{}\"\ntimeout_secs = 1.0\nretries = 0\nretry_initial_secs = 0.05\n",
        mock.url
    );
    let config = config(tmp.path(), &price);
    let out = Command::new(BIN)
        .args(["prices", "--config"])
        .arg(&config)
        .env("ROIMON_TEST_ENTSOE_TOKEN", token)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let seen = mock.seen.lock().unwrap().clone();
    assert!(
        seen[0].line.contains(token),
        "the token was sent: {}",
        seen[0].line
    );
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("[REDACTED]"), "{err}");
    assert!(!err.contains(token), "token leaked: {err}");

    // The daemon's log too.
    let d = Daemon::start_env(&config, &[], &[("ROIMON_TEST_ENTSOE_TOKEN", token)]);
    d.wait_metrics("a price failure", |m| {
        value(m, PRICE_ERRORS).unwrap_or(0.0) >= 1.0
    });
    let (_, log) = d.stop("TERM");
    let log = log.join("\n");
    assert!(log.contains("price fetch failed"), "{log}");
    assert!(log.contains("xxxxGET /api?s"), "{log}");
    assert!(
        !log.contains("sekrit"),
        "token (or part of it) leaked into the log: {log}"
    );
}

/// An aWATTar body of `n` slots of `step_ms` from `first_ms` at `eur_mwh`.
fn awattar_slots(first_ms: i64, step_ms: i64, n: i64, eur_mwh: f64) -> String {
    let data: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{\"start_timestamp\":{},\"end_timestamp\":{},\"marketprice\":{eur_mwh},\"unit\":\"Eur/MWh\"}}",
                first_ms + i * step_ms,
                first_ms + (i + 1) * step_ms
            )
        })
        .collect();
    format!(
        "{{\"object\":\"list\",\"data\":[{}],\"url\":\"/de/v1/marketdata\"}}",
        data.join(",")
    )
}

const Y9999_MS: i64 = 253_370_764_800_000;

#[test]
fn prices_command_rejects_one_second_slots_and_oversized_fetches() {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let hour_ms = 3_600_000;
    let today = now_ms - now_ms % (24 * hour_ms);
    for (body, expected) in [
        // One-second slots.
        (
            awattar_slots(today, 1000, 2000, 90.0),
            "shorter than the 300 s",
        ),
        // The 25 MB body of three days of one-second slots a broken
        // publisher once sent: refused on its size, before it is parsed.
        (
            awattar_slots(today, 1000, 259_200, 90.0),
            "JSON objects and arrays, more than the 80000 read from one fetch (10000 slots at most)",
        ),
        // More slots than one fetch may hold, each a plausible hour.
        (
            awattar_slots(today - 9000 * hour_ms, hour_ms, 10_001, 90.0),
            "more than the 10000",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mock = Mock::start(vec![Step::Ok(body)]);
        let price = format!(
            "[price]\nsource = \"awattar\"\ncurrency = \"EUR\"\nbase_url = \"{}\"\nretries = 0\n",
            mock.url
        );
        let out = Command::new(BIN)
            .args(["prices", "--config"])
            .arg(config(tmp.path(), &price))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn slots_far_from_now_are_dropped_and_a_fetch_of_only_those_is_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let hour_ms = 3_600_000;
    let this_hour = now_ms - now_ms % hour_ms;
    // Good hourly slots around now, then the same body with a year-9999 and
    // a 1970 slot added.
    let good = awattar_slots(this_hour - 3 * hour_ms, hour_ms, 30, 200.0);
    let mixed = good.replace(
        "\"data\":[",
        &format!(
            "\"data\":[{{\"start_timestamp\":{Y9999_MS},\"end_timestamp\":{},\"marketprice\":1.0,\"unit\":\"Eur/MWh\"}},{{\"start_timestamp\":0,\"end_timestamp\":{hour_ms},\"marketprice\":1.0,\"unit\":\"Eur/MWh\"}},",
            Y9999_MS + hour_ms
        ),
    );
    let mock = Mock::start(vec![
        Step::Ok(awattar_slots(Y9999_MS, hour_ms, 48, 100.0)),
        Step::Ok(awattar_slots(0, hour_ms, 48, 100.0)),
        // Held back, so the failures are seen before it arrives.
        Step::Delay(Duration::from_secs(2), Box::new(Step::Ok(mixed))),
    ]);
    let price = format!(
        "[price]\nsource = \"awattar\"\ncurrency = \"EUR\"\nprice_per_kwh = 0.5\nbase_url = \"{}\"\ntimeout_secs = 5.0\nretries = 0\nretry_initial_secs = 0.05\nretry_max_secs = 5.0\nrefresh_secs = 30.0\n",
        mock.url
    );
    let config = config(tmp.path(), &price);
    let d = Daemon::start(&config, &[]);
    // Only year-9999 slots, then only 1970 slots: two failed fetches, the
    // fallback in force, nothing kept.
    let m = d.wait_metrics("two failed fetches on the fallback", |m| {
        value(m, PRICE_ERRORS).unwrap_or(0.0) >= 2.0 && value(m, FALLBACK) == Some(0.5)
    });
    assert!(value(&m, LIVE).is_none());
    // Then the mixed body: the good slots price, the far ones are dropped,
    // and the schedule is known until tomorrow, not until 9999.
    let m = d.wait_metrics("the usable slots in force", |m| value(m, LIVE) == Some(0.2));
    let until = value(
        &m,
        "roimon_electricity_price_known_until_timestamp_seconds{source=\"awattar\"}",
    )
    .unwrap();
    assert_eq!(until as i64 * 1000, this_hour + 27 * hour_ms);
    let kept = std::fs::read_to_string(tmp.path().join("state/prices.json")).unwrap();
    assert!(!kept.contains("9999-") && !kept.contains("1970-"), "{kept}");
    // Every dropped slot is counted in a metric too: 48 + 48 + 2.
    d.wait_metrics("dropped slots counted", |m| {
        value(m, "roimon_feed_slots_dropped_total{collector=\"price\"}") == Some(98.0)
    });
    let (status, log) = d.stop("TERM");
    assert_eq!(status.code(), Some(0));
    let log = log.join("\n");
    assert!(
        log.contains("none of the 48 slots fetched is in the window"),
        "{log}"
    );
    // Every dropped slot is counted: 48 + 48 + 2.
    assert!(log.contains("\"dropped\":2,\"dropped_total\":98"), "{log}");
}

/// A recorded response, or `None` when fixture tests skip (see
/// [`common::fixtures_dir`]).
fn fixture(name: &str) -> Option<String> {
    let path = common::fixtures_dir()?.join("prices").join(name);
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn prices_command_prints_the_real_entsoe_day_and_fails_clearly_without_data() {
    let Some(day) = fixture("entsoe-a44-nl-2024-09-02-pt60m.xml") else {
        return;
    };
    let Some(ack) = fixture("entsoe-acknowledgement-no-matching-data.xml") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mock = Mock::start(vec![Step::Ok(day)]);
    let price = format!(
        "[price]\nsource = \"entsoe\"\narea = \"10YNL----------L\"\ntoken_file = \"{}\"\ncurrency = \"EUR\"\nprice_per_kwh = 0.3\nbase_url = \"{}\"\nvat = 0.21\n[[price.adders]]\nname = \"energy_tax\"\nper_kwh = 0.1\n",
        tmp.path().join("token").display(),
        mock.url
    );
    std::fs::write(tmp.path().join("token"), "file-token\n").unwrap();
    let config = config(tmp.path(), &price);
    let started = Instant::now();
    let out = Command::new(BIN)
        .args([
            "prices",
            "--json",
            "--from",
            "2024-09-01T22:00:00Z",
            "--to",
            "2024-09-02T22:00:00Z",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 24);
    assert_eq!(rows[0]["start"], "2024-09-01T22:00:00Z");
    assert_eq!(rows[0]["end"], "2024-09-01T23:00:00Z");
    assert_eq!(rows[23]["end"], "2024-09-02T22:00:00Z");
    assert_eq!(rows[0]["currency"], "EUR");
    // Market prices 81.02..255.53 EUR/MWh, plus 0.10 EUR/kWh tax, plus 21 % VAT.
    let prices: Vec<f64> = rows
        .iter()
        .map(|r| r["price_per_kwh"].as_f64().unwrap())
        .collect();
    let min = prices.iter().cloned().fold(f64::MAX, f64::min);
    let max = prices.iter().cloned().fold(f64::MIN, f64::max);
    assert!((min - (0.08102 + 0.1) * 1.21).abs() < 1e-9, "{min}");
    assert!((max - (0.25553 + 0.1) * 1.21).abs() < 1e-9, "{max}");
    let seen = mock.seen.lock().unwrap().clone();
    assert!(
        seen[0].line.contains("documentType=A44")
            && seen[0].line.contains("in_Domain=10YNL----------L")
            && seen[0].line.contains("periodStart=202409012200")
            && seen[0].line.contains("periodEnd=202409022200"),
        "{}",
        seen[0].line
    );

    // The "no matching data" acknowledgement (HTTP 200): exit 1, plainly said.
    mock.set(vec![Step::Ok(ack)]);
    let out = Command::new(BIN)
        .args([
            "prices",
            "--from",
            "2024-09-01",
            "--to",
            "2024-09-02",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no prices") && err.contains("No matching data"),
        "{err}"
    );
}

fn half_hours_uk(g: u32) -> String {
    let now = chrono::Utc::now();
    let start =
        now - chrono::Duration::seconds(now.timestamp() % 1800) - chrono::Duration::hours(1);
    let slots: Vec<String> = (0..50)
        .map(|i| {
            let a = start + chrono::Duration::minutes(30 * i);
            let b = a + chrono::Duration::minutes(30);
            format!(
                "{{\"from\":\"{}\",\"to\":\"{}\",\"intensity\":{{\"forecast\":{g},\"index\":\"moderate\"}},\"generationmix\":[{{\"fuel\":\"gas\",\"perc\":40.0}}]}}",
                a.format("%Y-%m-%dT%H:%MZ"),
                b.format("%Y-%m-%dT%H:%MZ")
            )
        })
        .collect();
    format!(
        "{{\"data\":{{\"regionid\":11,\"dnoregion\":\"SSE South\",\"shortname\":\"South England\",\"postcode\":\"BH1\",\"data\":[{}]}}}}",
        slots.join(",")
    )
}

#[test]
fn uk_carbon_intensity_turns_energy_into_emissions_and_carbon_cost() {
    let tmp = tempfile::tempdir().unwrap();
    let mock = Mock::start(vec![
        Step::Status(503, "busy".into(), Some("0".into())),
        Step::Ok(half_hours_uk(200)),
    ]);
    let extra = format!(
        "[price]\nprice_per_kwh = 0.2\n[carbon]\nsource = \"uk\"\npostcode = \"BH1\"\ngrams_per_kwh = 500.0\nprice_per_tonne = 100.0\nbase_url = \"{}\"\nretries = 2\nretry_initial_secs = 0.05\n",
        mock.url
    );
    let config = config(tmp.path(), &extra);
    let d = Daemon::start(&config, &[]);
    let live = "roimon_grid_carbon_intensity_grams_per_kwh{basis=\"source\",source=\"uk\"}";
    let m = d.wait_metrics("UK intensity in force and emissions counted", |m| {
        value(m, live) == Some(200.0)
            && value(m, "roimon_emissions_grams_total").unwrap_or(0.0) > 0.0
    });
    let seen = mock.seen.lock().unwrap().clone();
    assert!(
        seen[0].line.contains("/regional/intensity/")
            && seen[0].line.contains("/fw24h/postcode/BH1"),
        "{}",
        seen[0].line
    );
    // The 503 was retried within one fetch: no error counted.
    assert_eq!(
        value(&m, "roimon_collector_errors_total{collector=\"carbon\"}"),
        Some(0.0)
    );
    // Emissions lie between the fallback and the live intensity for all energy
    // (the fallback priced the first ticks), and the carbon cost is emissions
    // × 100 EUR/t, attributed in full to the node's (GPU-less) row.
    let kwh = value(&m, "roimon_facility_energy_joules_total").unwrap() / 3.6e6;
    let grams = value(&m, "roimon_emissions_grams_total").unwrap();
    assert!(
        grams >= kwh * 200.0 * 0.999 && grams <= kwh * 500.0 * 1.001,
        "{grams} g for {kwh} kWh"
    );
    let carbon = value(
        &m,
        "roimon_cost_total{component=\"carbon\",currency=\"EUR\"}",
    )
    .unwrap();
    assert!(
        (carbon - grams / 1e6 * 100.0).abs() <= 1e-9 * carbon.max(1e-12),
        "{carbon}"
    );
    assert!(
        (value(&m, "roimon_gpu_emissions_grams_total{gpu_uuid=\"none\",team=\"unallocated\",workload=\"unallocated\"}")
            .unwrap()
            - grams)
            .abs()
            < 1e-9 * grams
    );
    common::promtool_check_metrics(&m);
    let (status, _) = d.stop("TERM");
    assert_eq!(status.code(), Some(0));
    assert!(tmp.path().join("state/carbon.json").exists());
}

#[test]
fn electricity_maps_token_goes_in_the_auth_token_header() {
    let tmp = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let hour = now - chrono::Duration::seconds(now.timestamp() % 3600);
    let history: Vec<String> = (1..24)
        .rev()
        .map(|h| {
            format!(
                "{{\"zone\":\"DE\",\"carbonIntensity\":450,\"datetime\":\"{}\",\"isEstimated\":false,\"estimationMethod\":null}}",
                (hour - chrono::Duration::hours(h)).format("%Y-%m-%dT%H:%M:%S%.3fZ")
            )
        })
        .collect();
    let history = format!("{{\"zone\":\"DE\",\"history\":[{}]}}", history.join(","));
    let latest = format!(
        "{{\"zone\":\"DE\",\"carbonIntensity\":380,\"datetime\":\"{}\",\"updatedAt\":\"{}\",\"createdAt\":\"{}\",\"emissionFactorType\":\"lifecycle\",\"isEstimated\":true,\"estimationMethod\":\"TIME_SLICER_AVERAGE\"}}",
        hour.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        hour.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        hour.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    let mock = Mock::start(vec![Step::Ok(history), Step::Ok(latest)]);
    let extra = format!(
        "[carbon]\nsource = \"electricitymaps\"\nzone = \"DE\"\ntoken_env = \"ROIMON_TEST_EM_TOKEN\"\ngrams_per_kwh = 500.0\nbase_url = \"{}\"\n",
        mock.url
    );
    let config = config(tmp.path(), &extra);
    let d = Daemon::start_env(&config, &[], &[("ROIMON_TEST_EM_TOKEN", "em-token-77")]);
    d.wait_metrics("Electricity Maps intensity in force", |m| {
        value(
            m,
            "roimon_grid_carbon_intensity_grams_per_kwh{basis=\"source\",source=\"electricitymaps\"}",
        ) == Some(380.0)
    });
    let seen = mock.seen.lock().unwrap().clone();
    assert!(
        seen[0]
            .line
            .contains("/v3/carbon-intensity/history?zone=DE"),
        "{}",
        seen[0].line
    );
    assert!(
        seen[1].line.contains("/v3/carbon-intensity/latest?zone=DE"),
        "{}",
        seen[1].line
    );
    for s in &seen[..2] {
        assert!(
            s.headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case("auth-token: em-token-77")),
            "{:?}",
            s.headers
        );
    }
    let (_, log) = d.stop("TERM");
    assert!(!log.join("\n").contains("em-token-77"));
}

#[test]
fn an_endless_chunked_body_is_refused_and_a_redirect_to_another_host_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let big = Mock::start(vec![Step::Chunked(33 << 20)]);
    let price = format!(
        "[price]\nsource = \"awattar\"\ncurrency = \"EUR\"\nbase_url = \"{}\"\nretries = 0\n",
        big.url
    );
    let out = Command::new(BIN)
        .args(["prices", "--config"])
        .arg(config(tmp.path(), &price))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("larger than 33554432 bytes"), "{err}");

    // A bearer token must not follow a redirect to another origin.
    let elsewhere = Mock::start(vec![Step::Ok("[]".into())]);
    let redirecting = Mock::start(vec![Step::Redirect(format!("{}/steal", elsewhere.url))]);
    let price = format!(
        "[price]\nsource = \"json\"\ncurrency = \"EUR\"\nurl = \"{}/prices\"\ntoken_env = \"ROIMON_TEST_JSON_TOKEN\"\nretries = 0\n[price.mapping]\nstart = \"start\"\nprice = \"price\"\nunit = \"EUR/kWh\"\n",
        redirecting.url
    );
    let tmp2 = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["prices", "--config"])
        .arg(config(tmp2.path(), &price))
        .env("ROIMON_TEST_JSON_TOKEN", "json-token-1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("redirect"), "{err}");
    assert_eq!(elsewhere.count(), 0, "the redirect was followed");
    let seen = redirecting.seen.lock().unwrap().clone();
    assert!(
        seen[0]
            .headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Bearer json-token-1")),
        "{:?}",
        seen[0].headers
    );
}

fn own_fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../roimon-price/tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `roimon prices --json` for one source against the mock; the rows.
fn prices_json(
    price_toml: &str,
    from: &str,
    to: &str,
    env: &[(&str, &str)],
) -> Vec<serde_json::Value> {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["prices", "--json", "--from", from, "--to", to, "--config"])
        .arg(config(tmp.path(), price_toml))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{price_toml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn price_range(rows: &[serde_json::Value]) -> (f64, f64) {
    rows.iter()
        .map(|r| r["price_per_kwh"].as_f64().unwrap())
        .fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p), hi.max(p)))
}

#[test]
fn prices_command_reads_every_listed_source_through_its_real_request() {
    let (Some(np), Some(aw), Some(tb)) = (
        fixture("nordpool-dayaheadpriceindices-fi-2025-05-07-60min.json"),
        fixture("awattar-marketdata-de-2023-10-26-default-window.json"),
        fixture("tibber-priceinfo-hourly-2025-01-04.json"),
    ) else {
        return;
    };

    // Nord Pool: one request per CET delivery day, EUR/MWh → EUR/kWh.
    let m = Mock::start(vec![Step::Ok(np)]);
    let rows = prices_json(
        &format!(
            "[price]\nsource = \"nordpool\"\narea = \"FI\"\ncurrency = \"EUR\"\nbase_url = \"{}\"\n",
            m.url
        ),
        "2025-05-06T22:00:00Z",
        "2025-05-07T22:00:00Z",
        &[],
    );
    assert_eq!(rows.len(), 24);
    assert_eq!(price_range(&rows), (0.01259, 0.15878));
    let line = m.seen.lock().unwrap()[0].line.clone();
    assert!(
        line.contains(
            "/api/DayAheadPriceIndices?date=2025-05-07&market=DayAhead&indexNames=FI&currency=EUR"
        ),
        "{line}"
    );
    assert_eq!(m.count(), 1, "only the one CET day of the window");

    // aWATTar: epoch milliseconds in the query.
    let m = Mock::start(vec![Step::Ok(aw)]);
    let rows = prices_json(
        &format!(
            "[price]\nsource = \"awattar\"\ncurrency = \"EUR\"\nbase_url = \"{}\"\n",
            m.url
        ),
        "2023-10-26T09:00:00Z",
        "2023-10-26T22:00:00Z",
        &[],
    );
    assert_eq!(rows.len(), 13);
    assert_eq!(rows[0]["price_per_kwh"], 0.14);
    assert!(
        m.seen.lock().unwrap()[0]
            .line
            .contains("/v1/marketdata?start=1698310800000&end=1698357600000")
    );

    // Tibber: a GraphQL POST with the bearer token; taxes are included.
    let m = Mock::start(vec![Step::Ok(tb)]);
    let rows = prices_json(
        &format!(
            "[price]\nsource = \"tibber\"\ncurrency = \"EUR\"\ntoken_env = \"ROIMON_TEST_TIBBER\"\nbase_url = \"{}\"\n",
            m.url
        ),
        "2025-01-03T23:00:00Z",
        "2025-01-04T23:00:00Z",
        &[("ROIMON_TEST_TIBBER", "tibber-t")],
    );
    assert_eq!(rows.len(), 24);
    assert_eq!(price_range(&rows), (0.2819, 0.3545));
    let seen = m.seen.lock().unwrap()[0].clone();
    assert!(seen.line.starts_with("POST /v1-beta/gql"), "{}", seen.line);
    assert!(seen.body.contains("priceInfo"), "{}", seen.body);
    assert!(
        seen.headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Bearer tibber-t"))
    );

    // Octopus: two pages, the second fetched through the configured base;
    // pence → pounds, VAT included.
    let m = Mock::start(vec![
        Step::Ok(own_fixture("octopus-agile-page1.json")),
        Step::Ok(own_fixture("octopus-agile-page2.json")),
    ]);
    let rows = prices_json(
        &format!(
            "[price]\nsource = \"octopus\"\ncurrency = \"GBP\"\nproduct = \"AGILE-24-10-01\"\nregion = \"H\"\nbase_url = \"{}\"\n",
            m.url
        ),
        "2025-05-12T17:00:00Z",
        "2025-05-13T23:00:00Z",
        &[],
    );
    assert_eq!(rows.len(), 60);
    assert!(
        rows.windows(2).all(|w| w[0]["end"] == w[1]["start"]),
        "contiguous half-hours"
    );
    assert!(
        price_range(&rows).0 < 0.0,
        "Agile's negative prices are kept"
    );
    let seen = m.seen.lock().unwrap().clone();
    assert!(seen[0].line.contains("/v1/products/AGILE-24-10-01/electricity-tariffs/E-1R-AGILE-24-10-01-H/standard-unit-rates/?period_from=2025-05-12T17:00Z"), "{}", seen[0].line);
    assert!(
        seen[1].line.starts_with("GET /v1/products/AGILE-24-10-01/")
            && seen[1].line.contains("page=2"),
        "{}",
        seen[1].line
    );

    // Energi Data Service: DK1 only, 15-minute slots, DKK column.
    let m = Mock::start(vec![Step::Ok(own_fixture(
        "energidataservice-dk1-2025-10-01-15min.json",
    ))]);
    let rows = prices_json(
        &format!(
            "[price]\nsource = \"energidataservice\"\narea = \"DK1\"\ncurrency = \"DKK\"\nbase_url = \"{}\"\n",
            m.url
        ),
        "2025-09-30T22:00:00Z",
        "2025-10-01T22:00:00Z",
        &[],
    );
    assert_eq!(rows.len(), 96);
    assert_eq!(rows[0]["start"], "2025-09-30T22:00:00Z");
    assert_eq!(rows[0]["end"], "2025-09-30T22:15:00Z");
    assert!((rows[0]["price_per_kwh"].as_f64().unwrap() - 0.683367216).abs() < 1e-12);
    let line = m.seen.lock().unwrap()[0].line.clone();
    // The window in Danish local time, the area in the filter.
    assert!(
        line.contains("start=2025-10-01T00:00&end=2025-10-02T00:00"),
        "{line}"
    );
    assert!(line.contains("PriceArea%22:%5B%22DK1"), "{line}");
}

#[test]
fn prices_command_reads_a_csv_sheet_and_a_mapped_json_api() {
    // The contract sheet: a local week across the autumn DST change = 169 h.
    let sheet =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../roimon-price/tests/data/contract-2026.csv");
    let rows = prices_json(
        &format!(
            "[price]\nsource = \"csv\"\ncurrency = \"EUR\"\npath = \"{}\"\n[[price.adders]]\nname = \"grid_fee\"\nper_kwh = 0.05\n",
            sheet.display()
        ),
        "2026-10-18T22:00:00Z",
        "2026-10-25T23:00:00Z",
        &[],
    );
    let hours: i64 = rows
        .iter()
        .map(|r| {
            let t = |k: &str| chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap();
            (t("end") - t("start")).num_minutes()
        })
        .sum::<i64>()
        / 60;
    assert_eq!(hours, 169);
    assert_eq!(rows[0]["price_per_kwh"], 0.1874 + 0.05);

    // A utility not listed: its JSON mapped by config, epoch seconds, ct/kWh.
    let body = "{\"result\":{\"rates\":[{\"from\":1767225600,\"cents\":\"31.5\"},{\"from\":1767229200,\"cents\":-2}]}}";
    let m = Mock::start(vec![Step::Ok(body.into())]);
    let rows = prices_json(
        &format!(
            "[price]\nsource = \"json\"\ncurrency = \"EUR\"\nurl = \"{}/rates?from={{start}}&to={{end}}\"\n[price.mapping]\nitems = \"result.rates\"\nstart = \"from\"\nduration_secs = 3600\nprice = \"cents\"\nunit = \"ct/kWh\"\ntime_format = \"epoch_s\"\n",
            m.url
        ),
        "2026-01-01T00:00:00Z",
        "2026-01-01T02:00:00Z",
        &[],
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["price_per_kwh"], 0.315);
    assert_eq!(rows[1]["price_per_kwh"], -0.02);
    let line = m.seen.lock().unwrap()[0].line.clone();
    assert!(
        line.contains("/rates?from=2026-01-01T00:00:00Z&to=2026-01-01T02:00:00Z"),
        "{line}"
    );
}
