//! The sampling loop: one thread that asks every collector for readings once
//! per interval (deadline-based, no drift), isolates failures (errors and
//! panics become log lines and metrics), re-opens collectors that could not
//! start with exponential backoff, feeds the engine, publishes snapshots and
//! checkpoints the counters.

use crate::checkpoint::Checkpoint;
use crate::http::AppState;
use chrono::Utc;
use roimon_core::{Collector, Engine, Report, SampleError, Tick};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Opens a collector; called again (with backoff) while it fails.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Collector>, SampleError> + Send>;

/// A collector with its opener, health streak and retry schedule.
pub struct Supervised {
    name: &'static str,
    open: Opener,
    inner: Option<Box<dyn Collector>>,
    next_open: Instant,
    backoff: Duration,
    failing: bool,
    /// Consecutive failed samples of an open collector.
    streak: u32,
    /// `auto` sources: "not on this machine" is said once, at info.
    quiet_unavailable: bool,
    said_unavailable: bool,
}

impl std::fmt::Debug for Supervised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervised")
            .field("name", &self.name)
            .field("open", &self.inner.is_some())
            .finish()
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Consecutive failed samples after which a collector is re-opened.
const REOPEN_AFTER: u32 = 30;

impl Supervised {
    /// Supervise a collector named `name`.
    pub fn new(name: &'static str, open: Opener, quiet_unavailable: bool) -> Self {
        Self {
            name,
            open,
            inner: None,
            next_open: Instant::now(),
            backoff: Duration::from_secs(1),
            failing: false,
            streak: 0,
            quiet_unavailable,
            said_unavailable: false,
        }
    }

    /// The collector label.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Schedule the next open after a failure, doubling the backoff.
    fn back_off(&mut self, now: Instant) -> Duration {
        let wait = self.backoff;
        self.next_open = now + wait;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        wait
    }

    /// One sample; `None` between re-open attempts (no report: the
    /// collector's health stays as its last attempt left it, so a collector
    /// that never worked is never counted ready, and no error is invented).
    fn sample(&mut self, now: Instant) -> Option<Result<Vec<roimon_core::Reading>, SampleError>> {
        if self.inner.is_none() {
            if now < self.next_open {
                return None;
            }
            match (self.open)() {
                Ok(c) => {
                    tracing::info!(collector = self.name, "collector started");
                    self.inner = Some(c);
                    self.backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    let wait = self.back_off(now);
                    match &e {
                        SampleError::Unavailable(m) if self.quiet_unavailable => {
                            if !self.said_unavailable {
                                tracing::info!(collector = self.name, reason = %m, "not available on this machine; running without it");
                                self.said_unavailable = true;
                            }
                        }
                        _ => {
                            tracing::warn!(collector = self.name, error = %e, retry_in_secs = wait.as_secs(), "collector could not start")
                        }
                    }
                    return Some(Err(match e {
                        SampleError::Unavailable(m) if !self.quiet_unavailable => {
                            SampleError::Failed(m)
                        }
                        other => other,
                    }));
                }
            }
        }
        let Some(c) = self.inner.as_mut() else {
            return Some(Err(SampleError::Failed("collector not open".into())));
        };
        let mut out = Vec::new();
        let res = catch_unwind(AssertUnwindSafe(|| c.sample(&mut out)));
        let res = match res {
            Ok(r) => r,
            Err(_) => {
                // A panicking collector is dropped and re-opened with backoff.
                self.inner = None;
                self.back_off(now);
                Err(SampleError::Failed("collector panicked".into()))
            }
        };
        // A collector that keeps failing once open (a handle gone bad) is
        // dropped and opened afresh, with backoff.
        if res.is_err() {
            self.streak += 1;
            if self.streak >= REOPEN_AFTER && self.inner.is_some() {
                tracing::warn!(
                    collector = self.name,
                    failures = self.streak,
                    "collector keeps failing; re-opening it"
                );
                self.inner = None;
                self.back_off(now);
                self.streak = 0;
            }
        } else {
            self.streak = 0;
            self.backoff = Duration::from_secs(1);
        }
        match &res {
            Ok(()) if self.failing => {
                tracing::info!(collector = self.name, "collector recovered");
                self.failing = false;
            }
            Err(e) if !self.failing => {
                tracing::warn!(collector = self.name, error = %e, "collector failed; will retry every interval");
                self.failing = true;
            }
            _ => {}
        }
        Some(res.map(|()| out))
    }
}

/// What the loop needs.
pub struct Sampler {
    /// The engine (owned by the loop).
    pub engine: Engine,
    /// The collectors.
    pub collectors: Vec<Supervised>,
    /// Sampling interval.
    pub interval: Duration,
    /// Checkpoint interval.
    pub checkpoint_every: Duration,
    /// Where counters go.
    pub checkpoint: Checkpoint,
    /// Where snapshots go.
    pub state: Arc<AppState>,
    /// New price schedules and fetch outcomes from the price feed.
    pub price_updates: Option<Receiver<crate::price_feed::Update>>,
    /// The counters as last written to disk (what is published).
    pub saved: roimon_core::Counters,
    /// Whether the last checkpoint write succeeded.
    pub save_ok: bool,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("collectors", &self.collectors)
            .finish()
    }
}

impl Sampler {
    /// Put what the price feed sent in force before accounting the interval:
    /// a schedule is indexed by time, so the interval is priced by the slots
    /// it actually overlaps.
    fn take_price_updates(&mut self) {
        let Some(rx) = &self.price_updates else {
            return;
        };
        while let Ok(u) = rx.try_recv() {
            match u {
                crate::price_feed::Update::Tariff(t, at) => self.engine.set_tariff(t, Some(at)),
                crate::price_feed::Update::Outcome(name, ok) => self.engine.note_source(name, ok),
                crate::price_feed::Update::Carbon(c) => self.engine.set_carbon(Some(c)),
            }
        }
    }

    /// Publish a snapshot whose counters are the last ones safely on disk:
    /// what Prometheus scrapes can never be ahead of what a restart after a
    /// crash resumes, so no counter is ever seen going backwards. Gauges
    /// (power, price, health) are live.
    fn publish(&self) {
        // With a broken state dir there is nothing to resume from anyway:
        // show live counters (roimon_checkpoint_errors_total says why).
        let snap = if self.save_ok {
            self.engine.snapshot_with(self.saved.clone())
        } else {
            self.engine.snapshot()
        };
        self.state.publish(snap, self.engine.ready());
    }

    fn tick(&mut self, origin: Instant) {
        self.take_price_updates();
        let now = Instant::now();
        let reports: Vec<Report> = self
            .collectors
            .iter_mut()
            .filter_map(|c| {
                c.sample(now).map(|outcome| Report {
                    collector: c.name(),
                    outcome,
                })
            })
            .collect();
        let tick = Tick {
            wall: Utc::now(),
            mono: origin.elapsed().as_secs_f64(),
        };
        self.engine.ingest(tick, &reports);
    }

    fn save(&mut self) {
        match self.checkpoint.save(self.engine.counters()) {
            Ok(()) => {
                self.saved = self.engine.counters().clone();
                self.save_ok = true;
            }
            Err(e) => {
                self.save_ok = false;
                self.state.checkpoint_failed();
                tracing::error!(dir = %self.checkpoint.dir().display(), error = %e, "checkpoint failed; counters are kept in memory and retried");
            }
        }
    }

    /// Run until `stop` receives a message or its sender is dropped; then take
    /// a last sample, checkpoint, and return the engine.
    pub fn run(mut self, stop: Receiver<()>) -> Engine {
        for c in &self.collectors {
            self.engine.register_collector(c.name());
        }
        self.saved = self.engine.counters().clone();
        let origin = Instant::now();
        let mut next = origin;
        let mut next_checkpoint = origin;
        loop {
            self.tick(origin);
            if Instant::now() >= next_checkpoint {
                self.save();
                next_checkpoint = Instant::now() + self.checkpoint_every;
            }
            self.publish();
            next += self.interval;
            let now = Instant::now();
            if next < now {
                // Overran (slow collector or suspended process): skip, don't burst.
                next = now + self.interval;
            }
            match stop.recv_timeout(next - now) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Flush: account the partial interval up to now, then checkpoint.
        self.tick(origin);
        self.save();
        self.publish();
        tracing::info!(dir = %self.checkpoint.dir().display(), "final checkpoint written");
        self.engine
    }
}
