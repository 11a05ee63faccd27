//! The ledger database: open (WAL, full fsync, schema migrations), the
//! checkpoint transaction (counters, hour book, closed hours and the open
//! hour in one commit), the retention purge, moving to a recreated state
//! dir, reconciliation and the read API for closed hours.

use crate::book::{BookState, HourBook, HourRows, Kind};
use crate::figures::{self, FIELDS, Figures, Key, N};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The ledger's file name in the state dir.
pub const FILE: &str = "ledger.sqlite3";

/// Default retention of closed hours, days.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;

/// A ledger error: the file and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct Error {
    /// The database file.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

/// Result with the ledger's error.
pub type Result<T> = std::result::Result<T, Error>;

/// Facts about the node written into every row.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Node name (`node.name`).
    pub node: String,
    /// Price source label (`price.source`).
    pub price_source: String,
}

/// The ledger database.
#[derive(Debug)]
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    retention_days: u32,
    /// (device, inode) of the file opened, to notice it was replaced.
    file_id: Option<(u64, u64)>,
    /// What the last WAL checkpoint left undone.
    wal_note: Option<String>,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// What the last checkpoint stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The counters, as JSON (the caller parses and validates them).
    pub counters: String,
    /// The hour book that goes with them.
    pub book: BookState,
    /// When they were written.
    pub saved_at: String,
}

/// One closed ledger row, for readers such as an exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct HourRow {
    /// Hour start (UTC).
    pub hour_start: DateTime<Utc>,
    /// Node.
    pub node: String,
    /// GPU UUID (or `none`, or `value`).
    pub gpu_uuid: String,
    /// Team.
    pub team: String,
    /// Workload.
    pub workload: String,
    /// `hour`, `opening` or `correction`.
    pub kind: String,
    /// Currency of the money figures.
    pub currency: String,
    /// The figures, in [`FIELDS`] order.
    pub figures: Figures,
    /// Seconds priced by the price source in this hour.
    pub priced_secs_source: f64,
    /// Seconds priced by a fallback in this hour.
    pub priced_secs_fallback: f64,
    /// The price source.
    pub price_source: String,
}

impl HourRow {
    /// A figure by its column name.
    pub fn get(&self, field: &str) -> Option<f64> {
        FIELDS
            .iter()
            .position(|f| *f == field)
            .map(|i| self.figures.0[i])
    }
}

/// The outcome of `verify`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// One line per difference (empty: the ledger equals the counters).
    pub differences: Vec<String>,
    /// Ledger rows read.
    pub rows: u64,
    /// Distinct hours.
    pub hours: u64,
    /// Σ over the ledger (and purged totals).
    pub totals: Figures,
    /// Currency of the counters.
    pub currency: String,
}

/// Within 1e-9 relative (or both negligibly small).
pub fn close(a: f64, b: f64) -> bool {
    let d = (a - b).abs();
    d <= 1e-9 * a.abs().max(b.abs()) || d <= 1e-12
}

fn fields_csv() -> String {
    FIELDS.join(", ")
}

impl Ledger {
    fn fail(path: &Path, e: impl std::fmt::Display) -> Error {
        Error {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Self::fail(&self.path, e)
    }

    /// Open (creating if needed) for writing: WAL, every commit fsynced,
    /// schema brought to the current version.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|e| Self::fail(path, e))?;
        let mut l = Self {
            conn,
            path: path.to_path_buf(),
            retention_days: DEFAULT_RETENTION_DAYS,
            file_id: None,
            wal_note: None,
        };
        l.setup()?;
        l.file_id = file_id(path);
        Ok(l)
    }

    fn setup(&mut self) -> Result<()> {
        // A checkpoint waits at most this for another writer (an operator's
        // sqlite3 session), then fails and is retried at the next one.
        self.conn
            .busy_timeout(Duration::from_millis(250))
            .map_err(|e| self.err(e))?;
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(self.err(format!("cannot use WAL mode (got {mode})")));
        }
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.err(e))?;
        self.migrate()
    }

    /// Open an existing ledger read-only (reports, verification): safe while
    /// the daemon writes, WAL readers see the last committed checkpoint.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Self::fail(path, "no ledger here (is this the state dir?)"));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Self::fail(path, e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| Self::fail(path, e))?;
        let l = Self {
            conn,
            path: path.to_path_buf(),
            retention_days: DEFAULT_RETENTION_DAYS,
            file_id: file_id(path),
            wal_note: None,
        };
        let v = l.version()?;
        let want = crate::schema::migrations().len() as i64;
        if v != want {
            return Err(l.err(format!(
                "schema version {v}, this roimon reads version {want}"
            )));
        }
        Ok(l)
    }

    fn version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let all = crate::schema::migrations();
        let v = self.version()?;
        if v > all.len() as i64 {
            return Err(self.err(format!(
                "schema version {v} is newer than this roimon's ({}); use the newer roimon",
                all.len()
            )));
        }
        for (i, sql) in all.iter().enumerate().skip(v as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| Self::fail(&self.path, e))?;
            tx.execute_batch(sql)
                .and_then(|()| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .and_then(|()| tx.commit())
                .map_err(|e| {
                    Self::fail(&self.path, format!("migration to version {}: {e}", i + 1))
                })?;
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep closed hours this many days (0: for ever).
    pub fn set_retention_days(&mut self, days: u32) {
        self.retention_days = days;
    }

    /// The underlying connection, for read queries.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// What the last checkpoint stored, if any.
    pub fn load(&self) -> Result<Option<Stored>> {
        let row: Option<(String, String, String)> = self
            .conn
            .query_row(
                "SELECT counters, book, saved_at FROM checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((counters, book, saved_at)) = row else {
            return Ok(None);
        };
        let book: BookState =
            serde_json::from_str(&book).map_err(|e| self.err(format!("checkpoint.book: {e}")))?;
        Ok(Some(Stored {
            counters,
            book,
            saved_at,
        }))
    }

    /// One checkpoint, one transaction: the counters, the hour book, the
    /// hours closed since the last write (immutable from then on), the open
    /// hour's rows as of these counters, and the retention purge when an
    /// hour closed. Nothing of it is on disk unless all of it is.
    pub fn save(
        &mut self,
        counters: &roimon_core::Counters,
        book: &HourBook,
        meta: &Meta,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.save_with_seen(counters, book, meta, now, &[])
    }

    /// [`Ledger::save`], with the changes to the push duplicate window
    /// since the last save applied in the same transaction, in order: the
    /// window on disk always belongs to the counters on disk.
    pub fn save_with_seen(
        &mut self,
        counters: &roimon_core::Counters,
        book: &HourBook,
        meta: &Meta,
        now: DateTime<Utc>,
        seen: &[SeenOp],
    ) -> Result<()> {
        let json = serde_json::to_string(counters).map_err(|e| self.err(e))?;
        let state = serde_json::to_string(book.state()).map_err(|e| self.err(e))?;
        let written_at = now.to_rfc3339();
        let retention = self.retention_days;
        let path = self.path.clone();
        let fail = |e: rusqlite::Error| Self::fail(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        write_checkpoint(&tx, &written_at, &json, &state).map_err(fail)?;
        write_seen(&tx, seen).map_err(fail)?;
        let mut closed_any = false;
        for h in book.pending() {
            if matches!(h.kind, Kind::Hour | Kind::Late) {
                tx.execute(
                    "DELETE FROM ledger WHERE closed = 0 AND hour_start = ?1",
                    params![h.hour],
                )
                .map_err(fail)?;
                closed_any = true;
            }
            let at = Written {
                currency: &counters.currency,
                meta,
                written_at: &written_at,
                models: &counters.gpu_models,
            };
            insert_rows(&tx, h, true, &at, None).map_err(fail)?;
        }
        tx.execute("DELETE FROM ledger WHERE closed = 0", [])
            .map_err(fail)?;
        if let Some(open) = book.open_rows(counters) {
            let at = Written {
                currency: &counters.currency,
                meta,
                written_at: &written_at,
                models: &counters.gpu_models,
            };
            insert_rows(&tx, &open, false, &at, None).map_err(fail)?;
        }
        if closed_any && retention > 0 {
            let cutoff = crate::book::hour_of(now) - i64::from(retention) * 86_400;
            purge(&tx, cutoff).map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        if closed_any {
            self.checkpoint_wal();
        }
        Ok(())
    }

    /// Copy the write-ahead log into the main database file, so that the
    /// main file alone (a lost `-wal`) holds every closed hour. Done when
    /// an hour closes; a reader holding an old snapshot may leave part of
    /// it to SQLite's own automatic checkpoint, which is logged.
    fn checkpoint_wal(&mut self) {
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
        self.wal_note = match r {
            Ok((0, log, done)) if done >= log => None,
            Ok((busy, log, done)) => Some(format!(
                "WAL checkpoint incomplete ({done} of {log} pages, busy {busy}): a reader holds an older snapshot; SQLite finishes it later"
            )),
            Err(e) => Some(format!(
                "WAL checkpoint failed: {e}; the main file lags the log until the next hour closes"
            )),
        };
    }

    /// What the last WAL checkpoint (when an hour closed) left undone, once.
    pub fn take_wal_note(&mut self) -> Option<String> {
        self.wal_note.take()
    }

    /// The state dir was deleted while running (the open file lives on,
    /// unlinked): write a full copy of this database to its path in the
    /// recreated dir and continue there. Nothing written before is lost.
    pub fn relocate(&mut self) -> Result<()> {
        if self.file_id.is_some() && file_id(&self.path) == self.file_id {
            return Ok(());
        }
        let target = self.path.to_string_lossy().to_string();
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{target}{suffix}"));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        self.conn
            .execute("VACUUM INTO ?1", params![target])
            .map_err(|e| self.err(format!("copying into the recreated state dir: {e}")))?;
        let conn = Connection::open(&self.path).map_err(|e| self.err(e))?;
        self.conn = conn;
        self.setup()?;
        self.file_id = file_id(&self.path);
        Ok(())
    }

    /// Σ ledger == counters: every key's figures over all rows (open,
    /// closed, opening, corrections) plus what retention purged, against
    /// the counters stored in the same database; the node totals against
    /// the same sums; and the structure (no hour twice, one open hour).
    pub fn verify(&self) -> Result<Verification> {
        // One read transaction: the counters and the rows of one commit,
        // also while the daemon keeps writing.
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(|e| self.err(e))?;
        let v = self.verify_in_snapshot();
        let _ = self.conn.execute_batch("COMMIT");
        v
    }

    fn verify_in_snapshot(&self) -> Result<Verification> {
        let stored = self
            .load()?
            .ok_or_else(|| self.err("no checkpoint in the ledger yet"))?;
        let counters: roimon_core::Counters = serde_json::from_str(&stored.counters)
            .map_err(|e| self.err(format!("checkpoint.counters: {e}")))?;
        let mut differences = Vec::new();
        let bad = counters.bad_figures();
        for e in &bad {
            differences.push(format!("checkpoint.counters.{e} ({REPAIR_HINT})"));
        }
        if let Err(e) = counters.validate(Utc::now())
            && !bad.contains(&e)
        {
            differences.push(format!("checkpoint.counters.{e} ({REPAIR_HINT})"));
        }
        if let Some(p) = book_problem(&stored.book) {
            differences.push(format!("{p} ({REPAIR_HINT})"));
        }
        differences.extend(self.nonfinite_rows()?);
        let expected = figures::totals(&counters);
        let got = self.sums("1")?;
        let zero = Figures::default();
        let keys: std::collections::BTreeSet<&Key> =
            expected.rows.keys().chain(got.keys()).collect();
        let mut totals = Figures::default();
        for k in keys {
            let e = expected.rows.get(k).unwrap_or(&zero);
            let g = got.get(k).unwrap_or(&zero);
            totals.add(g);
            for (i, field) in FIELDS.iter().enumerate() {
                if !close(e.0[i], g.0[i]) {
                    differences.push(format!(
                        "{field} of gpu_uuid={} team={} workload={}: ledger {} != counters {} (difference {})",
                        k.gpu_uuid,
                        k.team,
                        k.workload,
                        g.0[i],
                        e.0[i],
                        g.0[i] - e.0[i]
                    ));
                }
            }
        }
        for (what, v, cols) in figures::node_totals(&counters) {
            let s: f64 = cols.iter().map(|i| totals.0[*i]).sum();
            if !close(v, s) {
                differences.push(format!(
                    "{what}: ledger {s} != counters {v} (difference {})",
                    s - v
                ));
            }
        }
        let q = |sql: &str| -> Result<i64> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|e| self.err(e))
        };
        let dup = q(
            "SELECT COUNT(*) FROM (SELECT 1 FROM ledger WHERE kind = 'hour'
                     GROUP BY hour_start, node, gpu_uuid, team, workload HAVING COUNT(*) > 1)",
        )?;
        if dup > 0 {
            differences.push(format!(
                "{dup} (hour, node, gpu_uuid, team, workload) keys appear more than once"
            ));
        }
        let open_hours = q("SELECT COUNT(DISTINCT hour_start) FROM ledger WHERE closed = 0")?;
        if open_hours > 1 {
            differences.push(format!("{open_hours} hours are open; at most one may be"));
        }
        if let Some(open) = stored.book.open_hour {
            // Hours up to the latest one closed may lie after the open
            // hour: a clock that was ahead, then set back.
            let open = stored.book.last_closed.map_or(open, |c| c.max(open));
            let later = self
                .conn
                .query_row(
                    "SELECT COUNT(*) FROM ledger WHERE kind = 'hour' AND hour_start > ?1",
                    params![open],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| self.err(e))?;
            if later > 0 {
                differences.push(format!(
                    "{later} rows lie after the open hour {}",
                    DateTime::from_timestamp(open, 0).unwrap_or_default()
                ));
            }
        }
        let rows = q("SELECT COUNT(*) FROM ledger")? as u64;
        let hours = q("SELECT COUNT(DISTINCT hour_start) FROM ledger")? as u64;
        Ok(Verification {
            differences,
            rows,
            hours,
            totals,
            currency: counters.currency,
        })
    }

    /// Closed rows holding a figure that is not a finite number (SQLite
    /// keeps ±infinity): one line each, naming the row and the column.
    pub fn nonfinite_rows(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for f in FIELDS {
            let sql = format!(
                "SELECT id, hour_start, gpu_uuid, team, workload, kind, {f} FROM ledger \
                 WHERE closed = 1 AND abs({f}) > 1.7976931348623157e308 ORDER BY id LIMIT 10"
            );
            let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| {
                    Ok(format!(
                        "ledger row id {} (hour {}, gpu_uuid={} team={} workload={}, kind {}): {f} = {} is not a finite number",
                        r.get::<_, i64>(0)?,
                        DateTime::from_timestamp(r.get(1)?, 0).unwrap_or_default(),
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, f64>(6)?,
                    ))
                })
                .map_err(|e| self.err(e))?;
            for r in rows {
                out.push(r.map_err(|e| self.err(e))?);
            }
        }
        Ok(out)
    }

    /// Σ figures by key over the rows `filter` selects, plus what the
    /// retention purge moved out (always closed rows).
    fn sums(&self, filter: &str) -> Result<BTreeMap<Key, Figures>> {
        let sums = FIELDS
            .iter()
            .map(|f| format!("SUM({f})"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut got: BTreeMap<Key, Figures> = BTreeMap::new();
        for (table, filter) in [("ledger", filter), ("ledger_purged", "1")] {
            let sql = format!(
                "SELECT gpu_uuid, team, workload, {sums} FROM {table} WHERE {filter} \
                 GROUP BY gpu_uuid, team, workload"
            );
            let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| {
                    let key = Key {
                        gpu_uuid: r.get(0)?,
                        team: r.get(1)?,
                        workload: r.get(2)?,
                    };
                    let mut f = Figures::default();
                    for i in 0..N {
                        f.0[i] = r.get::<_, Option<f64>>(3 + i)?.unwrap_or(0.0);
                    }
                    Ok((key, f))
                })
                .map_err(|e| self.err(e))?;
            for row in rows {
                let (k, f) = row.map_err(|e| self.err(e))?;
                got.entry(k).or_default().add(&f);
            }
        }
        Ok(got)
    }

    /// The latest hour that has a closed row of kind `hour` (booking to it
    /// or before it again must use `late` rows).
    fn latest_hour(&self) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT MAX(hour_start) FROM ledger WHERE kind = 'hour' AND closed = 1",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// How many times the state started over from zero (reset events).
    pub fn reset_events(&self) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT COUNT(DISTINCT written_at) FROM ledger WHERE kind = 'reset'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Start over from zero, visibly: in one transaction the open hour's
    /// rows go, rows of kind `reset` (with `reason`) undo every key's
    /// figures so far (one zero row when there were none), and a
    /// checkpoint of zero counters in `currency` is written, whose book
    /// treats every hour booked so far as closed. Closed rows stay. Returns
    /// how many reset events the ledger now holds.
    pub fn reset(
        &mut self,
        reason: &str,
        currency: &str,
        meta: &Meta,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let path = self.path.clone();
        let fail = |e: rusqlite::Error| Self::fail(&path, e);
        let latest = self.latest_hour()?;
        let before = self.reset_events()?;
        let mut undo = Vec::new();
        for (k, f) in self.sums("closed = 1")? {
            let mut neg = Figures::default();
            for (n, v) in neg.0.iter_mut().zip(f.0) {
                *n = if v.is_finite() { -v } else { 0.0 };
            }
            if !neg.is_zero() {
                undo.push((k, neg));
            }
        }
        if undo.is_empty() {
            undo.push((
                Key {
                    gpu_uuid: "none".into(),
                    team: roimon_core::engine::UNALLOCATED.into(),
                    workload: roimon_core::engine::UNALLOCATED.into(),
                },
                Figures::default(),
            ));
        }
        let hour = crate::book::hour_of(now);
        let rows = HourRows {
            hour,
            kind: Kind::Reset,
            rows: undo,
            priced: [0.0, 0.0],
            gpu_seconds: None,
        };
        let counters = roimon_core::Counters {
            currency: currency.into(),
            state_resets: before + 1,
            ..Default::default()
        };
        let book = BookState {
            last_closed: latest,
            ..Default::default()
        };
        let json = serde_json::to_string(&counters).map_err(|e| self.err(e))?;
        let state = serde_json::to_string(&book).map_err(|e| self.err(e))?;
        let written_at = now.to_rfc3339();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        tx.execute("DELETE FROM ledger WHERE closed = 0", [])
            .map_err(fail)?;
        let at = Written {
            currency,
            meta,
            written_at: &written_at,
            models: &BTreeMap::new(),
        };
        insert_rows(&tx, &rows, true, &at, Some(reason)).map_err(fail)?;
        write_checkpoint(&tx, &written_at, &json, &state).map_err(fail)?;
        tx.commit().map_err(fail)?;
        self.checkpoint_wal();
        Ok(before + 1)
    }

    /// `roimon ledger repair`: make a checkpoint with a non-finite,
    /// negative or absurd figure (or a ledger that does not add up to its
    /// counters) resumable while keeping the ledger. The bad figures are
    /// set to 0 ([`roimon_core::Counters::repair`]); then, in one
    /// transaction, the open hour's rows go and rows of kind `correction`
    /// (with the reason) bring every key's Σ ledger to the repaired
    /// counters, and the repaired checkpoint is written. Closed rows stay.
    /// Returns what was repaired; empty when nothing needed it.
    pub fn repair(&mut self, meta: &Meta, now: DateTime<Utc>) -> Result<Vec<String>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT counters, book FROM checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((counters, book)) = row else {
            return Err(self.err(
                "no checkpoint in the ledger, nothing to repair: restore the file from a backup, or start over with `roimon run --reset-state`",
            ));
        };
        let mut c: roimon_core::Counters = serde_json::from_str(&counters).map_err(|e| {
            self.err(format!(
                "checkpoint.counters is not readable ({e}): restore the file from a backup, or start over with `roimon run --reset-state`"
            ))
        })?;
        let mut said = c.repair(now);
        let book: BookState = match serde_json::from_str::<BookState>(&book) {
            Ok(b) => {
                if let Some(p) = book_problem(&b) {
                    said.push(format!(
                        "{p}; the open hour starts again from the repaired counters"
                    ));
                }
                b
            }
            Err(e) => {
                said.push(format!("checkpoint.book is not readable ({e}); the open hour starts again from the repaired counters"));
                BookState {
                    last_closed: self.latest_hour()?,
                    ..Default::default()
                }
            }
        };
        let bad_rows = self.nonfinite_rows()?;
        if !bad_rows.is_empty() {
            return Err(self.err(format!(
                "{}; a correction row cannot undo an infinite figure, so this needs the ledger restored from a backup",
                bad_rows.join("; ")
            )));
        }
        if said.is_empty() {
            let v = self.verify()?;
            if v.differences.is_empty() {
                return Ok(Vec::new());
            }
            said.push(format!(
                "the ledger did not equal the counters ({} differences)",
                v.differences.len()
            ));
        }
        let target = figures::totals(&c);
        let closed = self.sums("closed = 1")?;
        let zero = Figures::default();
        let keys: std::collections::BTreeSet<&Key> =
            target.rows.keys().chain(closed.keys()).collect();
        let mut rows = Vec::new();
        for k in keys {
            let t = target.rows.get(k).unwrap_or(&zero);
            let d = t.minus(closed.get(k).unwrap_or(&zero));
            if !d.is_zero() {
                rows.push((k.clone(), d));
            }
        }
        if rows.is_empty() {
            rows.push((
                Key {
                    gpu_uuid: "none".into(),
                    team: roimon_core::engine::UNALLOCATED.into(),
                    workload: roimon_core::engine::UNALLOCATED.into(),
                },
                Figures::default(),
            ));
        }
        let hour = book.open_hour.unwrap_or_else(|| crate::book::hour_of(now));
        let correction = HourRows {
            hour,
            kind: Kind::Correction,
            rows,
            priced: [0.0, 0.0],
            gpu_seconds: None,
        };
        let book = BookState {
            open_hour: book.open_hour,
            base: target,
            open_late: book.open_late,
            last_closed: book.last_closed,
        };
        let reason = format!("roimon ledger repair: {}", said.join("; "));
        let json = serde_json::to_string(&c).map_err(|e| self.err(e))?;
        let state = serde_json::to_string(&book).map_err(|e| self.err(e))?;
        let written_at = now.to_rfc3339();
        let path = self.path.clone();
        let fail = |e: rusqlite::Error| Self::fail(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        tx.execute("DELETE FROM ledger WHERE closed = 0", [])
            .map_err(fail)?;
        let at = Written {
            currency: &c.currency,
            meta,
            written_at: &written_at,
            models: &c.gpu_models,
        };
        insert_rows(&tx, &correction, true, &at, Some(&reason)).map_err(fail)?;
        write_checkpoint(&tx, &written_at, &json, &state).map_err(fail)?;
        tx.commit().map_err(fail)?;
        self.checkpoint_wal();
        Ok(said)
    }

    /// Closed rows whose hour starts at or after `hour` (Unix seconds), in
    /// hour order: what a downstream store (InfluxDB) copies. Rows of kind
    /// `opening`, `correction`, `late` and `reset` are included (see `kind`).
    pub fn closed_hours_since(&self, hour: i64) -> Result<Vec<HourRow>> {
        Ok(self
            .closed_rows_where("hour_start >= ?1 ORDER BY hour_start, id", hour)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Closed rows written after the row `id`, in the order they were
    /// written, with their ids: a copier that keeps the last id it handed
    /// on also sees rows booked later to an earlier hour (`late`,
    /// `correction`, `reset`).
    pub fn closed_rows_after(&self, id: i64) -> Result<Vec<(i64, HourRow)>> {
        self.closed_rows_where("id > ?1 ORDER BY id", id)
    }

    /// The last closed row id of the hours before `hour` (to go on by row
    /// id from a cursor that held an hour).
    pub fn last_closed_id_before(&self, hour: i64) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(id), 0) FROM ledger WHERE closed = 1 AND hour_start < ?1",
                params![hour],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    fn closed_rows_where(&self, filter: &str, arg: i64) -> Result<Vec<(i64, HourRow)>> {
        let sql = format!(
            "SELECT hour_start, node, gpu_uuid, team, workload, kind, currency, {}, \
             priced_secs_source, priced_secs_fallback, price_source, id FROM ledger \
             WHERE closed = 1 AND {filter}",
            fields_csv()
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![arg], |r| {
                let mut f = Figures::default();
                for i in 0..N {
                    f.0[i] = r.get(7 + i)?;
                }
                Ok((
                    r.get(10 + N)?,
                    HourRow {
                        hour_start: DateTime::from_timestamp(r.get(0)?, 0).unwrap_or_default(),
                        node: r.get(1)?,
                        gpu_uuid: r.get(2)?,
                        team: r.get(3)?,
                        workload: r.get(4)?,
                        kind: r.get(5)?,
                        currency: r.get(6)?,
                        figures: f,
                        priced_secs_source: r.get(7 + N)?,
                        priced_secs_fallback: r.get(8 + N)?,
                        price_source: r.get(9 + N)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
}

/// A change to the push duplicate window: a point key (two 64-bit lanes)
/// remembered at a time (ns), or forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeenOp {
    /// Remember the key, booked at this time (ns since the epoch).
    Add([u64; 2], i64),
    /// Forget the key (expired or evicted).
    Remove([u64; 2]),
}

fn write_seen(tx: &rusqlite::Transaction<'_>, seen: &[SeenOp]) -> rusqlite::Result<()> {
    if seen.is_empty() {
        return Ok(());
    }
    let mut add =
        tx.prepare_cached("INSERT OR REPLACE INTO push_seen (k0, k1, at_ns) VALUES (?1, ?2, ?3)")?;
    let mut remove = tx.prepare_cached("DELETE FROM push_seen WHERE k0 = ?1 AND k1 = ?2")?;
    // SQLite integers are signed: the lanes are stored by their bits.
    for op in seen {
        match *op {
            SeenOp::Add([a, b], at) => {
                add.execute(params![a as i64, b as i64, at])?;
            }
            SeenOp::Remove([a, b]) => {
                remove.execute(params![a as i64, b as i64])?;
            }
        }
    }
    Ok(())
}

impl Ledger {
    /// The push duplicate window as saved: (key, booked at ns), oldest first.
    pub fn load_seen(&self) -> Result<Vec<([u64; 2], i64)>> {
        let path = self.path.clone();
        let fail = |e: rusqlite::Error| Self::fail(&path, e);
        let mut st = self
            .conn
            .prepare("SELECT k0, k1, at_ns FROM push_seen ORDER BY at_ns, k0, k1")
            .map_err(fail)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    [r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64],
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(fail)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(fail)
    }
}

fn write_checkpoint(
    tx: &rusqlite::Transaction<'_>,
    written_at: &str,
    counters: &str,
    book: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO checkpoint (id, saved_at, counters, book) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET saved_at = excluded.saved_at,
           counters = excluded.counters, book = excluded.book",
        params![written_at, counters, book],
    )?;
    Ok(())
}

/// What `roimon report --verify` and a refused start offer for a bad figure.
pub const REPAIR_HINT: &str =
    "`roimon ledger repair` resets it with a visible correction row and keeps the ledger";

/// A figure in the checkpoint's hour book that cannot be true (not finite,
/// or beyond [`roimon_core::engine::ABSURD`]), named.
pub fn book_problem(b: &BookState) -> Option<String> {
    let bad = |v: f64| !v.is_finite() || v.abs() > roimon_core::engine::ABSURD;
    for (k, f) in &b.base.rows {
        for (i, v) in f.0.iter().enumerate() {
            if bad(*v) {
                return Some(format!(
                    "checkpoint.book.base[{}/{}/{}].{}: {v} is not a finite number of sane size",
                    k.gpu_uuid, k.team, k.workload, FIELDS[i]
                ));
            }
        }
    }
    for (k, v) in b.base.gpu_seconds.iter().flatten() {
        if bad(*v) {
            return Some(format!(
                "checkpoint.book.base.gpu_seconds[{}/{}/{}]: {v} is not a finite number of sane size",
                k.gpu_uuid, k.team, k.workload
            ));
        }
    }
    for (i, v) in b.base.priced.iter().enumerate() {
        if bad(*v) {
            return Some(format!(
                "checkpoint.book.base.priced[{i}]: {v} is not a finite number of sane size"
            ));
        }
    }
    None
}

/// What every row written by one checkpoint shares.
struct Written<'a> {
    currency: &'a str,
    meta: &'a Meta,
    written_at: &'a str,
    /// GPU model by UUID (the counters' `gpu_models`).
    models: &'a BTreeMap<String, String>,
}

fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    h: &HourRows,
    closed: bool,
    at: &Written<'_>,
    reason: Option<&str>,
) -> rusqlite::Result<()> {
    let marks = (0..N).map(|i| format!("?{}", 16 + i)).collect::<Vec<_>>();
    let sql = format!(
        "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, currency, \
         priced_secs_source, priced_secs_fallback, price_source, written_at, reason, \
         gpu_model, gpu_seconds, {}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, {})",
        fields_csv(),
        marks.join(", ")
    );
    let mut st = tx.prepare_cached(&sql)?;
    for (k, f) in &h.rows {
        // Model and GPU-seconds belong to cost rows of a real GPU; value
        // rows and `none` have neither (NULL), nor has a row whose hour
        // did not count GPU-seconds.
        let gpu = k.gpu_uuid != figures::VALUE_GPU && k.gpu_uuid != roimon_core::engine::NO_GPU;
        let model = at.models.get(&k.gpu_uuid).filter(|_| gpu);
        let seconds = h
            .gpu_seconds
            .as_ref()
            .filter(|_| gpu)
            .map(|m| m.get(k).copied().unwrap_or(0.0));
        let mut p: Vec<&dyn rusqlite::ToSql> =
            vec![&h.hour, &at.meta.node, &k.gpu_uuid, &k.team, &k.workload];
        let kind = h.kind.as_str();
        let closed = i64::from(closed);
        p.push(&kind);
        p.push(&closed);
        p.push(&at.currency);
        p.push(&h.priced[0]);
        p.push(&h.priced[1]);
        p.push(&at.meta.price_source);
        p.push(&at.written_at);
        p.push(&reason);
        p.push(&model);
        p.push(&seconds);
        for v in &f.0 {
            p.push(v);
        }
        st.execute(p.as_slice())?;
    }
    Ok(())
}

/// Move closed rows older than `cutoff` into the purged totals (per key,
/// so reconciliation still holds) and delete them, in the caller's
/// transaction.
fn purge(tx: &rusqlite::Transaction<'_>, cutoff: i64) -> rusqlite::Result<()> {
    let n: i64 = tx.query_row(
        "SELECT COUNT(*) FROM ledger WHERE closed = 1 AND hour_start < ?1",
        params![cutoff],
        |r| r.get(0),
    )?;
    if n == 0 {
        return Ok(());
    }
    let sums = FIELDS
        .iter()
        .map(|f| format!("SUM({f})"))
        .collect::<Vec<_>>()
        .join(", ");
    let adds = FIELDS
        .iter()
        .map(|f| format!("{f} = {f} + excluded.{f}"))
        .collect::<Vec<_>>()
        .join(", ");
    tx.execute("UPDATE ledger_gate SET purging = 1", [])?;
    tx.execute(
        &format!(
            "INSERT INTO ledger_purged (node, gpu_uuid, team, workload, {}, purged_before)
             SELECT node, gpu_uuid, team, workload, {sums}, ?1 FROM ledger
             WHERE closed = 1 AND hour_start < ?1 GROUP BY node, gpu_uuid, team, workload
             ON CONFLICT (node, gpu_uuid, team, workload) DO UPDATE SET {adds},
               purged_before = excluded.purged_before",
            fields_csv()
        ),
        params![cutoff],
    )?;
    tx.execute(
        "DELETE FROM ledger WHERE closed = 1 AND hour_start < ?1",
        params![cutoff],
    )?;
    tx.execute("UPDATE ledger_gate SET purging = 0", [])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_ledger_is_migrated_keeping_its_rows_and_guards() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&crate::schema::migrations()[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO ledger (id, hour_start, node, gpu_uuid, team, workload, kind, closed, \
                 currency, cost_capex, price_source, written_at) \
                 VALUES (7, 3600, 'n', 'GPU-a', 't', 'w', 'hour', 1, 'EUR', 1.5, 'static', 'x')",
                [],
            )
            .unwrap();
            let late = c.execute(
                "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, \
                 currency, price_source, written_at) \
                 VALUES (3600, 'n', 'GPU-a', 't', 'w', 'late', 1, 'EUR', 'static', 'x')",
                [],
            );
            assert!(late.is_err(), "version 1 knows no late rows");
        }
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.version().unwrap(), crate::schema_version());
        let c = l.connection();
        let kept: f64 = c
            .query_row("SELECT cost_capex FROM ledger WHERE id = 7", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, 1.5);
        for kind in ["late", "reset"] {
            c.execute(
                "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, \
                 currency, price_source, written_at) \
                 VALUES (3600, 'n', 'GPU-a', 't', 'w', ?1, 1, 'EUR', 'static', 'x')",
                [kind],
            )
            .unwrap();
        }
        let upd = c.execute("UPDATE ledger SET cost_capex = 0 WHERE id = 7", []);
        assert!(upd.unwrap_err().to_string().contains("immutable"));
        let dup = c.execute(
            "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, \
             currency, price_source, written_at) \
             VALUES (3600, 'n', 'GPU-a', 't', 'w', 'hour', 1, 'EUR', 'static', 'x')",
            [],
        );
        assert!(dup.is_err(), "one hour row per key and hour");
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM ledger_readable", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }
}

#[cfg(test)]
mod upgrade_tests {
    //! A ledger written at schema version 3 (before GPU models and
    //! GPU-seconds) upgraded in place by a daemon of this version.

    use super::*;
    use chrono::TimeZone;
    use roimon_core::{
        Engine, EngineConfig, FixedCosts, GpuReading, Joules, Owner, PricePerKwh, Reading, Report,
        Seconds, ShareKey, Tariff, Tick, Watts,
    };

    const MODEL: &str = "NVIDIA H100 80GB HBM3";

    fn engine(resumed: Option<roimon_core::Counters>) -> Engine {
        let cfg = EngineConfig {
            currency: "EUR".into(),
            pue: 1.25,
            tariff: Tariff::Static(PricePerKwh(0.2)),
            price_source: "static".into(),
            fixed: FixedCosts {
                capex_per_sec: 0.001,
                ..Default::default()
            },
            share_key: ShareKey::Equal,
            owners: [(
                "GPU-a".to_string(),
                Owner {
                    team: "t".into(),
                    workload: "w".into(),
                },
            )]
            .into(),
            max_gap: Seconds(1e9),
        };
        Engine::new(cfg, resumed)
    }

    /// The GPU at 300 W since monotonic 0, read at `wall`.
    fn tick(e: &mut Engine, book: &mut HourBook, wall: DateTime<Utc>, mono: f64) {
        book.observe(wall, e.counters());
        let g = GpuReading {
            index: 0,
            uuid: "GPU-a".into(),
            name: MODEL.into(),
            power: Some(Watts(300.0)),
            energy_counter: Some(Joules(300.0 * mono)),
            utilization: None,
            memory_used_bytes: None,
            memory_total_bytes: None,
            temperature_celsius: None,
            power_limit: None,
            processes: None,
        };
        e.ingest(
            Tick { wall, mono },
            &[Report {
                collector: "nvml",
                outcome: Ok(vec![Reading::Gpu(g)]),
            }],
        );
    }

    /// Rows as version 3 wrote them (its columns only).
    fn insert_v3(c: &Connection, h: &HourRows, closed: bool) {
        let marks = (0..N).map(|i| format!("?{}", 7 + i)).collect::<Vec<_>>();
        let sql = format!(
            "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, \
             currency, price_source, written_at, {}) VALUES (?1, 'n', ?2, ?3, ?4, ?5, ?6, \
             'EUR', 'static', 'x', {})",
            fields_csv(),
            marks.join(", ")
        );
        for (k, f) in &h.rows {
            let mut p: Vec<&dyn rusqlite::ToSql> =
                vec![&h.hour, &k.gpu_uuid, &k.team, &k.workload, &"hour", &closed];
            for v in &f.0 {
                p.push(v);
            }
            c.execute(&sql, p.as_slice()).unwrap();
        }
    }

    fn cols(l: &Ledger, hour: DateTime<Utc>) -> (Option<String>, Option<f64>) {
        l.connection()
            .query_row(
                "SELECT gpu_model, gpu_seconds FROM ledger WHERE gpu_uuid = 'GPU-a' \
                 AND kind = 'hour' AND closed = 1 AND hour_start = ?1",
                [hour.timestamp()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    #[test]
    fn a_version_3_ledger_keeps_its_rows_and_counts_gpu_seconds_from_the_next_full_hour() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let t = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap();
        let every = |from: DateTime<Utc>, i: i64| from + chrono::Duration::minutes(10 * i);
        // Version 3 at work from 09:10 to 10:30: 09:00 closed, 10:00 open,
        // its checkpoint without GPU models or GPU-seconds.
        {
            let mut e = engine(None);
            let mut book = HourBook::resume(None, None);
            for i in 0..=8 {
                tick(&mut e, &mut book, every(t(9, 10), i), 600.0 * i as f64);
            }
            let mut c = Connection::open(&path).unwrap();
            for sql in &crate::schema::migrations()[..3] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", 3).unwrap();
            for h in book.pending() {
                insert_v3(&c, h, true);
            }
            insert_v3(&c, &book.open_rows(e.counters()).unwrap(), false);
            let mut counters = serde_json::to_value(e.counters()).unwrap();
            counters.as_object_mut().unwrap().remove("gpu_models");
            for pair in counters["rows"].as_array_mut().unwrap() {
                pair[1].as_object_mut().unwrap().remove("gpu_seconds");
            }
            let mut state = serde_json::to_value(book.state()).unwrap();
            state["base"].as_object_mut().unwrap().remove("gpu_seconds");
            let tx = c.transaction().unwrap();
            write_checkpoint(&tx, "x", &counters.to_string(), &state.to_string()).unwrap();
            tx.commit().unwrap();
        }
        let old_id: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT id FROM ledger WHERE closed = 1", [], |r| r.get(0))
            .unwrap();

        // This version opens it: migrated, every row and guard kept.
        let mut l = Ledger::open(&path).unwrap();
        assert_eq!(l.version().unwrap(), 4);
        assert_eq!(cols(&l, t(9, 0)), (None, None));
        let upd = l
            .connection()
            .execute("UPDATE ledger SET gpu_seconds = 1 WHERE id = ?1", [old_id]);
        assert!(upd.unwrap_err().to_string().contains("immutable"));
        assert!(l.verify().unwrap().differences.is_empty());

        // Resume as the daemon does and run on to 12:10.
        let stored = l.load().unwrap().unwrap();
        assert_eq!(stored.book.base.gpu_seconds, None);
        let counters: roimon_core::Counters = serde_json::from_str(&stored.counters).unwrap();
        let mut e = engine(Some(counters));
        let mut book = HourBook::resume(Some(stored.book), Some(e.counters()));
        let meta = Meta {
            node: "n".into(),
            price_source: "static".into(),
        };
        // A new process: its monotonic clock starts again.
        for i in 0..=10 {
            let wall = every(t(10, 40), i);
            tick(&mut e, &mut book, wall, 600.0 * i as f64);
            l.save(e.counters(), &book, &meta, wall).unwrap();
            book.written();
        }
        // 10:00 began before the upgrade: model known, GPU-seconds not.
        assert_eq!(cols(&l, t(10, 0)), (Some(MODEL.into()), None));
        // 11:00 is the first full hour counted.
        assert_eq!(cols(&l, t(11, 0)), (Some(MODEL.into()), Some(3600.0)));
        let v = l.verify().unwrap();
        assert!(v.differences.is_empty(), "{:?}", v.differences);
    }
}
