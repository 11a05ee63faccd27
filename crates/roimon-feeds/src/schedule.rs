//! A fetched schedule (prices, carbon intensity) as the feeds keep it: bound
//! to the time a schedule may cover when fetched, merged into the copy kept
//! in the state dir, and loaded from there after a restart.

use crate::fetch::{FetchError, blocking};
use chrono::{DateTime, Duration as TimeDelta, Utc};
use roimon_price::{Adjustments, Schedule};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How long fetched history is kept in the schedule.
pub const KEEP_HISTORY_DAYS: i64 = 7;
/// How far past the end of the window a fetch asks for a slot is believed: a
/// day, for publishers that answer in whole days of their own time zone.
/// With `days_ahead` at most 7, nothing beyond nine days from now is kept.
pub const AHEAD_SLACK_DAYS: i64 = 1;

/// Merge a fresh schedule into the kept one and write it, off the async
/// thread. Should that task die, the fresh schedule alone stands.
pub async fn absorb_kept(
    store: &Store,
    kept: Option<Stored>,
    new: Schedule,
    source: &'static str,
    identity: &str,
    now: DateTime<Utc>,
) -> Stored {
    let fresh = new.clone();
    let (st, id) = (store.clone(), identity.to_string());
    blocking(move || Ok(st.absorb(kept, new, source, &id, now)))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "merging the fetched schedule failed; using the fresh one alone");
            Stored {
                source: source.to_string(),
                identity: identity.to_string(),
                fetched_at: now,
                schedule: fresh,
            }
        })
}

/// The span of time a schedule may hold at `now`, when fetches ask for
/// windows ending at `window_end`: the kept history before, a day past the
/// window after. A slot outside it cannot price anything soon (1970), or is
/// no market's price yet (9999) and would claim the schedule is known for
/// ever; it is dropped.
pub fn kept_range(now: DateTime<Utc>, window_end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        now - TimeDelta::days(KEEP_HISTORY_DAYS),
        window_end.max(now) + TimeDelta::days(AHEAD_SLACK_DAYS),
    )
}

/// Bound a fetched schedule to [`kept_range`]: slots wholly outside it are
/// dropped, slots straddling an edge are clipped. A fetch left without a slot
/// in its window `[from, to)` is a failure, not a success: it would neither
/// price the window nor say when the schedule ends. Returns the outcome and
/// how many slots were dropped (counted whether the fetch succeeds or not).
pub fn usable(
    mut s: Schedule,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (Result<Schedule, FetchError>, usize) {
    let total = s.slots.len();
    let (lo, hi) = kept_range(now, to);
    let dropped = s.retain_within(lo, hi);
    if s.slots.iter().any(|x| x.end > from && x.start < to) {
        return (Ok(s), dropped);
    }
    let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let why = format!(
        "none of the {total} slots fetched is in the window {} .. {} ({dropped} outside {} .. {} dropped)",
        f(from),
        f(to),
        f(lo),
        f(hi)
    );
    let e = if dropped == total {
        FetchError::Rejected(why)
    } else {
        FetchError::NoData(why)
    };
    (Err(e), dropped)
}

/// Bound a fetch's outcome with [`usable`] for its window, logging the slots
/// dropped, adding them to `dropped_total` and telling the sampler (counted
/// in `roimon_feed_slots_dropped_total`); `what` names the feed.
pub fn bound_fetched(
    fetched: Result<Schedule, FetchError>,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    label: &str,
    what: &'static str,
    dropped_total: &mut u64,
    tx: &std::sync::mpsc::Sender<roimon_daemon::inbox::Event>,
) -> Result<Schedule, FetchError> {
    let (res, dropped) = usable(fetched?, now, window.0, window.1);
    if dropped > 0 {
        *dropped_total = dropped_total.saturating_add(dropped as u64);
        tracing::warn!(
            source = label,
            dropped,
            dropped_total = *dropped_total,
            "fetched {what} slots outside the time a schedule may cover were dropped"
        );
        let _ = tx.send(roimon_daemon::inbox::Event::Dropped(what, dropped as u64));
    }
    res
}

/// The schedule as kept in the state dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The `source` label it came from.
    pub source: String,
    /// What identifies the series (area, product, URL…), as the feed
    /// names it (the price feed: `price::identity`).
    #[serde(default)]
    pub identity: String,
    /// When its newest part was fetched.
    pub fetched_at: DateTime<Utc>,
    /// The schedule.
    pub schedule: Schedule,
}

/// `prices.json` in the state dir: written atomically (tmp, fsync, rename).
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("prices.json"),
        }
    }

    /// Load a kept schedule for this source and currency, with the current
    /// adders and VAT applied again to the recorded market prices, and pruned
    /// to `range` (see [`kept_range`]): slots a schedule kept by an older
    /// version, or edited by hand, holds outside it are dropped and logged. A
    /// schedule out of order, or with nothing left, is not loaded.
    pub fn load(
        &self,
        source: &str,
        identity: &str,
        currency: &str,
        adj: &Adjustments,
        range: (DateTime<Utc>, DateTime<Utc>),
    ) -> Option<Stored> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let mut s: Stored = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "kept price schedule is unreadable; ignoring it");
                return None;
            }
        };
        if s.source != source
            || s.identity != identity
            || !s.schedule.currency.eq_ignore_ascii_case(currency)
        {
            tracing::info!(file = %self.path.display(), kept = %s.source, "kept price schedule is for another source or currency; ignoring it");
            return None;
        }
        if !s.schedule.is_ordered() {
            tracing::warn!(file = %self.path.display(), "kept schedule has overlapping or unsorted slots; ignoring it");
            return None;
        }
        let dropped = s.schedule.retain_within(range.0, range.1);
        if dropped > 0 {
            tracing::warn!(file = %self.path.display(), source, dropped, from = %range.0, until = %range.1, "kept schedule held slots outside the time it may cover; dropped them");
        }
        if s.schedule.slots.is_empty() {
            tracing::info!(file = %self.path.display(), "kept schedule has no slot left to price with; ignoring it");
            return None;
        }
        for slot in &mut s.schedule.slots {
            slot.price_per_kwh = adj.apply(slot.market_per_kwh);
        }
        s.schedule.adjustments = adj.clone();
        Some(s)
    }

    /// The store of another schedule kind (carbon) under `file` in `dir`.
    pub fn named(dir: &Path, file: &str) -> Self {
        Self {
            path: dir.join(file),
        }
    }

    /// Merge a fresh schedule into the kept one (history older than a week
    /// is dropped) and keep the result; a failed write is logged, not fatal.
    pub fn absorb(
        &self,
        kept: Option<Stored>,
        new: Schedule,
        source: &str,
        identity: &str,
        now: DateTime<Utc>,
    ) -> Stored {
        let merged = match kept {
            Some(mut k) => {
                k.schedule
                    .merge(new, now - TimeDelta::days(KEEP_HISTORY_DAYS));
                k.fetched_at = now;
                k
            }
            None => Stored {
                source: source.to_string(),
                identity: identity.to_string(),
                fetched_at: now,
                schedule: new,
            },
        };
        if let Err(e) = self.save(&merged) {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot keep the fetched schedule in the state dir");
        }
        merged
    }

    /// Write atomically.
    pub fn save(&self, s: &Stored) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec(s).map_err(std::io::Error::other)?;
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}
