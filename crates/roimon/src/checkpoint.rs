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
        .map_err(|source| LoadError::Dir {
            dir: dir.into(),
            source,
        })?;
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
    written.map_err(|source| LoadError::Dir {
        dir: dir.into(),
        source,
    })?;
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
    /// Checkpoints exist but none is readable: refusing to start from zero,
    /// which would make every counter go backwards.
    #[error(
        "no readable checkpoint in {dir}: {detail}; move the files aside to start from zero deliberately"
    )]
    Corrupt {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        detail: String,
    },
}

impl Checkpoint {
    /// A store in `dir` (created if missing), locked for this process.
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        fs::create_dir_all(dir).map_err(|source| LoadError::Dir {
            dir: dir.into(),
            source,
        })?;
        let lock = take_lock(dir)?;
        let ledger =
            Ledger::open(&dir.join(roimon_ledger::FILE)).map_err(|e| LoadError::Corrupt {
                dir: dir.into(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            dir: dir.into(),
            lock: std::sync::Mutex::new(lock),
            ledger,
            book: None,
            legacy: false,
        })
    }

    /// The ledger (for reads after a checkpoint: budgets).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
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
        let stored = self.ledger.load().map_err(|e| corrupt(e.to_string()))?;
        if let Some(stored) = stored {
            let path = self.ledger.path().display().to_string();
            let c: Counters = serde_json::from_str(&stored.counters)
                .map_err(|e| corrupt(format!("{path} (checkpoint.counters): {e}")))?;
            if c.currency.is_empty() || c.last_wall.is_none() {
                return Err(corrupt(format!(
                    "{path} (checkpoint.counters): not a roimon checkpoint (no currency or last_wall)"
                )));
            }
            c.validate(chrono::Utc::now())
                .map_err(|e| corrupt(format!("{path} (checkpoint.counters): {e}")))?;
            self.book = Some(stored.book);
            if self.dir.join(FILE).exists() {
                // Migrated, but the rename did not happen (a crash between).
                self.retire_json();
            }
            return Ok(Some(c));
        }
        let legacy = self.load_json()?;
        self.legacy = legacy.is_some();
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
        self.keep_lock()?;
        self.ledger.relocate().map_err(std::io::Error::other)?;
        let now = counters.last_wall.unwrap_or_else(chrono::Utc::now);
        self.ledger
            .save(counters, book, meta, now)
            .map_err(std::io::Error::other)?;
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
