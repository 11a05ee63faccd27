//! Criterion benchmark of the ledger: the checkpoint transaction per tick
//! (8 GPUs, three owners, counters and open hour in one fsynced commit),
//! and a report over a year of hourly rows for 8 GPUs; prints the rows and
//! bytes per GPU-year of that year.

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use roimon_core::*;
use roimon_ledger::{Dim, HourBook, Ledger, Meta, Query};
use std::hint::black_box;

const GPUS: u32 = 8;

fn engine() -> Engine {
    let teams = ["search", "vision", "ads"];
    let cfg = EngineConfig {
        currency: "EUR".into(),
        pue: 1.3,
        tariff: Tariff::Static(PricePerKwh(0.25)),
        price_source: "static".into(),
        fixed: FixedCosts::new(280_000.0, 40_000.0, 4.0, 14_000.0, 1_500.0),
        share_key: ShareKey::Equal,
        owners: (0..GPUS)
            .map(|i| {
                (
                    format!("GPU-{i:08}"),
                    Owner {
                        team: teams[i as usize % 3].into(),
                        workload: format!("w{}", i % 2),
                    },
                )
            })
            .collect(),
        max_gap: Seconds(1e9),
    };
    Engine::new(cfg, None)
}

struct Node {
    engine: Engine,
    book: HourBook,
    ledger: Ledger,
    wall: DateTime<Utc>,
    mono: f64,
    _dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite3")).unwrap();
        Self {
            engine: engine(),
            book: HourBook::resume(None, None),
            ledger,
            wall: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            mono: 0.0,
            _dir: dir,
        }
    }

    fn tick(&mut self, secs: f64) {
        self.wall += Duration::milliseconds((secs * 1000.0) as i64);
        self.mono += secs;
        let readings = (0..GPUS)
            .map(|i| {
                Reading::Gpu(GpuReading {
                    index: i,
                    uuid: format!("GPU-{i:08}"),
                    name: "NVIDIA H100 80GB HBM3".into(),
                    power: Some(Watts(350.0)),
                    energy_counter: Some(Joules(350.0 * self.mono)),
                    utilization: Some(0.9),
                    memory_used_bytes: None,
                    memory_total_bytes: None,
                    temperature_celsius: None,
                    power_limit: None,
                    processes: None,
                })
            })
            .collect();
        self.book.observe(self.wall, self.engine.counters());
        self.engine.ingest(
            Tick {
                wall: self.wall,
                mono: self.mono,
            },
            &[Report {
                collector: "nvml",
                outcome: Ok(readings),
            }],
        );
    }

    fn save(&mut self) {
        let meta = Meta {
            node: "node-1".into(),
            price_source: "static".into(),
        };
        self.ledger
            .save(self.engine.counters(), &self.book, &meta, self.wall)
            .unwrap();
        self.book.written();
    }
}

fn checkpoint(c: &mut Criterion) {
    let mut n = Node::new();
    n.tick(0.0);
    n.tick(1.0);
    n.save();
    // One tick and one checkpoint (fsynced) per iteration; the tick alone
    // is the engine's ingest benchmark (microseconds).
    c.bench_function("checkpoint_with_ledger/8_gpus_3_owners", |b| {
        b.iter(|| {
            n.tick(1.0);
            n.save();
            black_box(&n.book);
        })
    });
}

fn year(c: &mut Criterion) {
    let mut n = Node::new();
    // A year of hourly checkpoints; durability is not what is measured here.
    n.ledger
        .connection()
        .execute_batch("PRAGMA synchronous = OFF")
        .unwrap();
    n.tick(0.0);
    for _ in 0..(365 * 24) {
        n.tick(3600.0);
        n.save();
    }
    n.ledger
        .connection()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let rows: i64 = n
        .ledger
        .connection()
        .query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0))
        .unwrap();
    let bytes = std::fs::metadata(n.ledger.path()).unwrap().len();
    eprintln!(
        "a year of 8 GPUs: {rows} rows, {bytes} bytes; per GPU-year: {} rows, {} bytes ({:.1} bytes per row)",
        rows / i64::from(GPUS),
        bytes / u64::from(GPUS),
        bytes as f64 / rows as f64
    );
    let reader = Ledger::open_read_only(n.ledger.path()).unwrap();
    let q = |by: &str| Query {
        from: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        to: Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        by: Dim::parse_list(by).unwrap(),
        tz: "Europe/Berlin".parse().unwrap(),
        team: None,
    };
    let mut g = c.benchmark_group("report_year_8_gpus");
    g.sample_size(10);
    for by in ["team,month", "gpu,day", "team,workload,component,hour"] {
        let q = q(by);
        g.bench_function(by, |b| {
            b.iter(|| black_box(reader.report(&q).unwrap().to_csv()))
        });
    }
    g.bench_function("verify", |b| b.iter(|| black_box(reader.verify().unwrap())));
    g.finish();
}

criterion_group!(benches, checkpoint, year);
criterion_main!(benches);
