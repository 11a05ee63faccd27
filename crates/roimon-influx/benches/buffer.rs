//! Criterion benchmark of the InfluxDB stream's local work on one core:
//! encoding points to line protocol, appending them to the disk buffer
//! (with and without fsync), and replaying the buffer (reading segments
//! back in batches, as after an outage). Throughput is in points.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use roimon_influx::{Buffer, BufferConfig, Point, encode_lines};
use std::hint::black_box;

/// 1,000 `roimon_gpu`-like points: 8 tags, 14 fields each.
fn points(n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| {
            let mut p = Point::new("roimon_gpu", 1_764_590_400_000_000_000 + i as i64)
                .tag("node", "gpu-node-017")
                .tag(
                    "gpu_uuid",
                    format!("GPU-{:08x}-1c2d-4e5f-8a9b-0c1d2e3f4a5b", i % 8),
                )
                .tag("gpu", (i % 8).to_string())
                .tag("team", "search ranking")
                .tag("workload", "llm,chat")
                .tag("currency", "EUR");
            for (k, v) in [
                ("power_watts", 351.25),
                ("energy_joules_total", 1.234_567_89e9),
                ("utilization_ratio", 0.87),
                ("temperature_celsius", 61.0),
                ("cost_energy_total", 1_234.567_891),
                ("cost_capex_total", 2_345.678_912),
                ("cost_maintenance_total", 345.678_912),
                ("cost_staff_total", 4_567.891_234),
                ("cost_carbon_total", 0.0),
                ("cost_total", 8_493.816_949),
                ("credit_total", 1.5),
                ("emissions_grams_total", 9.876_543e6),
                ("facility_energy_joules_total", 1.604_938_2e9),
            ] {
                p = p.float(k, v);
            }
            p.int("memory_used_bytes", 42_949_672_960)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let pts = points(1000);
    let mut text = String::new();
    encode_lines(&pts, &mut text);
    eprintln!(
        "bench: 1000 points = {} bytes of line protocol ({} bytes/point)",
        text.len(),
        text.len() / 1000
    );

    let mut g = c.benchmark_group("influx");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("encode_1000_points", |b| {
        let mut out = String::with_capacity(text.len());
        b.iter(|| {
            out.clear();
            black_box(encode_lines(black_box(&pts), &mut out))
        })
    });
    for (name, sync) in [
        ("encode_and_append_1000_points_nosync", false),
        ("encode_and_append_1000_points_fsync", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = BufferConfig::new(dir.path(), 256 << 20);
        cfg.sync = sync;
        let (mut buf, _) = Buffer::open(cfg).unwrap();
        let mut out = String::with_capacity(text.len());
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let n = encode_lines(&pts, &mut out);
                buf.append(&out, n as u32).unwrap();
                // Keep the buffer from filling: acknowledge what was read.
                if buf.bytes() > 128 << 20 {
                    while let Some(batch) = buf.peek(1 << 20).unwrap() {
                        buf.ack(&batch).unwrap();
                    }
                }
            })
        });
    }
    g.finish();

    // Replay: 100,000 points (100 records of 1,000) read back in batches of
    // 5,000 and acknowledged, from a freshly opened buffer (as after a
    // restart during an outage).
    let mut g = c.benchmark_group("influx_replay");
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(10);
    g.bench_function("replay_100k_points_batches_of_5000", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let mut cfg = BufferConfig::new(dir.path(), 1 << 30);
                cfg.sync = false;
                let (mut buf, _) = Buffer::open(cfg.clone()).unwrap();
                for _ in 0..100 {
                    buf.append(&text, 1000).unwrap();
                }
                drop(buf);
                (dir, cfg)
            },
            |(dir, cfg)| {
                let (mut buf, rec) = Buffer::open(cfg).unwrap();
                assert_eq!(rec.points, 100_000);
                let mut n = 0;
                while let Some(batch) = buf.peek(5000).unwrap() {
                    n += batch.points;
                    buf.ack(&batch).unwrap();
                }
                assert_eq!(n, 100_000);
                drop(dir);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
