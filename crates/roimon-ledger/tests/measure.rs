//! The planner's measured coefficients from ledgers filled through the real
//! engine, hour book and checkpoint (two nodes, two files), against figures
//! worked out by hand from the powers, prices, shares and tokens booked.

mod common;

use common::{at, node_one, node_two};
use roimon_ledger::measure::{Figure, Measure};
use std::path::PathBuf;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_figure(f: &Figure, value: f64, samples: u64, p10: Option<f64>, p90: Option<f64>) {
    assert!(close(f.value, value), "value {} != {value}", f.value);
    assert_eq!(f.samples, samples);
    for (got, want) in [(f.p10, p10), (f.p90, p90)] {
        match (got, want) {
            (Some(g), Some(w)) => assert!(close(g, w), "spread {g} != {w}"),
            (g, w) => assert_eq!(g, w),
        }
    }
}

/// Both nodes' ledgers over 2026-12-01 .. 2026-12-03.
fn two_nodes() -> (tempfile::TempDir, Vec<PathBuf>, Measure) {
    let dir = tempfile::tempdir().unwrap();
    let paths = vec![dir.path().join("n1.sqlite3"), dir.path().join("n2.sqlite3")];
    node_one(&paths[0]);
    node_two(&paths[1]);
    let m = Measure::open(&paths, at(1, 0), at(3, 0)).unwrap();
    (dir, paths, m)
}

#[test]
fn price_and_carbon_are_what_the_facility_kwh_cost_and_emitted() {
    let (_d, _p, m) = two_nodes();
    assert_eq!(m.window(), "2026-12-01T00:00:00Z/2026-12-03T00:00:00Z");
    // kWh = W × 3600 s × PUE 1.25 / 3.6e6: n1 00:00 800 W → 1.0 kWh at 0.2;
    // n1 01:00 700 W → 0.875 kWh at 0.3; n2 00:00 600 W → 0.75 kWh at 0.1.
    let cost = 0.2 + 0.875 * 0.3 + 0.75 * 0.1;
    let day1 = (0.2 + 0.875 * 0.3) / 1.875;
    let day2 = 0.1;
    assert_eq!(m.daily_mean_prices(at(1, 0), at(3, 0)).len(), 2);
    assert!(close(m.daily_mean_prices(at(1, 0), at(3, 0))[0], day1));
    let second = m.daily_mean_prices(at(2, 0), at(3, 0));
    assert_eq!(second.len(), 1);
    assert!(close(second[0], day2));
    let p = m.price_per_kwh().unwrap();
    assert_figure(
        &p,
        cost / 2.625,
        3,
        Some(day2 + 0.1 * (day1 - day2)),
        Some(day2 + 0.9 * (day1 - day2)),
    );
    assert_eq!(p.window, m.window());
    // Only n1 books emissions (300 g/kWh); n2 has no carbon source.
    let c = m.carbon_g_per_kwh().unwrap();
    assert_figure(&c, 300.0, 2, Some(300.0), Some(300.0));
}

#[test]
fn demand_and_value_come_from_the_owners_tokens_per_hour() {
    let (_d, _p, m) = two_nodes();
    // Hourly rates over the three hours the ledgers hold: 1.8 M, 3.6 M and
    // 0.72 M tokens / 3600 s = 500, 1000, 200 tokens/s. P95 at rank
    // 0.95 × 2 = 1.9: 500 + 0.9 × 500.
    let d = m.demand_tokens_per_second("search/chat").unwrap();
    assert_figure(&d, 950.0, 3, Some(260.0), Some(900.0));
    // A name without `/` is the whole team.
    assert_eq!(m.demand_tokens_per_second("search").unwrap().value, 950.0);
    // (3.0 + 7.2 + 1.44) / 6.12 M tokens; hourly 1.667, 2.0, 2.0.
    let v = m.value_per_million_tokens("search/chat").unwrap();
    assert_figure(
        &v,
        11.64 / 6.12,
        3,
        Some(3.0 / 1.8 + 0.2 * (2.0 - 3.0 / 1.8)),
        Some(2.0),
    );
    let e = m.demand_tokens_per_second("vision/embed").unwrap_err();
    assert!(
        e.contains("no data in the ledger from 2026-12-01T00:00:00Z to 2026-12-03T00:00:00Z"),
        "{e}"
    );
    assert!(e.contains("owners that did: search/chat"), "{e}");
}

#[test]
fn throughput_and_energy_per_token_split_tokens_by_gpu_seconds() {
    let (_d, _p, m) = two_nodes();
    // n1 00:00: 3600 s on each model → 0.9 M tokens each.
    // n1 01:00: 3600 s on the H100, 1800 s (half of GPU-a) on the A100 →
    //   3.6 M × 2/3 = 2.4 M on the H100, 1.2 M on the A100.
    // n2 00:00: 0.72 M tokens in 3600 s on an H100.
    let t = m.tokens_per_second("search/chat", "H100").unwrap();
    assert_figure(
        &t,
        4.02e6 / 10_800.0,
        3,
        Some(200.0 + 0.2 * 50.0),
        Some(250.0 + 0.8 * (2.4e6 / 3600.0 - 250.0)),
    );
    let a = m.tokens_per_second("search/chat", "A100").unwrap();
    assert_figure(
        &a,
        2.1e6 / 5400.0,
        2,
        Some(250.0 + 0.1 * (1.2e6 / 1800.0 - 250.0)),
        Some(250.0 + 0.9 * (1.2e6 / 1800.0 - 250.0)),
    );
    // Energy above 100 W idle: n1 (500 − 100) W × 3600 s and (400 − 100) W ×
    // 3600 s, n2 (600 − 100) W × 3600 s, over 4.02 M tokens.
    let j = m.joules_per_token("search/chat", "H100", 100.0).unwrap();
    let hourly = [1.44e6 / 0.9e6, 1.08e6 / 2.4e6, 1.8e6 / 0.72e6];
    assert_figure(
        &j,
        (1.44e6 + 1.08e6 + 1.8e6) / 4.02e6,
        3,
        Some(hourly[1] + 0.2 * (hourly[0] - hourly[1])),
        Some(hourly[0] + 0.8 * (hourly[2] - hourly[0])),
    );
    // The A100: 300 W in both hours, half of GPU-a's energy in the second.
    let ja = m.joules_per_token("search/chat", "A100", 50.0).unwrap();
    assert!(close(ja.value, (0.9e6 + 0.45e6) / 2.1e6));
    // Idle above what the GPUs drew is refused, naming it.
    let e = m
        .joules_per_token("search/chat", "A100", 400.0)
        .unwrap_err();
    assert!(
        e.starts_with("the A100 GPUs of search/chat drew 300.0 W on average from 2026-12-01T00:00:00Z to 2026-12-03T00:00:00Z, less than idle_watts = 400"),
        "{e}"
    );
    let e = m.tokens_per_second("search/chat", "L40S").unwrap_err();
    assert!(
        e.contains("no data in the ledger from 2026-12-01T00:00:00Z to 2026-12-03T00:00:00Z (no GPU model matches type L40S; the models there: NVIDIA A100-SXM4-80GB, NVIDIA H100 80GB HBM3)"),
        "{e}"
    );
}

#[test]
fn cost_per_gpu_hour_is_the_fixed_costs_of_that_model_over_its_gpu_hours() {
    let (_d, _p, m) = two_nodes();
    // Fixed costs 0.0013/s = 4.68/h shared by GPU energy: n1 00:00 5/8 to
    // the H100, 01:00 4/7; n2 all of it. Every owner's rows count (GPU-a's
    // second hour is split between two owners).
    let h = [4.68 * 5.0 / 8.0, 4.68 * 4.0 / 7.0, 4.68];
    let c = m.cost_per_gpu_hour("H100").unwrap();
    assert_figure(
        &c,
        h.iter().sum::<f64>() / 3.0,
        3,
        Some(h[1] + 0.2 * (h[0] - h[1])),
        Some(h[0] + 0.8 * (h[2] - h[0])),
    );
    let a = [4.68 * 3.0 / 8.0, 4.68 * 3.0 / 7.0];
    let ca = m.cost_per_gpu_hour("A100").unwrap();
    assert_figure(
        &ca,
        (a[0] + a[1]) / 2.0,
        2,
        Some(a[0] + 0.1 * (a[1] - a[0])),
        Some(a[0] + 0.9 * (a[1] - a[0])),
    );
}

#[test]
fn a_window_without_data_names_the_coefficient_and_the_window() {
    let (_d, paths, _) = two_nodes();
    let m = Measure::open(&paths, at(3, 0), at(4, 0)).unwrap();
    let e = m.price_per_kwh().unwrap_err();
    assert_eq!(
        e,
        "no data in the ledger from 2026-12-03T00:00:00Z to 2026-12-04T00:00:00Z (no facility energy was booked)"
    );
    assert!(
        m.cost_per_gpu_hour("H100")
            .unwrap_err()
            .starts_with("no data in the ledger from 2026-12-03T00:00:00Z")
    );
    // Only the first day: n2 has no carbon, and one day gives no spread.
    let m = Measure::open(&paths, at(2, 0), at(3, 0)).unwrap();
    assert!(
        m.carbon_g_per_kwh()
            .unwrap_err()
            .contains("no emissions were booked")
    );
    let p = m.price_per_kwh().unwrap();
    assert_figure(&p, 0.1, 1, None, None);
    // The same ledger twice is refused.
    let twice = vec![paths[0].clone(), paths[0].clone()];
    let e = Measure::open(&twice, at(1, 0), at(3, 0)).unwrap_err();
    assert!(
        e.to_string().contains("the same node's ledger given twice"),
        "{e}"
    );
}
