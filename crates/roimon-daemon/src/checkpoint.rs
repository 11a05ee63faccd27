//! Crash-safe persistence of the counters, in the ledger database
//! (`ledger.sqlite3`, SQLite in WAL mode): one transaction per checkpoint
//! holds the counters, the hour book and the ledger's hour rows, so the
//! ledger and the counters can never disagree, and a crash at any moment
//! leaves the last committed checkpoint. A restart resumes from it so
//! counters never go backwards. The state dir is held with an exclusive
//! `flock` on `lock` (one daemon per state dir); a dir deleted while running
//! is recreated (and re-locked) by the next save, with the ledger copied
//! into it; a checkpoint is validated before it is resumed. State dirs from
//! before the ledger (`counters.json`) are migrated once: the JSON is read
//! (newest valid of it and `.prev`), written to the database, and renamed
//! to `counters.json.migrated` as a backup.
//!
//! A state dir that has run before (its lock, price or carbon cache,
//! InfluxDB buffer or cursor, or a ledger file of any size) but yields no
//! readable checkpoint is refused, never silently started from zero: the
//! operator restores the file or starts over with `--reset-state`, which
//! the ledger records as a `reset` event. Permission and disk errors are
//! named as such; an impossible figure points at `roimon ledger repair`.

use roimon_core::Counters;
use roimon_ledger::{BookState, HourBook, Ledger, Meta};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE: &str = "counters.json";
const PREV: &str = "counters.json.prev";
/// What a migrated `counters.json` is renamed to (kept as a backup, never
/// read again).
const MIGRATED: &str = "counters.json.migrated";
const LOCK: &str = "lock";

/// The checkpoint store in a state directory, holding its lock.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    lock: std::sync::Mutex<File>,
    ledger: Ledger,
    /// The hour book stored with the resumed counters.
    book: Option<BookState>,
    /// The counters came from `counters.json`: rename it once they are in
    /// the database.
    legacy: bool,
    /// What showed a previous life when the store was opened.
    evidence: Vec<String>,
    /// What is missing when no checkpoint is found.
    missing: String,
}

/// Rename an unreadable ledger (and its -wal and -shm) aside, keeping it.
fn set_aside(dir: &Path) -> std::io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let base = dir.join(format!("{}.unreadable-{stamp}", roimon_ledger::FILE));
    for suffix in ["", "-wal", "-shm"] {
        let from = dir.join(format!("{}{suffix}", roimon_ledger::FILE));
        if from.exists() {
            fs::rename(&from, format!("{}{suffix}", base.display()))?;
        }
    }
    Ok(base)
}

/// Take the exclusive lock of `dir` (its `lock` file) and write our PID in
/// it; when another process holds it, say which.
fn take_lock(dir: &Path) -> Result<File, LoadError> {
    let path = dir.join(LOCK);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error(dir, &path, e))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(LoadError::Locked {
                dir: dir.into(),
                holder: if holder.is_empty() {
                    "another process".into()
                } else {
                    format!("process {holder}")
                },
            });
        }
        Err(e) => {
            return Err(LoadError::Dir {
                dir: dir.into(),
                source: e.into(),
            });
        }
    }
    let pid = std::process::id().to_string();
    let written = f
        .set_len(0)
        .and_then(|()| std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)))
        .and_then(|_| f.write_all(pid.as_bytes()))
        .and_then(|()| f.sync_all());
    written.map_err(|e| io_error(dir, &path, e))?;
    Ok(f)
}

/// Why the state could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory cannot be created or read.
    #[error("state dir {dir}: {source}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A permission or disk error: nothing is wrong with the state, the
    /// process cannot use it.
    #[error(
        "{what} on {path}: {detail} (roimon runs as uid {uid}); {advice}. The state is kept as it is"
    )]
    Access {
        /// `permission error` or `disk error`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        detail: String,
        /// The process's user id.
        uid: u32,
        /// What to do.
        advice: String,
    },
    /// Another daemon holds the state dir.
    #[error(
        "state dir {dir} is in use by {holder} (lock file {dir}/lock); one roimon per state dir"
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, as far as the lock file says.
        holder: String,
    },
    /// The state dir has run before but holds no checkpoint: starting from
    /// zero would begin a second history unseen.
    #[error(
        "no readable checkpoint in {dir}: {missing}, but this state dir has run before (it holds: {evidence}); refusing to start a second history from zero. Either restore {dir}/ledger.sqlite3 (with its -wal, if any) from a backup, or start over deliberately with `roimon run --reset-state` (recorded in the ledger as an event of kind reset)"
    )]
    Missing {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        missing: String,
        /// What shows the previous life.
        evidence: String,
    },
    /// Checkpoints exist but none is readable: refusing to start from zero,
    /// which would make every counter go backwards.
    #[error(
        "no readable checkpoint in {dir}: {detail}; either restore the file from a backup, or start over deliberately with `roimon run --reset-state` (an unreadable ledger is kept beside, renamed; the reset is recorded in the ledger as an event of kind reset)"
    )]
    Corrupt {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The checkpoint is readable but holds a figure that cannot be true.
    #[error(
        "the checkpoint in {path} holds an impossible figure: {detail}; run `roimon ledger repair --state-dir {dir}` to reset it with a visible correction row (the ledger is kept), then start again"
    )]
    Invalid {
        /// The directory.
        dir: PathBuf,
        /// The ledger file.
        path: PathBuf,
        /// The field and what is wrong with it.
        detail: String,
    },
}

impl LoadError {
    /// Whether `--reset-state` may answer it (not a permission or disk
    /// error, not a lock held by another daemon).
    pub fn resettable(&self) -> bool {
        matches!(
            self,
            LoadError::Missing { .. } | LoadError::Corrupt { .. } | LoadError::Invalid { .. }
        )
    }

    /// A short reason, for the ledger's `reset` row.
    pub fn reason(&self) -> String {
        match self {
            LoadError::Missing { missing, .. } => format!("no readable checkpoint: {missing}"),
            LoadError::Corrupt { detail, .. } => format!("no readable checkpoint: {detail}"),
            LoadError::Invalid { detail, .. } => format!("impossible figure: {detail}"),
            other => other.to_string(),
        }
    }
}

/// The process's user id (for permission errors).
fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// An I/O error on `path` as a [`LoadError`]: permission and disk errors
/// named as such, anything else as a state dir error.
fn io_error(dir: &Path, path: &Path, e: std::io::Error) -> LoadError {
    use std::io::ErrorKind as K;
    let what = match e.kind() {
        K::PermissionDenied | K::ReadOnlyFilesystem => "permission error",
        K::StorageFull | K::QuotaExceeded => "disk error",
        _ if e.raw_os_error() == Some(libc_eio()) => "disk error",
        _ => {
            return LoadError::Dir {
                dir: dir.into(),
                source: e,
            };
        }
    };
    access(what, dir, path, e.to_string())
}

/// EIO, without a libc dependency.
fn libc_eio() -> i32 {
    rustix::io::Errno::IO.raw_os_error()
}

fn access(what: &'static str, dir: &Path, path: &Path, detail: String) -> LoadError {
    let uid = uid();
    let advice = if what == "disk error" {
        format!(
            "free space on (or repair) the file system holding {}",
            dir.display()
        )
    } else {
        format!(
            "give uid {uid} read and write access to {} and the files in it (e.g. chown -R, or the service's User=)",
            dir.display()
        )
    };
    LoadError::Access {
        what,
        path: path.into(),
        detail,
        uid,
        advice,
    }
}

/// A ledger error that is the file system's fault, not the file's.
fn ledger_access(e: &roimon_ledger::Error) -> Option<&'static str> {
    let m = e.message.to_ascii_lowercase();
    if m.contains("disk is full") || m.contains("disk i/o error") {
        Some("disk error")
    } else if m.contains("unable to open")
        || m.contains("readonly")
        || m.contains("read-only")
        || m.contains("permission")
        || m.contains("access")
    {
        Some("permission error")
    } else {
        None
    }
}

/// What in `dir` shows that a roimon ran with it before (besides a
/// readable checkpoint).
fn previous_life(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for name in [
        LOCK,
        "prices.json",
        "carbon.json",
        "influxdb",
        "ledger-cursor",
        roimon_ledger::FILE,
        "ledger.sqlite3-wal",
    ] {
        let p = dir.join(name);
        if let Ok(m) = fs::symlink_metadata(&p) {
            if name == roimon_ledger::FILE {
                out.push(format!("{name} ({} bytes)", m.len()));
            } else {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// Make sure `path` can be written (a file we must write that exists, or
/// the directory we must create files in).
fn check_writable(dir: &Path) -> Result<(), LoadError> {
    let probe = dir.join(".roimon-write-test");
    match fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
        }
        Err(e) => return Err(io_error(dir, dir, e)),
    }
    for name in [
        roimon_ledger::FILE,
        "ledger.sqlite3-wal",
        "ledger.sqlite3-shm",
    ] {
        let p = dir.join(name);
        if p.exists() {
            if let Err(e) = fs::OpenOptions::new().read(true).write(true).open(&p) {
                return Err(io_error(dir, &p, e));
            }
        }
    }
    Ok(())
}

impl Checkpoint {
    /// A store in `dir` (created if missing), locked for this process.
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        Self::open_with(dir, false)
    }

    /// Like [`Checkpoint::open`]; with `reset`, a ledger file that SQLite
    /// cannot read is renamed aside (`ledger.sqlite3.unreadable-<time>`,
    /// kept) and a new one is begun.
    pub fn open_with(dir: &Path, reset: bool) -> Result<Self, LoadError> {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, dir, e))?;
        let evidence = previous_life(dir);
        let ledger_before = fs::metadata(dir.join(roimon_ledger::FILE)).ok();
        let lock = take_lock(dir)?;
        check_writable(dir)?;
        let path = dir.join(roimon_ledger::FILE);
        let missing = match &ledger_before {
            None => format!("{} is missing", path.display()),
            Some(m) if m.len() == 0 => format!("{} is empty (0 bytes)", path.display()),
            Some(m) => format!(
                "{} ({} bytes) holds no checkpoint (was its -wal file lost?)",
                path.display(),
                m.len()
            ),
        };
        // Refused before SQLite creates anything, so that the next try
        // says the same.
        let wal_len = fs::metadata(dir.join("ledger.sqlite3-wal")).map_or(0, |m| m.len());
        let nothing = ledger_before.as_ref().is_none_or(|m| m.len() == 0) && wal_len == 0;
        let legacy = dir.join(FILE).exists() || dir.join(PREV).exists();
        if nothing && !legacy && !reset && !evidence.is_empty() {
            return Err(LoadError::Missing {
                dir: dir.into(),
                missing,
                evidence: evidence.join(", "),
            });
        }
        let ledger = match Ledger::open(&path) {
            Ok(l) => l,
            Err(e) => {
                if let Some(what) = ledger_access(&e) {
                    return Err(access(what, dir, &path, e.message));
                }
                if !reset {
                    return Err(LoadError::Corrupt {
                        dir: dir.into(),
                        detail: e.to_string(),
                    });
                }
                let aside = set_aside(dir).map_err(|e| io_error(dir, dir, e))?;
                tracing::warn!(file = %path.display(), kept_as = %aside.display(), error = %e, "--reset-state: the unreadable ledger is kept beside and a new one begun");
                Ledger::open(&path).map_err(|e| LoadError::Corrupt {
                    dir: dir.into(),
                    detail: e.to_string(),
                })?
            }
        };
        Ok(Self {
            dir: dir.into(),
            lock: std::sync::Mutex::new(lock),
            ledger,
            book: None,
            legacy: false,
            evidence,
            missing,
        })
    }

    /// Start over from zero, visibly: the ledger records a `reset` event
    /// with `reason` and holds zero counters in `currency` (their
    /// `state_resets` counts the events). Returns that count.
    pub fn reset(&mut self, reason: &str, currency: &str, meta: &Meta) -> Result<u64, LoadError> {
        let n = self
            .ledger
            .reset(reason, currency, meta, chrono::Utc::now())
            .map_err(|e| match ledger_access(&e) {
                Some(what) => access(what, &self.dir, &e.path, e.message.clone()),
                None => LoadError::Corrupt {
                    dir: self.dir.clone(),
                    detail: e.to_string(),
                },
            })?;
        if self.dir.join(FILE).exists() || self.dir.join(PREV).exists() {
            self.retire_json();
        }
        Ok(n)
    }

    /// The ledger (for reads after a checkpoint: budgets).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The ledger, to write outside a checkpoint (`roimon ledger repair`).
    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// Keep closed hours this many days (0: for ever).
    pub fn set_retention_days(&mut self, days: u32) {
        self.ledger.set_retention_days(days);
    }

    /// The hour book that goes with `counters`, the counters the engine
    /// resumed (after any migration): the one stored with them, or, for
    /// counters from before the ledger, a book whose opening balance holds
    /// their totals.
    pub fn book(&self, counters: &Counters) -> HourBook {
        HourBook::resume(self.book.clone(), Some(counters))
    }

    /// Make sure the lock we hold is still the state dir's: a dir deleted
    /// while running is recreated and locked again; if another process took
    /// the new one meanwhile, that is an error of kind `ResourceBusy` (two
    /// writers would corrupt each other's counters).
    fn keep_lock(&self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let ours = held.metadata()?;
        match fs::metadata(self.dir.join(LOCK)) {
            Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino() => return Ok(()),
            Ok(_) | Err(_) => {}
        }
        fs::create_dir_all(&self.dir)?;
        match take_lock(&self.dir) {
            Ok(f) => {
                *held = f;
                tracing::warn!(dir = %self.dir.display(), "state dir was removed while running; recreated it");
                Ok(())
            }
            Err(e @ LoadError::Locked { .. }) => Err(std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                e.to_string(),
            )),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }

    /// The counters to run on: what [`Checkpoint::load`] finds (the state
    /// starts over, recorded in the ledger, where `reset_state` asks for it
    /// and the checkpoint cannot be resumed), moved to owner-keyed rows, and
    /// refused when kept in another currency than the configured one.
    pub fn resume(
        &mut self,
        reset_state: bool,
        engine_cfg: &roimon_core::EngineConfig,
        meta: &Meta,
    ) -> anyhow::Result<Option<Counters>> {
        let mut resumed = match self.load() {
            Ok(r) => {
                if reset_state {
                    tracing::warn!(dir = %self.dir.display(), "--reset-state ignored: there is nothing to reset (the checkpoint is readable, or the state dir is new)");
                }
                r
            }
            Err(e) if reset_state && e.resettable() => {
                let reason = format!("roimon run --reset-state: {}", e.reason());
                let n = self.reset(&reason, &engine_cfg.currency, meta)?;
                tracing::warn!(dir = %self.dir.display(), resets = n, reason = %reason, "the state starts over from zero; the ledger records it as an event of kind reset");
                self.load()?
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(r) = &mut resumed {
            let owners = engine_cfg.owners.clone();
            let moved = r.migrate_legacy(|u| {
                owners
                    .get(u)
                    .cloned()
                    .unwrap_or_else(roimon_core::Owner::unallocated)
            });
            if moved > 0 {
                tracing::info!(
                    rows = moved,
                    "checkpoint from before owner-keyed attribution: each GPU's history so far is kept under the owner the configuration names now (once; later owner changes start new rows)"
                );
            }
        }
        if let Some(r) = &resumed {
            if !r.currency.is_empty() && r.currency != engine_cfg.currency {
                anyhow::bail!(
                    "state in {} is in {} but the configuration says {}; use another state dir or restore the currency",
                    self.dir.display(),
                    r.currency,
                    engine_cfg.currency
                );
            }
            tracing::info!(dir = %self.dir.display(), "resumed counters from checkpoint");
        }
        Ok(resumed)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The checkpoint, or `None` when the state is new: the one in the
    /// ledger database, else (a state dir from before the ledger) the newest
    /// readable `counters.json`.
    pub fn load(&mut self) -> Result<Option<Counters>, LoadError> {
        let corrupt = |detail: String| LoadError::Corrupt {
            dir: self.dir.clone(),
            detail,
        };
        let path = self.ledger.path().to_path_buf();
        let invalid = |detail: String| LoadError::Invalid {
            dir: self.dir.clone(),
            path: path.clone(),
            detail,
        };
        let stored = self.ledger.load().map_err(|e| corrupt(e.to_string()))?;
        if let Some(stored) = stored {
            let shown = path.display().to_string();
            let c: Counters = serde_json::from_str(&stored.counters)
                .map_err(|e| corrupt(format!("{shown} (checkpoint.counters): {e}")))?;
            if c.currency.is_empty() {
                return Err(corrupt(format!(
                    "{shown} (checkpoint.counters): not a roimon checkpoint (no currency)"
                )));
            }
            let now = chrono::Utc::now();
            c.validate(now)
                .map_err(|e| invalid(format!("checkpoint.counters.{e}")))?;
            if let Some(p) = roimon_ledger::book_problem(&stored.book) {
                return Err(invalid(p));
            }
            let rows = self
                .ledger
                .nonfinite_rows()
                .map_err(|e| corrupt(e.to_string()))?;
            if let Some(first) = rows.first() {
                return Err(invalid(first.clone()));
            }
            if let Some(w) = c.last_wall
                && w > now + chrono::Duration::seconds(2)
            {
                let secs = (w - now).num_milliseconds() as f64 / 1000.0;
                tracing::warn!(last_tick = %w, now = %now, step_secs = -secs, "the checkpoint is from the future: the wall clock was set back {secs:.0} s while roimon was stopped; closed hours stay as they are and money accrues from now");
            }
            self.book = Some(stored.book);
            if self.dir.join(FILE).exists() {
                // Migrated, but the rename did not happen (a crash between).
                self.retire_json();
            }
            return Ok(Some(c));
        }
        let legacy = self.load_json()?;
        self.legacy = legacy.is_some();
        if legacy.is_none() && !self.evidence.is_empty() {
            return Err(LoadError::Missing {
                dir: self.dir.clone(),
                missing: self.missing.clone(),
                evidence: self.evidence.join(", "),
            });
        }
        Ok(legacy)
    }

    /// Rename `counters.json` (and `.prev`) out of the way, keeping them.
    fn retire_json(&self) {
        for (from, to) in [(FILE, MIGRATED), (PREV, "counters.json.prev.migrated")] {
            let from = self.dir.join(from);
            if from.exists() {
                if let Err(e) = fs::rename(&from, self.dir.join(to)) {
                    tracing::warn!(file = %from.display(), error = %e, "cannot rename the migrated checkpoint; it is not read again while the ledger holds counters");
                }
            }
        }
    }

    /// The newest readable `counters.json` (a state dir from before the
    /// ledger), validated.
    fn load_json(&self) -> Result<Option<Counters>, LoadError> {
        let mut errors = Vec::new();
        for name in [FILE, PREV] {
            let path = self.dir.join(name);
            match fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<Counters>(&bytes) {
                    // Valid JSON is not enough: `{}` would resume every
                    // counter at zero. A real checkpoint has both.
                    Ok(c) if c.currency.is_empty() || c.last_wall.is_none() => {
                        errors.push(format!(
                            "{}: not a roimon checkpoint (no currency or last_wall)",
                            path.display()
                        ))
                    }
                    // Numbers that cannot be true (negative, NaN, a last
                    // tick in the future or before 2020) are refused like
                    // a bad config: resuming them would book nonsense.
                    Ok(c) => match c.validate(chrono::Utc::now()) {
                        Err(e) => errors.push(format!("{}: {e}", path.display())),
                        Ok(()) => {
                            if !errors.is_empty() {
                                tracing::warn!(path = %path.display(), errors = ?errors, "resumed from the previous checkpoint");
                            }
                            return Ok(Some(c));
                        }
                    },
                    Err(e) => errors.push(format!("{}: {e}", path.display())),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        if errors.is_empty() {
            Ok(None)
        } else {
            Err(LoadError::Corrupt {
                dir: self.dir.clone(),
                detail: errors.join("; "),
            })
        }
    }

    /// Persist `counters` and the ledger rows of `book` in one
    /// transaction. A state dir deleted while running is recreated (and
    /// locked again) first, with the ledger copied into it.
    pub fn save(
        &mut self,
        counters: &Counters,
        book: &HourBook,
        meta: &Meta,
    ) -> std::io::Result<()> {
        self.save_with_seen(counters, book, meta, &[])
    }

    /// [`Checkpoint::save`] with the changes to the push duplicate window
    /// written in the same transaction.
    pub fn save_with_seen(
        &mut self,
        counters: &Counters,
        book: &HourBook,
        meta: &Meta,
        seen: &[roimon_ledger::SeenOp],
    ) -> std::io::Result<()> {
        self.keep_lock()?;
        self.ledger.relocate().map_err(std::io::Error::other)?;
        let now = counters.last_wall.unwrap_or_else(chrono::Utc::now);
        self.ledger
            .save_with_seen(counters, book, meta, now, seen)
            .map_err(std::io::Error::other)?;
        if let Some(note) = self.ledger.take_wal_note() {
            tracing::warn!(path = %self.ledger.path().display(), "{note}");
        }
        if self.legacy {
            self.legacy = false;
            self.retire_json();
            tracing::info!(dir = %self.dir.display(), "counters moved from counters.json into the ledger database (the JSON is kept as counters.json.migrated)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roimon_core::units::Accumulator;

    fn meta() -> Meta {
        Meta {
            node: "n1".into(),
            price_source: "static".into(),
        }
    }

    #[test]
    fn an_empty_object_is_not_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        std::fs::write(dir.path().join(FILE), "{}").unwrap();
        assert!(matches!(cp.load(), Err(LoadError::Corrupt { .. })));
        // With a good .prev, that one is resumed instead.
        let good = Counters {
            currency: "EUR".into(),
            last_wall: Some(chrono::Utc::now()),
            ..Default::default()
        };
        std::fs::write(dir.path().join(PREV), serde_json::to_vec(&good).unwrap()).unwrap();
        assert_eq!(cp.load().unwrap().unwrap().currency, "EUR");
    }

    #[test]
    fn roundtrip_in_the_ledger_and_a_legacy_file_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        // A state dir from before the ledger: a torn current file falls
        // back to the previous checkpoint.
        let mut c = Counters {
            currency: "EUR".into(),
            last_wall: Some(chrono::Utc::now()),
            ..Default::default()
        };
        c.facility_energy_joules = Accumulator::from_total(42.5);
        fs::write(dir.path().join(PREV), serde_json::to_vec(&c).unwrap()).unwrap();
        fs::write(dir.path().join(FILE), b"{\"facility_energy_jou").unwrap();
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        let resumed = cp.load().unwrap().unwrap();
        assert_eq!(resumed.facility_energy_joules.total(), 42.5);
        let book = cp.book(&resumed);
        cp.save(&resumed, &book, &meta()).unwrap();
        assert!(!dir.path().join(FILE).exists());
        assert!(dir.path().join(MIGRATED).exists());
        drop(cp);
        // From now on the database is the checkpoint.
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        let mut again = cp.load().unwrap().unwrap();
        assert_eq!(again.facility_energy_joules.total(), 42.5);
        again.facility_energy_joules = Accumulator::from_total(50.0);
        let book = cp.book(&again);
        cp.save(&again, &book, &meta()).unwrap();
        drop(cp);
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(
            cp.load().unwrap().unwrap().facility_energy_joules.total(),
            50.0
        );
        // Nothing readable at all is an error, not a silent restart from zero.
        drop(cp);
        let empty = tempfile::tempdir().unwrap();
        fs::write(empty.path().join(FILE), b"garbage").unwrap();
        fs::write(empty.path().join(PREV), b"garbage").unwrap();
        let mut cp = Checkpoint::open(empty.path()).unwrap();
        assert!(matches!(cp.load(), Err(LoadError::Corrupt { .. })));
    }

    #[test]
    fn resume_refuses_a_state_kept_in_another_currency_and_ignores_a_reset_it_does_not_need() {
        use roimon_core::{EngineConfig, PricePerKwh, Seconds, Tariff};
        let cfg = |currency: &str| EngineConfig {
            currency: currency.into(),
            pue: 1.0,
            tariff: Tariff::Static(PricePerKwh(0.2)),
            price_source: "static".into(),
            fixed: Default::default(),
            share_key: Default::default(),
            owners: Default::default(),
            max_gap: Seconds(5.0),
        };
        let dir = tempfile::tempdir().unwrap();
        {
            let mut cp = Checkpoint::open(dir.path()).unwrap();
            assert!(cp.resume(false, &cfg("EUR"), &meta()).unwrap().is_none());
            let mut c = Counters {
                currency: "EUR".into(),
                last_wall: Some(chrono::Utc::now()),
                ..Default::default()
            };
            c.facility_energy_joules = Accumulator::from_total(7.0);
            let book = cp.book(&c);
            cp.save(&c, &book, &meta()).unwrap();
        }
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        let e = cp
            .resume(false, &cfg("USD"), &meta())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is in EUR but the configuration says USD"),
            "{e}"
        );
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        drop(cp);
        // --reset-state on a readable checkpoint resets nothing.
        let mut cp = Checkpoint::open_with(dir.path(), true).unwrap();
        let r = cp.resume(true, &cfg("EUR"), &meta()).unwrap().unwrap();
        assert_eq!(r.facility_energy_joules.total(), 7.0);
    }

    /// A state dir that ran once and then lost its checkpoint in `spoil`.
    fn ran_then(spoil: impl Fn(&Path)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        assert!(cp.load().unwrap().is_none());
        let c = Counters {
            currency: "EUR".into(),
            last_wall: Some(chrono::Utc::now()),
            ..Default::default()
        };
        let book = cp.book(&c);
        cp.save(&c, &book, &meta()).unwrap();
        drop(cp);
        spoil(dir.path());
        dir
    }

    #[test]
    fn a_state_dir_that_ran_before_without_its_checkpoint_is_refused() {
        let ledger = |d: &Path| d.join(roimon_ledger::FILE);
        let wal = |d: &Path| d.join("ledger.sqlite3-wal");
        type Spoil = Box<dyn Fn(&Path)>;
        let cases: Vec<(&str, Spoil)> = vec![
            (
                "is missing",
                Box::new(move |d: &Path| {
                    fs::remove_file(ledger(d)).unwrap();
                    let _ = fs::remove_file(wal(d));
                }),
            ),
            (
                "is empty (0 bytes)",
                Box::new(move |d: &Path| {
                    let _ = fs::remove_file(wal(d));
                    fs::write(ledger(d), b"").unwrap();
                }),
            ),
            (
                "holds no checkpoint",
                Box::new(move |d: &Path| {
                    // What kill -9 and a deleted -wal leave: the schema only.
                    fs::remove_file(ledger(d)).unwrap();
                    let _ = fs::remove_file(wal(d));
                    drop(Ledger::open(&ledger(d)).unwrap());
                }),
            ),
            (
                "is missing",
                Box::new(move |d: &Path| {
                    // Only a price cache shows the previous life.
                    fs::remove_file(ledger(d)).unwrap();
                    let _ = fs::remove_file(wal(d));
                    fs::remove_file(d.join(LOCK)).unwrap();
                    fs::write(d.join("prices.json"), b"[]").unwrap();
                }),
            ),
        ];
        for (missing, spoil) in cases {
            let dir = ran_then(spoil);
            let e = Checkpoint::open(dir.path())
                .and_then(|mut cp| cp.load())
                .unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, LoadError::Missing { .. }), "{text}");
            assert!(text.contains(missing), "{text}");
            assert!(text.contains("roimon run --reset-state"), "{text}");
            assert!(text.contains("restore"), "{text}");
            assert!(!text.contains("move the files aside"), "{text}");
            assert!(e.resettable());
        }
        // A new state dir is not one that lost its checkpoint.
        let new = tempfile::tempdir().unwrap();
        assert!(
            Checkpoint::open(new.path())
                .unwrap()
                .load()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn reset_state_starts_from_zero_and_records_it() {
        let dir = ran_then(|d| {
            fs::write(d.join(roimon_ledger::FILE), b"").unwrap();
            let _ = fs::remove_file(d.join("ledger.sqlite3-wal"));
        });
        let mut cp = Checkpoint::open_with(dir.path(), true).unwrap();
        let e = cp.load().unwrap_err();
        assert_eq!(cp.reset(&e.reason(), "EUR", &meta()).unwrap(), 1);
        let c = cp.load().unwrap().unwrap();
        assert_eq!(c.state_resets, 1);
        let kind: String = cp
            .ledger()
            .connection()
            .query_row("SELECT kind FROM ledger", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kind, "reset");
        // An unreadable ledger is renamed aside, never deleted.
        let bad = ran_then(|d| {
            fs::write(d.join(roimon_ledger::FILE), vec![7u8; 8192]).unwrap();
            let _ = fs::remove_file(d.join("ledger.sqlite3-wal"));
        });
        assert!(matches!(
            Checkpoint::open(bad.path()).unwrap_err(),
            LoadError::Corrupt { .. }
        ));
        let mut cp = Checkpoint::open_with(bad.path(), true).unwrap();
        let e = cp.load().unwrap_err();
        assert!(matches!(e, LoadError::Missing { .. }), "{e}");
        cp.reset(&e.reason(), "EUR", &meta()).unwrap();
        let kept: Vec<_> = fs::read_dir(bad.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("ledger.sqlite3.unreadable-"))
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(
            fs::read(bad.path().join(&kept[0])).unwrap(),
            vec![7u8; 8192]
        );
    }

    #[test]
    fn permission_and_disk_errors_are_named_with_path_and_uid() {
        let p = Path::new("/srv/roimon/ledger.sqlite3");
        let e = io_error(
            Path::new("/srv/roimon"),
            p,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("permission error on /srv/roimon/ledger.sqlite3"),
            "{text}"
        );
        assert!(text.contains(&format!("uid {}", uid())), "{text}");
        assert!(
            !text.contains("reset-state") && !text.contains("aside"),
            "{text}"
        );
        assert!(!e.resettable());
        let e = io_error(
            Path::new("/srv/roimon"),
            p,
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert!(e.to_string().starts_with("disk error on"), "{e}");
        // SQLite's words for the same.
        let l = roimon_ledger::Error {
            path: p.into(),
            message: "unable to open database file".into(),
        };
        assert_eq!(ledger_access(&l), Some("permission error"));
        let l = roimon_ledger::Error {
            path: p.into(),
            message: "database or disk is full".into(),
        };
        assert_eq!(ledger_access(&l), Some("disk error"));
    }

    #[test]
    fn an_impossible_figure_points_at_ledger_repair() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        cp.load().unwrap();
        let mut c = Counters {
            currency: "EUR".into(),
            last_wall: Some(chrono::Utc::now()),
            ..Default::default()
        };
        c.priced_seconds
            .insert("source".into(), Accumulator::from_total(-4.0));
        let book = cp.book(&c);
        cp.save(&c, &book, &meta()).unwrap();
        drop(cp);
        let e = Checkpoint::open(dir.path()).unwrap().load().unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, LoadError::Invalid { .. }), "{text}");
        assert!(text.contains("priced_seconds.source"), "{text}");
        assert!(text.contains("roimon ledger repair"), "{text}");
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        let said = cp.ledger_mut().repair(&meta(), chrono::Utc::now()).unwrap();
        assert!(said.iter().any(|l| l.contains("priced_seconds.source")));
        drop(cp);
        assert!(
            Checkpoint::open(dir.path())
                .unwrap()
                .load()
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_checkpoint_from_the_future_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoint::open(dir.path()).unwrap();
        cp.load().unwrap();
        let ahead = chrono::Utc::now() + chrono::Duration::days(1);
        let c = Counters {
            currency: "EUR".into(),
            created: Some(ahead - chrono::Duration::hours(1)),
            last_wall: Some(ahead),
            ..Default::default()
        };
        let book = cp.book(&c);
        cp.save(&c, &book, &meta()).unwrap();
        drop(cp);
        let got = Checkpoint::open(dir.path())
            .unwrap()
            .load()
            .unwrap()
            .unwrap();
        assert_eq!(got.last_wall, Some(ahead));
    }

    #[test]
    fn a_database_that_is_not_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(roimon_ledger::FILE), vec![7u8; 8192]).unwrap();
        let e = Checkpoint::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("ledger.sqlite3"), "{e}");
    }
}

/// A checkpoint is outside input too (a disk, an operator, an older build):
/// arbitrary bytes and mutated real checkpoints never panic the loader, and
/// every refusal names the file.
#[cfg(test)]
mod survives_any_input {
    use super::*;
    use proptest::prelude::*;

    fn real() -> String {
        let mut e = roimon_core::Engine::new(
            roimon_core::EngineConfig {
                currency: "EUR".into(),
                pue: 1.2,
                tariff: roimon_core::Tariff::Static(roimon_core::PricePerKwh(0.2)),
                price_source: "static".into(),
                fixed: roimon_core::FixedCosts {
                    capex_per_sec: 0.01,
                    ..Default::default()
                },
                share_key: roimon_core::ShareKey::Equal,
                owners: Default::default(),
                max_gap: roimon_core::Seconds(5.0),
            },
            None,
        );
        let now = chrono::Utc::now() - chrono::Duration::seconds(10);
        for s in 0..3 {
            e.ingest(
                roimon_core::Tick {
                    wall: now + chrono::Duration::seconds(s),
                    mono: s as f64,
                },
                &[],
            );
        }
        serde_json::to_string(e.counters()).unwrap()
    }

    fn load(bytes: &[u8]) -> Result<Option<Counters>, LoadError> {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), bytes).unwrap();
        Checkpoint::open(dir.path()).unwrap().load()
    }

    #[test]
    fn the_real_checkpoint_loads() {
        assert!(load(real().as_bytes()).unwrap().is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_64_cases(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Err(e) = load(&bytes) {
                prop_assert!(e.to_string().contains("counters.json"), "{e}");
            }
        }

        #[test]
        fn mutated_real_checkpoints_64_cases(at in 0usize..4096, with in any::<u8>(), cut in any::<bool>()) {
            let mut bytes = real().into_bytes();
            let at = at % bytes.len();
            if cut { bytes.truncate(at) } else { bytes[at] = with }
            match load(&bytes) {
                Err(e) => prop_assert!(e.to_string().contains("counters.json"), "{e}"),
                // What loads must still be a checkpoint that validates.
                Ok(Some(c)) => prop_assert!(c.validate(chrono::Utc::now()).is_ok()),
                Ok(None) => prop_assert!(false, "a file was there"),
            }
        }
    }
}
