//! The ledger when the state or the clock misbehaves: a wall clock stepped
//! forward and back books money to the hour of the wall time (closed rows
//! never rewritten, `late` rows instead); a checkpoint from the future
//! resumes and reconciles; a lost `-wal` loses at most the open hour; a
//! deliberate reset and a repair are visible rows that keep Σ ledger equal
//! to the counters.

use chrono::{DateTime, Duration, TimeZone, Utc};
use roimon_core::units::Accumulator;
use roimon_core::{Component, Counters, Engine, EngineConfig, FixedCosts, Seconds, Tick};
use roimon_ledger::{HourBook, Ledger, Meta, hour_of};

fn cfg() -> EngineConfig {
    EngineConfig {
        currency: "EUR".into(),
        pue: 1.2,
        tariff: roimon_core::Tariff::Static(roimon_core::PricePerKwh(0.2)),
        price_source: "static".into(),
        fixed: FixedCosts {
            capex_per_sec: 0.01,
            ..Default::default()
        },
        share_key: roimon_core::ShareKey::Equal,
        owners: Default::default(),
        max_gap: Seconds(1e9),
    }
}

fn meta() -> Meta {
    Meta {
        node: "n1".into(),
        price_source: "static".into(),
    }
}

/// A daemon in miniature on fixed costs only: the wall clock is set by
/// hand, monotonic time runs on by `secs` per tick.
struct Node {
    engine: Engine,
    book: HourBook,
    ledger: Ledger,
    mono: f64,
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join(roimon_ledger::FILE)).unwrap();
        Self {
            engine: Engine::new(cfg(), None),
            book: HourBook::resume(None, None),
            ledger,
            mono: 0.0,
            dir,
        }
    }

    fn tick(&mut self, wall: DateTime<Utc>, secs: f64) {
        self.mono += secs;
        self.book.observe(wall, self.engine.counters());
        self.engine.ingest(
            Tick {
                wall,
                mono: self.mono,
            },
            &[],
        );
        self.ledger
            .save(self.engine.counters(), &self.book, &meta(), wall)
            .unwrap();
        self.book.written();
    }

    fn sql_f64(&self, sql: &str) -> f64 {
        self.ledger
            .connection()
            .query_row(sql, [], |r| r.get::<_, Option<f64>>(0))
            .unwrap()
            .unwrap_or(0.0)
    }

    fn verify_ok(&self) {
        let v = self.ledger.verify().unwrap();
        assert!(v.differences.is_empty(), "{:?}", v.differences);
    }
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, h, m, 0).unwrap()
}

#[test]
fn a_clock_stepped_a_day_ahead_and_back_books_to_the_hour_of_the_wall_time() {
    let mut n = Node::new();
    n.tick(at(9, 10), 0.0);
    for m in 11..=20 {
        n.tick(at(9, m), 60.0);
    }
    // The clock jumps a day ahead for two ticks, then is corrected.
    let ahead = at(9, 21) + Duration::days(1);
    n.tick(ahead, 60.0);
    n.tick(ahead + Duration::minutes(1), 60.0);
    let hour_row_before: f64 = n.sql_f64(&format!(
        "SELECT cost_capex FROM ledger WHERE kind = 'hour' AND closed = 1 AND hour_start = {}",
        at(9, 0).timestamp()
    ));
    for m in 23..=59 {
        n.tick(at(9, m), 60.0);
    }
    for m in 0..=5 {
        n.tick(at(10, m), 60.0);
    }
    n.verify_ok();
    // Tomorrow's hour holds the two ticks made while the clock was ahead,
    // no more; every other minute is in today's hours.
    let tomorrow = n.sql_f64(&format!(
        "SELECT SUM(cost_capex) FROM ledger WHERE hour_start = {}",
        hour_of(ahead)
    ));
    assert!((tomorrow - 2.0 * 60.0 * 0.01).abs() < 1e-9, "{tomorrow}");
    let today = n.sql_f64(&format!(
        "SELECT SUM(cost_capex) FROM ledger WHERE hour_start >= {} AND hour_start <= {}",
        at(9, 0).timestamp(),
        at(10, 0).timestamp()
    ));
    let total = n.engine.counters().cost[&Component::Capex].total();
    assert!((today + tomorrow - total).abs() < 1e-9, "{today} {total}");
    assert!(today > 0.9 * total, "{today} of {total} in today's hours");
    // 09:00 was closed by the jump: its later money is a `late` row; the
    // closed `hour` row is as it was.
    let late = n.sql_f64(&format!(
        "SELECT SUM(cost_capex) FROM ledger WHERE kind = 'late' AND hour_start = {}",
        at(9, 0).timestamp()
    ));
    assert!(late > 0.0);
    let hour_row_after: f64 = n.sql_f64(&format!(
        "SELECT cost_capex FROM ledger WHERE kind = 'hour' AND closed = 1 AND hour_start = {}",
        at(9, 0).timestamp()
    ));
    assert_eq!(hour_row_before, hour_row_after);
    let open: f64 = n.sql_f64("SELECT MAX(hour_start) FROM ledger WHERE closed = 0");
    assert_eq!(open as i64, at(10, 0).timestamp());
    // A copier that went on by hour would have passed 09:00 with
    // tomorrow's hour; by row id it sees the late row.
    let copied = n.ledger.closed_rows_after(0).unwrap();
    let tomorrow_id = copied
        .iter()
        .find(|(_, r)| r.hour_start.timestamp() == hour_of(ahead))
        .map(|(id, _)| *id)
        .unwrap();
    let after = n.ledger.closed_rows_after(tomorrow_id).unwrap();
    assert!(
        after
            .iter()
            .any(|(_, r)| r.kind == "late" && r.hour_start == at(9, 0)),
        "{after:?}"
    );
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(
        n.ledger.last_closed_id_before(hour_of(ahead)).unwrap(),
        copied
            .iter()
            .filter(|(_, r)| r.hour_start.timestamp() < hour_of(ahead))
            .map(|(id, _)| *id)
            .max()
            .unwrap()
    );
}

#[test]
fn a_checkpoint_from_the_future_resumes_and_accrues_from_now() {
    let mut n = Node::new();
    // Written while the clock was a day ahead.
    let ahead = at(9, 10) + Duration::days(1);
    n.tick(ahead, 0.0);
    for m in 1..=5 {
        n.tick(ahead + Duration::minutes(m), 60.0);
    }
    let before = n.engine.counters().cost[&Component::Capex].total();
    let closed_before = n.sql_f64("SELECT COUNT(*) FROM ledger WHERE closed = 1");
    // Restart with the clock corrected.
    let stored = n.ledger.load().unwrap().unwrap();
    let c: Counters = serde_json::from_str(&stored.counters).unwrap();
    assert_eq!(c.validate(at(9, 20)), Ok(()));
    n.engine = Engine::new(cfg(), Some(c));
    n.book = HourBook::resume(Some(stored.book), Some(n.engine.counters()));
    n.mono = 0.0;
    n.tick(at(9, 20), 0.0);
    assert_eq!(
        n.engine.counters().cost[&Component::Capex].total(),
        before,
        "no fixed cost for a negative downtime"
    );
    for m in 21..=30 {
        n.tick(at(9, m), 60.0);
    }
    n.verify_ok();
    let now_hour = n.sql_f64(&format!(
        "SELECT SUM(cost_capex) FROM ledger WHERE hour_start = {}",
        at(9, 0).timestamp()
    ));
    assert!((now_hour - 600.0 * 0.01).abs() < 1e-9, "{now_hour}");
    assert!(n.sql_f64("SELECT COUNT(*) FROM ledger WHERE closed = 1") >= closed_before);
}

#[test]
fn the_main_file_alone_holds_every_closed_hour() {
    let mut n = Node::new();
    n.tick(at(9, 50), 0.0);
    for m in 51..=59 {
        n.tick(at(9, m), 60.0);
    }
    n.tick(at(10, 1), 120.0);
    let at_close = n.engine.counters().last_wall.unwrap();
    for m in 2..=20 {
        n.tick(at(10, m), 60.0);
    }
    // The -wal is lost (the daemon was killed, the log deleted): only the
    // main file is left.
    let lost = tempfile::tempdir().unwrap();
    let main = lost.path().join(roimon_ledger::FILE);
    std::fs::copy(n.dir.path().join(roimon_ledger::FILE), &main).unwrap();
    let l = Ledger::open(&main).unwrap();
    let stored = l.load().unwrap().expect("a checkpoint in the main file");
    let c: Counters = serde_json::from_str(&stored.counters).unwrap();
    assert!(c.last_wall.unwrap() >= at_close);
    let v = l.verify().unwrap();
    assert!(v.differences.is_empty(), "{:?}", v.differences);
}

#[test]
fn a_reset_is_a_visible_row_and_the_books_still_reconcile() {
    let mut n = Node::new();
    n.tick(at(9, 50), 0.0);
    for m in 51..=59 {
        n.tick(at(9, m), 60.0);
    }
    n.tick(at(10, 5), 360.0);
    let reason = "the checkpoint was lost: ledger.sqlite3 was empty";
    let events = n.ledger.reset(reason, "EUR", &meta(), at(10, 6)).unwrap();
    assert_eq!(events, 1);
    n.verify_ok();
    let stored = n.ledger.load().unwrap().unwrap();
    let c: Counters = serde_json::from_str(&stored.counters).unwrap();
    assert_eq!(c.state_resets, 1);
    assert_eq!(c.currency, "EUR");
    assert!(c.cost.is_empty());
    let (kinds, said): (i64, String) = n
        .ledger
        .connection()
        .query_row(
            "SELECT COUNT(*), MAX(reason) FROM ledger WHERE kind = 'reset'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(kinds >= 1);
    assert_eq!(said, reason);
    // Closed hours stay; the open one went into the reset.
    assert!(n.sql_f64("SELECT COUNT(*) FROM ledger WHERE kind = 'hour' AND closed = 1") >= 1.0);
    // Going on from zero, through the hour the reset is in.
    n.engine = Engine::new(cfg(), Some(c));
    n.book = HourBook::resume(Some(stored.book), Some(n.engine.counters()));
    n.mono = 0.0;
    n.tick(at(10, 7), 0.0);
    for m in 8..=59 {
        n.tick(at(10, m), 60.0);
    }
    n.tick(at(11, 1), 120.0);
    n.verify_ok();
    assert_eq!(
        n.ledger.reset("again", "EUR", &meta(), at(11, 2)).unwrap(),
        2
    );
    n.verify_ok();
}

#[test]
fn repair_resets_a_bad_figure_with_a_correction_row_and_keeps_the_ledger() {
    let mut n = Node::new();
    n.tick(at(9, 50), 0.0);
    for m in 51..=59 {
        n.tick(at(9, m), 60.0);
    }
    n.tick(at(10, 5), 360.0);
    let rows_before = n.sql_f64("SELECT COUNT(*) FROM ledger WHERE closed = 1");
    // A stored figure that is finite in JSON but infinite as a total.
    let mut c = n.engine.counters().clone();
    let huge: Accumulator = serde_json::from_str(r#"{"sum":1.7e308,"comp":1.7e308}"#).unwrap();
    c.unaccounted_seconds.insert("host".into(), huge);
    c.cost
        .insert(Component::Maintenance, Accumulator::from_total(-5.0));
    n.ledger
        .connection()
        .execute(
            "UPDATE checkpoint SET counters = ?1",
            [serde_json::to_string(&c).unwrap()],
        )
        .unwrap();
    let v = n.ledger.verify().unwrap();
    assert!(
        v.differences
            .iter()
            .any(|d| d.contains("unaccounted_seconds.host") && d.contains("roimon ledger repair")),
        "{:?}",
        v.differences
    );
    let said = n.ledger.repair(&meta(), at(10, 6)).unwrap();
    assert!(
        said.iter().any(|l| l.contains("unaccounted_seconds.host")),
        "{said:?}"
    );
    n.verify_ok();
    let stored = n.ledger.load().unwrap().unwrap();
    let c: Counters = serde_json::from_str(&stored.counters).unwrap();
    assert_eq!(c.validate(at(10, 6)), Ok(()));
    let reason: String = n
        .ledger
        .connection()
        .query_row(
            "SELECT reason FROM ledger WHERE kind = 'correction'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(reason.contains("roimon ledger repair"), "{reason}");
    assert!(n.sql_f64("SELECT COUNT(*) FROM ledger WHERE closed = 1") > rows_before);
    // Nothing more to repair now.
    assert!(n.ledger.repair(&meta(), at(10, 7)).unwrap().is_empty());
}
