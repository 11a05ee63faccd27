//! Counter state per scrape target, kept across scrapes and roimon restarts
//! (it serialises), turning cumulative server counters into what was
//! served between two scrapes. A server restart never makes a negative
//! delta: the counters' new values are what it served since it started.

use crate::server::{CounterField, ModelCounters, Scrape};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most models remembered per target; beyond it, models absent from the
/// latest scrape are forgotten first.
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

/// The result of one scrape fed to a [`TargetState`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Update {
    /// What each model served since the previous scrape (models in the
    /// scrape only; all zero on a baseline).
    pub deltas: BTreeMap<String, Delta>,
    /// The first scrape with no earlier state: counters were recorded, no
    /// delta counted (what the server served before roimon watched is not
    /// roimon's to count).
    pub baseline: bool,
    /// The server restarted since the previous scrape (a counter went down
    /// or `process_start_time_seconds` changed): deltas are the new values.
    pub restarted: bool,
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
    /// Last counters per model (a counter the last scrape lacked keeps its
    /// earlier value).
    #[serde(default)]
    models: BTreeMap<String, ModelCounters>,
    /// Last value of every series (a series the last scrape lacked keeps
    /// its earlier value, so it is not counted twice when it returns).
    #[serde(default)]
    series: BTreeMap<String, f64>,
}

/// Most series remembered per target.
pub const MAX_SERIES: usize = 16 * MAX_MODELS;

impl TargetState {
    /// No state yet: the next scrape is a baseline.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last counters recorded for each model.
    pub fn models(&self) -> &BTreeMap<String, ModelCounters> {
        &self.models
    }

    /// Feed one scrape; get what each model served since the previous one.
    /// A series whose value went down was reset (its server part restarted):
    /// its new value is its delta, never a negative one; the other series
    /// count as usual. A new `process_start_time_seconds` resets them all.
    pub fn observe(&mut self, scrape: &Scrape) -> Update {
        let baseline = !self.started;
        let new_process = !baseline
            && matches!(
                (self.process_start_time, scrape.process_start_time),
                (Some(a), Some(b)) if a != b
            );
        let mut deltas: BTreeMap<String, Delta> = scrape
            .models
            .keys()
            .map(|m| (m.clone(), Delta::default()))
            .collect();
        let mut any_reset = false;
        for (id, (model, field, now)) in &scrape.series {
            let d = if baseline {
                0.0
            } else if new_process {
                *now
            } else {
                match self.series.get(id) {
                    Some(before) if now >= before => now - before,
                    Some(_) => {
                        any_reset = true;
                        *now
                    }
                    // A series that appears after the baseline started at 0.
                    None => *now,
                }
            };
            let e = deltas.entry(model.clone()).or_default();
            let slot = match field {
                CounterField::Input => &mut e.input_tokens,
                CounterField::Cached => &mut e.cached_input_tokens,
                CounterField::Output => &mut e.output_tokens,
                CounterField::Requests => &mut e.requests,
            };
            *slot += d.max(0.0);
        }
        let restarted = new_process || any_reset;
        self.record(scrape, new_process);
        if new_process {
            self.series.clear();
        }
        for (id, (_, _, v)) in &scrape.series {
            self.series.insert(id.clone(), *v);
        }
        if self.series.len() > MAX_SERIES {
            let absent: Vec<String> = self
                .series
                .keys()
                .filter(|k| !scrape.series.contains_key(*k))
                .cloned()
                .collect();
            for k in absent {
                if self.series.len() <= MAX_SERIES {
                    break;
                }
                self.series.remove(&k);
            }
        }
        Update {
            deltas,
            baseline,
            restarted,
        }
    }

    fn record(&mut self, scrape: &Scrape, restarted: bool) {
        self.started = true;
        if scrape.process_start_time.is_some() {
            self.process_start_time = scrape.process_start_time;
        }
        if restarted {
            // Counters of the old process mean nothing to the new one.
            self.models.clear();
        }
        for (model, now) in &scrape.models {
            let kept = self.models.entry(model.clone()).or_default();
            let merge = |n: Option<f64>, k: Option<f64>| n.or(k);
            *kept = ModelCounters {
                input_tokens: merge(now.input_tokens, kept.input_tokens),
                cached_input_tokens: merge(now.cached_input_tokens, kept.cached_input_tokens),
                output_tokens: merge(now.output_tokens, kept.output_tokens),
                requests: merge(now.requests, kept.requests),
            };
        }
        if self.models.len() > MAX_MODELS {
            let absent: Vec<String> = self
                .models
                .keys()
                .filter(|m| !scrape.models.contains_key(*m))
                .cloned()
                .collect();
            for m in absent {
                if self.models.len() <= MAX_MODELS {
                    break;
                }
                self.models.remove(&m);
            }
        }
    }
}
