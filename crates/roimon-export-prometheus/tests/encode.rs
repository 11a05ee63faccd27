//! Golden-string tests of the Prometheus encoder: exact lines for a known
//! snapshot, so a renamed metric or label, or a wrong unit, fails here first.

use chrono::{TimeZone, Utc};
use roimon_core::*;
use roimon_export_prometheus::{
    HttpFigures, InfluxStats, PlanFigures, ProcessInfo, PushFigures, WebFigures, encode,
};

fn snapshot() -> Snapshot {
    snapshot_with(None)
}

fn snapshot_with(carbon: Option<Carbon>) -> Snapshot {
    let mut owners = std::collections::HashMap::new();
    owners.insert(
        "GPU-a".to_string(),
        Owner {
            team: "search".into(),
            workload: "llm".into(),
        },
    );
    let cfg = EngineConfig {
        currency: "EUR".into(),
        pue: 1.5,
        tariff: Tariff::Static(PricePerKwh(0.2)),
        price_source: "static".into(),
        fixed: FixedCosts {
            capex_per_sec: 0.01,
            maintenance_per_sec: 0.0,
            staff_per_sec: 0.0,
        },
        share_key: ShareKey::Equal,
        owners,
        max_gap: Seconds(5.0),
    };
    let mut e = Engine::new(cfg, None);
    e.set_carbon(carbon);
    // Scores: the GPU's owner's configured one, and one pushed for a team
    // with nothing on this node (which must not move the node's figure).
    let windows: Vec<(String, i64)> = [
        ("5m", 300),
        ("1h", 3600),
        ("24h", 86_400),
        ("7d", 604_800),
        ("30d", 2_592_000),
    ]
    .iter()
    .map(|(l, s)| (l.to_string(), *s))
    .collect();
    e.set_roi(
        &windows,
        roimon_core::window::RoiWeights {
            benefit: [("precision".to_string(), 1.0)].into(),
            cost: Default::default(),
        },
        vec![Kpi {
            team: "search".into(),
            workload: "llm".into(),
            indicator: "precision".into(),
            score: 0.9,
            at: None,
        }],
    );
    e.set_kpi(Kpi {
        team: "ads".into(),
        workload: "bid".into(),
        indicator: "precision".into(),
        score: 0.1,
        at: None,
    });
    e.register_collector("nvml");
    e.register_collector("host");
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let gpu = |j: f64| {
        Reading::Gpu(GpuReading {
            index: 0,
            uuid: "GPU-a".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            power: Some(Watts(250.5)),
            energy_counter: Some(Joules(j)),
            utilization: Some(0.75),
            memory_used_bytes: Some(1024),
            memory_total_bytes: Some(4096),
            temperature_celsius: Some(61.0),
            power_limit: Some(Watts(700.0)),
            // Two processes (one listed twice, as compute and graphics).
            processes: Some(roimon_core::GpuProcesses {
                running: [7, 8, 7]
                    .into_iter()
                    .map(|pid| roimon_core::GpuProcess {
                        pid,
                        used_memory_bytes: None,
                        sm_utilization: None,
                        mig_instance: None,
                    })
                    .collect(),
                mig: vec![],
            }),
        })
    };
    let host = |j: f64| {
        Reading::Host(HostReading {
            cpu_utilization: Some(0.5),
            memory_used_bytes: Some(2048),
            source: HostPowerSource::Rapl,
            power: Some(Watts(120.0)),
            energy_counter: Some(Joules(j)),
        })
    };
    for (t, gj, hj) in [(0, 0.0, 0.0), (2, 2400.0, 1200.0)] {
        e.ingest(
            Tick {
                wall: t0 + chrono::Duration::seconds(t),
                mono: t as f64,
            },
            &[
                Report {
                    collector: "nvml",
                    outcome: Ok(vec![gpu(gj)]),
                },
                Report {
                    collector: "host",
                    outcome: Err(SampleError::Failed("x".into())),
                },
                Report {
                    collector: "host",
                    outcome: Ok(vec![host(hj)]),
                },
            ],
        );
    }
    e.snapshot()
}

#[test]
fn exact_lines() {
    let text = String::from_utf8(encode(
        &snapshot(),
        &ProcessInfo {
            version: "1.2.3".into(),
            checkpoint_failures_in_a_row: 0,
            influx: None,
            http: None,
            web: None,
            push: None,
            plan: None,
        },
    ))
    .unwrap();
    let expect = [
        "roimon_build_info{version=\"1.2.3\"} 1",
        "roimon_gpu_info{gpu=\"0\",gpu_uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",team=\"search\",workload=\"llm\"} 1",
        "roimon_gpu_power_watts{gpu=\"0\",gpu_uuid=\"GPU-a\"} 250.5",
        "roimon_gpu_energy_joules_total{gpu=\"0\",gpu_uuid=\"GPU-a\"} 2400",
        "roimon_gpu_utilization_ratio{gpu=\"0\",gpu_uuid=\"GPU-a\"} 0.75",
        "roimon_gpu_memory_used_bytes{gpu=\"0\",gpu_uuid=\"GPU-a\"} 1024",
        "roimon_gpu_processes{gpu=\"0\",gpu_uuid=\"GPU-a\"} 2",
        "roimon_attribution_unmatched_total 0",
        "roimon_host_power_watts{source=\"rapl\"} 120",
        "roimon_host_energy_joules_total{source=\"rapl\"} 1200",
        "roimon_facility_energy_joules_total 5400",
        "roimon_facility_pue 1.5",
        "roimon_electricity_price_per_kwh{basis=\"source\",currency=\"EUR\",source=\"static\"} 0.2",
        "roimon_electricity_price_age_seconds{source=\"static\"} 0",
        "roimon_cost_total{component=\"capex\",currency=\"EUR\"} 0.02",
        "roimon_cost_total{component=\"staff\",currency=\"EUR\"} 0",
        "roimon_gpu_cost_total{gpu_uuid=\"GPU-a\",team=\"search\",workload=\"llm\",component=\"capex\",currency=\"EUR\"} 0.02",
        "roimon_collector_up{collector=\"host\"} 1",
        "roimon_collector_errors_total{collector=\"host\"} 2",
        "roimon_unaccounted_seconds_total{gpu_uuid=\"GPU-a\"} 0",
        "# TYPE roimon_cost_total counter",
        "# TYPE roimon_gpu_power_watts gauge",
    ];
    for line in expect {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }
    // 5400 J of facility energy at 0.2 EUR/kWh.
    let energy: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("roimon_cost_total{component=\"energy\",currency=\"EUR\"} "))
        .expect("energy cost line")
        .parse()
        .unwrap();
    assert!((energy - 5400.0 / 3.6e6 * 0.2).abs() < 1e-15, "{energy}");
}

#[test]
fn no_gpu_fields_missing_are_not_exported() {
    let mut s = snapshot();
    let g = s.gpus.get_mut("GPU-a").unwrap();
    g.reading.temperature_celsius = None;
    g.present = true;
    let text = String::from_utf8(encode(&s, &ProcessInfo::default())).unwrap();
    assert!(!text.contains("roimon_gpu_temperature_celsius{"), "{text}");
    assert!(text.contains("roimon_gpu_power_limit_watts{gpu=\"0\",gpu_uuid=\"GPU-a\"} 700"));
}

#[test]
fn carbon_lines() {
    let carbon = Carbon {
        intensity: Tariff::Static(PricePerKwh(400.0)),
        price_per_tonne: 100.0,
        source: "electricitymaps".into(),
        fetched_at: None,
    };
    let text = String::from_utf8(encode(
        &snapshot_with(Some(carbon)),
        &ProcessInfo::default(),
    ))
    .unwrap();
    // Facility energy: (2400 + 1200) J × 1.5 = 5400 J = 1.5e-3 kWh → 0.6 g.
    for (series, want) in [
        (
            "roimon_grid_carbon_intensity_grams_per_kwh{basis=\"source\",source=\"electricitymaps\"}",
            400.0,
        ),
        (
            "roimon_grid_carbon_intensity_age_seconds{source=\"electricitymaps\"}",
            0.0,
        ),
        ("roimon_emissions_grams_total", 0.6),
        (
            "roimon_gpu_emissions_grams_total{gpu_uuid=\"GPU-a\",team=\"search\",workload=\"llm\"}",
            0.6,
        ),
        // 0.6 g × 100 EUR/t.
        (
            "roimon_cost_total{component=\"carbon\",currency=\"EUR\"}",
            0.00006,
        ),
    ] {
        let got: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("missing {series}\n{text}"))
            .parse()
            .unwrap();
        assert!(
            (got - want).abs() <= 1e-12 * want.max(1.0),
            "{series} = {got}, want {want}"
        );
    }
    // Without carbon configured there is no intensity and no emissions family.
    let plain = String::from_utf8(encode(&snapshot(), &ProcessInfo::default())).unwrap();
    assert!(!plain.contains("roimon_grid_carbon_intensity"));
    assert!(!plain.contains("roimon_emissions_grams_total"));
}

/// The whole exposition of a known snapshot, compared with a checked-in
/// golden file (regenerate with `UPDATE_GOLDEN=1` and review the diff): any
/// renamed metric, label, help text, unit or ordering shows up here.
#[test]
fn whole_exposition_matches_the_golden_file() {
    let mut s = snapshot();
    s.counters.checkpoint_errors = 3;
    s.counters.state_resets = 1;
    // An owner's ROI and baseline as a node with a value source has them
    // (this snapshot has none): the 1h window's, with their spans.
    let hour = s.windows.iter_mut().find(|w| w.window == "1h").unwrap();
    hour.baseline_span_secs = Some(5400.0);
    let o = &mut hour.owners[0];
    (o.roi, o.baseline_roi, o.baseline_span_secs) = (Some(-0.25), Some(0.5), Some(4000.0));
    let text = String::from_utf8(encode(
        &s,
        &ProcessInfo {
            version: "1.2.3".into(),
            checkpoint_failures_in_a_row: 2,
            influx: Some(InfluxStats {
                up: false,
                buffer_bytes: 123_456,
                buffer_points: 789,
                buffer_capacity_bytes: 268_435_456,
                points_written: 10_000,
                dropped_buffer_full: 5,
                dropped_rejected: 2,
                dropped_corrupt: 1,
                retries: 7,
                last_success_unix: Some(1_767_225_600.5),
            }),
            http: Some(HttpFigures {
                open: 3,
                refused: 11,
                evicted: 12,
                header_timeout: 13,
                idle_timeout: 14,
                tls_handshake: 15,
            }),
            web: Some(WebFigures {
                reload_errors: 2,
                last_reload_success_unix: 1_767_225_600.123,
                refused_no_credentials: 21,
                refused_wrong_credentials: 22,
                refused_auth_busy: 23,
                refused_rate_limit: 24,
            }),
            push: Some(PushFigures {
                accepted: 31,
                duplicates: 32,
                bad_request: 33,
                unknown_owner: 34,
                over_cap: 35,
                too_large: 36,
                unauthorized: 37,
                forbidden: 38,
                busy: 39,
            }),
            plan: Some(PlanFigures {
                ok: 41,
                infeasible: 42,
                error: 43,
            }),
        },
    ))
    .unwrap();
    // The node's P is its own owner's 0.9 (not the mean with ads/bid's
    // 0.1), per hour of the window; each owner with cost has its own.
    let cost: f64 = line_value(&text, "roimon_window_cost{window=\"5m\",currency=\"EUR\"}");
    let eff = line_value(&text, "roimon_weighted_efficiency{window=\"5m\"}");
    assert!(
        (eff - 0.9 / (cost / (2.0 / 3600.0))).abs() < 1e-9 * eff,
        "{eff}"
    );
    assert!(text.contains(
        "roimon_owner_weighted_efficiency{window=\"30d\",team=\"search\",workload=\"llm\"} "
    ));
    assert!(!text.contains("team=\"ads\""), "{text}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/node.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    if text != want {
        let diff: Vec<String> = want
            .lines()
            .zip(text.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "exposition differs from {} ({} vs {} lines):\n{}",
            path.display(),
            want.lines().count(),
            text.lines().count(),
            diff.join("\n")
        );
    }
}

/// A GPU that stops answering keeps its identity, counters and cost rows,
/// loses its live gauges, and shows `roimon_gpu_up 0`.
#[test]
fn a_lost_gpu_keeps_counters_and_drops_live_gauges() {
    let mut s = snapshot();
    s.gpus.get_mut("GPU-a").unwrap().present = false;
    let text = String::from_utf8(encode(&s, &ProcessInfo::default())).unwrap();
    for gone in [
        "roimon_gpu_power_watts{",
        "roimon_gpu_utilization_ratio{",
        "roimon_gpu_memory_used_bytes{",
        "roimon_gpu_temperature_celsius{",
    ] {
        assert!(
            !text.contains(gone),
            "{gone} exported for a lost GPU:\n{text}"
        );
    }
    for kept in [
        "roimon_gpu_up{gpu=\"0\",gpu_uuid=\"GPU-a\"} 0",
        "roimon_gpu_energy_joules_total{gpu=\"0\",gpu_uuid=\"GPU-a\"} 2400",
        "roimon_gpu_info{gpu=\"0\",gpu_uuid=\"GPU-a\",model=\"NVIDIA H100 80GB HBM3\",team=\"search\",workload=\"llm\"} 1",
        "roimon_gpu_cost_total{gpu_uuid=\"GPU-a\",team=\"search\",workload=\"llm\",component=\"capex\",currency=\"EUR\"} 0.02",
    ] {
        assert!(text.lines().any(|l| l == kept), "missing {kept:?}:\n{text}");
    }
    let present = String::from_utf8(encode(&snapshot(), &ProcessInfo::default())).unwrap();
    assert!(
        present
            .lines()
            .any(|l| l == "roimon_gpu_up{gpu=\"0\",gpu_uuid=\"GPU-a\"} 1")
    );
}

/// Money is exported by the owner it accrued under: a past owner's row stays
/// beside the current one, and the rows add up to the node total.
#[test]
fn past_owners_keep_their_rows() {
    let mut s = snapshot();
    let mut past = roimon_core::Row::default();
    past.cost.insert(
        Component::Capex,
        roimon_core::units::Accumulator::from_total(5.0),
    );
    s.counters.rows.insert(
        RowKey {
            gpu_uuid: "GPU-a".into(),
            team: "vision".into(),
            workload: "train".into(),
        },
        past,
    );
    let text = String::from_utf8(encode(&s, &ProcessInfo::default())).unwrap();
    assert!(text.lines().any(|l| l
        == "roimon_gpu_cost_total{gpu_uuid=\"GPU-a\",team=\"vision\",workload=\"train\",component=\"capex\",currency=\"EUR\"} 5"));
    assert!(text.lines().any(|l| l
        == "roimon_gpu_cost_total{gpu_uuid=\"GPU-a\",team=\"search\",workload=\"llm\",component=\"capex\",currency=\"EUR\"} 0.02"));
}

/// The default series count of a typical node stays small: 8 GPUs, 4 owners
/// (2 GPUs each), 2 inference targets serving one model each, RAPL, a static
/// price, the five default windows. Budget: under 250 series, plus each
/// owner's window figures (value, cost, ROI; baselines once the windows
/// have one) and the windows' spans: owners × windows × 3 + windows.
#[test]
fn an_eight_gpu_node_with_four_owners_and_two_targets_exports_a_bounded_number_of_series() {
    let teams = ["search", "vision", "nlp", "ads"];
    let mut owners = std::collections::HashMap::new();
    for i in 0..8u32 {
        owners.insert(
            format!("GPU-{i}"),
            Owner {
                team: teams[(i / 2) as usize].into(),
                workload: "w".into(),
            },
        );
    }
    let cfg = EngineConfig {
        currency: "EUR".into(),
        pue: 1.3,
        tariff: Tariff::Static(PricePerKwh(0.2)),
        price_source: "static".into(),
        fixed: FixedCosts {
            capex_per_sec: 0.01,
            maintenance_per_sec: 0.001,
            staff_per_sec: 0.001,
        },
        share_key: ShareKey::Equal,
        owners,
        max_gap: Seconds(5.0),
    };
    let mut e = Engine::new(cfg, None);
    e.register_collector("nvml");
    e.register_collector("host");
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for t in 0..3i64 {
        let mut readings: Vec<Reading> = (0..8u32)
            .map(|i| {
                Reading::Gpu(GpuReading {
                    index: i,
                    uuid: format!("GPU-{i}"),
                    name: "NVIDIA H100 80GB HBM3".into(),
                    power: Some(Watts(300.0)),
                    energy_counter: Some(Joules(300.0 * t as f64)),
                    utilization: Some(0.5),
                    memory_used_bytes: Some(1),
                    memory_total_bytes: Some(2),
                    temperature_celsius: Some(60.0),
                    power_limit: Some(Watts(700.0)),
                    processes: None,
                })
            })
            .collect();
        readings.push(Reading::Host(HostReading {
            cpu_utilization: Some(0.5),
            memory_used_bytes: Some(1),
            source: HostPowerSource::Rapl,
            power: Some(Watts(100.0)),
            energy_counter: Some(Joules(100.0 * t as f64)),
        }));
        e.ingest(
            Tick {
                wall: t0 + chrono::Duration::seconds(t),
                mono: t as f64,
            },
            &[Report {
                collector: "nvml",
                outcome: Ok(readings),
            }],
        );
        for (n, target) in ["vllm-a", "vllm-b"].iter().enumerate() {
            let owners: Vec<(Owner, f64)> = teams[n * 2..n * 2 + 2]
                .iter()
                .map(|t| {
                    (
                        Owner {
                            team: (*t).into(),
                            workload: "w".into(),
                        },
                        0.5,
                    )
                })
                .collect();
            e.book_value(
                &owners,
                target,
                1.0,
                &[ModelDelta {
                    model: format!("model-{n}"),
                    input_tokens: 10.0,
                    cached_input_tokens: 0.0,
                    output_tokens: 20.0,
                    requests: 1.0,
                }],
            );
        }
    }
    let text = String::from_utf8(encode(&e.snapshot(), &ProcessInfo::default())).unwrap();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series < 250 + 4 * 5 * 3 + 5, "{series} series:\n{text}");
    let owner_series = text
        .lines()
        .filter(|l| l.starts_with("roimon_owner_window_") || l.starts_with("roimon_owner_roi_"))
        .count();
    assert_eq!(owner_series, 4 * 5 * 3, "{text}");
    assert!(text.contains("roimon_value_total{team=\"search\",workload=\"w\",source=\"vllm-a\",currency=\"EUR\"} 1.5"), "{text}");
    assert!(text.contains("roimon_tokens_total{team=\"nlp\",workload=\"w\",model=\"model-1\",direction=\"output\"} 30"), "{text}");
    assert!(
        text.contains("roimon_window_value{window=\"1h\",currency=\"EUR\"} "),
        "{text}"
    );
    eprintln!("{series} series");
}

/// The listener's, the web configuration's and the push endpoint's families
/// are written only for what the daemon has: a node without a web config or
/// a push endpoint shows no such series (not zeros), and they follow the
/// snapshot's families in the order /metrics has always had.
#[test]
fn http_web_and_push_families_appear_only_when_given() {
    let none = String::from_utf8(encode(&snapshot(), &ProcessInfo::default())).unwrap();
    for name in [
        "roimon_http_connections",
        "roimon_http_requests_refused_total",
        "roimon_web_config_",
        "roimon_push_",
        "roimon_plan_",
    ] {
        assert!(!none.contains(name), "{name} without figures");
    }
    let http_only = String::from_utf8(encode(
        &snapshot(),
        &ProcessInfo {
            http: Some(HttpFigures {
                open: 1,
                ..HttpFigures::default()
            }),
            ..ProcessInfo::default()
        },
    ))
    .unwrap();
    assert!(http_only.ends_with(
        "# TYPE roimon_http_connections gauge\nroimon_http_connections 1\n\
         # HELP roimon_http_connections_dropped_total HTTP connections roimon closed to protect itself: refused (at capacity, every connection busy), evicted (oldest idle connection closed to admit a new one), header_timeout, idle_timeout, tls_handshake (failed or not done before the header deadline).\n\
         # TYPE roimon_http_connections_dropped_total counter\n\
         roimon_http_connections_dropped_total{reason=\"refused\"} 0\n\
         roimon_http_connections_dropped_total{reason=\"evicted\"} 0\n\
         roimon_http_connections_dropped_total{reason=\"header_timeout\"} 0\n\
         roimon_http_connections_dropped_total{reason=\"idle_timeout\"} 0\n\
         roimon_http_connections_dropped_total{reason=\"tls_handshake\"} 0\n"
    ));
    assert!(!http_only.contains("roimon_web_config_") && !http_only.contains("roimon_push_"));
    let all = String::from_utf8(encode(
        &snapshot(),
        &ProcessInfo {
            http: Some(HttpFigures::default()),
            web: Some(WebFigures::default()),
            push: Some(PushFigures::default()),
            ..ProcessInfo::default()
        },
    ))
    .unwrap();
    let at = |n: &str| {
        all.find(&format!("# TYPE {n} "))
            .unwrap_or_else(|| panic!("{n}"))
    };
    assert!(at("roimon_checkpoint_errors_total") < at("roimon_http_connections"));
    assert!(
        at("roimon_http_connections_dropped_total") < at("roimon_web_config_reload_errors_total")
    );
    assert!(at("roimon_http_requests_refused_total") < at("roimon_push_points_total"));
    assert!(all.contains("\nroimon_web_config_last_reload_success_timestamp_seconds 0\n"));
    assert!(all.ends_with("roimon_push_rejected_total{reason=\"busy\"} 0\n"));
}

/// The value of the sample `series` (name and labels, exactly) in `text`.
fn line_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .parse()
        .unwrap()
}

/// Each owner's window figures, the windows' and baselines' spans and the
/// budget forecast's basis: exact lines, and an owner with neither value
/// nor cost in a window has no series for it (bounded by owners × windows).
#[test]
fn owner_window_gauges_and_the_spans_alerts_wait_for() {
    let mut s = snapshot();
    let five = s.windows.iter_mut().find(|w| w.window == "5m").unwrap();
    five.span_secs = 300.0;
    let mut idle = five.owners[0].clone();
    (idle.team, idle.value, idle.cost) = ("idle".into(), 0.0, 0.0);
    idle.weighted_efficiency = None;
    let o = &mut five.owners[0];
    (o.value, o.cost, o.roi) = (3.0, 2.0, Some(0.5));
    (o.baseline_roi, o.baseline_span_secs) = (Some(0.75), Some(3600.0));
    five.owners.push(idle);
    s.budgets.push(BudgetView {
        team: "search".into(),
        workload: String::new(),
        currency: "EUR".into(),
        monthly: 100.0,
        spent: 10.0,
        forecast: 1799.0,
    });
    s.budget_basis_seconds = Some(15.0);
    let text = String::from_utf8(encode(&s, &ProcessInfo::default())).unwrap();
    for line in [
        "roimon_window_span_seconds{window=\"5m\"} 300",
        "roimon_window_span_seconds{window=\"30d\"} 2",
        "roimon_owner_window_value{window=\"5m\",team=\"search\",workload=\"llm\",currency=\"EUR\"} 3",
        "roimon_owner_window_cost{window=\"5m\",team=\"search\",workload=\"llm\",currency=\"EUR\"} 2",
        "roimon_owner_roi_ratio{window=\"5m\",team=\"search\",workload=\"llm\"} 0.5",
        "roimon_owner_roi_baseline_ratio{window=\"5m\",team=\"search\",workload=\"llm\"} 0.75",
        "roimon_owner_roi_baseline_span_seconds{window=\"5m\",team=\"search\",workload=\"llm\"} 3600",
        "roimon_budget_forecast_basis_seconds 15",
        "# TYPE roimon_owner_roi_ratio gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }
    assert!(!text.contains("team=\"idle\""), "{text}");
    // No ROI where the snapshot has none (the 1h window's owner).
    assert!(
        !text.contains("roimon_owner_roi_ratio{window=\"1h\""),
        "{text}"
    );
    // Without budgets there is no basis either.
    let plain = String::from_utf8(encode(&snapshot(), &ProcessInfo::default())).unwrap();
    assert!(
        !plain.contains("roimon_budget_forecast_basis_seconds"),
        "{plain}"
    );
}
