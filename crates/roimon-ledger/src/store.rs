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
        tx.execute(
            "INSERT INTO checkpoint (id, saved_at, counters, book) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET saved_at = excluded.saved_at,
               counters = excluded.counters, book = excluded.book",
            params![written_at, json, state],
        )
        .map_err(fail)?;
        let mut closed_any = false;
        for h in book.pending() {
            if h.kind == Kind::Hour {
                tx.execute(
                    "DELETE FROM ledger WHERE closed = 0 AND hour_start = ?1",
                    params![h.hour],
                )
                .map_err(fail)?;
                closed_any = true;
            }
            insert_rows(&tx, h, true, &counters.currency, meta, &written_at).map_err(fail)?;
        }
        tx.execute("DELETE FROM ledger WHERE closed = 0", [])
            .map_err(fail)?;
        if let Some(open) = book.open_rows(counters) {
            insert_rows(&tx, &open, false, &counters.currency, meta, &written_at).map_err(fail)?;
        }
        if closed_any && retention > 0 {
            let cutoff = crate::book::hour_of(now) - i64::from(retention) * 86_400;
            purge(&tx, cutoff).map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        Ok(())
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
        let stored = self
            .load()?
            .ok_or_else(|| self.err("no checkpoint in the ledger yet"))?;
        let counters: roimon_core::Counters = serde_json::from_str(&stored.counters)
            .map_err(|e| self.err(format!("checkpoint.counters: {e}")))?;
        let expected = figures::totals(&counters);
        let mut got: BTreeMap<Key, Figures> = BTreeMap::new();
        let sums = FIELDS
            .iter()
            .map(|f| format!("SUM({f})"))
            .collect::<Vec<_>>()
            .join(", ");
        for table in ["ledger", "ledger_purged"] {
            let sql = format!(
                "SELECT gpu_uuid, team, workload, {sums} FROM {table} GROUP BY gpu_uuid, team, workload"
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
        let mut differences = Vec::new();
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

    /// Closed rows whose hour starts at or after `hour` (Unix seconds), in
    /// hour order: what a downstream store (InfluxDB) copies. Rows of kind
    /// `opening` and `correction` are included (see `kind`).
    pub fn closed_hours_since(&self, hour: i64) -> Result<Vec<HourRow>> {
        let sql = format!(
            "SELECT hour_start, node, gpu_uuid, team, workload, kind, currency, {}, \
             priced_secs_source, priced_secs_fallback, price_source FROM ledger \
             WHERE closed = 1 AND hour_start >= ?1 ORDER BY hour_start, id",
            fields_csv()
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![hour], |r| {
                let mut f = Figures::default();
                for i in 0..N {
                    f.0[i] = r.get(7 + i)?;
                }
                Ok(HourRow {
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
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
}

fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    h: &HourRows,
    closed: bool,
    currency: &str,
    meta: &Meta,
    written_at: &str,
) -> rusqlite::Result<()> {
    let marks = (0..N).map(|i| format!("?{}", 13 + i)).collect::<Vec<_>>();
    let sql = format!(
        "INSERT INTO ledger (hour_start, node, gpu_uuid, team, workload, kind, closed, currency, \
         priced_secs_source, priced_secs_fallback, price_source, written_at, {}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, {})",
        fields_csv(),
        marks.join(", ")
    );
    let mut st = tx.prepare_cached(&sql)?;
    for (k, f) in &h.rows {
        let mut p: Vec<&dyn rusqlite::ToSql> =
            vec![&h.hour, &meta.node, &k.gpu_uuid, &k.team, &k.workload];
        let kind = h.kind.as_str();
        let closed = i64::from(closed);
        p.push(&kind);
        p.push(&closed);
        p.push(&currency);
        p.push(&h.priced[0]);
        p.push(&h.priced[1]);
        p.push(&meta.price_source);
        p.push(&written_at);
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
