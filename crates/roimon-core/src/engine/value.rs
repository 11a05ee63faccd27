//! Value produced and the benefit indicators: value booked per owner and
//! source (with the tokens and requests of each model), value targets'
//! health and refusals, pushed and configured scores.

use super::{Engine, Kpi, ModelDelta, Owner, ValueKey};
use crate::units::Accumulator;
use std::collections::{BTreeMap, BTreeSet};

impl Engine {
    /// Book value produced for `owners` (weights summing to 1) from
    /// `source`: money and per-model token and request deltas. Negative or
    /// non-finite amounts are refused (value counters never go back), and
    /// so is a booking that would take any counter it touches beyond a
    /// finite number: then nothing of it is booked and `false` returned.
    pub fn book_value(
        &mut self,
        owners: &[(Owner, f64)],
        source: &str,
        money: f64,
        models: &[ModelDelta],
    ) -> bool {
        let money = if money.is_finite() && money > 0.0 {
            money
        } else {
            0.0
        };
        if !self.value_fits(owners, source, money, models) {
            return false;
        }
        for (o, w) in owners {
            let key = ValueKey {
                team: o.team.clone(),
                workload: o.workload.clone(),
                source: source.to_string(),
            };
            let row = self.counters.value.entry(key).or_default();
            row.value.add(money * w);
            for m in models {
                let c = row.models.entry(m.model.clone()).or_default();
                c.input_tokens.add(m.input_tokens * w);
                c.cached_input_tokens.add(m.cached_input_tokens * w);
                c.output_tokens.add(m.output_tokens * w);
                c.requests.add(m.requests * w);
            }
        }
        if !owners.is_empty() {
            self.counters.value_total.add(money);
        }
        true
    }

    /// Whether every addition of a value booking keeps its counter finite
    /// (a figure that is not a finite number is simply not booked, as
    /// before; one that is finite but would overflow refuses the booking).
    fn value_fits(
        &self,
        owners: &[(Owner, f64)],
        source: &str,
        money: f64,
        models: &[ModelDelta],
    ) -> bool {
        let fits = |a: Option<&Accumulator>, x: f64| {
            !x.is_finite() || x <= 0.0 || a.map_or(x.is_finite(), |a| a.can_add(x))
        };
        if !owners.is_empty() && !fits(Some(&self.counters.value_total), money) {
            return false;
        }
        for (o, w) in owners {
            if !w.is_finite() {
                return false;
            }
            let row = self.counters.value.get(&ValueKey {
                team: o.team.clone(),
                workload: o.workload.clone(),
                source: source.to_string(),
            });
            if !fits(row.map(|r| &r.value), money * w) {
                return false;
            }
            for m in models {
                let c = row.and_then(|r| r.models.get(&m.model));
                for (a, x) in [
                    (c.map(|c| &c.input_tokens), m.input_tokens),
                    (c.map(|c| &c.cached_input_tokens), m.cached_input_tokens),
                    (c.map(|c| &c.output_tokens), m.output_tokens),
                    (c.map(|c| &c.requests), m.requests),
                ] {
                    if !fits(a, x * w) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Opaque state kept with the counters (see `Counters::extensions`).
    pub fn extension(&self, key: &str) -> Option<&str> {
        self.counters.extensions.get(key).map(String::as_str)
    }

    /// Drop opaque state kept with the counters.
    pub fn remove_extension(&mut self, key: &str) {
        self.counters.extensions.remove(key);
    }

    /// Replace opaque state kept with the counters.
    pub fn set_extension(&mut self, key: &str, value: String) {
        self.counters.extensions.insert(key.to_string(), value);
    }

    /// Declare a value target, so its health is shown before its first
    /// scrape (down until it answers).
    pub fn register_target(&mut self, name: &str) {
        self.targets.entry(name.to_string()).or_insert(false);
        self.counters
            .target_errors
            .entry(name.to_string())
            .or_default();
    }

    /// Count `n` figures of value target `name` refused for `reason` (0
    /// declares the pair, so it is exported before the first refusal).
    pub fn note_value_rejected(&mut self, name: &str, reason: &str, n: u64) {
        *self
            .counters
            .value_rejected
            .entry(name.to_string())
            .or_default()
            .entry(reason.to_string())
            .or_default() += n;
    }

    /// Record a scrape of value target `name`.
    pub fn note_target(&mut self, name: &str, ok: bool) {
        self.targets.insert(name.to_string(), ok);
        let errors = self
            .counters
            .target_errors
            .entry(name.to_string())
            .or_default();
        if !ok {
            *errors += 1;
        }
    }

    /// Put a pushed benefit indicator score in force (the newest by its
    /// time stamp wins). O(log n) in the scores kept: a batch of n scores
    /// is n log n, never quadratic. A score that is not a number in [0, 1]
    /// is refused.
    pub fn set_kpi(&mut self, kpi: Kpi) {
        if !(kpi.score.is_finite() && (0.0..=1.0).contains(&kpi.score)) {
            return;
        }
        // The newest by its own time wins: a late retry or a back-filled
        // older score does not replace a newer one.
        match self.counters.kpis.entry(kpi.key()) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let k = e.get();
                if !(k.at.is_some() && k.at > kpi.at) {
                    e.insert(kpi);
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(kpi);
            }
        }
    }

    /// How many pushed indicators `team/workload` has.
    pub fn kpi_count(&self, team: &str, workload: &str) -> usize {
        let from = (team.to_string(), workload.to_string(), String::new());
        self.counters
            .kpis
            .range(from..)
            .take_while(|((t, w, _), _)| t == team && w == workload)
            .count()
    }

    /// Whether `team/workload` has a pushed score for `indicator`.
    pub fn has_kpi(&self, team: &str, workload: &str, indicator: &str) -> bool {
        self.counters.kpis.contains_key(&(
            team.to_string(),
            workload.to_string(),
            indicator.to_string(),
        ))
    }

    /// Every owner's benefit indicator scores, its own only (pushed wins
    /// over configured).
    pub fn owner_scores(&self) -> BTreeMap<Owner, BTreeMap<String, f64>> {
        let mut out: BTreeMap<Owner, BTreeMap<String, f64>> = BTreeMap::new();
        for k in self.static_kpis.iter().chain(self.counters.kpis.values()) {
            out.entry(Owner {
                team: k.team.clone(),
                workload: k.workload.clone(),
            })
            .or_default()
            .insert(k.indicator.clone(), k.score);
        }
        out
    }

    /// The node's own owners: those with a cost row on this node since its
    /// counters began (a GPU of theirs, or the node's share, was booked to
    /// them at some time). Stable across windows, so one set of scores
    /// serves every window.
    pub fn node_owners(&self) -> BTreeSet<Owner> {
        self.counters
            .rows
            .keys()
            .map(|k| Owner {
                team: k.team.clone(),
                workload: k.workload.clone(),
            })
            .collect()
    }

    /// The node's benefit indicator scores: per indicator, the mean over
    /// the node's own owners ([`Engine::node_owners`]) of each owner's
    /// score (pushed wins over configured). A score of an owner with no
    /// cost on this node does not move the node's figure.
    pub fn scores(&self) -> BTreeMap<String, f64> {
        self.scores_of(&self.owner_scores())
    }

    /// [`Engine::scores`] from `owner_scores` (as [`Engine::owner_scores`]).
    pub fn scores_of(
        &self,
        owner_scores: &BTreeMap<Owner, BTreeMap<String, f64>>,
    ) -> BTreeMap<String, f64> {
        let mine = self.node_owners();
        let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for (o, by_indicator) in owner_scores {
            if !mine.contains(o) {
                continue;
            }
            for (ind, v) in by_indicator {
                let e = sums.entry(ind.clone()).or_default();
                e.0 += v;
                e.1 += 1.0;
            }
        }
        sums.into_iter().map(|(k, (s, n))| (k, s / n)).collect()
    }
}
