//! Criterion benchmark: the cost of one engine tick per GPU reading (the hot
//! path that runs every sampling interval on every node).

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use roimon_core::*;
use std::hint::black_box;

fn cfg() -> EngineConfig {
    EngineConfig {
        currency: "EUR".into(),
        pue: 1.3,
        tariff: Tariff::Static(PricePerKwh(0.25)),
        price_source: "static".into(),
        fixed: FixedCosts::new(280_000.0, 40_000.0, 4.0, 14_000.0, 1_500.0),
        share_key: ShareKey::Energy,
        owners: Default::default(),
        max_gap: Seconds(5.0),
    }
}

fn readings(n: u32, t: f64) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            Reading::Gpu(GpuReading {
                index: i,
                uuid: format!("GPU-{i:08}"),
                name: "NVIDIA H100".into(),
                power: Some(Watts(350.0)),
                energy_counter: Some(Joules(1e6 + 350.0 * t)),
                utilization: Some(0.9),
                memory_used_bytes: Some(1 << 30),
                memory_total_bytes: Some(80 << 30),
                temperature_celsius: Some(60.0),
                power_limit: Some(Watts(700.0)),
                processes: None,
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_ingest");
    for n in [8u32, 1024] {
        g.throughput(criterion::Throughput::Elements(u64::from(n)));
        g.bench_with_input(BenchmarkId::new("gpus", n), &n, |b, &n| {
            let mut e = Engine::new(cfg(), None);
            let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let mut t = 0.0;
            b.iter(|| {
                t += 1.0;
                let reports = [Report {
                    collector: "nvml",
                    outcome: Ok(readings(n, t)),
                }];
                e.ingest(
                    Tick {
                        wall: t0 + chrono::Duration::seconds(t as i64),
                        mono: t,
                    },
                    black_box(&reports),
                );
            });
        });
    }
    // The same 8 GPUs, each shared by 4 owners by process (set every tick,
    // as the daemon does before ingesting).
    g.throughput(criterion::Throughput::Elements(8));
    g.bench_function("gpus_8_owners_4", |b| {
        let mut e = Engine::new(cfg(), None);
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut t = 0.0;
        b.iter(|| {
            t += 1.0;
            for i in 0..8 {
                let shares = (0..4)
                    .map(|k| OwnerShare {
                        owner: Owner {
                            team: format!("team-{k}"),
                            workload: "w".into(),
                        },
                        share: f64::from(k + 1),
                        rule: format!("rule:r{k}"),
                    })
                    .collect();
                e.set_attribution(&format!("GPU-{i:08}"), shares);
            }
            let reports = [Report {
                collector: "nvml",
                outcome: Ok(readings(8, t)),
            }];
            e.ingest(
                Tick {
                    wall: t0 + chrono::Duration::seconds(t as i64),
                    mono: t,
                },
                black_box(&reports),
            );
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
