//! The counters that survive restarts (the checkpoint is their JSON, so the
//! fields' names and order here are the on-disk layout): node totals, rows
//! per (GPU, owner), value rows, pushed scores, and the migration of
//! checkpoints written before rows were keyed by owner.

use super::{Owner, RowKey};
use crate::cost::Component;
use crate::reading::HostPowerSource;
use crate::units::Accumulator;
use crate::window::Totals;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one (GPU, owner) row has accrued. Every attributed figure lives
/// here, so the rows always add up to the node totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Row {
    /// Cost by component.
    pub cost: BTreeMap<Component, Accumulator>,
    /// Credits (energy drawn at negative prices) by component.
    pub credit: BTreeMap<Component, Accumulator>,
    /// Emissions, grams CO2e.
    pub emissions_grams: Accumulator,
    /// Facility energy attributed to the row (own energy and its share of
    /// the host's, × PUE), J.
    pub facility_energy_joules: Accumulator,
    /// The GPU's own energy (before PUE), J.
    pub gpu_energy_joules: Accumulator,
    /// The row's share of the host's energy (before PUE), J.
    pub host_energy_joules: Accumulator,
    /// GPU-seconds: the seconds the GPU's energy readings covered, times
    /// the owner's share of the GPU in each (gaps are not counted). 0 in
    /// checkpoints written before they were counted.
    pub gpu_seconds: Accumulator,
    /// How the owner of the row's last booking was found: `gpu_owner` (the
    /// UUID table), `unallocated`, `idle` (no process ran) or
    /// `rule:<name>` (a process matched an attribution rule). Empty in
    /// checkpoints written before attribution by process.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub attributed_by: String,
}

impl Row {
    /// Total cost over every component.
    pub fn cost_total(&self) -> f64 {
        self.cost.values().map(Accumulator::total).sum::<f64>() + 0.0
    }

    /// Total credit over every component.
    pub fn credit_total(&self) -> f64 {
        self.credit.values().map(Accumulator::total).sum::<f64>() + 0.0
    }
}

/// Whose value a value row holds: the owner it was produced for, and where
/// it came from (a scrape target's name, or `push`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ValueKey {
    /// Team.
    pub team: String,
    /// Workload.
    pub workload: String,
    /// Source label.
    pub source: String,
}

/// Tokens and requests of one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelCounts {
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: Accumulator,
    /// Of which served from a prefix cache.
    pub cached_input_tokens: Accumulator,
    /// Output (generated) tokens.
    pub output_tokens: Accumulator,
    /// Successful requests.
    pub requests: Accumulator,
}

/// What a value row has accrued.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValueRow {
    /// Money produced.
    pub value: Accumulator,
    /// By model.
    pub models: BTreeMap<String, ModelCounts>,
}

/// What one scrape or push adds for one model (token and request deltas).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelDelta {
    /// Model name (may be empty).
    pub model: String,
    /// Input tokens, cached included.
    pub input_tokens: f64,
    /// Cached input tokens.
    pub cached_input_tokens: f64,
    /// Output tokens.
    pub output_tokens: f64,
    /// Successful requests.
    pub requests: f64,
}

/// Rows are stored as a list of `[key, row]` pairs: JSON object keys must be
/// strings, and a joined string key could be ambiguous.
mod rows_serde {
    use super::{Row, RowKey};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<RowKey, Row>, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(&RowKey, &Row)> = m.iter().collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<RowKey, Row>, D::Error> {
        let v: Vec<(RowKey, Row)> = Vec::deserialize(d)?;
        let n = v.len();
        let m: BTreeMap<RowKey, Row> = v.into_iter().collect();
        if m.len() != n {
            return Err(serde::de::Error::custom(
                "rows: the same (gpu_uuid, team, workload) twice",
            ));
        }
        Ok(m)
    }
}

/// Value rows as a list of `[key, row]` pairs, like cost rows.
mod value_serde {
    use super::{ValueKey, ValueRow};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<ValueKey, ValueRow>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let v: Vec<(&ValueKey, &ValueRow)> = m.iter().collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<ValueKey, ValueRow>, D::Error> {
        let v: Vec<(ValueKey, ValueRow)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

/// A benefit indicator score of an owner (the model's Pᵢ).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kpi {
    /// Team.
    pub team: String,
    /// Workload.
    pub workload: String,
    /// Indicator (`precision`, `coverage`, …).
    pub indicator: String,
    /// Score.
    pub score: f64,
    /// When it was pushed (None: configured).
    pub at: Option<DateTime<Utc>>,
}

/// Which score a [`Kpi`] is: (team, workload, indicator).
pub type KpiKey = (String, String, String);

impl Kpi {
    /// Its key.
    pub fn key(&self) -> KpiKey {
        (
            self.team.clone(),
            self.workload.clone(),
            self.indicator.clone(),
        )
    }
}

/// Pushed scores as a list in the checkpoint (as before they were keyed),
/// read back into a map; of two entries with one key the later wins.
mod kpis_serde {
    use super::{Kpi, KpiKey};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<KpiKey, Kpi>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<KpiKey, Kpi>, D::Error> {
        let v = Vec::<Kpi>::deserialize(d)?;
        Ok(v.into_iter().map(|k| (k.key(), k)).collect())
    }
}

/// The counters that survive restarts. Totals since the state began.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Currency of every money counter.
    pub currency: String,
    /// When the state began (the first tick ever accounted).
    pub created: Option<DateTime<Utc>>,
    /// Wall time of the last tick accounted.
    pub last_wall: Option<DateTime<Utc>>,
    /// GPU energy by UUID, J.
    pub gpu_energy_joules: BTreeMap<String, Accumulator>,
    /// Host energy by source, J.
    pub host_energy_joules: BTreeMap<HostPowerSource, Accumulator>,
    /// (GPU + host) × PUE, J.
    pub facility_energy_joules: Accumulator,
    /// Node cost by component.
    pub cost: BTreeMap<Component, Accumulator>,
    /// Attributed money, energy and emissions by (GPU, owner at accrual);
    /// sums to `cost`, `credit`, `emissions_grams` and
    /// `facility_energy_joules`.
    #[serde(with = "rows_serde")]
    pub rows: BTreeMap<RowKey, Row>,
    /// Credits (money received for energy at negative prices) by component.
    pub credit: BTreeMap<Component, Accumulator>,
    /// The model name each GPU reported (NVML's marketing name, e.g.
    /// `NVIDIA H100 80GB HBM3`), by UUID; the latest one seen. Empty in
    /// checkpoints written before models were recorded.
    pub gpu_models: BTreeMap<String, String>,
    /// Seconds without a usable reading, by GPU UUID (`host` for the host).
    pub unaccounted_seconds: BTreeMap<String, Accumulator>,
    /// Failures by collector.
    pub collector_errors: BTreeMap<String, u64>,
    /// Driver reloads seen (energy counter went backwards), by GPU UUID.
    pub counter_resets: BTreeMap<String, u64>,
    /// Host energy counter resets (a RAPL counter read as a wrap that is
    /// not one), by host power source.
    pub host_counter_resets: BTreeMap<HostPowerSource, u64>,
    /// Failed checkpoint writes since the state began.
    pub checkpoint_errors: u64,
    /// Times this state dir was started over from zero deliberately
    /// (`roimon run --reset-state`), as the ledger's `reset` events count
    /// them.
    pub state_resets: u64,
    /// Processes seen on a GPU that matched no attribution rule (each
    /// counted once, when first seen).
    pub attribution_unmatched: u64,
    /// Fetched price or carbon slots dropped for lying outside the time a
    /// schedule may cover, by feed (`price`, `carbon`).
    pub slots_dropped: BTreeMap<String, u64>,
    /// Emissions of the facility energy, grams CO2e.
    pub emissions_grams: Accumulator,
    /// Value produced, node total (sums `value`).
    pub value_total: Accumulator,
    /// Value, tokens and requests by (owner, source).
    #[serde(with = "value_serde")]
    pub value: BTreeMap<ValueKey, ValueRow>,
    /// Latest pushed benefit indicator scores, by (team, workload,
    /// indicator); kept as a list in the checkpoint.
    #[serde(with = "kpis_serde")]
    pub kpis: BTreeMap<KpiKey, Kpi>,
    /// Failed scrapes by value target.
    pub target_errors: BTreeMap<String, u64>,
    /// Scraped figures refused as implausible or over a bound, by value
    /// target and reason.
    pub value_rejected: BTreeMap<String, BTreeMap<String, u64>>,
    /// State of the daemon's value sources (a target's last counters, the
    /// push dedup window), opaque here, kept with the counters so that
    /// value booked and the state it was computed from are checkpointed as
    /// one: no value counted twice or lost across a crash.
    pub extensions: BTreeMap<String, String>,
    /// Rolling windows' boundaries and baselines.
    pub windows: crate::window::Windows,
    /// Seconds of sampled time by the basis of the price in force at the
    /// tick's end (`source`, `fallback`, `last_known`): how the energy
    /// was priced.
    pub priced_seconds: BTreeMap<String, Accumulator>,
    /// Before owner-keyed rows: cost by GPU UUID (read from old checkpoints
    /// only, then moved into `rows` by [`Counters::migrate_legacy`]).
    #[serde(skip_serializing)]
    pub gpu_cost: BTreeMap<String, BTreeMap<Component, Accumulator>>,
    /// Before owner-keyed rows: credit by GPU UUID (read only).
    #[serde(skip_serializing)]
    pub gpu_credit: BTreeMap<String, BTreeMap<Component, Accumulator>>,
    /// Before owner-keyed rows: emissions by GPU UUID (read only).
    #[serde(skip_serializing)]
    pub gpu_emissions_grams: BTreeMap<String, Accumulator>,
}

/// No real node's summed figure (joules, money, grams, tokens, seconds)
/// comes near this; a figure beyond it is corruption.
pub const ABSURD: f64 = 1e18;

/// A checkpoint's last tick may lie this far after now (a clock that was
/// ahead and was corrected while roimon was stopped); further is refused.
pub const FUTURE_LIMIT_DAYS: i64 = 366;

/// Why a checkpoint cannot be resumed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidCounters {
    /// The offending field (a JSON path).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Counters {
    /// Move money kept per GPU UUID by checkpoints written before rows were
    /// keyed by owner into rows keyed by the owner `owner_of` names now
    /// (the configuration at upgrade time). Returns how many rows it made;
    /// 0 when there was nothing to migrate. Nothing is lost or duplicated:
    /// the node totals are untouched and the rows receive exactly the old
    /// per-GPU figures.
    pub fn migrate_legacy(&mut self, owner_of: impl Fn(&str) -> Owner) -> usize {
        let mut made = 0;
        let cost = std::mem::take(&mut self.gpu_cost);
        let credit = std::mem::take(&mut self.gpu_credit);
        let emissions = std::mem::take(&mut self.gpu_emissions_grams);
        let uuids: std::collections::BTreeSet<String> = cost
            .keys()
            .chain(credit.keys())
            .chain(emissions.keys())
            .cloned()
            .collect();
        for uuid in uuids {
            let key = RowKey::new(&uuid, &owner_of(&uuid));
            let row = self.rows.entry(key).or_default();
            made += 1;
            for (c, a) in cost.get(&uuid).into_iter().flatten() {
                row.cost.entry(*c).or_default().add(a.total());
            }
            for (c, a) in credit.get(&uuid).into_iter().flatten() {
                row.credit.entry(*c).or_default().add(a.total());
            }
            if let Some(a) = emissions.get(&uuid) {
                row.emissions_grams.add(a.total());
            }
        }
        if made > 0 {
            self.apportion_legacy_energy();
        }
        made
    }

    /// Facility energy was not kept per GPU before rows: share the node's
    /// out over the rows (which then hold only pre-upgrade history) by their
    /// energy cost, else by GPU energy, else equally, so the attributed
    /// energy adds up to the node's from the upgrade on.
    fn apportion_legacy_energy(&mut self) {
        let total = self.facility_energy_joules.total();
        let n = self.rows.len();
        if total <= 0.0 || n == 0 {
            return;
        }
        let energy_cost = |r: &Row| {
            r.cost
                .get(&Component::Energy)
                .map_or(0.0, Accumulator::total)
        };
        let by_cost: Vec<f64> = self.rows.values().map(energy_cost).collect();
        let by_gpu: Vec<f64> = self
            .rows
            .keys()
            .map(|k| {
                self.gpu_energy_joules
                    .get(&k.gpu_uuid)
                    .map_or(0.0, Accumulator::total)
            })
            .collect();
        let weights = if by_cost.iter().sum::<f64>() > 0.0 {
            by_cost
        } else if by_gpu.iter().sum::<f64>() > 0.0 {
            by_gpu
        } else {
            vec![1.0; n]
        };
        let sum: f64 = weights.iter().sum();
        for (row, w) in self.rows.values_mut().zip(weights) {
            row.facility_energy_joules.add(total * w / sum);
        }
    }

    /// The cumulative totals the rolling windows measure (they are part of
    /// these counters, so they are handed this instead of reading them):
    /// node cost, credit, value, facility energy, tokens and requests, and
    /// (value, net cost) per owner of a cost or value row.
    pub fn totals(&self) -> Totals {
        let mut owners: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
        let mut owner_costs: BTreeMap<Owner, crate::window::OwnerCost> = BTreeMap::new();
        for (k, r) in &self.rows {
            let e = owners
                .entry((k.team.clone(), k.workload.clone()))
                .or_default();
            e.1 += r.cost_total() - r.credit_total();
            let owner = Owner {
                team: k.team.clone(),
                workload: k.workload.clone(),
            };
            let oc = owner_costs
                .entry(owner.clone())
                .or_insert_with(|| crate::window::OwnerCost {
                    owner,
                    cost: BTreeMap::new(),
                    credit: 0.0,
                });
            for (c, a) in &r.cost {
                *oc.cost.entry(*c).or_default() += a.total();
            }
            oc.credit += r.credit_total();
        }
        let (mut input, mut output, mut requests) = (0.0, 0.0, 0.0);
        for (k, r) in &self.value {
            let e = owners
                .entry((k.team.clone(), k.workload.clone()))
                .or_default();
            e.0 += r.value.total();
            for m in r.models.values() {
                input += m.input_tokens.total();
                output += m.output_tokens.total();
                requests += m.requests.total();
            }
        }
        Totals {
            cost: self.cost.iter().map(|(k, a)| (*k, a.total())).collect(),
            credit: self.credit.values().map(Accumulator::total).sum(),
            value: self.value_total.total(),
            facility_joules: self.facility_energy_joules.total(),
            input_tokens: input,
            output_tokens: output,
            requests,
            owners: owners
                .into_iter()
                .map(|((team, workload), (v, m))| (Owner { team, workload }, v, m))
                .collect(),
            owner_costs: owner_costs.into_values().collect(),
        }
    }
}
