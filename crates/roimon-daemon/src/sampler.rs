//! The sampling loop: one thread that asks every collector for readings once
//! per interval (deadline-based, no drift), isolates failures (errors and
//! panics become log lines and metrics), re-opens collectors that could not
//! start with exponential backoff, feeds the engine, publishes snapshots and
//! checkpoints the counters. Each collector runs on its own thread with a
//! per-sample deadline, so one hung call (a GPU fallen off the bus blocking
//! NVML) cannot stop host sampling, prices, checkpoints or publishing; a
//! panic in the loop itself ends the daemon with an error instead of leaving
//! a zombie serving stale numbers.

use crate::checkpoint::Checkpoint;
use crate::inbox::Event;
use crate::published::Published;
use chrono::Utc;
use roimon_core::{Collector, Counters, Engine, Reading, Report, Row, RowKey, SampleError, Tick};
use roimon_value::Dedup;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Opens a collector; called again (with backoff) while it fails.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Collector>, SampleError> + Send>;

/// How a collector that is not present on the machine is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// An error: counted, retried, not ready (`source = "nvml"`).
    Error,
    /// Normal (`auto` without an explicit library): said once at INFO.
    Info,
    /// Suspicious (`auto` with an explicit library that does not load):
    /// said once at WARN; not an error, so the node still runs and is ready.
    Warn,
}

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
    /// How "not on this machine" is treated.
    absent: Absent,
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
    pub fn new(name: &'static str, open: Opener, absent: Absent) -> Self {
        Self {
            name,
            open,
            inner: None,
            next_open: Instant::now(),
            backoff: Duration::from_secs(1),
            failing: false,
            streak: 0,
            absent,
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
            // A panicking opener (a driver library that aborts its init) is
            // a failed open, retried with backoff, not a dead thread.
            let opened = catch_unwind(AssertUnwindSafe(|| (self.open)())).unwrap_or_else(|_| {
                Err(SampleError::Failed(
                    "collector panicked while opening".into(),
                ))
            });
            match opened {
                Ok(c) => {
                    tracing::info!(collector = self.name, "collector started");
                    self.inner = Some(c);
                    self.backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    let wait = self.back_off(now);
                    match &e {
                        SampleError::Unavailable(m) if self.absent != Absent::Error => {
                            if !self.said_unavailable {
                                if self.absent == Absent::Warn {
                                    tracing::warn!(collector = self.name, reason = %m, "not available on this machine although a library was named; running without it");
                                } else {
                                    tracing::info!(collector = self.name, reason = %m, "not available on this machine; running without it");
                                }
                                self.said_unavailable = true;
                            }
                        }
                        _ => {
                            tracing::warn!(collector = self.name, error = %e, retry_in_secs = wait.as_secs(), "collector could not start")
                        }
                    }
                    return Some(Err(match e {
                        SampleError::Unavailable(m) if self.absent == Absent::Error => {
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

/// What one sample returned (`None`: between re-open attempts).
type Outcome = Option<Result<Vec<Reading>, SampleError>>;

/// A supervised collector on its own thread. The sampler asks; the answer
/// comes back over a channel with the request's sequence number, so an
/// answer that arrives after its deadline is recognised and discarded.
struct Worker {
    name: &'static str,
    ask: mpsc::Sender<(u64, Instant)>,
    answers: Receiver<(u64, Outcome)>,
    /// The request in flight, if any.
    pending: Option<u64>,
    /// When the current blocked streak began (logged once per streak).
    blocked_since: Option<Instant>,
}

impl Worker {
    fn spawn(mut s: Supervised) -> std::io::Result<Worker> {
        let name = s.name();
        let (ask, asks) = mpsc::channel::<(u64, Instant)>();
        let (answer, answers) = mpsc::channel::<(u64, Outcome)>();
        std::thread::Builder::new()
            .name(format!("roimon-{name}"))
            .spawn(move || {
                while let Ok((seq, now)) = asks.recv() {
                    if answer.send((seq, s.sample(now))).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker {
            name,
            ask,
            answers,
            pending: None,
            blocked_since: None,
        })
    }
}

/// How long rows that appeared since the last release are shown at 0
/// waiting for a scrape, at most (a node nobody scrapes must not freeze).
const HOLD_MAX: Duration = Duration::from_secs(120);
/// Most inbox events (feed results, pushed batches) taken per drain;
/// pushed batches are also bounded by the endpoint's in-flight cap.
const MAX_EVENTS_PER_DRAIN: usize = 256;

/// How the sampler answers a pushed batch.
type PushReply = tokio::sync::oneshot::Sender<Result<(usize, usize), crate::inbox::Refusal>>;

/// Between ticks the sampler looks at its inbox at least this often (and
/// for a stop request), so a pushed batch is booked and acknowledged in
/// milliseconds, not at the next tick.
const INBOX_POLL: Duration = Duration::from_millis(20);

/// Consecutive failed checkpoints after which `/readyz` says not ready.
const UNREADY_AFTER_FAILURES: u32 = 3;

/// What the loop needs.
pub struct Sampler {
    /// The engine (owned by the loop).
    pub engine: Engine,
    /// The collectors.
    pub collectors: Vec<Supervised>,
    /// Sampling interval.
    pub interval: Duration,
    /// How long one collector's sample may take.
    pub collector_timeout: Duration,
    /// Checkpoint interval.
    pub checkpoint_every: Duration,
    /// Where counters go.
    pub checkpoint: Checkpoint,
    /// Where snapshots go (the HTTP handlers and the InfluxDB stream read them there).
    pub publication: Arc<Published>,
    /// The inbox: what the feeds and the push endpoint send.
    pub inbox: Option<Receiver<Event>>,
    /// Downtime longer than this is logged as a WARN when booked.
    pub max_downtime: Duration,
    /// The systemd notification socket, when run under `Type=notify`.
    pub notify: Option<crate::sdnotify::Notifier>,
    /// Push dedup window: (most points, longest age in ns).
    pub push_dedup: (usize, i64),
    /// The ledger's hour book (written with every checkpoint).
    pub book: roimon_ledger::HourBook,
    /// Node name and price source, written into ledger rows.
    pub meta: roimon_ledger::Meta,
    /// Monthly budgets, computed from the ledger after each checkpoint.
    pub budgets: Vec<roimon_ledger::Budget>,
    /// Zone of budget months.
    pub report_tz: chrono_tz::Tz,
    /// Attribution by process (`None`: the UUID table only).
    pub attribution: Option<roimon_attribution::Attributor>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("collectors", &self.collectors)
            .finish()
    }
}

/// The loop's running state.
struct Running {
    s: Sampler,
    workers: Vec<Worker>,
    seq: u64,
    /// The counters as last written to disk.
    saved: Counters,
    /// The counters on show: `saved`, or an older `saved` with new rows at
    /// 0 while a scrape has not yet seen them.
    published: Counters,
    /// (generation whose scrape releases the hold, since when).
    hold: Option<(u64, Instant)>,
    /// Consecutive failed checkpoint writes.
    save_streak: u32,
    said_ready: bool,
    first_tick_done: bool,
    /// Owner UUIDs last warned about as matching no GPU.
    warned_unmatched: Vec<String>,
    /// Why the loop must end now with an error (the state dir was lost).
    fatal: Option<String>,
    /// The push dedup window, typed; its changes are saved as rows with
    /// each checkpoint (loaded at the first push).
    dedup: Option<Dedup>,
    /// Wall and monotonic time of the last tick (to notice clock steps).
    last_clock: Option<(chrono::DateTime<Utc>, f64)>,
    /// Budget gauges as of the last checkpoint.
    budget_views: Vec<roimon_core::BudgetView>,
    /// The last budget query failed (logged once per streak).
    budget_failing: bool,
    /// The longest phase of the current step: (what, seconds).
    slowest: (&'static str, f64),
    /// A late streak is being logged (once per streak).
    late_streak: bool,
    #[cfg(test)]
    panic_at_tick: Option<u64>,
}

/// A zeroed copy of `row` (same components, every figure 0).
fn zero_like(row: &Row) -> Row {
    Row {
        cost: row.cost.keys().map(|c| (*c, Default::default())).collect(),
        credit: row
            .credit
            .keys()
            .map(|c| (*c, Default::default()))
            .collect(),
        attributed_by: row.attributed_by.clone(),
        ..Default::default()
    }
}

impl Running {
    /// Take what the feeds and the push endpoint sent, at most
    /// [`MAX_EVENTS_PER_DRAIN`] events: prices and carbon are put in force
    /// (a schedule is indexed by time, so an interval is priced by the slots
    /// it actually overlaps whenever it arrived before the tick), value is
    /// booked, and the pushed batches taken are checked and booked together
    /// and written with one checkpoint (group commit) before any of them
    /// is acknowledged. What is left waits for the next drain: no client or
    /// feed can hold the sampler.
    fn drain_inbox(&mut self) {
        // The ledger's hour closes at the counters as they stand before
        // anything is booked in a later hour.
        self.s.book.observe(Utc::now(), self.s.engine.counters());
        let mut acks: Vec<(PushReply, (usize, usize))> = Vec::new();
        for _ in 0..MAX_EVENTS_PER_DRAIN {
            let Some(u) = self.s.inbox.as_ref().and_then(|rx| rx.try_recv().ok()) else {
                break;
            };
            match u {
                Event::Tariff(t, at) => self.s.engine.set_tariff(t, Some(at)),
                Event::Outcome(name, ok) => {
                    self.s.publication.health().feed(name, ok, Utc::now());
                    self.s.engine.note_source(name, ok);
                }
                Event::Carbon(c) => self.s.engine.set_carbon(Some(c)),
                Event::Dropped(name, n) => self.s.engine.note_dropped(name, n),
                Event::Target(name, ok) => {
                    self.s.publication.health().target(&name, ok, Utc::now());
                    self.s.engine.note_target(&name, ok);
                }
                Event::Failed(name, why) => self.s.publication.health().feed_failed(name, why),
                Event::TargetFailed(name, why) => {
                    self.s.publication.health().target_failed(&name, why);
                }
                Event::Value(v) => self.book_value(v),
                Event::Push(job) => {
                    if let Some(ack) = self.apply_push(job) {
                        acks.push(ack);
                    }
                }
                Event::Pods(pods) => {
                    if let Some(a) = &mut self.s.attribution {
                        a.set_pods(pods);
                    }
                }
            }
        }
        if acks.is_empty() {
            return;
        }
        // Written before the 204s, whether or not a batch was new: a retry
        // of a batch whose first save failed must not be acknowledged
        // before it is on disk.
        let saved = self.save();
        for (reply, counted) in acks {
            let _ = reply.send(saved.clone().map(|()| counted).map_err(|e| {
                crate::inbox::Refusal::Unavailable(format!(
                    "the batch is counted but could not be written to disk ({e}); retry it (it counts once)"
                ))
            }));
        }
    }

    /// Book a value target's scrape to its owners, with the counter state
    /// it was computed from (one checkpoint holds both).
    fn book_value(&mut self, v: crate::inbox::ValueUpdate) {
        let owners: Vec<(roimon_core::Owner, f64)> = match &v.owners {
            crate::inbox::OwnerSpec::Owner(o) => vec![(o.clone(), 1.0)],
            crate::inbox::OwnerSpec::Gpus(uuids) => {
                let share = 1.0 / uuids.len().max(1) as f64;
                uuids
                    .iter()
                    .map(|u| (self.s.engine.owner_of(u), share))
                    .collect()
            }
        };
        self.s
            .engine
            .book_value(&owners, &v.target, v.money, &v.models);
        self.s
            .engine
            .set_extension(&crate::inbox::value_state_key(&v.target), v.state);
        for (why, n) in v.rejected {
            self.s.engine.note_value_rejected(&v.target, why, n);
        }
    }

    /// Apply a pushed batch: checked whole against the caps (a refusal is
    /// answered at once, nothing of it booked), duplicates dropped, the
    /// rest booked. Returns the reply to send once the checkpoint holding
    /// it is written.
    fn apply_push(&mut self, job: crate::inbox::Job) -> Option<(PushReply, (usize, usize))> {
        let (max_points, max_age_ns) = self.s.push_dedup;
        if self.dedup.is_none() {
            self.dedup = Some(self.load_dedup(max_points, max_age_ns, job.now_ns));
        }
        let dedup = self.dedup.as_mut()?;
        match crate::booking::apply(&mut self.s.engine, dedup, job.points, job.now_ns) {
            Ok((n, dups)) => Some((job.reply, (n, dups))),
            Err(refusal) => {
                let _ = job.reply.send(Err(refusal));
                None
            }
        }
    }

    /// The push duplicate window as saved: its rows in the ledger, or, from
    /// a state written before they were rows, the JSON kept with the
    /// counters (written out as rows with the next checkpoint, then
    /// dropped). The window's limits are the configuration in force.
    fn load_dedup(&mut self, max_points: usize, max_age_ns: i64, now_ns: i64) -> Dedup {
        let legacy = self
            .s
            .engine
            .extension(crate::booking::DEDUP_KEY)
            .map(serde_json::from_str::<Dedup>);
        let (mut d, from_json) = match legacy {
            Some(Ok(d)) => (d, true),
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(error = %e, "the kept push dedup window does not parse; starting from the saved rows (a retry of an earlier batch may count again)");
                }
                let d = match self.s.checkpoint.ledger().load_seen() {
                    Ok(rows) => Dedup::load(
                        max_points,
                        max_age_ns,
                        rows.into_iter()
                            .map(|(k, at)| (roimon_value::PointKey(k), at)),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the saved push dedup window; starting an empty one (a retry of an earlier batch may count again)");
                        Dedup::new(max_points, max_age_ns)
                    }
                };
                (d, false)
            }
        };
        // From the JSON, every entry is new to the rows.
        d.journal(from_json);
        self.s.engine.remove_extension(crate::booking::DEDUP_KEY);
        d.set_limits(max_points, max_age_ns, now_ns);
        d
    }

    /// Ask every idle collector for a sample and collect the answers until
    /// the deadline. A collector still busy at the deadline is reported
    /// failed for this tick (its devices' time becomes unaccounted); the
    /// others are accounted as usual.
    fn collect(&mut self) -> Vec<Report> {
        self.seq += 1;
        let seq = self.seq;
        let now = Instant::now();
        for w in &mut self.workers {
            if w.pending.is_none() && w.ask.send((seq, now)).is_ok() {
                w.pending = Some(seq);
            }
        }
        let deadline = now + self.s.collector_timeout;
        let mut reports = Vec::with_capacity(self.workers.len());
        for w in &mut self.workers {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match w.answers.recv_timeout(left) {
                    Ok((got, outcome)) => {
                        w.pending = None;
                        if got != seq {
                            // The late answer of a call that had blocked:
                            // stale, discarded; ask afresh for this tick.
                            if w.ask.send((seq, Instant::now())).is_ok() {
                                w.pending = Some(seq);
                            }
                            continue;
                        }
                        if let Some(since) = w.blocked_since.take() {
                            tracing::info!(
                                collector = w.name,
                                blocked_secs = since.elapsed().as_secs_f64(),
                                "collector answers again"
                            );
                        }
                        if let Some(outcome) = outcome {
                            reports.push(Report {
                                collector: w.name,
                                outcome,
                            });
                        }
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if w.blocked_since.is_none() {
                            w.blocked_since = Some(now);
                            tracing::error!(
                                collector = w.name,
                                timeout_secs = self.s.collector_timeout.as_secs_f64(),
                                "collector did not answer in time (a blocked driver call?); reported down, the rest of the node keeps accounting"
                            );
                        }
                        reports.push(Report {
                            collector: w.name,
                            outcome: Err(SampleError::Failed(format!(
                                "no answer within {:.2} s",
                                self.s.collector_timeout.as_secs_f64()
                            ))),
                        });
                        break;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        reports.push(Report {
                            collector: w.name,
                            outcome: Err(SampleError::Failed("collector thread ended".into())),
                        });
                        break;
                    }
                }
            }
        }
        reports
    }

    fn tick(&mut self, origin: Instant) {
        self.phase("taking feed updates and pushed batches", |r| {
            r.drain_inbox()
        });
        let reports = self.phase("sampling the collectors", |r| r.collect());
        let tick = Tick {
            wall: Utc::now(),
            mono: origin.elapsed().as_secs_f64(),
        };
        self.note_clock_step(tick);
        self.s.book.observe(tick.wall, self.s.engine.counters());
        #[cfg(test)]
        if self.panic_at_tick == Some(self.seq) {
            panic!("injected panic at tick {}", self.seq);
        }
        if let Some(a) = &mut self.s.attribution {
            a.apply(&reports, &mut self.s.engine);
        }
        self.s.engine.ingest(tick, &reports);
        if !self.first_tick_done {
            self.first_tick_done = true;
            if let Some(down) = self.s.engine.take_downtime() {
                let from = tick.wall - chrono::Duration::milliseconds((down * 1000.0) as i64);
                if down > self.s.max_downtime.as_secs_f64() {
                    tracing::warn!(from = %from, to = %tick.wall, downtime_secs = down, limit_secs = self.s.max_downtime.as_secs_f64(), "roimon was stopped longer than state.max_downtime_secs; fixed costs for the whole span are booked and its energy is unaccounted");
                } else {
                    tracing::info!(from = %from, to = %tick.wall, downtime_secs = down, "booked fixed costs for the time roimon was stopped");
                }
            }
        }
    }

    /// Run one phase of a step, keeping the slowest for the late-tick log.
    fn phase<T>(&mut self, what: &'static str, f: impl FnOnce(&mut Self) -> T) -> T {
        let t0 = Instant::now();
        let out = f(self);
        let took = t0.elapsed().as_secs_f64();
        if took > self.slowest.1 {
            self.slowest = (what, took);
        }
        out
    }

    /// Log a wall clock step (wall time moving unlike monotonic time by
    /// more than two intervals) once, with its size: money goes to the
    /// hour of the wall time, so a step moves booking with it.
    fn note_clock_step(&mut self, tick: Tick) {
        if let Some((wall, mono)) = self.last_clock {
            let wall_secs = (tick.wall - wall).num_milliseconds() as f64 / 1000.0;
            let step = wall_secs - (tick.mono - mono);
            if step.abs() > 2.0 * self.s.interval.as_secs_f64() {
                let way = if step > 0.0 { "forward" } else { "back" };
                tracing::warn!(step_secs = step, from = %wall, to = %tick.wall, "the wall clock stepped {way} by {:.1} s; money is booked to the hour of the wall time from now on", step.abs());
            }
        }
        self.last_clock = Some((tick.wall, tick.mono));
    }

    /// Write a checkpoint; on failure keep the last good one on show.
    fn save(&mut self) -> Result<(), String> {
        let seen: Vec<roimon_ledger::SeenOp> = self
            .dedup
            .as_mut()
            .map(Dedup::take_changes)
            .unwrap_or_default()
            .into_iter()
            .map(|c| match c {
                roimon_value::Change::Add(k, at) => roimon_ledger::SeenOp::Add(k.0, at),
                roimon_value::Change::Remove(k) => roimon_ledger::SeenOp::Remove(k.0),
            })
            .collect();
        let result = self.s.checkpoint.save_with_seen(
            self.s.engine.counters(),
            &self.s.book,
            &self.s.meta,
            &seen,
        );
        if result.is_err()
            && let Some(d) = &mut self.dedup
        {
            // Written with the next checkpoint instead.
            d.restore_changes(
                seen.into_iter()
                    .map(|op| match op {
                        roimon_ledger::SeenOp::Add(k, at) => {
                            roimon_value::Change::Add(roimon_value::PointKey(k), at)
                        }
                        roimon_ledger::SeenOp::Remove(k) => {
                            roimon_value::Change::Remove(roimon_value::PointKey(k))
                        }
                    })
                    .collect(),
            );
        }
        match result {
            Ok(()) => {
                self.s.book.written();
                self.saved = self.s.engine.counters_to_publish();
                self.update_budgets();
                if self.save_streak > 0 {
                    tracing::info!(dir = %self.s.checkpoint.dir().display(), failures = self.save_streak, "checkpoint written again");
                }
                self.save_streak = 0;
                self.s.publication.checkpoint_ok();
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => {
                // Another daemon took the state dir while it was gone: two
                // writers would corrupt each other's counters. Stop.
                self.s.engine.note_checkpoint_error();
                tracing::error!(error = %e, "lost the state dir to another process");
                self.fatal = Some(e.to_string());
                Err(e.to_string())
            }
            Err(e) => {
                self.save_streak += 1;
                self.s.engine.note_checkpoint_error();
                let why = format!("{}: {e}", self.s.checkpoint.dir().display());
                if self.save_streak == 1 {
                    tracing::error!(dir = %self.s.checkpoint.dir().display(), error = %e, "checkpoint failed; /metrics keeps showing the last counters on disk, retrying every checkpoint interval");
                }
                self.s.publication.checkpoint_failed(
                    self.save_streak,
                    self.save_streak >= UNREADY_AFTER_FAILURES,
                    &why,
                );
                Err(why)
            }
        }
    }

    /// Budget gauges from the ledger just written (month to date and the
    /// month-end forecast); on a failed query the last ones stay.
    fn update_budgets(&mut self) {
        if self.s.budgets.is_empty() {
            return;
        }
        let c = self.s.engine.counters();
        let now = c.last_wall.unwrap_or_else(Utc::now);
        match self.s.checkpoint.ledger().budgets(
            &self.s.budgets,
            now,
            c.created,
            self.s.report_tz,
            &c.currency,
        ) {
            Ok(v) => {
                self.budget_views = v;
                self.budget_failing = false;
            }
            Err(e) => {
                if !self.budget_failing {
                    tracing::warn!(error = %e, "cannot compute the budget gauges from the ledger; showing the last ones");
                }
                self.budget_failing = true;
            }
        }
    }

    /// Publish a snapshot whose counters are the last ones safely on disk
    /// (value rows are held like cost rows)
    /// (never live ones, not even while writes fail): what Prometheus scrapes
    /// can never be ahead of what a restart resumes. Rows that are new since
    /// the last release are first shown at 0, with the node totals they were
    /// not yet part of, until a scrape has seen them (or `HOLD_MAX` passed),
    /// so `increase()` sees every attributed series start at 0 and the rows
    /// add up to the node over every scrape interval. Gauges are live.
    /// Only `/metrics` holds: the summary and the status page read a booked
    /// twin whose counters are `saved` as they are.
    fn publish(&mut self) {
        let served = self.s.publication.served_generation();
        let new: Vec<(RowKey, Row)> = self
            .saved
            .rows
            .iter()
            .filter(|(k, _)| !self.published.rows.contains_key(*k))
            .map(|(k, r)| (k.clone(), zero_like(r)))
            .collect();
        let new_value: Vec<(roimon_core::ValueKey, roimon_core::ValueRow)> = self
            .saved
            .value
            .iter()
            .filter(|(k, _)| !self.published.value.contains_key(*k))
            .map(|(k, r)| {
                let zero = roimon_core::ValueRow {
                    value: Default::default(),
                    models: r
                        .models
                        .keys()
                        .map(|m| (m.clone(), Default::default()))
                        .collect(),
                };
                (k.clone(), zero)
            })
            .collect();
        let release = match self.hold {
            Some((generation, since)) => served >= generation || since.elapsed() >= HOLD_MAX,
            None => true,
        };
        let mut announce = false;
        if !new.is_empty() || !new_value.is_empty() {
            self.published.rows.extend(new);
            self.published.value.extend(new_value);
            announce = true;
        } else if release {
            self.hold = None;
            self.published = self.saved.clone();
        }
        // Counters (the checkpoint error count too) as on disk; the live
        // failure streak is a gauge (`roimon_checkpoint_consecutive_failures`).
        let counters = self.published.clone();
        let mut snap = self.s.engine.snapshot_with(counters);
        snap.budgets = self.budget_views.clone();
        if !self.s.budgets.is_empty() {
            let c = self.s.engine.counters();
            snap.budget_basis_seconds = Some(roimon_ledger::budget::forecast_basis_seconds(
                c.last_wall.unwrap_or_else(Utc::now),
                c.created,
            ));
        }
        if snap.unmatched_owners != self.warned_unmatched {
            if !snap.unmatched_owners.is_empty() {
                let seen: Vec<&String> = snap.gpus.keys().collect();
                tracing::warn!(unmatched = ?snap.unmatched_owners, gpus = ?seen, "gpu.owners names GPUs this node does not have (UUIDs are case-sensitive); their cost goes to unallocated");
            }
            self.warned_unmatched = snap.unmatched_owners.clone();
        }
        // The summary and the status page hold nothing: while rows are held
        // for `/metrics`, they get the same snapshot with the counters as on
        // disk (only the counters differ; otherwise both share one `Arc`).
        let booked = (self.hold.is_some() || announce).then(|| {
            let held = std::mem::take(&mut snap.counters);
            let mut booked = snap.clone();
            booked.counters = self.saved.clone();
            snap.counters = held;
            booked
        });
        let ready = self.s.engine.ready();
        let generation = self.s.publication.publish(snap, booked, ready);
        if announce {
            self.hold = Some((generation, Instant::now()));
        }
        if let Some(n) = &self.s.notify {
            if !self.said_ready {
                n.send("READY=1\nSTATUS=sampling");
                self.said_ready = true;
            }
            n.send("WATCHDOG=1");
        }
    }

    /// Wait `d` for a stop message (true: stop), telling the watchdog we are
    /// alive at least every half of its period, so a long sampling interval
    /// is not mistaken for a hang.
    /// Meanwhile the inbox is looked at every [`INBOX_POLL`]: pushed
    /// batches are booked and written in groups as they come.
    fn wait(&mut self, stop: &Receiver<()>, d: Duration) -> bool {
        let every = self
            .s
            .notify
            .as_ref()
            .and_then(|n| n.watchdog_period())
            .map(|p| p / 2);
        let until = Instant::now() + d;
        let mut last_watchdog = Instant::now();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let chunk = if self.s.inbox.is_some() {
                left.min(INBOX_POLL)
            } else {
                every.map_or(left, |e| left.min(e))
            };
            match stop.recv_timeout(chunk) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() < until && self.s.inbox.is_some() {
                self.phase(
                    "booking pushed batches and feed updates between ticks",
                    |r| r.drain_inbox(),
                );
            }
            if Instant::now() >= until {
                return false;
            }
            if every.is_none_or(|e| last_watchdog.elapsed() < e) {
                continue;
            }
            last_watchdog = Instant::now();
            if Instant::now() >= until {
                return false;
            }
            if let Some(n) = &self.s.notify {
                n.send("WATCHDOG=1");
            }
        }
    }

    /// One iteration: sample, account, maybe checkpoint, publish.
    fn step(&mut self, origin: Instant, checkpoint_due: bool) {
        self.slowest = ("", 0.0);
        self.tick(origin);
        if checkpoint_due {
            let _ = self.phase("writing a checkpoint", |r| r.save());
        }
        self.phase("publishing", |r| r.publish());
    }

    /// Log a tick that starts more than two intervals late, once per
    /// streak, with the gap and what the loop was doing.
    fn note_lateness(&mut self, late: Duration) {
        let limit = self.s.interval * 2;
        if late <= limit {
            if self.late_streak {
                tracing::info!("sampler ticks are on time again");
            }
            self.late_streak = false;
            return;
        }
        if self.late_streak {
            return;
        }
        self.late_streak = true;
        let (what, secs) = self.slowest;
        let doing = if secs * 2.0 >= late.as_secs_f64() && !what.is_empty() {
            format!("{what} took {secs:.3} s")
        } else {
            format!(
                "no phase of the loop was slow (the longest, {}, took {secs:.3} s): the process was suspended or starved of CPU",
                if what.is_empty() { "none" } else { what }
            )
        };
        tracing::warn!(
            late_secs = late.as_secs_f64(),
            interval_secs = self.s.interval.as_secs_f64(),
            doing = %doing,
            "a sampler tick is late by more than two intervals; time the collectors could not be asked about is booked as unaccounted"
        );
    }
}

impl Sampler {
    /// Run until `stop` receives a message or its sender is dropped; then take
    /// a last sample and checkpoint. Returns the engine, or why the daemon
    /// must exit with an error: the final checkpoint failed, or the loop
    /// itself panicked (a zombie serving stale numbers would be worse than a
    /// restart).
    pub fn run(self, stop: Receiver<()>) -> Result<Engine, String> {
        self.run_inner(stop, None)
    }

    fn run_inner(
        mut self,
        stop: Receiver<()>,
        #[allow(unused_variables)] panic_at_tick: Option<u64>,
    ) -> Result<Engine, String> {
        let mut workers = Vec::new();
        for c in std::mem::take(&mut self.collectors) {
            self.engine.register_collector(c.name());
            let name = c.name();
            workers.push(
                Worker::spawn(c)
                    .map_err(|e| format!("cannot start the {name} collector thread: {e}"))?,
            );
        }
        let saved = self.engine.counters_to_publish();
        let mut r = Running {
            published: saved.clone(),
            saved,
            s: self,
            workers,
            seq: 0,
            hold: None,
            save_streak: 0,
            said_ready: false,
            first_tick_done: false,
            warned_unmatched: Vec::new(),
            fatal: None,
            dedup: None,
            budget_views: Vec::new(),
            budget_failing: false,
            slowest: ("", 0.0),
            late_streak: false,
            last_clock: None,
            #[cfg(test)]
            panic_at_tick,
        };
        let origin = Instant::now();
        let mut next = origin;
        let mut next_checkpoint = origin;
        loop {
            r.note_lateness(Instant::now().saturating_duration_since(next));
            let due = Instant::now() >= next_checkpoint;
            if catch_unwind(AssertUnwindSafe(|| r.step(origin, due))).is_err() {
                return Err("the sampling loop panicked; exiting so the service manager restarts roimon from the last checkpoint".into());
            }
            if let Some(why) = r.fatal.take() {
                return Err(why);
            }
            if due {
                next_checkpoint = Instant::now() + r.s.checkpoint_every;
            }
            next += r.s.interval;
            let now = Instant::now();
            if next < now {
                // Overran (slow collector or suspended process): skip, don't burst.
                next = now + r.s.interval;
            }
            if r.wait(&stop, next - now) {
                break;
            }
        }
        if let Some(n) = &r.s.notify {
            n.send("STOPPING=1");
        }
        // Flush: account the partial interval up to now, then checkpoint.
        let last = catch_unwind(AssertUnwindSafe(|| {
            r.tick(origin);
            let saved = r.save();
            r.publish();
            saved
        }));
        match last {
            Ok(Ok(())) => {
                tracing::info!(dir = %r.s.checkpoint.dir().display(), "final checkpoint written");
                Ok(r.s.engine)
            }
            Ok(Err(why)) => Err(format!(
                "final checkpoint failed: {why}; a restart resumes from the last checkpoint on disk"
            )),
            Err(_) => Err(
                "the final sample panicked; a restart resumes from the last checkpoint on disk"
                    .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roimon_core::{EngineConfig, FixedCosts, PricePerKwh, Seconds, ShareKey, Tariff};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn engine() -> Engine {
        Engine::new(
            EngineConfig {
                currency: "EUR".into(),
                pue: 1.0,
                tariff: Tariff::Static(PricePerKwh(0.2)),
                price_source: "static".into(),
                fixed: FixedCosts {
                    capex_per_sec: 1.0,
                    ..Default::default()
                },
                share_key: ShareKey::Equal,
                owners: Default::default(),
                max_gap: Seconds(5.0),
            },
            None,
        )
    }

    fn sampler(
        dir: &std::path::Path,
        collectors: Vec<Supervised>,
        timeout: Duration,
    ) -> (Sampler, Arc<Published>) {
        let e = engine();
        let state = Arc::new(Published::new(e.snapshot(), Duration::from_secs(30)));
        let s = Sampler {
            engine: e,
            collectors,
            interval: Duration::from_millis(20),
            collector_timeout: timeout,
            checkpoint_every: Duration::from_millis(20),
            checkpoint: Checkpoint::open(dir).unwrap(),
            publication: state.clone(),
            inbox: None,
            max_downtime: Duration::from_secs(60),
            notify: None,
            push_dedup: (1000, 86_400_000_000_000),
            book: roimon_ledger::HourBook::resume(None, None),
            meta: roimon_ledger::Meta {
                node: "test".into(),
                price_source: "static".into(),
            },
            budgets: Vec::new(),
            report_tz: chrono_tz::UTC,
            attribution: None,
        };
        (s, state)
    }

    /// A collector that panics, fails or blocks on demand.
    struct Scripted {
        calls: Arc<AtomicU32>,
        script: fn(u32) -> Result<(), SampleError>,
    }
    impl std::fmt::Debug for Scripted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Scripted")
        }
    }
    impl Collector for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn sample(&mut self, _out: &mut Vec<Reading>) -> Result<(), SampleError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            (self.script)(n)
        }
    }

    fn supervised(
        calls: Arc<AtomicU32>,
        opens: Arc<AtomicU32>,
        script: fn(u32) -> Result<(), SampleError>,
    ) -> Supervised {
        let open: Opener = Box::new(move || {
            opens.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Scripted {
                calls: calls.clone(),
                script,
            }) as Box<dyn Collector>)
        });
        Supervised::new("scripted", open, Absent::Error)
    }

    #[test]
    fn a_panicking_collector_is_isolated_and_reopened_after_its_backoff() {
        let (calls, opens) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let mut s = supervised(calls.clone(), opens.clone(), |n| {
            if n == 0 { panic!("driver bug") } else { Ok(()) }
        });
        let t0 = Instant::now();
        let r = s.sample(t0).expect("a report");
        assert!(matches!(r, Err(SampleError::Failed(m)) if m.contains("panicked")));
        assert_eq!(opens.load(Ordering::SeqCst), 1);
        // Within the 1 s backoff: no report and no re-open.
        assert!(s.sample(t0 + Duration::from_millis(900)).is_none());
        assert_eq!(opens.load(Ordering::SeqCst), 1);
        // After it: re-opened, and it works.
        assert!(matches!(
            s.sample(t0 + Duration::from_millis(1001)),
            Some(Ok(_))
        ));
        assert_eq!(opens.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_collector_that_keeps_failing_is_reopened_with_doubling_backoff() {
        let (calls, opens) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let mut s = supervised(calls.clone(), opens.clone(), |_| {
            Err(SampleError::Failed("handle gone bad".into()))
        });
        let t0 = Instant::now();
        for i in 0..REOPEN_AFTER {
            assert!(matches!(
                s.sample(t0 + Duration::from_millis(u64::from(i))),
                Some(Err(_))
            ));
        }
        // The 30th failure dropped the handle: the next open waits 1 s, then 2 s.
        assert_eq!(opens.load(Ordering::SeqCst), 1);
        let t1 = t0 + Duration::from_millis(u64::from(REOPEN_AFTER));
        assert!(s.sample(t1 + Duration::from_millis(500)).is_none());
        assert!(s.sample(t1 + Duration::from_millis(1000)).is_some());
        assert_eq!(opens.load(Ordering::SeqCst), 2);
        assert_eq!(s.back_off(t1), Duration::from_secs(1));
        assert_eq!(s.back_off(t1), Duration::from_secs(2));
        assert_eq!(s.back_off(t1), Duration::from_secs(4));
    }

    #[test]
    fn a_blocked_collector_is_reported_down_and_the_loop_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (calls, opens) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let blocking = supervised(calls.clone(), opens, |n| {
            if n == 1 {
                std::thread::sleep(Duration::from_millis(400));
            }
            Ok(())
        });
        let (s, state) = sampler(dir.path(), vec![blocking], Duration::from_millis(50));
        let (tx, rx) = mpsc::channel();
        let h = std::thread::spawn(move || s.run(rx));
        // A scraper: new rows are shown at 0 until one has seen them.
        let scrape = || {
            let (g, snap) = state.snapshot_gen();
            state.note_served(g);
            snap
        };
        for _ in 0..15 {
            scrape();
            std::thread::sleep(Duration::from_millis(20));
        }
        // While the second sample blocks, ticks go on and checkpoints land.
        let snap = scrape();
        assert!(!snap.collectors["scripted"].up);
        assert!(snap.counters.collector_errors["scripted"] >= 2);
        assert!(snap.counters.cost[&roimon_core::Component::Capex].total() > 0.05);
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            state.snapshot().collectors["scripted"].up,
            "back once the call returns"
        );
        tx.send(()).unwrap();
        assert!(h.join().unwrap().is_ok());
    }

    #[test]
    fn a_panic_in_the_loop_ends_it_with_an_error_not_a_zombie() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = sampler(dir.path(), vec![], Duration::from_millis(50));
        let (_tx, rx) = mpsc::channel();
        let r = s.run_inner(rx, Some(3));
        assert!(r.unwrap_err().contains("panicked"));
    }
}
