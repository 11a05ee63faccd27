//! What the sampler publishes, apart from who reads it: the latest snapshot
//! with its generation (as `/metrics` shows it, new rows held at 0 until
//! scraped) and its booked twin (the counters as on disk, for the summary
//! and the status page), readiness, checkpoint health and liveness, and the
//! highest generation a `/metrics` response has carried, the last hour's
//! power and cost rate (a bounded ring, one point per
//! [`HISTORY_STEP_SECS`]) and how the outside sources fare (each feed's and
//! value target's last success and last error, for the status page). The
//! sampler writes here; the HTTP handlers and the InfluxDB stream read. It
//! knows none of them (it imports no other module of the daemon), so
//! publishing never depends on the router.

use chrono::{DateTime, Utc};
use roimon_core::Snapshot;
use std::collections::{BTreeMap, VecDeque};
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
    /// The last hour's power and cost rate.
    history: Mutex<VecDeque<Point>>,
    /// How the feeds and value targets fare.
    health: Mutex<Board>,
}

/// Seconds between two points of the history.
pub const HISTORY_STEP_SECS: i64 = 10;
/// Seconds of history kept.
pub const HISTORY_SPAN_SECS: i64 = 3600;
/// Most points the history holds (whatever the clock does).
pub const HISTORY_MAX_POINTS: usize = (HISTORY_SPAN_SECS / HISTORY_STEP_SECS) as usize + 1;

/// One point of the last hour: the node's power and cost rate at a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The tick.
    pub at: DateTime<Utc>,
    /// Facility power, W.
    pub power_watts: f64,
    /// Cost rate, currency per hour (every component).
    pub cost_per_hour: f64,
}

/// How one outside source (a feed or a value target) fares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceHealth {
    /// Whether its last fetch succeeded.
    pub up: bool,
    /// When a fetch last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// When the current failure streak began.
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the last fetch failed (log-safe words), while it fails.
    pub error: Option<String>,
}

/// Who a value target measures value for: one owner, or the owners of
/// these GPUs.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetOwners {
    /// One owner.
    Owner(roimon_core::Owner),
    /// The owners of these GPUs (by UUID).
    Gpus(Vec<String>),
}

/// How the outside sources fare: feeds (`price`, `carbon`, `pods`) and
/// value targets by label, with whom each target measures.
#[derive(Debug, Clone, Default)]
pub struct Board {
    /// Feeds by name.
    pub feeds: BTreeMap<String, SourceHealth>,
    /// Value targets by label (declared at start, before their first scrape).
    pub targets: BTreeMap<String, SourceHealth>,
    /// Whom each value target measures.
    pub target_owners: BTreeMap<String, TargetOwners>,
}

/// A handle to write the board (the lock held while it lives).
#[derive(Debug)]
pub struct BoardWriter<'a>(std::sync::MutexGuard<'a, Board>);

fn outcome(h: &mut SourceHealth, ok: bool, at: DateTime<Utc>) {
    h.up = ok;
    if ok {
        h.last_success = Some(at);
        h.failing_since = None;
        h.error = None;
    } else if h.failing_since.is_none() {
        h.failing_since = Some(at);
    }
}

impl BoardWriter<'_> {
    /// A value target exists (before its first scrape) and measures `owners`.
    pub fn declare_target(&mut self, label: &str, owners: TargetOwners) {
        self.0.targets.entry(label.to_string()).or_default();
        self.0.target_owners.insert(label.to_string(), owners);
    }

    /// A feed's fetch ended (`ok`) at `at`.
    pub fn feed(&mut self, name: &str, ok: bool, at: DateTime<Utc>) {
        outcome(self.0.feeds.entry(name.to_string()).or_default(), ok, at);
    }

    /// Why a feed's last fetch failed.
    pub fn feed_failed(&mut self, name: &str, why: String) {
        self.0.feeds.entry(name.to_string()).or_default().error = Some(why);
    }

    /// A value target's scrape ended (`ok`) at `at`.
    pub fn target(&mut self, label: &str, ok: bool, at: DateTime<Utc>) {
        outcome(self.0.targets.entry(label.to_string()).or_default(), ok, at);
    }

    /// Why a value target's last scrape failed.
    pub fn target_failed(&mut self, label: &str, why: String) {
        self.0.targets.entry(label.to_string()).or_default().error = Some(why);
    }
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
            history: Mutex::new(VecDeque::new()),
            health: Mutex::new(Board::default()),
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
        if let Some(at) = held.at {
            self.remember(Point {
                at,
                power_watts: held.facility_power_watts,
                cost_per_hour: held.cost_rate_per_sec.values().sum::<f64>() * 3600.0,
            });
        }
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

    /// Add a point to the history: at most one per [`HISTORY_STEP_SECS`],
    /// none older than [`HISTORY_SPAN_SECS`] before it, never more than
    /// [`HISTORY_MAX_POINTS`]; a clock stepped back starts it afresh.
    fn remember(&self, p: Point) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = h.back() {
            if p.at < last.at {
                h.clear();
            } else if (p.at - last.at).num_seconds() < HISTORY_STEP_SECS {
                return;
            }
        }
        h.push_back(p);
        let oldest = p.at - chrono::Duration::seconds(HISTORY_SPAN_SECS);
        while h.front().is_some_and(|f| f.at < oldest) || h.len() > HISTORY_MAX_POINTS {
            h.pop_front();
        }
    }

    /// The last hour's points, oldest first.
    pub fn history(&self) -> Vec<Point> {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.iter().copied().collect()
    }

    /// Write the board of the outside sources.
    pub fn health(&self) -> BoardWriter<'_> {
        BoardWriter(self.health.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of the board of the outside sources.
    pub fn board(&self) -> Board {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(at: DateTime<Utc>, watts: f64) -> Snapshot {
        let cfg = roimon_config::Config::builtin();
        let mut s = roimon_core::Engine::new(cfg.engine_config(), None).snapshot();
        s.at = Some(at);
        s.facility_power_watts = watts;
        s
    }

    #[test]
    fn the_history_keeps_one_point_per_step_for_an_hour_and_no_more() {
        let cfg = roimon_config::Config::builtin();
        let initial = roimon_core::Engine::new(cfg.engine_config(), None).snapshot();
        let p = Published::new(initial, Duration::from_secs(60));
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        // Two hours of ticks every second.
        for i in 0..7200 {
            p.publish(
                snap(t0 + chrono::Duration::seconds(i), i as f64),
                None,
                true,
            );
        }
        let h = p.history();
        assert_eq!(h.len(), HISTORY_MAX_POINTS);
        assert_eq!(h.last().unwrap().power_watts, 7190.0);
        assert_eq!(h[0].power_watts, 7190.0 - 3600.0);
        assert!(
            h.windows(2)
                .all(|w| (w[1].at - w[0].at).num_seconds() == 10)
        );
        // A clock stepped back starts afresh.
        p.publish(snap(t0, 1.0), None, true);
        assert_eq!(p.history().len(), 1);
    }

    #[test]
    fn the_board_keeps_the_last_success_and_why_a_streak_fails() {
        let cfg = roimon_config::Config::builtin();
        let initial = roimon_core::Engine::new(cfg.engine_config(), None).snapshot();
        let p = Published::new(initial, Duration::from_secs(60));
        let t = |s: i64| {
            DateTime::parse_from_rfc3339("2026-01-01T21:00:00Z")
                .unwrap()
                .to_utc()
                + chrono::Duration::seconds(s)
        };
        p.health().target("vllm-chat", true, t(0));
        p.health().target("vllm-chat", false, t(10));
        p.health()
            .target_failed("vllm-chat", "connection refused".into());
        p.health().target("vllm-chat", false, t(20));
        let b = p.board();
        let h = &b.targets["vllm-chat"];
        assert!(!h.up);
        assert_eq!(h.last_success, Some(t(0)));
        assert_eq!(h.failing_since, Some(t(10)));
        assert_eq!(h.error.as_deref(), Some("connection refused"));
        p.health().target("vllm-chat", true, t(30));
        let h = p.board().targets["vllm-chat"].clone();
        assert!(h.up && h.error.is_none() && h.failing_since.is_none());
        assert_eq!(h.last_success, Some(t(30)));
    }
}
