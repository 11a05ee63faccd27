//! The ledger against the real engine: random ticks, prices (negative
//! ones too), value and owner changes across simulated crashes always leave
//! hour rows equal to the per-tick increments booked in each hour and sums
//! equal to the counters; closed hours never change; tampering is refused
//! or found; retention keeps reconciliation; reports and budgets match
//! figures computed by hand.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use roimon_core::{
    Engine, EngineConfig, FixedCosts, GpuReading, Joules, ModelDelta, Owner, PricePerKwh, Reading,
    Report, Seconds, ShareKey, Tariff, Tick, Watts,
};
use roimon_ledger::figures::{FIELDS, Figures, Key, totals};
use roimon_ledger::{Budget, Dim, HourBook, Ledger, Meta, Query, hour_of, hour_of_end};
use std::collections::BTreeMap;

const GPUS: [&str; 2] = ["GPU-a", "GPU-b"];

fn cfg(owners: &[(&str, &str, &str)], price: f64, capex: f64) -> EngineConfig {
    EngineConfig {
        currency: "EUR".into(),
        pue: 1.25,
        tariff: Tariff::Static(PricePerKwh(price)),
        price_source: "static".into(),
        fixed: FixedCosts {
            capex_per_sec: capex,
            ..Default::default()
        },
        share_key: ShareKey::Equal,
        owners: owners
            .iter()
            .map(|(u, t, w)| {
                (
                    u.to_string(),
                    Owner {
                        team: t.to_string(),
                        workload: w.to_string(),
                    },
                )
            })
            .collect(),
        max_gap: Seconds(1e9),
    }
}

fn meta() -> Meta {
    Meta {
        node: "node-1".into(),
        price_source: "static".into(),
    }
}

/// A daemon in miniature: engine, hour book and ledger, driven by hand,
/// with a model of what each hour should hold built from per-tick deltas.
struct Sim {
    engine: Engine,
    book: HourBook,
    ledger: Ledger,
    wall: DateTime<Utc>,
    mono: f64,
    energy: [f64; 2],
    price: f64,
    model: BTreeMap<(i64, Key), Figures>,
    saved_model: BTreeMap<(i64, Key), Figures>,
    closed_seen: BTreeMap<i64, Vec<f64>>,
    retention_days: u32,
    _dir: tempfile::TempDir,
}

impl Sim {
    fn new(start: DateTime<Utc>, owners: &[(&str, &str, &str)], capex: f64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger.sqlite3")).unwrap();
        Self {
            engine: Engine::new(cfg(owners, 0.2, capex), None),
            book: HourBook::resume(None, None),
            ledger,
            wall: start,
            mono: 0.0,
            energy: [0.0; 2],
            price: 0.2,
            model: BTreeMap::new(),
            saved_model: BTreeMap::new(),
            closed_seen: BTreeMap::new(),
            retention_days: roimon_ledger::DEFAULT_RETENTION_DAYS,
            _dir: dir,
        }
    }

    /// Book what `f` does to the counters at the current wall time.
    fn booked(&mut self, f: impl FnOnce(&mut Engine)) {
        self.book.observe(self.wall, self.engine.counters());
        let before = totals(self.engine.counters());
        f(&mut self.engine);
        let after = totals(self.engine.counters());
        let h = hour_of_end(self.wall);
        let zero = Figures::default();
        for (k, f) in &after.rows {
            let d = f.minus(before.rows.get(k).unwrap_or(&zero));
            self.model.entry((h, k.clone())).or_default().add(&d);
        }
    }

    fn tick(&mut self, secs: f64, watts: [f64; 2]) {
        self.wall += Duration::milliseconds((secs * 1000.0) as i64);
        self.mono += secs;
        let mut readings = Vec::new();
        for (i, u) in GPUS.iter().enumerate() {
            self.energy[i] += watts[i] * secs;
            readings.push(Reading::Gpu(GpuReading {
                index: i as u32,
                uuid: u.to_string(),
                name: "test".into(),
                power: Some(Watts(watts[i])),
                energy_counter: Some(Joules(self.energy[i])),
                utilization: None,
                memory_used_bytes: None,
                memory_total_bytes: None,
                temperature_celsius: None,
                power_limit: None,
                processes: None,
            }));
        }
        let tick = Tick {
            wall: self.wall,
            mono: self.mono,
        };
        self.booked(|e| {
            e.ingest(
                tick,
                &[Report {
                    collector: "nvml",
                    outcome: Ok(readings),
                }],
            )
        });
    }

    fn value(&mut self, team: &str, money: f64, tokens: f64) {
        let owner = Owner {
            team: team.into(),
            workload: "chat".into(),
        };
        self.booked(|e| {
            e.book_value(
                &[(owner, 1.0)],
                "push",
                money,
                &[ModelDelta {
                    model: "m".into(),
                    input_tokens: tokens,
                    output_tokens: tokens / 2.0,
                    requests: 1.0,
                    ..Default::default()
                }],
            );
        });
    }

    fn set_price(&mut self, p: f64) {
        self.price = p;
        self.engine
            .set_tariff(Tariff::Static(PricePerKwh(p)), Some(self.wall));
    }

    fn save(&mut self) {
        let now = self.engine.counters().last_wall.unwrap_or(self.wall);
        self.ledger
            .save(self.engine.counters(), &self.book, &meta(), now)
            .unwrap();
        self.book.written();
        self.saved_model = self.model.clone();
        // Closed rows never change once written.
        let closed = closed_rows(&self.ledger);
        let cutoff = hour_of(now) - i64::from(self.retention_days) * 86_400;
        for (id, v) in &self.closed_seen {
            // Only the retention purge may remove a closed row.
            let purged = self.retention_days > 0 && (v[0] as i64) < cutoff;
            if !purged || closed.contains_key(id) {
                assert_eq!(
                    closed.get(id),
                    Some(v),
                    "closed row {id} changed or vanished"
                );
            }
        }
        self.closed_seen = closed;
    }

    /// kill -9 and restart with new owners: resume from the database.
    fn crash(&mut self, owners: &[(&str, &str, &str)]) {
        let Some(stored) = self.ledger.load().unwrap() else {
            // Nothing on disk yet: the state starts afresh.
            self.engine = Engine::new(cfg(owners, self.price, 0.01), None);
            self.book = HourBook::resume(None, None);
            self.model.clear();
            return;
        };
        let counters: roimon_core::Counters = serde_json::from_str(&stored.counters).unwrap();
        self.engine = Engine::new(cfg(owners, self.price, 0.01), Some(counters));
        self.book = HourBook::resume(Some(stored.book), Some(self.engine.counters()));
        self.model = self.saved_model.clone();
        // The driver's counters go on; the new engine takes a baseline.
        self.wall = self.engine.counters().last_wall.unwrap_or(self.wall) + Duration::seconds(30);
    }
}

fn closed_rows(l: &Ledger) -> BTreeMap<i64, Vec<f64>> {
    let sql = format!(
        "SELECT id, hour_start, {} FROM ledger WHERE closed = 1",
        FIELDS.join(", ")
    );
    let mut st = l.connection().prepare(&sql).unwrap();
    st.query_map([], |r| {
        let mut v = vec![r.get::<_, i64>(1)? as f64];
        for i in 0..FIELDS.len() {
            v.push(r.get(2 + i)?);
        }
        Ok((r.get(0)?, v))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn ledger_by_hour(l: &Ledger) -> BTreeMap<(i64, Key), Figures> {
    let sql = format!(
        "SELECT hour_start, gpu_uuid, team, workload, {} FROM ledger",
        FIELDS.join(", ")
    );
    let mut st = l.connection().prepare(&sql).unwrap();
    let mut out: BTreeMap<(i64, Key), Figures> = BTreeMap::new();
    let rows = st
        .query_map([], |r| {
            let key = Key {
                gpu_uuid: r.get(1)?,
                team: r.get(2)?,
                workload: r.get(3)?,
            };
            let mut f = Figures::default();
            for i in 0..FIELDS.len() {
                f.0[i] = r.get(4 + i)?;
            }
            Ok(((r.get(0)?, key), f))
        })
        .unwrap();
    for row in rows {
        let (k, f) = row.unwrap();
        out.entry(k).or_default().add(&f);
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    Tick(f64, f64, f64),
    Price(f64),
    Value(u8, f64),
    Save,
    Crash(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0.5f64..1900.0, 0.0f64..700.0, 0.0f64..700.0).prop_map(|(s, a, b)| Op::Tick(s, a, b)),
        1 => (-0.3f64..0.6).prop_map(Op::Price),
        1 => (0u8..3, 0.0f64..50.0).prop_map(|(t, m)| Op::Value(t, m)),
        2 => Just(Op::Save),
        1 => (0u8..3).prop_map(Op::Crash),
    ]
}

const OWNERS: [[(&str, &str, &str); 2]; 3] = [
    [("GPU-a", "search", "chat"), ("GPU-b", "vision", "train")],
    [("GPU-a", "vision", "train"), ("GPU-b", "search", "chat")],
    [("GPU-a", "search", "batch"), ("GPU-b", "search", "batch")],
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Σ ledger == counters and every hour holds exactly what was booked
    /// in it, whatever the ticks, prices, owners and crashes.
    #[test]
    fn hours_hold_what_was_booked_in_them_and_sum_to_the_counters(
        ops in proptest::collection::vec(op(), 1..120),
        start_min in 0i64..60,
    ) {
        let start = Utc.with_ymd_and_hms(2026, 11, 30, 21, 0, 0).unwrap() + Duration::minutes(start_min);
        let mut sim = Sim::new(start, &OWNERS[0], 0.01);
        sim.tick(1.0, [100.0, 200.0]);
        for op in ops {
            match op {
                Op::Tick(s, a, b) => sim.tick(s, [a, b]),
                Op::Price(p) => sim.set_price(p),
                Op::Value(t, m) => sim.value(["search", "vision", "new"][t as usize], m, m * 100.0),
                Op::Save => sim.save(),
                Op::Crash(o) => sim.crash(&OWNERS[o as usize]),
            }
        }
        sim.save();
        let v = sim.ledger.verify().unwrap();
        prop_assert!(v.differences.is_empty(), "{:?}", v.differences);
        // Per hour and key: the ledger row is what the ticks of that hour added.
        let grand = totals(sim.engine.counters());
        let mut scale = Figures::default();
        for f in grand.rows.values() {
            for i in 0..FIELDS.len() {
                scale.0[i] += f.0[i].abs();
            }
        }
        let got = ledger_by_hour(&sim.ledger);
        let zero = Figures::default();
        let keys: std::collections::BTreeSet<&(i64, Key)> = got.keys().chain(sim.model.keys()).collect();
        for k in keys {
            let (g, m) = (got.get(k).unwrap_or(&zero), sim.model.get(k).unwrap_or(&zero));
            for (i, field) in FIELDS.iter().enumerate() {
                let tol = 1e-9 * g.0[i].abs().max(m.0[i].abs()) + 1e-12 * scale.0[i] + 1e-12;
                prop_assert!((g.0[i] - m.0[i]).abs() <= tol,
                    "{} of {:?}: ledger {} vs booked {}", field, k, g.0[i], m.0[i]);
            }
        }
    }
}

/// Build a ledger over `hours` of one GPU-free pair of owners at a fixed
/// capex rate (0.01 EUR/s shared equally: 0.005 EUR/s per GPU), ticking
/// every minute from `created` to `now`.
fn fixed_cost_sim(created: DateTime<Utc>, now: DateTime<Utc>) -> Sim {
    let owners = [("GPU-a", "a", "w1"), ("GPU-b", "b", "w2")];
    let mut sim = Sim::new(created, &owners, 0.01);
    sim.tick(0.0, [0.0, 0.0]);
    while sim.wall < now {
        let step = (now - sim.wall).num_seconds().min(60) as f64;
        sim.tick(step, [0.0, 0.0]);
        if sim.wall.timestamp() % 3600 == 0 {
            sim.save();
        }
    }
    sim.save();
    sim
}

#[test]
fn budgets_are_month_to_date_and_the_recent_run_rate_to_month_end() {
    let created = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap();
    let sim = fixed_cost_sim(created, now);
    let budgets = [
        Budget {
            team: "a".into(),
            workload: None,
            monthly: 1000.0,
        },
        Budget {
            team: "a".into(),
            workload: Some("w1".into()),
            monthly: 500.0,
        },
        Budget {
            team: "a".into(),
            workload: Some("other".into()),
            monthly: 5.0,
        },
    ];
    let v = sim
        .ledger
        .budgets(&budgets, now, Some(created), chrono_tz::UTC, "EUR")
        .unwrap();
    // 18 h at 0.005 EUR/s = 324; the last 24 h began before the state, so
    // the rate is 324 / 18 h = 0.005 EUR/s, for the 18 h left in November.
    assert!((v[0].spent - 324.0).abs() < 1e-6, "{v:?}");
    assert!((v[0].forecast - 648.0).abs() < 1e-6, "{v:?}");
    assert_eq!((v[0].monthly, v[0].workload.as_str()), (1000.0, ""));
    assert!((v[1].spent - 324.0).abs() < 1e-6 && v[1].workload == "w1");
    assert_eq!((v[2].spent, v[2].forecast), (0.0, 0.0));
}

#[test]
fn budget_months_follow_the_report_time_zone() {
    let created = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    // 00:30 on 1 December in Berlin: December began at 23:00 UTC.
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 23, 30, 0).unwrap();
    let sim = fixed_cost_sim(created, now);
    let b = [Budget {
        team: "a".into(),
        workload: None,
        monthly: 1.0,
    }];
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let v = sim
        .ledger
        .budgets(&b, now, Some(created), berlin, "EUR")
        .unwrap();
    // Spent: 30 min at 0.005 = 9. Rate over the 23.5 h since 00:00 UTC:
    // 0.005/s. Left: to 31 Dec 23:00 UTC = 31 days − 30 min.
    assert!((v[0].spent - 9.0).abs() < 1e-6, "{v:?}");
    let left = 31.0 * 86_400.0 - 1800.0;
    assert!((v[0].forecast - (9.0 + 0.005 * left)).abs() < 1e-6, "{v:?}");
    // In UTC it is still November: 35.5 h booked.
    let v = sim
        .ledger
        .budgets(&b, now, Some(created), chrono_tz::UTC, "EUR")
        .unwrap();
    assert!((v[0].spent - 0.005 * 35.5 * 3600.0).abs() < 1e-6, "{v:?}");
}

#[test]
fn a_monthly_csv_per_team_in_a_time_zone_adds_up_to_the_counters() {
    let created = Utc.with_ymd_and_hms(2026, 11, 30, 20, 0, 0).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
    let sim = fixed_cost_sim(created, now);
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let q = Query {
        from: roimon_ledger::report::parse_time("2026-11", berlin).unwrap(),
        to: roimon_ledger::report::parse_time("2027-01-01", berlin).unwrap(),
        by: Dim::parse_list("team,month").unwrap(),
        tz: berlin,
        team: None,
    };
    let csv = sim.ledger.report(&q).unwrap().to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "period_start,period_end,team,month,energy_kwh,facility_energy_kwh,cost_energy,cost_capex,cost_maintenance,cost_staff,cost_carbon,cost_total,credit,emissions_kg,value,tokens,currency,requests,net_cost,roi"
    );
    // Berlin: November ends at 23:00 UTC, so 3 h of team a in November
    // (20:00–23:00 UTC) = 54 EUR, and 3 h in December = 54 EUR.
    let cells = |l: &str| l.split(',').map(String::from).collect::<Vec<_>>();
    let rows: Vec<Vec<String>> = lines[1..].iter().map(|l| cells(l)).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    let a_nov = &rows[0];
    assert_eq!(
        (
            a_nov[0].as_str(),
            a_nov[1].as_str(),
            a_nov[2].as_str(),
            a_nov[3].as_str()
        ),
        (
            "2026-11-01T00:00:00+01:00",
            "2026-12-01T00:00:00+01:00",
            "a",
            "2026-11"
        )
    );
    let cost_total = |r: &Vec<String>| r[11].parse::<f64>().unwrap();
    assert!((cost_total(a_nov) - 54.0).abs() < 1e-9, "{csv}");
    assert!((cost_total(&rows[2]) - 54.0).abs() < 1e-9, "{csv}");
    let total = rows.last().unwrap();
    assert_eq!(total[0], "TOTAL");
    assert_eq!(total[16], "EUR");
    let node = sim
        .engine
        .counters()
        .cost
        .values()
        .map(|a| a.total())
        .sum::<f64>();
    assert!((cost_total(total) - node).abs() <= 1e-9 * node, "{csv}");
    assert!((node - 216.0).abs() < 1e-6);
    // JSON carries the same figures.
    let j = sim.ledger.report(&q).unwrap().to_json();
    assert_eq!(j["currency"], "EUR");
    assert_eq!(j["rows"].as_array().unwrap().len(), 4);
    assert!((j["totals"]["cost_total"].as_f64().unwrap() - node).abs() <= 1e-9 * node);
    // By component, the rows still add up.
    let q = Query {
        by: Dim::parse_list("component").unwrap(),
        ..q
    };
    let r = sim.ledger.report(&q).unwrap();
    let s: f64 = r.rows.iter().map(|r| r.out[7]).sum();
    assert!((s - node).abs() <= 1e-9 * node);
    assert!(r.rows.iter().any(|r| r.dims[0] == "capex"));
}

#[test]
fn a_running_month_ends_at_the_time_of_the_report_and_is_not_complete() {
    let created = Utc.with_ymd_and_hms(2026, 11, 30, 20, 0, 0).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
    let sim = fixed_cost_sim(created, now);
    let q = Query {
        from: roimon_ledger::report::parse_time("2026-12", chrono_tz::UTC).unwrap(),
        to: roimon_ledger::report::parse_time("2027-01", chrono_tz::UTC).unwrap(),
        by: Dim::parse_list("team,day").unwrap(),
        tz: chrono_tz::UTC,
        team: None,
    };
    let as_of = Utc.with_ymd_and_hms(2026, 12, 1, 2, 30, 15).unwrap();
    let r = sim.ledger.report_at(&q, as_of).unwrap();
    assert!(!r.complete);
    // Today's rows end now, not at midnight; so does the month.
    assert!(r.rows.iter().all(|r| r.period_end == as_of), "{:?}", r.rows);
    let j = r.to_json();
    assert_eq!(j["complete"], false);
    assert_eq!(j["period_end"], "2026-12-01T02:30:15Z");
    assert_eq!(j["to"], "2027-01-01T00:00:00Z");
    assert_eq!(j["rows"][0]["period_end"], "2026-12-01T02:30:15Z");
    let csv = r.to_csv();
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("2026-12-01T00:00:00Z,2026-12-01T02:30:15Z,a,2026-12-01,"),
        "{csv}"
    );
    assert!(
        r.to_table()
            .contains("to date: 2026-12-01T00:00:00Z to 2026-12-01T02:30:15Z")
    );
    // November is over by then: complete, ending at its end.
    let nov = Query {
        from: roimon_ledger::report::parse_time("2026-11", chrono_tz::UTC).unwrap(),
        to: roimon_ledger::report::parse_time("2026-12", chrono_tz::UTC).unwrap(),
        ..q
    };
    let r = sim.ledger.report_at(&nov, as_of).unwrap();
    assert!(r.complete);
    assert_eq!(r.to_json()["period_end"], "2026-12-01T00:00:00Z");
    assert!(!r.to_table().contains("to date"));
}

#[test]
fn an_unknown_team_is_named_with_the_teams_of_the_period() {
    let created = Utc.with_ymd_and_hms(2026, 11, 30, 20, 0, 0).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
    let sim = fixed_cost_sim(created, now);
    let mut q = Query {
        from: roimon_ledger::report::parse_time("2026-12", chrono_tz::UTC).unwrap(),
        to: roimon_ledger::report::parse_time("2027-01", chrono_tz::UTC).unwrap(),
        by: Vec::new(),
        tz: chrono_tz::UTC,
        team: Some("nosuchteam".into()),
    };
    assert_eq!(
        sim.ledger.teams(q.from, q.to).unwrap(),
        vec!["a".to_string(), "b".to_string()]
    );
    let why = sim.ledger.unknown_team(&q).unwrap().expect("unknown");
    assert!(why.contains("\"nosuchteam\""), "{why}");
    assert!(why.ends_with("are a, b"), "{why}");
    q.team = Some("a".into());
    assert_eq!(sim.ledger.unknown_team(&q).unwrap(), None);
    q.team = None;
    assert_eq!(sim.ledger.unknown_team(&q).unwrap(), None);
    // A span without rows says so.
    q.team = Some("a".into());
    q.from = roimon_ledger::report::parse_time("2026-06", chrono_tz::UTC).unwrap();
    q.to = roimon_ledger::report::parse_time("2026-07", chrono_tz::UTC).unwrap();
    let why = sim.ledger.unknown_team(&q).unwrap().expect("unknown");
    assert!(why.contains("no rows"), "{why}");
}

#[test]
fn closed_hours_refuse_changes_and_verify_finds_a_forged_one() {
    let created = Utc.with_ymd_and_hms(2026, 11, 30, 20, 0, 0).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 23, 10, 0).unwrap();
    let sim = fixed_cost_sim(created, now);
    assert!(sim.ledger.verify().unwrap().differences.is_empty());
    let path = sim.ledger.path().to_path_buf();
    let c = rusqlite::Connection::open(&path).unwrap();
    let upd = c.execute(
        "UPDATE ledger SET cost_capex = cost_capex * 0.5 WHERE closed = 1",
        [],
    );
    assert!(upd.unwrap_err().to_string().contains("immutable"));
    let del = c.execute("DELETE FROM ledger WHERE closed = 1", []);
    assert!(del.unwrap_err().to_string().contains("immutable"));
    // Someone who drops the guard can forge a row, but not unseen.
    c.execute_batch(
        "DROP TRIGGER ledger_closed_no_update;
         UPDATE ledger SET cost_capex = cost_capex * 0.5 WHERE id = (SELECT MIN(id) FROM ledger WHERE closed = 1);",
    )
    .unwrap();
    let v = sim.ledger.verify().unwrap();
    assert!(
        v.differences.iter().any(|d| d.contains("cost_capex")),
        "{:?}",
        v.differences
    );
    // The read API sees only closed hours, in order.
    let since = Utc.with_ymd_and_hms(2026, 11, 30, 21, 0, 0).unwrap();
    let rows = sim.ledger.closed_hours_since(since.timestamp()).unwrap();
    assert!(
        rows.iter()
            .all(|r| r.hour_start >= since && r.kind == "hour")
    );
    assert_eq!(rows.len(), 4, "21:00 and 22:00 for two GPUs");
    assert!(rows.windows(2).all(|w| w[0].hour_start <= w[1].hour_start));
}

#[test]
fn retention_moves_old_hours_into_purged_totals_and_verify_still_holds() {
    let created = Utc.with_ymd_and_hms(2026, 11, 27, 20, 0, 0).unwrap();
    let owners = [("GPU-a", "a", "w1"), ("GPU-b", "b", "w2")];
    let mut sim = Sim::new(created, &owners, 0.01);
    sim.ledger.set_retention_days(1);
    sim.retention_days = 1;
    sim.tick(0.0, [0.0, 0.0]);
    for _ in 0..(3 * 24 * 6) {
        sim.tick(600.0, [10.0, 20.0]);
        sim.save();
    }
    let oldest: i64 = sim
        .ledger
        .connection()
        .query_row("SELECT MIN(hour_start) FROM ledger", [], |r| r.get(0))
        .unwrap();
    let now = sim.engine.counters().last_wall.unwrap();
    // Purged when an hour closes: at most one more hour is kept.
    assert!(
        oldest >= hour_of(now) - 86_400 - 3600,
        "old hours were kept"
    );
    assert!(oldest > hour_of(created) + 86_400, "nothing was purged");
    let purged: i64 = sim
        .ledger
        .connection()
        .query_row("SELECT COUNT(*) FROM ledger_purged", [], |r| r.get(0))
        .unwrap();
    assert_eq!(purged, 2);
    let v = sim.ledger.verify().unwrap();
    assert!(v.differences.is_empty(), "{:?}", v.differences);
}

#[test]
fn report_times_accept_what_the_csv_prints_and_wall_times() {
    use roimon_ledger::report::parse_time;
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let want = Utc.with_ymd_and_hms(2026, 10, 31, 23, 0, 0).unwrap();
    // As printed in period_start, as typed into a URL (the + decoded to a
    // space), a wall time in the report zone, a date, a month.
    for s in [
        "2026-11-01T00:00:00+01:00",
        "2026-11-01T00:00:00 01:00",
        "2026-11-01T00:00:00",
        "2026-11-01 00:00:00",
        "2026-11-01",
        "2026-11",
    ] {
        assert_eq!(parse_time(s, berlin), Ok(want), "{s}");
    }
    assert!(parse_time("2026-11-01T00:00:00 xx", berlin).is_err());
    assert!(parse_time("yesterday", berlin).is_err());
}
