//! A node in miniature for the ledger's tests: the real engine, hour book
//! and ledger driven tick by tick through the checkpoint path the daemon
//! uses (observe the wall time, book, save in one transaction), with GPUs
//! that report a model name and draw a set power.

#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use roimon_core::{
    Carbon, Engine, EngineConfig, FixedCosts, GpuReading, Joules, ModelDelta, Owner, OwnerShare,
    PricePerKwh, Reading, Report, Seconds, ShareKey, Tariff, Tick, Watts,
};
use roimon_ledger::{HourBook, Ledger, Meta};
use std::collections::BTreeMap;
use std::path::Path;

/// 2026-12-`day` at `h`:00 UTC.
pub fn at(day: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, day, h, 0, 0).unwrap()
}

pub fn owner(name: &str) -> Owner {
    let (team, workload) = name.split_once('/').unwrap();
    Owner {
        team: team.into(),
        workload: workload.into(),
    }
}

/// PUE 1.25, a static price, fixed costs of 0.001 + 0.0002 + 0.0001 per
/// second shared by GPU energy, GPUs owned by `owners` (uuid, team/workload).
pub fn cfg(owners: &[(&str, &str)], price: f64) -> EngineConfig {
    EngineConfig {
        currency: "EUR".into(),
        pue: 1.25,
        tariff: Tariff::Static(PricePerKwh(price)),
        price_source: "static".into(),
        fixed: FixedCosts {
            capex_per_sec: 0.001,
            maintenance_per_sec: 0.0002,
            staff_per_sec: 0.0001,
        },
        share_key: ShareKey::Energy,
        owners: owners
            .iter()
            .map(|(u, o)| (u.to_string(), owner(o)))
            .collect(),
        max_gap: Seconds(1e9),
    }
}

pub struct Node {
    pub engine: Engine,
    pub book: HourBook,
    pub ledger: Ledger,
    pub wall: DateTime<Utc>,
    pub meta: Meta,
    mono: f64,
    energy: BTreeMap<String, f64>,
}

impl Node {
    /// A new state at `start` (no tick yet).
    pub fn new(path: &Path, node: &str, cfg: EngineConfig, start: DateTime<Utc>) -> Self {
        Self {
            engine: Engine::new(cfg, None),
            book: HourBook::resume(None, None),
            ledger: Ledger::open(path).unwrap(),
            wall: start,
            meta: Meta {
                node: node.into(),
                price_source: "static".into(),
            },
            mono: 0.0,
            energy: BTreeMap::new(),
        }
    }

    /// A tick `secs` after the previous one (0: at the start) in which
    /// every GPU (uuid, model, watts) drew its power; then a checkpoint.
    pub fn tick(&mut self, secs: f64, gpus: &[(&str, &str, f64)]) {
        self.wall += Duration::milliseconds((secs * 1000.0) as i64);
        self.mono += secs;
        let readings = gpus
            .iter()
            .enumerate()
            .map(|(i, (uuid, model, watts))| {
                let e = self.energy.entry(uuid.to_string()).or_default();
                *e += watts * secs;
                Reading::Gpu(GpuReading {
                    index: i as u32,
                    uuid: uuid.to_string(),
                    name: model.to_string(),
                    power: Some(Watts(*watts)),
                    energy_counter: Some(Joules(*e)),
                    utilization: None,
                    memory_used_bytes: None,
                    memory_total_bytes: None,
                    temperature_celsius: None,
                    power_limit: None,
                    processes: None,
                })
            })
            .collect();
        let tick = Tick {
            wall: self.wall,
            mono: self.mono,
        };
        self.book.observe(self.wall, self.engine.counters());
        self.engine.ingest(
            tick,
            &[Report {
                collector: "nvml",
                outcome: Ok(readings),
            }],
        );
        self.save();
    }

    /// `n` ticks of `secs` each.
    pub fn run(&mut self, n: usize, secs: f64, gpus: &[(&str, &str, f64)]) {
        for _ in 0..n {
            self.tick(secs, gpus);
        }
    }

    /// Value and tokens booked for `name` (team/workload) now.
    pub fn value(&mut self, name: &str, money: f64, input: f64, output: f64) {
        self.book.observe(self.wall, self.engine.counters());
        assert!(self.engine.book_value(
            &[(owner(name), 1.0)],
            "push",
            money,
            &[ModelDelta {
                model: "m".into(),
                input_tokens: input,
                output_tokens: output,
                requests: 1.0,
                ..Default::default()
            }],
        ));
        self.save();
    }

    /// From the next tick on, `uuid` is shared by (team/workload, share).
    pub fn share(&mut self, uuid: &str, owners: &[(&str, f64)]) {
        self.engine.set_attribution(
            uuid,
            owners
                .iter()
                .map(|(o, s)| OwnerShare {
                    owner: owner(o),
                    share: *s,
                    rule: "rule:test".into(),
                })
                .collect(),
        );
    }

    pub fn set_price(&mut self, p: f64) {
        self.engine
            .set_tariff(Tariff::Static(PricePerKwh(p)), Some(self.wall));
    }

    /// Grid intensity `g` gCO2e/kWh, not priced.
    pub fn set_carbon(&mut self, g: f64) {
        self.engine.set_carbon(Some(Carbon {
            intensity: Tariff::Static(PricePerKwh(g)),
            price_per_tonne: 0.0,
            source: "static".into(),
            fetched_at: None,
        }));
    }

    pub fn save(&mut self) {
        let now = self.engine.counters().last_wall.unwrap_or(self.wall);
        self.ledger
            .save(self.engine.counters(), &self.book, &self.meta, now)
            .unwrap();
        self.book.written();
    }
}

pub const H100: &str = "NVIDIA H100 80GB HBM3";
pub const A100: &str = "NVIDIA A100-SXM4-80GB";

/// Node `n1` on 2026-12-01, two closed hours (00:00 and 01:00), carbon at
/// 300 g/kWh:
/// - 00:00: GPU-h (H100) 500 W and GPU-a (A100) 300 W, both owned by
///   search/chat; price 0.2; search/chat serves 1.8 M tokens for 3.0.
/// - 01:00: GPU-h 400 W, GPU-a 300 W shared half and half by search/chat
///   and vision/embed; price 0.3; search/chat serves 3.6 M tokens for 7.2.
pub fn node_one(path: &Path) -> Node {
    let mut n = Node::new(
        path,
        "n1",
        cfg(&[("GPU-h", "search/chat"), ("GPU-a", "search/chat")], 0.2),
        at(1, 0),
    );
    n.set_carbon(300.0);
    let first = [("GPU-h", H100, 500.0), ("GPU-a", A100, 300.0)];
    let second = [("GPU-h", H100, 400.0), ("GPU-a", A100, 300.0)];
    n.tick(0.0, &first);
    n.run(3, 600.0, &first);
    n.value("search/chat", 3.0, 1_000_000.0, 800_000.0);
    n.run(3, 600.0, &first);
    n.set_price(0.3);
    n.share("GPU-a", &[("search/chat", 0.5), ("vision/embed", 0.5)]);
    n.run(3, 600.0, &second);
    n.value("search/chat", 7.2, 2_000_000.0, 1_600_000.0);
    n.run(3, 600.0, &second);
    // 02:10: closes 01:00.
    n.tick(600.0, &second);
    n
}

/// Node `n2` on 2026-12-02, one closed hour (00:00): GPU-x (H100) at
/// 600 W owned by search/chat, price 0.1, no carbon; search/chat serves
/// 0.72 M tokens for 1.44.
pub fn node_two(path: &Path) -> Node {
    let mut n = Node::new(path, "n2", cfg(&[("GPU-x", "search/chat")], 0.1), at(2, 0));
    let g = [("GPU-x", H100, 600.0)];
    n.tick(0.0, &g);
    n.run(3, 600.0, &g);
    n.value("search/chat", 1.44, 720_000.0, 0.0);
    n.run(3, 600.0, &g);
    n.tick(600.0, &g);
    n
}
