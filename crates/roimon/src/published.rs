//! What the sampler publishes, apart from who reads it: the latest snapshot
//! with its generation (as `/metrics` shows it, new rows held at 0 until
//! scraped) and its booked twin (the counters as on disk, for the summary
//! and the status page), readiness, checkpoint health and liveness, and the
//! highest generation a `/metrics` response has carried. The sampler writes
//! here; the HTTP handlers and the InfluxDB stream read. It knows none of
//! them (it imports no other module of the daemon), so publishing never
//! depends on the router.

use roimon_core::Snapshot;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// One publication: its number, the snapshot `/metrics` shows (rows new
/// since the last release held at 0 until a scrape has carried them) and
/// the booked one (the counters last written to disk, as they are). Both
/// are the same `Arc` while no hold is active.
#[derive(Debug)]
struct Generation {
    number: u64,
    held: Arc<Snapshot>,
    booked: Arc<Snapshot>,
}

/// The sampler's latest publication, shared with every reader.
#[derive(Debug)]
pub struct Published {
    snapshot: RwLock<Generation>,
    /// Highest snapshot generation a `/metrics` response has carried.
    served: AtomicU64,
    ready: AtomicBool,
    /// Why `/readyz` fails although collectors reported (checkpoints failing).
    not_ready: Mutex<Option<String>>,
    /// Checkpoint writes failed in a row (0 when the last one succeeded).
    checkpoint_streak: AtomicU32,
    last_publish: Mutex<Instant>,
    stale_after: Duration,
}

impl Published {
    /// Start with an initial snapshot; [`Published::live`] turns false once
    /// no snapshot has been published for `stale_after` (the sampler has
    /// stalled or died).
    pub fn new(initial: Snapshot, stale_after: Duration) -> Self {
        Self {
            snapshot: RwLock::new({
                let s = Arc::new(initial);
                Generation {
                    number: 0,
                    held: s.clone(),
                    booked: s,
                }
            }),
            served: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            not_ready: Mutex::new(None),
            checkpoint_streak: AtomicU32::new(0),
            last_publish: Mutex::new(Instant::now()),
            stale_after,
        }
    }

    /// Whether the sampler published recently enough.
    pub fn live(&self) -> bool {
        let last = *self.last_publish.lock().unwrap_or_else(|e| e.into_inner());
        last.elapsed() <= self.stale_after
    }

    /// Replace the snapshot (called once per tick); returns its generation.
    /// `held` is what `/metrics` shows; `booked`, when a hold is active, the
    /// same with the counters as on disk (`None`: `held` is booked as is).
    pub fn publish(&self, held: Snapshot, booked: Option<Snapshot>, ready: bool) -> u64 {
        let held = Arc::new(held);
        let booked = booked.map_or_else(|| held.clone(), Arc::new);
        let mut g = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let generation = g.number + 1;
        *g = Generation {
            number: generation,
            held,
            booked,
        };
        drop(g);
        self.ready.store(ready, Ordering::Release);
        *self.last_publish.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        generation
    }

    /// Every enabled collector has reported once (as of the last publish).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Checkpoints are being written.
    pub fn checkpoint_ok(&self) {
        *self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.checkpoint_streak.store(0, Ordering::Relaxed);
    }

    /// A checkpoint failed (`streak` in a row); past the threshold
    /// (`unready`) `/readyz` fails saying why.
    pub fn checkpoint_failed(&self, streak: u32, unready: bool, why: &str) {
        self.checkpoint_streak.store(streak, Ordering::Relaxed);
        if unready {
            *self.not_ready.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("checkpoint failing ({streak} in a row): {why}"));
        }
    }

    /// Why the daemon is not ready although collectors reported, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        self.not_ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checkpoint writes failed in a row (0 when the last one succeeded).
    pub fn checkpoint_failures_in_a_row(&self) -> u32 {
        self.checkpoint_streak.load(Ordering::Relaxed)
    }

    /// The latest snapshot as `/metrics` shows it (new rows held at 0).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot_gen().1
    }

    /// The latest snapshot as `/metrics` shows it, and its generation.
    pub fn snapshot_gen(&self) -> (u64, Arc<Snapshot>) {
        let g = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        (g.number, g.held.clone())
    }

    /// The latest snapshot with the counters as last written to disk, new
    /// rows and all (never held, never ahead of the disk): what the summary
    /// and the status page show.
    pub fn booked(&self) -> Arc<Snapshot> {
        let g = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        g.booked.clone()
    }

    /// A `/metrics` response carried snapshot `generation`.
    pub fn note_served(&self, generation: u64) {
        self.served.fetch_max(generation, Ordering::AcqRel);
    }

    /// Highest generation a `/metrics` response has carried.
    pub fn served_generation(&self) -> u64 {
        self.served.load(Ordering::Acquire)
    }
}
