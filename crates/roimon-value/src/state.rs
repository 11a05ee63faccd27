//! Counter state per scrape target, kept across scrapes and roimon restarts
//! (it serialises), turning cumulative server counters into what was
//! served between two scrapes. A server restart never makes a negative
//! delta: the counters' new values are what it served since it started.

use crate::server::{ModelCounters, Scrape};
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
}

fn pairs(c: &ModelCounters) -> [Option<f64>; 4] {
    [
        c.input_tokens,
        c.cached_input_tokens,
        c.output_tokens,
        c.requests,
    ]
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

    /// Feed one scrape; get what each model served since the previous one.
    pub fn observe(&mut self, scrape: &Scrape) -> Update {
        let baseline = !self.started;
        let restarted = !baseline && self.restarted(scrape);
        let mut deltas = BTreeMap::new();
        for (model, now) in &scrape.models {
            let before = self.models.get(model);
            let d = |now: Option<f64>, before: Option<f64>| -> f64 {
                match (now, before) {
                    _ if baseline => 0.0,
                    (None, _) => 0.0,
                    (Some(n), _) if restarted => n,
                    (Some(n), Some(b)) => (n - b).max(0.0),
                    // A counter that appears after the baseline started at 0.
                    (Some(n), None) => n,
                }
            };
            let b = before.copied().unwrap_or_default();
            deltas.insert(
                model.clone(),
                Delta {
                    input_tokens: d(now.input_tokens, b.input_tokens),
                    cached_input_tokens: d(now.cached_input_tokens, b.cached_input_tokens),
                    output_tokens: d(now.output_tokens, b.output_tokens),
                    requests: d(now.requests, b.requests),
                },
            );
        }
        self.record(scrape, restarted);
        Update {
            deltas,
            baseline,
            restarted,
        }
    }

    fn restarted(&self, scrape: &Scrape) -> bool {
        if let (Some(a), Some(b)) = (self.process_start_time, scrape.process_start_time)
            && a != b
        {
            return true;
        }
        scrape.models.iter().any(|(model, now)| {
            self.models.get(model).is_some_and(|before| {
                pairs(now)
                    .iter()
                    .zip(pairs(before))
                    .any(|(n, b)| matches!((n, b), (Some(n), Some(b)) if *n < b))
            })
        })
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
