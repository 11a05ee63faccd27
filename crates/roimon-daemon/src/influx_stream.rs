//! The InfluxDB v2 stream, daemon side: a thread of its own (so a slow disk
//! or server never holds up the sampler or the HTTP listener) that every
//! interval turns the published snapshot into points and appends them to the
//! disk buffer, takes closed ledger hours the same way, and sends the buffer
//! in batches through `roimon-http` with Telegraf's semantics: 413 splits,
//! 400/422 drop the bad points (counted), 401/403 keep the data and alarm,
//! 429/503 wait for `Retry-After`, anything else backs off with jitter.

use crate::published::Published;
use anyhow::Context;
use roimon_config::InfluxDb;
use roimon_export_prometheus::InfluxStats;
use roimon_http::{Auth, Body, Client, ClientConfig, Jitter, Request, RetryPolicy, Secret};
use roimon_influx::{Buffer, BufferConfig, HourRow, Point, Verdict, bad_lines, verdict};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Backoff after a failed write (5xx, transport errors).
const RETRY: RetryPolicy = RetryPolicy {
    retries: 0,
    initial: Duration::from_secs(1),
    max: Duration::from_secs(30),
};
/// Backoff while the server refuses the token: slow, it needs a person.
const AUTH_RETRY: RetryPolicy = RetryPolicy {
    retries: 0,
    initial: Duration::from_secs(2),
    max: Duration::from_secs(300),
};
/// Longest `Retry-After` obeyed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Closed ledger hours waiting to be buffered, at most (batches).
const HOURS_QUEUE: usize = 64;

/// The stream's counters, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    up: AtomicBool,
    written: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    /// Milliseconds since the epoch; 0 before the first success.
    last_success_ms: AtomicU64,
    buffer_bytes: AtomicU64,
    buffer_points: AtomicU64,
    capacity: AtomicU64,
    dropped_full: AtomicU64,
    dropped_corrupt: AtomicU64,
    /// Points that could not even be buffered (a disk error).
    dropped_unbuffered: AtomicU64,
}

impl Stats {
    fn buffer(&self, b: &Buffer) {
        self.buffer_bytes.store(b.bytes(), Ordering::Relaxed);
        self.buffer_points.store(b.points(), Ordering::Relaxed);
        self.capacity.store(b.capacity(), Ordering::Relaxed);
        self.dropped_full.store(
            b.dropped_full() + self.dropped_unbuffered.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.dropped_corrupt
            .store(b.dropped_corrupt(), Ordering::Relaxed);
    }

    /// The exporter's view.
    pub fn view(&self) -> InfluxStats {
        let last = self.last_success_ms.load(Ordering::Relaxed);
        InfluxStats {
            up: self.up.load(Ordering::Relaxed),
            buffer_bytes: self.buffer_bytes.load(Ordering::Relaxed),
            buffer_points: self.buffer_points.load(Ordering::Relaxed),
            buffer_capacity_bytes: self.capacity.load(Ordering::Relaxed),
            points_written: self.written.load(Ordering::Relaxed),
            dropped_buffer_full: self.dropped_full.load(Ordering::Relaxed),
            dropped_rejected: self.rejected.load(Ordering::Relaxed),
            dropped_corrupt: self.dropped_corrupt.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            last_success_unix: (last > 0).then(|| last as f64 / 1000.0),
        }
    }
}

/// The running stream: its figures, and the way in for ledger hours
/// (cheap to clone: hand one to whatever closes ledger hours).
#[derive(Debug, Clone)]
pub struct Handle {
    /// Counters for `/metrics`.
    pub stats: Arc<Stats>,
    hours: tokio::sync::mpsc::Sender<Vec<Point>>,
    /// The buffer's directory (the ledger copier keeps its cursor there).
    dir: std::path::PathBuf,
}

/// The file, in the buffer's directory, holding the id of the last closed
/// ledger row handed to the buffer (`id N`; a bare number, written by
/// older versions, is the start of the first hour not yet handed).
const LEDGER_CURSOR: &str = "ledger-cursor";

/// Seconds between looks at the ledger for newly closed hours.
const LEDGER_EVERY: Duration = Duration::from_secs(60);

/// A closed ledger row as a `roimon_ledger` point's row.
pub fn hour_row(r: &roimon_ledger::HourRow) -> HourRow {
    let o = roimon_ledger::report::out_of(&r.figures);
    let requests = r.get("requests").unwrap_or(0.0);
    HourRow {
        hour_start: r.hour_start.timestamp(),
        node: r.node.clone(),
        gpu_uuid: r.gpu_uuid.clone(),
        team: r.team.clone(),
        workload: r.workload.clone(),
        kind: r.kind.clone(),
        currency: r.currency.clone(),
        energy_kwh: o[0],
        facility_energy_kwh: o[1],
        cost_energy: o[2],
        cost_capex: o[3],
        cost_maintenance: o[4],
        cost_staff: o[5],
        cost_carbon: o[6],
        cost_total: o[7],
        credit: o[8],
        emissions_kg: o[9],
        value: o[10],
        tokens: o[11],
        requests,
    }
}

/// Where the copier goes on: `Some(id)` of the last row handed over, or
/// `Err(hour)` from an older version's hour cursor.
fn read_cursor(path: &std::path::Path) -> Result<i64, i64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = text.trim();
    match text.strip_prefix("id ") {
        Some(id) => Ok(id.trim().parse().unwrap_or(0)),
        None => Err(text.parse().unwrap_or(0)),
    }
}

/// Copy the ledger's closed rows into the stream, on a thread of its own:
/// every minute, the rows written after the cursor, by row id (kept in the
/// buffer's directory, written after the rows are handed over, so a crash
/// sends a row again, which overwrites itself). By id, not by hour: rows
/// booked later to an earlier hour (`late` after a clock step back,
/// `correction`, `reset`) are copied too. The ledger is read with its own
/// read-only connection (WAL: never in the sampler's way).
pub fn copy_ledger_hours(handle: Handle, ledger: std::path::PathBuf) -> anyhow::Result<()> {
    let cursor_path = handle.dir.join(LEDGER_CURSOR);
    std::thread::Builder::new()
        .name("roimon-influx-ledger".into())
        .spawn(move || {
            let mut cursor = read_cursor(&cursor_path);
            let mut db: Option<roimon_ledger::Ledger> = None;
            let mut failing = false;
            loop {
                std::thread::sleep(if db.is_none() && !failing {
                    Duration::from_secs(5)
                } else {
                    LEDGER_EVERY
                });
                if db.is_none() {
                    match roimon_ledger::Ledger::open_read_only(&ledger) {
                        Ok(l) => db = Some(l),
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %e, "influxdb: cannot read the ledger yet; closed hours are copied once it opens");
                            }
                            failing = true;
                            continue;
                        }
                    }
                }
                let Some(l) = db.as_ref() else { continue };
                let after = match cursor {
                    Ok(id) => Ok(id),
                    Err(hour) => l.last_closed_id_before(hour),
                };
                let rows = match after.and_then(|id| l.closed_rows_after(id)) {
                    Ok(r) => r,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "influxdb: reading closed ledger hours failed; retrying every minute");
                        }
                        failing = true;
                        db = None;
                        continue;
                    }
                };
                failing = false;
                let Some(last) = rows.iter().map(|(id, _)| *id).max() else {
                    continue;
                };
                let points: Vec<HourRow> = rows.iter().map(|(_, r)| hour_row(r)).collect();
                let mut handed = true;
                for chunk in points.chunks(1000) {
                    if handle.send_hours(chunk).is_err() {
                        handed = false;
                        break;
                    }
                }
                if handed {
                    cursor = Ok(last);
                    let tmp = cursor_path.with_extension("tmp");
                    if std::fs::write(&tmp, format!("id {last}\n"))
                        .and_then(|()| std::fs::rename(&tmp, &cursor_path))
                        .is_err()
                    {
                        tracing::warn!(path = %cursor_path.display(), "influxdb: cannot save the ledger cursor; hours may be sent again after a restart (they overwrite themselves)");
                    }
                }
            }
        })
        .context("starting the ledger copier thread")?;
    Ok(())
}

impl Handle {
    /// Queue closed ledger hours for writing (as `roimon_ledger` points at
    /// each hour's start; sending an hour again overwrites it). Never
    /// blocks: when the queue is full the rows are handed back.
    pub fn send_hours(&self, rows: &[HourRow]) -> Result<(), Vec<HourRow>> {
        let points = rows.iter().map(HourRow::point).collect();
        self.hours.try_send(points).map_err(|_| rows.to_vec())
    }
}

/// What one batch came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every point is stored or refused for good: acknowledge the batch.
    Done {
        /// Points stored.
        written: u64,
        /// Points the server refused (400/422, or 413 alone).
        rejected: u64,
    },
    /// Keep the whole batch and send it again later (what was stored
    /// meanwhile is overwritten with the same values: explicit timestamps).
    Again(Why),
}

/// Why a batch waits.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// 401/403: the token.
    Unauthorized(String),
    /// 429/503, with the server's `Retry-After`.
    Throttled(Option<Duration>, String),
    /// Anything else.
    Failed(String),
}

/// Send `lines` in requests of at most `max_points` through `post`,
/// splitting on 413 and dropping the points a 400/422 names (bisecting when
/// it names none), until every point is stored or refused, or a failure
/// says to wait.
pub async fn send_batch<F, Fut>(lines: &[&str], max_points: usize, mut post: F) -> Outcome
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), roimon_http::Error>>,
{
    let all: Vec<usize> = (0..lines.len()).collect();
    // A stack of index lists, the first to send on top.
    let mut work: Vec<Vec<usize>> = all
        .chunks(max_points.max(1))
        .rev()
        .map(<[usize]>::to_vec)
        .collect();
    let (mut written, mut rejected) = (0u64, 0u64);
    while let Some(idx) = work.pop() {
        let body = idx.iter().map(|&i| lines[i]).collect::<Vec<_>>().join("\n");
        let e = match post(body).await {
            Ok(()) => {
                written += idx.len() as u64;
                continue;
            }
            Err(e) => e,
        };
        let halves = |work: &mut Vec<Vec<usize>>, idx: &[usize]| {
            let (a, b) = idx.split_at(idx.len() / 2);
            work.push(b.to_vec());
            work.push(a.to_vec());
        };
        match e.status().map(verdict) {
            Some(Verdict::Written) => written += idx.len() as u64,
            Some(Verdict::Split) if idx.len() > 1 => halves(&mut work, &idx),
            Some(Verdict::Split) => {
                tracing::warn!(line = %lines[idx[0]], "InfluxDB refused a single point as too large (413); dropped");
                rejected += 1;
            }
            Some(Verdict::Reject) => {
                let text = match &e {
                    roimon_http::Error::Status { excerpt, .. } => excerpt.clone(),
                    other => other.to_string(),
                };
                let sub: Vec<&str> = idx.iter().map(|&i| lines[i]).collect();
                let named = bad_lines(&text, &sub);
                if !named.is_empty() {
                    for &n in &named {
                        tracing::warn!(line = %sub[n], answer = %roimon_http::log_safe(&text), "InfluxDB rejected a point; dropped");
                    }
                    rejected += named.len() as u64;
                    let rest: Vec<usize> = idx
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| !named.contains(k))
                        .map(|(_, &i)| i)
                        .collect();
                    if !rest.is_empty() {
                        work.push(rest);
                    }
                } else if idx.len() > 1 {
                    halves(&mut work, &idx);
                } else {
                    tracing::warn!(line = %sub[0], answer = %roimon_http::log_safe(&text), "InfluxDB rejected a point; dropped");
                    rejected += 1;
                }
            }
            Some(Verdict::Unauthorized) => return Outcome::Again(Why::Unauthorized(e.to_string())),
            Some(Verdict::Throttled) => {
                return Outcome::Again(Why::Throttled(e.retry_after(), e.to_string()));
            }
            Some(Verdict::Retry) | None => return Outcome::Again(Why::Failed(e.to_string())),
        }
    }
    Outcome::Done { written, rejected }
}

/// The write URL for `cfg`.
fn write_url(cfg: &InfluxDb) -> String {
    format!(
        "{}/api/v2/write?org={}&bucket={}&precision=ns",
        cfg.url.trim_end_matches('/'),
        roimon_http::url_encode(&cfg.org),
        roimon_http::url_encode(&cfg.bucket)
    )
}

/// The `node` tag: configured, else the host name.
fn node_name(cfg: &InfluxDb) -> String {
    if let Some(n) = &cfg.node {
        return n.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Open the buffer and start the stream's thread.
pub fn start(
    cfg: &InfluxDb,
    state_dir: &Path,
    published: Arc<Published>,
) -> anyhow::Result<Handle> {
    let token = Secret::load(
        "influxdb",
        cfg.token_env.as_deref(),
        cfg.token_file.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let client = Client::new(ClientConfig {
        timeout: Duration::from_secs_f64(cfg.timeout_secs),
        retry: RETRY,
        auth: token.map_or(Auth::None, Auth::Token),
        // influxdb.url has no query; a password in its user info is scrubbed.
        scrub: roimon_http::url_secrets(&cfg.url),
        ..ClientConfig::default()
    })
    .map_err(|e| anyhow::anyhow!("influxdb: {e}"))?;
    let dir = cfg
        .buffer_dir
        .clone()
        .unwrap_or_else(|| state_dir.join("influxdb"));
    let (buffer, rec) = Buffer::open(BufferConfig::new(&dir, cfg.buffer_max_bytes))
        .with_context(|| format!("influxdb: cannot open the buffer in {}", dir.display()))?;
    if rec.torn_records > 0 || rec.corrupt_points > 0 {
        tracing::warn!(dir = %dir.display(), torn_records = rec.torn_records, corrupt_points = rec.corrupt_points, "influxdb buffer: cut a torn or corrupt tail (a crash during an append, or a damaged disk)");
    }
    if rec.points > 0 {
        tracing::info!(
            points = rec.points,
            segments = rec.segments,
            "influxdb buffer: resuming; unsent points will be replayed"
        );
    }
    let stats = Arc::new(Stats::default());
    stats.buffer(&buffer);
    let (tx, rx) = tokio::sync::mpsc::channel(HOURS_QUEUE);
    let w = Writer {
        buffer: Mutex::new(buffer),
        append_failing: AtomicBool::new(false),
        stats: stats.clone(),
        appended: tokio::sync::Notify::new(),
        client,
        url: write_url(cfg),
        gzip: cfg.gzip,
        batch_points: cfg.batch_points,
        node: node_name(cfg),
        interval: Duration::from_secs_f64(cfg.interval_secs),
    };
    tracing::info!(url = %roimon_http::redact_url(&cfg.url), org = %cfg.org, bucket = %cfg.bucket, buffer = %dir.display(), "influxdb stream on");
    std::thread::Builder::new()
        .name("roimon-influx".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "influxdb: cannot start the stream's runtime; the stream is off");
                    return;
                }
            };
            rt.block_on(async {
                tokio::join!(w.produce(published, rx), w.send_loop());
            });
        })
        .context("starting the influxdb thread")?;
    Ok(Handle {
        stats,
        hours: tx,
        dir,
    })
}

struct Writer {
    buffer: Mutex<Buffer>,
    /// The last append failed (logged once per streak).
    append_failing: AtomicBool,
    stats: Arc<Stats>,
    appended: tokio::sync::Notify,
    client: Client,
    url: String,
    gzip: bool,
    batch_points: u64,
    node: String,
    interval: Duration,
}

impl Writer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append points as one record. A failure is logged and counted; the
    /// sampler never waits for it.
    fn append(&self, points: &[Point]) {
        let mut text = String::new();
        let n = roimon_influx::encode_lines(points, &mut text);
        if n == 0 {
            return;
        }
        let mut b = self.lock();
        match b.append(&text, n as u32) {
            Ok(()) => {
                if self.append_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("influxdb: buffering points works again");
                }
            }
            Err(e) => {
                self.stats
                    .dropped_unbuffered
                    .fetch_add(n as u64, Ordering::Relaxed);
                // Once per failure streak; the counter shows the rest.
                if !self.append_failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, points = n, "influxdb: cannot buffer points; dropped (counted as buffer_full) until the disk accepts writes again");
                }
            }
        }
        self.stats.buffer(&b);
        drop(b);
        self.appended.notify_one();
    }

    /// Every interval: the latest snapshot, once per sample time; closed
    /// ledger hours as they come.
    async fn produce(
        &self,
        published: Arc<Published>,
        mut hours: tokio::sync::mpsc::Receiver<Vec<Point>>,
    ) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let s = published.snapshot();
                    if s.at.is_some() && s.at != last {
                        last = s.at;
                        self.append(&roimon_influx::sample_points(&s, &self.node));
                    }
                }
                Some(points) = hours.recv() => self.append(&points),
            }
        }
    }

    async fn send_loop(&self) {
        let mut jitter = Jitter::new();
        let mut failures = 0u32;
        // 401/403 in a row: the slow backoff's own streak.
        let mut auth_failures = 0u32;
        let mut auth_alarm = false;
        let mut read_failing = false;
        loop {
            let batch = {
                let mut b = self.lock();
                let r = b.peek(self.batch_points);
                self.stats.buffer(&b);
                r
            };
            if batch.is_ok() && read_failing {
                tracing::info!("influxdb: the buffer can be read again");
                read_failing = false;
            }
            let batch = match batch {
                Ok(Some(b)) => b,
                Ok(None) => {
                    // Wait for an append (or look again now and then).
                    let _ = tokio::time::timeout(Duration::from_secs(5), self.appended.notified())
                        .await;
                    continue;
                }
                Err(e) => {
                    if !read_failing {
                        tracing::error!(error = %e, "influxdb: cannot read the buffer; trying again with backoff");
                        read_failing = true;
                    }
                    tokio::time::sleep(RETRY.backoff(failures.min(5), &mut jitter)).await;
                    failures += 1;
                    continue;
                }
            };
            let lines: Vec<&str> = batch.lines().collect();
            let outcome = send_batch(&lines, self.batch_points as usize, |body| {
                let mut b = Body::new("text/plain; charset=utf-8", body);
                if self.gzip {
                    b = b.gzip();
                }
                let req = Request::post(self.url.clone(), b);
                async move { self.client.send(&req).await.map(|_| ()) }
            })
            .await;
            match outcome {
                Outcome::Done { written, rejected } => {
                    let mut b = self.lock();
                    if let Err(e) = b.ack(&batch) {
                        tracing::error!(error = %e, "influxdb: cannot move the buffer's cursor; the batch may be sent again (it overwrites itself)");
                    }
                    self.stats.buffer(&b);
                    drop(b);
                    self.stats.written.fetch_add(written, Ordering::Relaxed);
                    self.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
                    self.stats.up.store(true, Ordering::Relaxed);
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    self.stats.last_success_ms.store(now, Ordering::Relaxed);
                    if failures > 0 || auth_alarm {
                        tracing::info!(failed_tries = failures, "influxdb writes succeed again");
                    }
                    failures = 0;
                    auth_failures = 0;
                    auth_alarm = false;
                }
                Outcome::Again(why) => {
                    self.stats.up.store(false, Ordering::Relaxed);
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let points = self.stats.buffer_points.load(Ordering::Relaxed);
                    let wait = match &why {
                        Why::Unauthorized(e) => {
                            if !auth_alarm {
                                tracing::error!(error = %roimon_http::log_safe(e), buffered_points = points, "influxdb refuses the token (401/403): data is kept in the buffer; check influxdb.token_env/token_file and the token's write permission on the bucket");
                                auth_alarm = true;
                            }
                            auth_failures = auth_failures.saturating_add(1);
                            AUTH_RETRY.backoff(auth_failures - 1, &mut jitter)
                        }
                        Why::Throttled(after, e) => {
                            auth_failures = 0;
                            if failures == 0 {
                                tracing::warn!(error = %roimon_http::log_safe(e), retry_after_s = after.map(|d| d.as_secs_f64()), "influxdb is busy; waiting as asked");
                            }
                            after.map_or_else(
                                || RETRY.backoff(failures, &mut jitter),
                                |d| d.min(MAX_RETRY_AFTER),
                            )
                        }
                        Why::Failed(e) => {
                            auth_failures = 0;
                            if failures == 0 {
                                tracing::warn!(error = %roimon_http::log_safe(e), buffered_points = points, "influxdb write failed; buffering and retrying with backoff");
                            }
                            RETRY.backoff(failures, &mut jitter)
                        }
                    };
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    fn status(code: u16, body: &str, retry_after: Option<u64>) -> roimon_http::Error {
        roimon_http::Error::Status {
            code,
            excerpt: body.into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    /// Run `send_batch` against a function of the body; returns the outcome
    /// and the bodies that got a 2xx.
    fn run(
        lines: &[&str],
        max: usize,
        answer: impl Fn(&str) -> Result<(), roimon_http::Error>,
    ) -> (Outcome, Vec<String>, usize) {
        let stored = StdMutex::new(Vec::new());
        let requests = StdMutex::new(0usize);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let out = rt.block_on(send_batch(lines, max, |body| {
            *requests.lock().unwrap() += 1;
            let r = answer(&body);
            if r.is_ok() {
                stored.lock().unwrap().push(body);
            }
            async move { r }
        }));
        (
            out,
            stored.into_inner().unwrap(),
            requests.into_inner().unwrap(),
        )
    }

    fn lines(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("m v={i}i {i}")).collect()
    }

    #[test]
    fn batches_are_cut_to_the_configured_size() {
        let l = lines(7);
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        let (out, stored, n) = run(&l, 3, |_| Ok(()));
        assert_eq!(
            out,
            Outcome::Done {
                written: 7,
                rejected: 0
            }
        );
        assert_eq!(n, 3);
        assert_eq!(stored.join("\n"), l.join("\n"));
    }

    #[test]
    fn a_413_splits_in_halves_down_to_one_point_which_is_dropped() {
        let mut l = lines(8);
        l[5] = format!("m big=\"{}\" 5", "x".repeat(100));
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        let (out, stored, _) = run(&l, 100, |b| {
            if b.len() > 60 {
                Err(status(413, "request too large", None))
            } else {
                Ok(())
            }
        });
        assert_eq!(
            out,
            Outcome::Done {
                written: 7,
                rejected: 1
            }
        );
        let got: Vec<&str> = stored.iter().flat_map(|b| b.split('\n')).collect();
        let want: Vec<&str> = l.iter().copied().filter(|x| !x.contains("big")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_400_naming_lines_drops_them_and_sends_the_rest() {
        let mut l = lines(5);
        l[1] = "m v=oops 1".into();
        l[3] = "m v=bad 3".into();
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        let (out, stored, n) = run(&l, 100, |b| {
            let bad: Vec<String> = b
                .split('\n')
                .enumerate()
                .filter(|(_, x)| x.contains("oops") || x.contains("bad"))
                .map(|(i, _)| format!("line {}: invalid field", i + 1))
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(status(
                    400,
                    &format!(r#"{{"code":"invalid","message":"{}"}}"#, bad.join("; ")),
                    None,
                ))
            }
        });
        assert_eq!(
            out,
            Outcome::Done {
                written: 3,
                rejected: 2
            }
        );
        assert_eq!(n, 2, "one refusal naming both, one retry of the rest");
        assert_eq!(stored, vec!["m v=0i 0\nm v=2i 2\nm v=4i 4".to_string()]);
    }

    #[test]
    fn a_422_naming_nothing_is_bisected_to_the_bad_point() {
        let mut l = lines(9);
        l[6] = "m v=1i 99999999999999999999999".into();
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        let (out, stored, n) = run(&l, 100, |b| {
            if b.contains("9999999") {
                Err(status(
                    422,
                    r#"{"code":"unprocessable entity","message":"failure writing points to database: partial write: points beyond retention policy dropped=1"}"#,
                    None,
                ))
            } else {
                Ok(())
            }
        });
        assert_eq!(
            out,
            Outcome::Done {
                written: 8,
                rejected: 1
            }
        );
        let got: Vec<&str> = stored.iter().flat_map(|b| b.split('\n')).collect();
        assert_eq!(got.len(), 8);
        assert!(!got.iter().any(|x| x.contains("9999999")));
        assert!(
            n <= 2 * 4 + 1,
            "bisection takes O(log n) requests, took {n}"
        );
    }

    #[test]
    fn failures_that_are_not_the_points_keep_the_batch() {
        let l = lines(4);
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        let (out, _, _) = run(&l, 100, |_| Err(status(401, "unauthorized", None)));
        assert!(
            matches!(out, Outcome::Again(Why::Unauthorized(_))),
            "{out:?}"
        );
        let (out, _, _) = run(&l, 100, |_| Err(status(403, "forbidden", None)));
        assert!(
            matches!(out, Outcome::Again(Why::Unauthorized(_))),
            "{out:?}"
        );
        let (out, _, _) = run(&l, 100, |_| Err(status(429, "slow down", Some(7))));
        assert!(
            matches!(out, Outcome::Again(Why::Throttled(Some(d), _)) if d == Duration::from_secs(7)),
            "{out:?}"
        );
        let (out, _, _) = run(&l, 100, |_| Err(status(503, "", None)));
        assert!(
            matches!(out, Outcome::Again(Why::Throttled(None, _))),
            "{out:?}"
        );
        let (out, _, _) = run(&l, 100, |_| Err(status(500, "oops", None)));
        assert!(matches!(out, Outcome::Again(Why::Failed(_))), "{out:?}");
        let (out, _, _) = run(&l, 100, |_| {
            Err(roimon_http::Error::Connect {
                host: "127.0.0.1:1".into(),
                cause: roimon_http::ConnectCause::Refused,
            })
        });
        assert!(matches!(out, Outcome::Again(Why::Failed(_))), "{out:?}");
        // A failure after part of the batch went through keeps it all: the
        // stored part is sent again and overwrites itself.
        let calls = StdMutex::new(0);
        let (out, stored, _) = run(&l, 2, |_| {
            let mut c = calls.lock().unwrap();
            *c += 1;
            if *c == 1 {
                Ok(())
            } else {
                Err(status(500, "", None))
            }
        });
        assert!(matches!(out, Outcome::Again(Why::Failed(_))));
        assert_eq!(stored.len(), 1);
    }

    /// A server that answers 204 and records each body (gunzipped).
    fn sink() -> (String, Arc<StdMutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let bodies = Arc::new(StdMutex::new(Vec::new()));
        let b2 = bodies.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let bodies = b2.clone();
                std::thread::spawn(move || {
                    let mut out = c.try_clone().unwrap();
                    let mut r = BufReader::new(c);
                    loop {
                        let mut len = 0;
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line.trim().is_empty() {
                                break;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                len = v.trim().parse().unwrap();
                            }
                        }
                        let mut raw = vec![0; len];
                        r.read_exact(&mut raw).unwrap();
                        let mut text = String::new();
                        flate2::read::GzDecoder::new(&raw[..])
                            .read_to_string(&mut text)
                            .unwrap();
                        bodies.lock().unwrap().push(text);
                        out.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
                    }
                });
            }
        });
        (url, bodies)
    }

    #[test]
    fn ledger_hours_go_through_the_buffer_stamped_with_the_hour_start() {
        let dir = tempfile::tempdir().unwrap();
        let (url, bodies) = sink();
        let cfg = roimon_config::Config::parse(
            &format!(
                "[influxdb]\nurl = \"{url}\"\norg = \"o\"\nbucket = \"b\"\ninterval_secs = 0.1\n"
            ),
            "t",
        )
        .unwrap();
        let engine = roimon_core::Engine::new(cfg.engine_config(), None);
        let published = Arc::new(Published::new(engine.snapshot(), Duration::from_secs(60)));
        let h = start(cfg.influxdb.as_ref().unwrap(), dir.path(), published).unwrap();
        let row = HourRow {
            hour_start: 1_764_590_400,
            node: "n1".into(),
            gpu_uuid: "GPU-a".into(),
            team: "search".into(),
            workload: "chat".into(),
            kind: "hour".into(),
            currency: "EUR".into(),
            cost_energy: 0.5,
            cost_total: 0.5,
            ..Default::default()
        };
        // An hour sent again (after a restart) is the same series and time.
        h.send_hours(std::slice::from_ref(&row)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while h.stats.view().points_written < 1 {
            assert!(std::time::Instant::now() < deadline, "{:?}", h.stats.view());
            std::thread::sleep(Duration::from_millis(20));
        }
        h.send_hours(&[HourRow {
            cost_energy: 0.75,
            cost_total: 0.75,
            ..row
        }])
        .unwrap();
        while h.stats.view().points_written < 2 {
            assert!(std::time::Instant::now() < deadline, "{:?}", h.stats.view());
            std::thread::sleep(Duration::from_millis(20));
        }
        let got = bodies.lock().unwrap().clone();
        assert_eq!(got.len(), 2, "{got:?}");
        let key = |l: &str| {
            let (series, rest) = l.split_once(' ').unwrap();
            (
                series.to_string(),
                rest.rsplit(' ').next().unwrap().to_string(),
            )
        };
        assert_eq!(key(&got[0]), key(&got[1]));
        assert_eq!(key(&got[0]).1, "1764590400000000000");
        assert!(got[0].starts_with(
            "roimon_ledger,currency=EUR,gpu_uuid=GPU-a,kind=hour,node=n1,team=search,workload=chat "
        ));
        assert!(got[1].contains(",cost_energy=0.75,"), "{}", got[1]);
        let v = h.stats.view();
        assert!(
            v.up && v.buffer_points == 0 && v.last_success_unix.is_some(),
            "{v:?}"
        );
        // The buffer lives in <state dir>/influxdb.
        assert!(dir.path().join("influxdb").join("cursor").exists());
    }

    #[test]
    fn the_ledger_cursor_is_a_row_id_and_an_old_hour_cursor_is_understood() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(LEDGER_CURSOR);
        assert_eq!(read_cursor(&p), Err(0), "none yet: from the start");
        std::fs::write(&p, "1764590400\n").unwrap();
        assert_eq!(read_cursor(&p), Err(1_764_590_400));
        std::fs::write(&p, "id 42\n").unwrap();
        assert_eq!(read_cursor(&p), Ok(42));
    }

    #[test]
    fn the_write_url_escapes_org_and_bucket() {
        let cfg: roimon_config::Config = roimon_config::Config::parse(
            "[influxdb]\nurl = \"http://h:8086/\"\norg = \"my org\"\nbucket = \"b&c\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            write_url(cfg.influxdb.as_ref().unwrap()),
            "http://h:8086/api/v2/write?org=my%20org&bucket=b%26c&precision=ns"
        );
    }

    #[test]
    fn a_ledger_row_becomes_a_point_in_report_units_tagged_with_its_kind() {
        use chrono::TimeZone;
        // J, J, J, energy, capex, maintenance, staff, carbon, credit, g,
        // value, input tokens, output tokens, requests
        let f = roimon_ledger::Figures([
            3.6e6, 1.8e6, 7.2e6, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.01, 2500.0, 9.0, 100.0, 50.0,
            7.0,
        ]);
        let r = roimon_ledger::HourRow {
            hour_start: chrono::Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
            node: "n1".into(),
            gpu_uuid: "GPU-a".into(),
            team: "search".into(),
            workload: "chat".into(),
            kind: "correction".into(),
            currency: "EUR".into(),
            figures: f,
            priced_secs_source: 3600.0,
            priced_secs_fallback: 0.0,
            price_source: "static".into(),
        };
        let h = hour_row(&r);
        assert_eq!(h.hour_start, 1_796_119_200);
        assert_eq!(h.kind, "correction");
        // GPU + host energy 1.5 kWh; facility 2 kWh; the report's columns.
        assert_eq!((h.energy_kwh, h.facility_energy_kwh), (1.5, 2.0));
        assert_eq!(h.cost_total, 0.5 + 0.25 + 0.125 + 0.0625 + 0.03125);
        assert_eq!((h.credit, h.emissions_kg, h.value), (0.01, 2.5, 9.0));
        assert_eq!((h.tokens, h.requests), (150.0, 7.0));
        let line = h.point().to_line().unwrap();
        assert!(line.contains(",kind=correction,"), "{line}");
        assert!(line.ends_with(" 1796119200000000000"), "{line}");
    }
}
