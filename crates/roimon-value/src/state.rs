//! Counter state per scrape target, kept across scrapes and roimon restarts
//! (it serialises), turning cumulative server counters into what was
//! served between two scrapes. A server restart never makes a negative
//! delta: the counters' new values are what it served since it started.

use crate::server::{CounterField, ModelCounters, Scrape};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most `max_models` may say: models remembered per target.
pub const MAX_MODELS: usize = 1024;

/// What one model served between two scrapes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Delta {
    /// Prompt tokens, including cached ones.
    pub input_tokens: f64,
    /// The cached part of `input_tokens` (0 where not reported).
    pub cached_input_tokens: f64,
    /// Generated tokens.
    pub output_tokens: f64,
    /// Successful requests.
    pub requests: f64,
}

impl Delta {
    /// Prompt tokens that were not cache hits (never negative).
    pub fn uncached_input_tokens(&self) -> f64 {
        (self.input_tokens - self.cached_input_tokens).max(0.0)
    }

    /// Whether nothing was served.
    pub fn is_zero(&self) -> bool {
        *self == Delta::default()
    }
}

/// What may be booked from one target: the plausible rates, the models
/// remembered, and how many server restarts an hour are believed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Most tokens (prompt + generated, over all models) a target may serve
    /// per second; a delta above it is refused.
    pub max_tokens_per_second: f64,
    /// Most successful requests a target may finish per second.
    pub max_requests_per_second: f64,
    /// Most models booked per target; a model beyond them is refused.
    pub max_models: usize,
    /// More server restarts (counter resets or new
    /// `process_start_time_seconds`) than this within an hour mark the
    /// target suspect: its resets are not booked until an hour passes
    /// without one.
    pub max_resets_per_hour: usize,
}

/// Default of `value.max_tokens_per_second`: ten million tokens a second,
/// far above any single server (a large vLLM node serves some 10⁴–10⁵).
pub const DEFAULT_MAX_TOKENS_PER_SECOND: f64 = 1e7;
/// Default of `value.max_requests_per_second`: a million requests a second.
pub const DEFAULT_MAX_REQUESTS_PER_SECOND: f64 = 1e6;
/// Default of `value.max_models`.
pub const DEFAULT_MAX_MODELS: usize = 64;
/// Server restarts an hour believed before a target is suspect.
pub const MAX_RESETS_PER_HOUR: usize = 3;

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_tokens_per_second: DEFAULT_MAX_TOKENS_PER_SECOND,
            max_requests_per_second: DEFAULT_MAX_REQUESTS_PER_SECOND,
            max_models: DEFAULT_MAX_MODELS,
            max_resets_per_hour: MAX_RESETS_PER_HOUR,
        }
    }
}

/// Why part of a scrape was not booked (the `reason` label of
/// `roimon_value_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rejection {
    /// A token delta above `max_tokens_per_second` over the time since the
    /// last booked scrape (counted per series).
    TokensRate,
    /// A request delta above `max_requests_per_second` (per series).
    RequestsRate,
    /// A reset of a target in a reset storm (per series reset).
    ResetStorm,
    /// A model beyond `max_models` (per model).
    TooManyModels,
    /// A series with a label value over [`crate::server::MAX_LABEL_BYTES`]
    /// (per series).
    LabelTooLong,
    /// A series beyond the series a target may keep (per series).
    TooManySeries,
}

impl Rejection {
    /// Every reason, in label order.
    pub const ALL: [Rejection; 6] = [
        Rejection::TokensRate,
        Rejection::RequestsRate,
        Rejection::ResetStorm,
        Rejection::TooManyModels,
        Rejection::LabelTooLong,
        Rejection::TooManySeries,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::TokensRate => "tokens_rate",
            Rejection::RequestsRate => "requests_rate",
            Rejection::ResetStorm => "reset_storm",
            Rejection::TooManyModels => "too_many_models",
            Rejection::LabelTooLong => "label_too_long",
            Rejection::TooManySeries => "too_many_series",
        }
    }
}

/// The result of one scrape fed to a [`TargetState`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    /// What each model served since the previous scrape (admitted models
    /// in the scrape only; all zero on a baseline). Every figure is finite
    /// and >= 0.
    pub deltas: BTreeMap<String, Delta>,
    /// The first scrape with no earlier state: counters were recorded, no
    /// delta counted (what the server served before roimon watched is not
    /// roimon's to count).
    pub baseline: bool,
    /// The server restarted since the previous scrape (a counter went down
    /// or `process_start_time_seconds` changed): deltas are the new values.
    pub restarted: bool,
    /// What was refused, by reason (see [`Rejection`] for what one counts).
    pub rejected: BTreeMap<Rejection, u64>,
    /// The target is in a reset storm: its resets are not booked.
    pub suspect: bool,
}

impl Update {
    /// The sum over models.
    pub fn total(&self) -> Delta {
        self.deltas.values().fold(Delta::default(), |a, d| Delta {
            input_tokens: a.input_tokens + d.input_tokens,
            cached_input_tokens: a.cached_input_tokens + d.cached_input_tokens,
            output_tokens: a.output_tokens + d.output_tokens,
            requests: a.requests + d.requests,
        })
    }

    fn reject(&mut self, why: Rejection, n: u64) {
        if n > 0 {
            *self.rejected.entry(why).or_default() += n;
        }
    }
}

/// The last counters seen from one target. `Default` is "no state yet".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TargetState {
    /// Whether a scrape has been recorded.
    #[serde(default)]
    started: bool,
    /// The server's `process_start_time_seconds` at the last scrape.
    #[serde(default)]
    process_start_time: Option<f64>,
    /// Last counters per model: the models booked under this target (a
    /// counter the last scrape lacked keeps its earlier value). A model
    /// stays admitted across server restarts, so a server renaming its
    /// models cannot book more than `max_models`.
    #[serde(default)]
    models: BTreeMap<String, ModelCounters>,
    /// Last value of every series (a series the last scrape lacked keeps
    /// its earlier value, so it is not counted twice when it returns).
    #[serde(default)]
    series: BTreeMap<String, f64>,
    /// When (Unix seconds) the series were last advanced with nothing
    /// refused for its rate: the time a delta is judged against.
    #[serde(default)]
    last_at: Option<f64>,
    /// When the server last restarted (Unix seconds), newest last, within
    /// the last hour.
    #[serde(default)]
    resets: Vec<f64>,
    /// Since when the target is in a reset storm.
    #[serde(default)]
    suspect_since: Option<f64>,
}

/// Most series remembered per model admitted.
pub const SERIES_PER_MODEL: usize = 32;
/// Most series remembered per target, whatever `max_models` says.
pub const MAX_SERIES: usize = SERIES_PER_MODEL * MAX_MODELS;
/// The shortest time a delta is judged over (two scrapes in the same
/// second may still carry a second's worth).
const MIN_ELAPSED_SECS: f64 = 1.0;
/// The longest: a year (roimon stopped longer sees its first delta
/// judged as if a year had passed).
const MAX_ELAPSED_SECS: f64 = 366.0 * 86_400.0;
const HOUR: f64 = 3600.0;

/// How a series moved since the last scrape.
#[derive(Clone, Copy, PartialEq)]
enum Move {
    /// Up (or unchanged) from a known value.
    Up,
    /// Down: a reset, the new value counts.
    Reset,
    /// Appeared after the baseline: counts from 0.
    New,
}

impl TargetState {
    /// No state yet: the next scrape is a baseline.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last counters recorded for each model.
    pub fn models(&self) -> &BTreeMap<String, ModelCounters> {
        &self.models
    }

    /// Whether the target is in a reset storm.
    pub fn suspect(&self) -> bool {
        self.suspect_since.is_some()
    }

    /// Feed one scrape with no clock: models, labels and series are
    /// bounded by the defaults, rates and reset storms are not judged.
    pub fn observe(&mut self, scrape: &Scrape) -> Update {
        self.observe_at(scrape, None, &Bounds::default())
    }

    /// Feed one scrape taken at `now` (Unix seconds); get what each model
    /// served since the previous one. A series whose value went down was
    /// reset (its server part restarted): its new value is its delta,
    /// never a negative one; the other series count as usual. A new
    /// `process_start_time_seconds` resets them all.
    ///
    /// Within `bounds`: a series whose delta is above the plausible rate
    /// over the time since the last booked scrape is refused and keeps its
    /// old value (so the state never advances past it); so are all of a
    /// kind when their sum is. A model beyond `max_models`, a series with
    /// an over-long label or beyond the series cap is never booked. More
    /// than `max_resets_per_hour` restarts within an hour make the target
    /// suspect: its resets are recorded but not booked until an hour
    /// passes without one. Every figure booked is finite.
    pub fn observe_at(&mut self, scrape: &Scrape, now: Option<f64>, bounds: &Bounds) -> Update {
        let mut up = Update {
            baseline: !self.started,
            ..Update::default()
        };
        up.reject(Rejection::LabelTooLong, scrape.refused_long_labels);
        let baseline = up.baseline;

        // Which models may be booked: those already booked, then new ones
        // in name order while there is room.
        let cap = bounds.max_models.min(MAX_MODELS);
        let admitted = self.admit(scrape, cap);
        up.reject(
            Rejection::TooManyModels,
            admitted.values().filter(|ok| !**ok).count() as u64,
        );
        // A series of a model the scrape does not list is not booked.
        let is_admitted = |m: &String| admitted.get(m.as_str()).copied().unwrap_or(false);

        let new_process = !baseline
            && matches!(
                (self.process_start_time, scrape.process_start_time),
                (Some(a), Some(b)) if a != b
            );

        // Room for new series: forget absent ones first, then refuse.
        let series_cap = SERIES_PER_MODEL * cap.max(1);
        let known = |id: &String| !new_process && self.series.contains_key(id);
        let fresh = scrape
            .series
            .iter()
            .filter(|(id, (m, _, _))| is_admitted(m) && !known(id))
            .count();
        if !new_process && self.series.len() + fresh > series_cap {
            let absent: Vec<String> = self
                .series
                .keys()
                .filter(|k| !scrape.series.contains_key(*k))
                .cloned()
                .collect();
            for k in absent {
                if self.series.len() + fresh <= series_cap {
                    break;
                }
                self.series.remove(&k);
            }
        }
        let mut series_room =
            series_cap.saturating_sub(if new_process { 0 } else { self.series.len() });

        // Each series' move and delta.
        let mut seen: Vec<Seen> = Vec::with_capacity(scrape.series.len());
        for (id, (model, field, v)) in &scrape.series {
            if !is_admitted(model) {
                continue;
            }
            let before = if new_process {
                None
            } else {
                self.series.get(id).copied()
            };
            if before.is_none() {
                if series_room == 0 {
                    up.reject(Rejection::TooManySeries, 1);
                    continue;
                }
                series_room -= 1;
            }
            let (d, mv) = match before {
                _ if baseline => (0.0, Move::Up),
                Some(b) if *v >= b => (v - b, Move::Up),
                Some(_) => (*v, Move::Reset),
                None if new_process => (*v, Move::Reset),
                None => (*v, Move::New),
            };
            seen.push(Seen {
                id,
                model,
                field: *field,
                now: *v,
                d: if d.is_finite() { d.max(0.0) } else { f64::MAX },
                mv,
                ok: true,
            });
        }

        // Restarts: one per scrape that saw any, judged over the last hour.
        let any_reset = seen.iter().any(|s| s.mv == Move::Reset);
        let restarted = new_process || any_reset;
        let storm = self.note_restart(now, restarted, bounds);
        if storm && restarted {
            // A reset is recorded (the series move to their new values)
            // but what it claims is not booked.
            for s in seen.iter_mut().filter(|s| s.mv == Move::Reset) {
                up.reject(Rejection::ResetStorm, 1);
                s.d = 0.0;
            }
        }

        // Rates, over the time since the last booked scrape.
        let mut held = false;
        if let Some(t) = now
            && !baseline
        {
            let elapsed = self
                .last_at
                .map_or(MIN_ELAPSED_SECS, |l| t - l)
                .clamp(MIN_ELAPSED_SECS, MAX_ELAPSED_SECS);
            held = hold_over_rate(&mut seen, &mut up, bounds, elapsed);
        }

        // Book.
        book(&mut up, &admitted, &seen);
        up.restarted = restarted;
        up.suspect = storm;

        // Advance the state, never past a refused value.
        self.started = true;
        if scrape.process_start_time.is_some() {
            self.process_start_time = scrape.process_start_time;
        }
        if new_process {
            // Counters of the old process mean nothing to the new one; the
            // models stay admitted.
            for c in self.models.values_mut() {
                *c = ModelCounters::default();
            }
            self.series.clear();
        }
        for s in &seen {
            if s.ok {
                self.series.insert(s.id.clone(), s.now);
            }
        }
        for (model, now_c) in &scrape.models {
            if !is_admitted(model) {
                continue;
            }
            let kept = self.models.entry(model.clone()).or_default();
            let merge = |n: Option<f64>, k: Option<f64>| n.filter(|v| v.is_finite()).or(k);
            *kept = ModelCounters {
                input_tokens: merge(now_c.input_tokens, kept.input_tokens),
                cached_input_tokens: merge(now_c.cached_input_tokens, kept.cached_input_tokens),
                output_tokens: merge(now_c.output_tokens, kept.output_tokens),
                requests: merge(now_c.requests, kept.requests),
            };
        }
        if let Some(t) = now
            && (!held || self.last_at.is_none())
        {
            self.last_at = Some(t);
        }
        up
    }

    /// The models of a scrape that may be booked: those already booked,
    /// then new ones in name order while there is room under `cap`.
    fn admit<'s>(&self, scrape: &'s Scrape, cap: usize) -> BTreeMap<&'s str, bool> {
        let mut room = cap.saturating_sub(self.models.len());
        let mut admitted: BTreeMap<&str, bool> = BTreeMap::new();
        for m in scrape.models.keys() {
            let ok = if self.models.contains_key(m) {
                true
            } else if room > 0 {
                room -= 1;
                true
            } else {
                false
            };
            admitted.insert(m.as_str(), ok);
        }
        admitted
    }

    /// Records a restart at `now` and judges the last hour's restarts;
    /// true while the exporter is suspect (a reset storm).
    fn note_restart(&mut self, now: Option<f64>, restarted: bool, bounds: &Bounds) -> bool {
        let mut storm = false;
        if let Some(t) = now {
            self.resets.retain(|r| t - r < HOUR && *r <= t);
            if restarted {
                self.resets.push(t);
                let keep = bounds.max_resets_per_hour + 1;
                if self.resets.len() > keep {
                    self.resets.drain(..self.resets.len() - keep);
                }
            }
            if self.resets.len() > bounds.max_resets_per_hour {
                self.suspect_since.get_or_insert(t);
            } else if self.resets.is_empty() {
                self.suspect_since = None;
            }
            storm = self.suspect_since.is_some();
        }
        storm
    }
}

/// One series of a scrape: its move and delta, and whether it is booked.
struct Seen<'a> {
    id: &'a String,
    model: &'a str,
    field: CounterField,
    now: f64,
    d: f64,
    mv: Move,
    ok: bool,
}

/// Refuses the series of each kind (tokens, requests) that move faster than
/// their bound over `elapsed` seconds; true if any was refused.
fn hold_over_rate(seen: &mut [Seen<'_>], up: &mut Update, bounds: &Bounds, elapsed: f64) -> bool {
    let mut held = false;
    for (tokens, rate, why) in [
        (true, bounds.max_tokens_per_second, Rejection::TokensRate),
        (
            false,
            bounds.max_requests_per_second,
            Rejection::RequestsRate,
        ),
    ] {
        let limit = rate * elapsed;
        let of_kind = |f: CounterField| (f == CounterField::Requests) != tokens;
        for s in seen.iter_mut().filter(|s| of_kind(s.field)) {
            if s.d > limit {
                s.ok = false;
            }
        }
        // Prompt and generated tokens add up; cached ones are part
        // of the prompt.
        let sum: f64 = seen
            .iter()
            .filter(|s| s.ok && of_kind(s.field) && s.field != CounterField::Cached)
            .map(|s| s.d)
            .sum();
        if sum.is_nan() || sum > limit {
            for s in seen.iter_mut().filter(|s| of_kind(s.field)) {
                s.ok = false;
            }
        }
        let refused = seen
            .iter()
            .filter(|s| of_kind(s.field) && !s.ok && s.d > 0.0)
            .count() as u64;
        up.reject(why, refused);
        held |= refused > 0;
    }
    held
}

/// Books the admitted models and the accepted series' deltas, each finite
/// and non-negative.
fn book(up: &mut Update, admitted: &BTreeMap<&str, bool>, seen: &[Seen<'_>]) {
    for (m, ok) in admitted {
        if *ok {
            up.deltas.insert((*m).to_string(), Delta::default());
        }
    }
    for s in seen.iter().filter(|s| s.ok) {
        let e = up.deltas.entry(s.model.to_string()).or_default();
        let slot = match s.field {
            CounterField::Input => &mut e.input_tokens,
            CounterField::Cached => &mut e.cached_input_tokens,
            CounterField::Output => &mut e.output_tokens,
            CounterField::Requests => &mut e.requests,
        };
        *slot += s.d;
    }
    for d in up.deltas.values_mut() {
        for f in [
            &mut d.input_tokens,
            &mut d.cached_input_tokens,
            &mut d.output_tokens,
            &mut d.requests,
        ] {
            if !f.is_finite() || *f < 0.0 {
                *f = 0.0;
            }
        }
    }
}
