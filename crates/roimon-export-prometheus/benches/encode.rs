//! Criterion benchmark: encoding `/metrics` for 8 and 1,024 GPUs.

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use roimon_core::*;
use roimon_export_prometheus::{ProcessInfo, encode};
use std::hint::black_box;

fn snapshot(n: u32) -> Snapshot {
    let cfg = EngineConfig {
        currency: "EUR".into(),
        pue: 1.3,
        tariff: Tariff::Static(PricePerKwh(0.25)),
        price_source: "static".into(),
        fixed: FixedCosts::new(280_000.0, 40_000.0, 4.0, 14_000.0, 1_500.0),
        share_key: ShareKey::Equal,
        owners: Default::default(),
        max_gap: Seconds(5.0),
    };
    let mut e = Engine::new(cfg, None);
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for t in 0..3 {
        let readings = (0..n)
            .map(|i| {
                Reading::Gpu(GpuReading {
                    index: i,
                    uuid: format!("GPU-{i:08}"),
                    name: "NVIDIA H100 80GB HBM3".into(),
                    power: Some(Watts(350.0)),
                    energy_counter: Some(Joules(1e6 + 350.0 * f64::from(t))),
                    utilization: Some(0.9),
                    memory_used_bytes: Some(1 << 30),
                    memory_total_bytes: Some(80 << 30),
                    temperature_celsius: Some(60.0),
                    power_limit: Some(Watts(700.0)),
                    processes: None,
                })
            })
            .collect();
        e.ingest(
            Tick {
                wall: t0 + chrono::Duration::seconds(i64::from(t)),
                mono: f64::from(t),
            },
            &[Report {
                collector: "nvml",
                outcome: Ok(readings),
            }],
        );
    }
    e.snapshot()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics_encode");
    let p = ProcessInfo {
        version: "bench".into(),
        checkpoint_failures_in_a_row: 0,
    };
    for n in [8u32, 1024] {
        let s = snapshot(n);
        g.bench_with_input(BenchmarkId::new("gpus", n), &s, |b, s| {
            b.iter(|| encode(black_box(s), &p))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
