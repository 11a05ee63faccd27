//! The accounting engine: takes timestamped readings, turns them into energy,
//! money and attribution counters, and hands out snapshots. Time comes in as a
//! value; the engine never reads a clock.

use crate::cost::{Component, FixedCosts, ShareKey, shares};
use crate::energy::EnergyMeter;
use crate::price::{Basis, Tariff};
use crate::reading::{GpuReading, HostPowerSource, HostReading, Reading, SampleError};
use crate::units::{Accumulator, Joules, Money, Seconds};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The `gpu_uuid` that carries costs when the node has no GPU at all.
pub const NO_GPU: &str = "none";
/// The owner of anything without a configured owner.
pub const UNALLOCATED: &str = "unallocated";

/// A moment, as both wall time (for prices and ledgers) and monotonic seconds
/// (for intervals and integration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// Wall-clock time, UTC.
    pub wall: DateTime<Utc>,
    /// Monotonic seconds since an arbitrary origin.
    pub mono: f64,
}

/// Who a GPU's costs go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Team.
    pub team: String,
    /// Workload.
    pub workload: String,
}

impl Owner {
    /// The explicit owner of what nobody owns.
    pub fn unallocated() -> Self {
        Self {
            team: UNALLOCATED.into(),
            workload: UNALLOCATED.into(),
        }
    }
}

/// One owner's part of a GPU: who, the fraction (the parts of a GPU sum to
/// 1), and how the owner was found (recorded in [`Row::attributed_by`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerShare {
    /// The owner.
    pub owner: Owner,
    /// Fraction of the GPU's energy, money and emissions, 0..1.
    pub share: f64,
    /// How the owner was found, e.g. `rule:<name>`, `gpu_owner`, `idle`.
    pub rule: String,
}

/// [`Row::attributed_by`] of a GPU attributed by the UUID table.
pub const BY_GPU_OWNER: &str = "gpu_owner";

/// Everything the engine needs to know, already validated.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// ISO currency code of all money.
    pub currency: String,
    /// Power usage effectiveness (≥ 1).
    pub pue: f64,
    /// The price schedule.
    pub tariff: Tariff,
    /// The `source` label of the price.
    pub price_source: String,
    /// Fixed costs of the node.
    pub fixed: FixedCosts,
    /// How the host's share is spread over GPUs.
    pub share_key: ShareKey,
    /// GPU UUID → owner.
    pub owners: HashMap<String, Owner>,
    /// Intervals longer than this are gaps (unaccounted, not filled in).
    pub max_gap: Seconds,
}

/// Whose money a row holds: a GPU (or `none`) and the owner it had when the
/// money accrued. An owner change starts a new row; the old one stays.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RowKey {
    /// GPU UUID (`none` on a node without GPUs).
    pub gpu_uuid: String,
    /// Team at accrual.
    pub team: String,
    /// Workload at accrual.
    pub workload: String,
}

impl RowKey {
    /// The row of `uuid` under `owner`.
    pub fn new(uuid: &str, owner: &Owner) -> Self {
        Self {
            gpu_uuid: uuid.to_string(),
            team: owner.team.clone(),
            workload: owner.workload.clone(),
        }
    }

    /// The owner part.
    pub fn owner(&self) -> Owner {
        Owner {
            team: self.team.clone(),
            workload: self.workload.clone(),
        }
    }
}

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

    /// Visit every summed figure with its field name (a JSON path, as
    /// [`InvalidCounters::field`] names it): node totals, rows, value rows,
    /// priced seconds and the legacy per-GPU maps.
    fn each_accumulator(&mut self, f: &mut dyn FnMut(String, &mut Accumulator)) {
        for (k, a) in &mut self.gpu_energy_joules {
            f(format!("gpu_energy_joules.{k}"), a);
        }
        for (k, a) in &mut self.host_energy_joules {
            f(format!("host_energy_joules.{}", k.as_str()), a);
        }
        f(
            "facility_energy_joules".into(),
            &mut self.facility_energy_joules,
        );
        f("emissions_grams".into(), &mut self.emissions_grams);
        for (c, a) in &mut self.cost {
            f(format!("cost.{}", c.as_str()), a);
        }
        for (c, a) in &mut self.credit {
            f(format!("credit.{}", c.as_str()), a);
        }
        for (k, a) in &mut self.unaccounted_seconds {
            f(format!("unaccounted_seconds.{k}"), a);
        }
        for (k, r) in &mut self.rows {
            let at = format!("rows[{}/{}/{}]", k.gpu_uuid, k.team, k.workload);
            for (c, a) in &mut r.cost {
                f(format!("{at}.cost.{}", c.as_str()), a);
            }
            for (c, a) in &mut r.credit {
                f(format!("{at}.credit.{}", c.as_str()), a);
            }
            f(format!("{at}.emissions_grams"), &mut r.emissions_grams);
            f(
                format!("{at}.facility_energy_joules"),
                &mut r.facility_energy_joules,
            );
            f(format!("{at}.gpu_energy_joules"), &mut r.gpu_energy_joules);
            f(
                format!("{at}.host_energy_joules"),
                &mut r.host_energy_joules,
            );
        }
        for (k, m) in &mut self.gpu_cost {
            for (c, a) in m {
                f(format!("gpu_cost.{k}.{}", c.as_str()), a);
            }
        }
        f("value_total".into(), &mut self.value_total);
        for (k, r) in &mut self.value {
            let at = format!("value[{}/{}/{}]", k.team, k.workload, k.source);
            f(format!("{at}.value"), &mut r.value);
            for (m, c) in &mut r.models {
                for (name, a) in [
                    ("input_tokens", &mut c.input_tokens),
                    ("cached_input_tokens", &mut c.cached_input_tokens),
                    ("output_tokens", &mut c.output_tokens),
                    ("requests", &mut c.requests),
                ] {
                    f(format!("{at}.models.{m}.{name}"), a);
                }
            }
        }
        for (k, a) in &mut self.priced_seconds {
            f(format!("priced_seconds.{k}"), a);
        }
        for (k, m) in &mut self.gpu_credit {
            for (c, a) in m {
                f(format!("gpu_credit.{k}.{}", c.as_str()), a);
            }
        }
        for (k, a) in &mut self.gpu_emissions_grams {
            f(format!("gpu_emissions_grams.{k}"), a);
        }
    }

    /// Visit every other figure (signed ones: KPI scores, the rolling
    /// windows' marks and baselines) with its field name.
    fn each_signed(&mut self, f: &mut dyn FnMut(String, &mut f64)) {
        for (i, k) in self.kpis.values_mut().enumerate() {
            f(
                format!("kpis[{i}]({}/{}/{}).score", k.team, k.workload, k.indicator),
                &mut k.score,
            );
        }
        for (label, w) in &mut self.windows.by_label {
            for (i, (_, t)) in w.marks.iter_mut().enumerate() {
                let at = format!("windows.{label}.marks[{i}]");
                for (c, v) in &mut t.cost {
                    f(format!("{at}.cost.{}", c.as_str()), v);
                }
                for (name, v) in [
                    ("credit", &mut t.credit),
                    ("value", &mut t.value),
                    ("facility_joules", &mut t.facility_joules),
                    ("input_tokens", &mut t.input_tokens),
                    ("output_tokens", &mut t.output_tokens),
                    ("requests", &mut t.requests),
                ] {
                    f(format!("{at}.{name}"), v);
                }
                for (o, v, m) in &mut t.owners {
                    f(format!("{at}.owners[{}/{}].value", o.team, o.workload), v);
                    f(format!("{at}.owners[{}/{}].cost", o.team, o.workload), m);
                }
            }
            if let Some(b) = &mut w.baseline_roi {
                f(format!("windows.{label}.baseline_roi"), b);
            }
        }
    }

    /// What is wrong with a summed figure, if anything.
    fn figure_problem(v: f64) -> Option<String> {
        if !v.is_finite() {
            Some(format!("{v} is not a finite number"))
        } else if v < 0.0 {
            Some(format!("{v} is negative; counters never go below zero"))
        } else if v > ABSURD {
            Some(format!(
                "{v} is beyond any real node's total (more than {ABSURD:e})"
            ))
        } else {
            None
        }
    }

    /// What is wrong with a signed figure, if anything.
    fn signed_problem(v: f64) -> Option<String> {
        if !v.is_finite() {
            Some(format!("{v} is not a finite number"))
        } else if v.abs() > ABSURD {
            Some(format!(
                "{v} is beyond any real figure (more than {ABSURD:e} in size)"
            ))
        } else {
            None
        }
    }

    /// Every figure that cannot be true (non-finite, negative where a sum,
    /// or absurd), named, in [`Counters::validate`]'s order.
    pub fn bad_figures(&self) -> Vec<InvalidCounters> {
        let mut out = Vec::new();
        let mut probe = self.clone();
        probe.each_accumulator(&mut |field, a| {
            if let Some(problem) = Self::figure_problem(a.total()) {
                out.push(InvalidCounters { field, problem });
            }
        });
        probe.each_signed(&mut |field, v| {
            if let Some(problem) = Self::signed_problem(*v) {
                out.push(InvalidCounters { field, problem });
            }
        });
        out
    }

    /// Refuse counters that cannot be true: a non-finite, negative or absurd
    /// (beyond [`ABSURD`]) figure anywhere (every total, row, value row,
    /// priced seconds, KPI score and rolling window), rows that do not add
    /// up to the node totals, a last tick before 2020 or before the state
    /// began, or more than [`FUTURE_LIMIT_DAYS`] after `now`. A last tick
    /// less far in the future is not refused: the clock was corrected while
    /// roimon was stopped, and the daemon goes on from now.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), InvalidCounters> {
        if let Some(e) = self.bad_figures().into_iter().next() {
            return Err(e);
        }
        // The rows are the node totals, split: a file where they disagree
        // was edited or corrupted.
        if !self.rows.is_empty() {
            let off = |node: f64, rows: f64| {
                (node - rows).abs() > 1e-6 * node.abs().max(rows.abs()) + 1e-9
            };
            let mismatch = |field: String, node: f64, rows: f64| InvalidCounters {
                field,
                problem: format!("the rows add up to {rows}, the node total is {node}"),
            };
            for c in Component::ALL {
                let node = self.cost.get(&c).map_or(0.0, Accumulator::total);
                let rows: f64 = self
                    .rows
                    .values()
                    .filter_map(|r| r.cost.get(&c))
                    .map(Accumulator::total)
                    .sum();
                if off(node, rows) {
                    return Err(mismatch(format!("cost.{}", c.as_str()), node, rows));
                }
                let node = self.credit.get(&c).map_or(0.0, Accumulator::total);
                let rows: f64 = self
                    .rows
                    .values()
                    .filter_map(|r| r.credit.get(&c))
                    .map(Accumulator::total)
                    .sum();
                if off(node, rows) {
                    return Err(mismatch(format!("credit.{}", c.as_str()), node, rows));
                }
            }
            let rows: f64 = self.rows.values().map(|r| r.emissions_grams.total()).sum();
            if off(self.emissions_grams.total(), rows) {
                return Err(mismatch(
                    "emissions_grams".into(),
                    self.emissions_grams.total(),
                    rows,
                ));
            }
            let rows: f64 = self
                .rows
                .values()
                .map(|r| r.facility_energy_joules.total())
                .sum();
            if off(self.facility_energy_joules.total(), rows) {
                return Err(mismatch(
                    "facility_energy_joules".into(),
                    self.facility_energy_joules.total(),
                    rows,
                ));
            }
        }
        if let Some(w) = self.last_wall {
            // roimon did not exist before 2020: an older time stamp is a
            // broken clock or a forged file, and would book decades of
            // fixed costs in one tick.
            let floor = DateTime::<Utc>::from_timestamp(1_577_836_800, 0).unwrap_or_default();
            if w < floor {
                return Err(InvalidCounters {
                    field: "last_wall".into(),
                    problem: format!(
                        "{w} is before 2020-01-01; a clock that was wrong when it was written, or a forged file"
                    ),
                });
            }
            if w > now + Duration::days(FUTURE_LIMIT_DAYS) {
                return Err(InvalidCounters {
                    field: "last_wall".into(),
                    problem: format!(
                        "{w} is more than {FUTURE_LIMIT_DAYS} days after now ({now}); not a clock corrected while roimon was stopped but a forged file or a clock that was far off"
                    ),
                });
            }
            if let Some(c) = self.created {
                if w < c {
                    return Err(InvalidCounters {
                        field: "last_wall".into(),
                        problem: format!("{w} is before the state was created ({c})"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Make counters that [`Counters::validate`] refuses for a bad figure
    /// resumable, keeping every sound one: each non-finite, negative or
    /// absurd summed figure is set to 0, a bad KPI score is dropped, a
    /// window with a bad mark starts over, and node totals that no longer
    /// equal their rows are set to the rows' sum. Returns one line per
    /// change (the field, what was wrong, what it is now); empty when
    /// nothing needed it.
    /// Time stamps that cannot be true are mended too: a last tick before
    /// 2020 or too far after `now` is cleared (no downtime is booked for
    /// the stop), a creation time after the last tick is set to it.
    pub fn repair(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut out = Vec::new();
        let floor = DateTime::<Utc>::from_timestamp(1_577_836_800, 0).unwrap_or_default();
        if let Some(w) = self.last_wall
            && (w < floor || w > now + Duration::days(FUTURE_LIMIT_DAYS))
        {
            out.push(format!(
                "last_wall: {w} cannot be true (now {now}); cleared, so no downtime is booked for the stop"
            ));
            self.last_wall = None;
        }
        if let Some(c) = self.created
            && (c < floor || self.last_wall.is_some_and(|w| c > w))
        {
            out.push(format!("created: {c} cannot be true; set to the last tick"));
            self.created = self.last_wall;
        }
        self.each_accumulator(&mut |field, a| {
            if let Some(p) = Self::figure_problem(a.total()) {
                out.push(format!("{field}: {p}; set to 0"));
                *a = Accumulator::default();
            }
        });
        let mut bad_signed = Vec::new();
        self.clone().each_signed(&mut |field, v| {
            if let Some(p) = Self::signed_problem(*v) {
                bad_signed.push((field, p));
            }
        });
        let mut drop_kpis = std::collections::BTreeSet::new();
        let mut reset_windows = std::collections::BTreeSet::new();
        for (field, p) in bad_signed {
            if let Some(i) = field
                .strip_prefix("kpis[")
                .and_then(|r| r.split(']').next())
                .and_then(|i| i.parse::<usize>().ok())
            {
                drop_kpis.insert(i);
                out.push(format!("{field}: {p}; the score is dropped"));
            } else if let Some(rest) = field.strip_prefix("windows.") {
                let label = rest
                    .rsplit_once(".marks[")
                    .map(|(l, _)| l)
                    .or_else(|| rest.strip_suffix(".baseline_roi"))
                    .unwrap_or(rest)
                    .to_string();
                out.push(format!("{field}: {p}; window {label} starts over"));
                reset_windows.insert(label);
            }
        }
        let mut i = 0;
        self.kpis.retain(|_, _| {
            i += 1;
            !drop_kpis.contains(&(i - 1))
        });
        for label in reset_windows {
            if let Some(w) = self.windows.by_label.get_mut(&label) {
                w.marks.clear();
                w.baseline_roi = None;
            }
        }
        let off =
            |node: f64, rows: f64| (node - rows).abs() > 1e-6 * node.abs().max(rows.abs()) + 1e-9;
        let mut fix = |field: String, node: &mut Accumulator, rows: f64| {
            if off(node.total(), rows) {
                out.push(format!(
                    "{field}: {} did not equal its rows ({rows}); set to their sum",
                    node.total()
                ));
                *node = Accumulator::from_total(rows);
            }
        };
        if !self.rows.is_empty() {
            for c in Component::ALL {
                let rows: f64 = self
                    .rows
                    .values()
                    .filter_map(|r| r.cost.get(&c))
                    .map(Accumulator::total)
                    .sum();
                fix(
                    format!("cost.{}", c.as_str()),
                    self.cost.entry(c).or_default(),
                    rows,
                );
                let rows: f64 = self
                    .rows
                    .values()
                    .filter_map(|r| r.credit.get(&c))
                    .map(Accumulator::total)
                    .sum();
                if rows != 0.0 || self.credit.contains_key(&c) {
                    fix(
                        format!("credit.{}", c.as_str()),
                        self.credit.entry(c).or_default(),
                        rows,
                    );
                }
            }
            let rows: f64 = self.rows.values().map(|r| r.emissions_grams.total()).sum();
            fix("emissions_grams".into(), &mut self.emissions_grams, rows);
            let rows: f64 = self
                .rows
                .values()
                .map(|r| r.facility_energy_joules.total())
                .sum();
            fix(
                "facility_energy_joules".into(),
                &mut self.facility_energy_joules,
                rows,
            );
        }
        if !self.value.is_empty() {
            let rows: f64 = self.value.values().map(|r| r.value.total()).sum();
            fix("value_total".into(), &mut self.value_total, rows);
        }
        out
    }
}

/// Grid carbon intensity and an optional carbon price.
#[derive(Debug, Clone, PartialEq)]
pub struct Carbon {
    /// Intensity over time, grams CO2e per kWh, in the tariff's form (a
    /// "price" of grams per kWh): split across slots exactly like money.
    pub intensity: Tariff,
    /// Currency per tonne CO2e; 0 = emissions are not priced.
    pub price_per_tonne: f64,
    /// The `source` label.
    pub source: String,
    /// When the intensity data was fetched (None for a configured figure).
    pub fetched_at: Option<DateTime<Utc>>,
}

/// The carbon intensity in force, as exporters see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarbonView {
    /// Grams CO2e per kWh in force.
    pub grams_per_kwh: f64,
    /// What it rests on.
    pub basis: Basis,
    /// Source label.
    pub source: String,
    /// Seconds since the data was fetched (0 for configured).
    pub age_seconds: f64,
}

/// One collector's result for a tick.
#[derive(Debug, Clone)]
pub struct Report {
    /// The `collector` label.
    pub collector: &'static str,
    /// What it produced.
    pub outcome: Result<Vec<Reading>, SampleError>,
}

#[derive(Debug, Clone)]
struct GpuState {
    meter: EnergyMeter,
    latest: GpuReading,
    /// Monotonic time up to which a gap has already been counted.
    gap_mark: Option<f64>,
    present: bool,
}

/// Per-collector health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CollectorHealth {
    /// Whether the last sample succeeded.
    pub up: bool,
    /// Whether it ever reported successfully.
    pub reported: bool,
    /// Whether the source is not present on this machine.
    pub unavailable: bool,
}

/// A GPU as the exporters see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuView {
    /// Last reading.
    pub reading: GpuReading,
    /// Owner.
    pub owner: Owner,
    /// Whether it answered in the last tick.
    pub present: bool,
}

/// The current price as exporters see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceView {
    /// Price per kWh in force.
    pub price_per_kwh: f64,
    /// Currency.
    pub currency: String,
    /// Source label.
    pub source: String,
    /// Whether the fallback is in force.
    pub fallback: bool,
    /// What the price rests on (source, fallback, last_known).
    pub basis: Basis,
    /// Seconds since the schedule in force was fetched; 0 for prices that
    /// come from the configuration (static, time-of-use).
    pub age_seconds: f64,
    /// End of the last slot the schedule knows, for fetched schedules.
    pub known_until: Option<DateTime<Utc>>,
}

/// Everything exporters need, detached from the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// When it was taken (last tick).
    pub at: Option<DateTime<Utc>>,
    /// GPUs by UUID.
    pub gpus: BTreeMap<String, GpuView>,
    /// Last host reading.
    pub host: Option<HostReading>,
    /// Power usage effectiveness in use.
    pub pue: f64,
    /// Price in force.
    pub price: PriceView,
    /// Totals (attributed rows included).
    pub counters: Counters,
    /// Cost per second in the last interval, by component.
    pub cost_rate_per_sec: BTreeMap<Component, f64>,
    /// Facility power in the last interval, W.
    pub facility_power_watts: f64,
    /// Collector health.
    pub collectors: BTreeMap<String, CollectorHealth>,
    /// Grid carbon intensity in force, when carbon is configured.
    pub carbon: Option<CarbonView>,
    /// Configured owner UUIDs that match no GPU NVML has reported (typos,
    /// case changes, placeholders: their GPUs' cost goes to `unallocated`).
    /// Empty until a GPU has been seen.
    pub unmatched_owners: Vec<String>,
    /// Rolling windows: value, cost, ROI, weighted efficiency, unit
    /// economics, per owner.
    pub windows: Vec<crate::window::WindowView>,
    /// The node's benefit indicator scores in force.
    pub scores: BTreeMap<String, f64>,
    /// Value targets: whether their last scrape succeeded.
    pub targets: BTreeMap<String, bool>,
    /// Monthly budgets with their month-to-date spend and forecast (set by
    /// the daemon from its ledger; empty without `[[budget]]`).
    pub budgets: Vec<BudgetView>,
}

/// A monthly budget of an owner (a team, or one workload of it) against
/// what the ledger says it spent this month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetView {
    /// Team.
    pub team: String,
    /// Workload (empty: the whole team).
    pub workload: String,
    /// Currency.
    pub currency: String,
    /// The budget for the month.
    pub monthly: f64,
    /// Net cost (cost − credit) booked this month so far.
    pub spent: f64,
    /// Month-end spend if the recent run rate holds.
    pub forecast: f64,
}

/// The accounting engine.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    counters: Counters,
    gpus: BTreeMap<String, GpuState>,
    host_meter: EnergyMeter,
    host: Option<HostReading>,
    last: Option<Tick>,
    rates: BTreeMap<Component, f64>,
    facility_power: f64,
    collectors: BTreeMap<String, CollectorHealth>,
    price_fetched_at: Option<DateTime<Utc>>,
    carbon: Option<Carbon>,
    downtime: Option<f64>,
    roi_weights: crate::window::RoiWeights,
    /// Value targets: whether their last scrape succeeded.
    targets: BTreeMap<String, bool>,
    /// Configured (static) benefit indicator scores.
    static_kpis: Vec<Kpi>,
    /// Owners of GPUs by what runs on them (see [`Engine::set_attribution`]);
    /// a GPU not here goes to its owner of record.
    attribution: HashMap<String, Vec<OwnerShare>>,
}

/// The default rolling windows.
pub const DEFAULT_WINDOWS: [(&str, i64); 5] = [
    ("5m", 300),
    ("1h", 3600),
    ("24h", 86_400),
    ("7d", 604_800),
    ("30d", 2_592_000),
];

impl Engine {
    /// A fresh engine, optionally resuming checkpointed counters.
    pub fn new(cfg: EngineConfig, resumed: Option<Counters>) -> Self {
        let mut counters = resumed.unwrap_or_default();
        counters.currency = cfg.currency.clone();
        Self {
            cfg,
            counters,
            gpus: BTreeMap::new(),
            host_meter: EnergyMeter::default(),
            host: None,
            last: None,
            rates: BTreeMap::new(),
            facility_power: 0.0,
            collectors: BTreeMap::new(),
            price_fetched_at: None,
            carbon: None,
            downtime: None,
            roi_weights: Default::default(),
            targets: BTreeMap::new(),
            static_kpis: Vec::new(),
            attribution: HashMap::new(),
        }
        .with_default_windows()
    }

    fn with_default_windows(mut self) -> Self {
        if self.counters.windows.by_label.is_empty() {
            let spec: Vec<(String, i64)> = DEFAULT_WINDOWS
                .iter()
                .map(|(l, s)| (l.to_string(), *s))
                .collect();
            self.counters.windows.configure(&spec);
        }
        self
    }

    /// Configure the ROI model: windows (label, seconds), weights and the
    /// static benefit indicator scores.
    pub fn set_roi(
        &mut self,
        windows: &[(String, i64)],
        weights: crate::window::RoiWeights,
        static_kpis: Vec<Kpi>,
    ) {
        self.counters.windows.configure(windows);
        self.roi_weights = weights;
        self.static_kpis = static_kpis;
    }

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

    /// The node's benefit indicator scores: per indicator, the mean over
    /// owners of each owner's score (pushed wins over configured).
    pub fn scores(&self) -> BTreeMap<String, f64> {
        let mut latest: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for k in self.static_kpis.iter().chain(self.counters.kpis.values()) {
            latest.insert(
                (k.indicator.clone(), k.team.clone(), k.workload.clone()),
                k.score,
            );
        }
        let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for ((ind, _, _), v) in latest {
            let e = sums.entry(ind).or_default();
            e.0 += v;
            e.1 += 1.0;
        }
        sums.into_iter().map(|(k, (s, n))| (k, s / n)).collect()
    }

    /// Put grid carbon intensity (and its price) in force from the next tick.
    pub fn set_carbon(&mut self, carbon: Option<Carbon>) {
        self.carbon = carbon;
    }

    /// Emissions of facility energy `fe` drawn over `[from, to)`, split over
    /// GPU rows by `split` (weights summing to 1); books the carbon cost and
    /// returns it.
    fn emit(
        &mut self,
        split: &[(&str, f64)],
        fe: Joules,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> f64 {
        let Some(c) = &self.carbon else {
            return 0.0;
        };
        let grams = c.intensity.cost(fe, from, to).0;
        let per_tonne = c.price_per_tonne;
        if !(grams.is_finite() && grams > 0.0) {
            return 0.0;
        }
        self.counters.emissions_grams.add(grams);
        let money = grams / 1e6 * per_tonne;
        for (u, w) in split {
            self.spread(u, grams * w, |r, g| r.emissions_grams.add(g));
            self.book(u, Component::Carbon, money * w);
        }
        money
    }

    /// Put a new price schedule in force from the next tick on; `fetched_at`
    /// is when its data was obtained (None for configured prices).
    /// Energy already booked keeps the price it was booked at.
    pub fn set_tariff(&mut self, tariff: Tariff, fetched_at: Option<DateTime<Utc>>) {
        self.cfg.tariff = tariff;
        self.price_fetched_at = fetched_at;
    }

    /// Record the outcome of an outside source that is not a sampled
    /// collector (the price feed): health and error count. It does not gate
    /// readiness: costing goes on at the fallback without it.
    pub fn note_source(&mut self, name: &str, ok: bool) {
        let h = self
            .collectors
            .entry(name.to_string())
            .or_insert(CollectorHealth {
                up: false,
                reported: true,
                unavailable: false,
            });
        h.up = ok;
        h.reported = true;
        if !ok {
            *self
                .counters
                .collector_errors
                .entry(name.to_string())
                .or_default() += 1;
        }
    }

    /// Count fetched slots the feed `name` dropped (far past or future).
    pub fn note_dropped(&mut self, name: &str, n: u64) {
        *self
            .counters
            .slots_dropped
            .entry(name.to_string())
            .or_default() += n;
    }

    /// Count processes that matched no attribution rule.
    pub fn note_unmatched(&mut self, n: u64) {
        self.counters.attribution_unmatched += n;
    }

    /// Count a failed checkpoint write (kept in the counters, so the count
    /// survives restarts once a later write succeeds).
    pub fn note_checkpoint_error(&mut self) {
        self.counters.checkpoint_errors += 1;
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The counters, for checkpointing.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A copy of the counters for publishing: without `extensions` (the
    /// value sources' state, e.g. a push dedup window of megabytes, which
    /// no exporter reads and which would otherwise be copied every tick).
    pub fn counters_to_publish(&mut self) -> Counters {
        let ext = std::mem::take(&mut self.counters.extensions);
        let copy = self.counters.clone();
        self.counters.extensions = ext;
        copy
    }

    /// Declare a collector, so readiness waits for it.
    pub fn register_collector(&mut self, name: &str) {
        self.collectors
            .entry(name.to_string())
            .or_insert(CollectorHealth {
                up: false,
                reported: false,
                unavailable: false,
            });
    }

    /// True once every registered collector that exists here has reported once.
    pub fn ready(&self) -> bool {
        self.collectors
            .values()
            .all(|c| c.reported || c.unavailable)
    }

    /// The owner the configuration gives `uuid` now.
    pub fn owner_of(&self, uuid: &str) -> Owner {
        self.cfg
            .owners
            .get(uuid)
            .cloned()
            .unwrap_or_else(Owner::unallocated)
    }

    /// Put in force who owns `uuid` from now on, by what runs on it:
    /// `shares` over owners (same owners merged, non-positive or
    /// non-finite shares dropped, the rest scaled to sum to 1). Kept until
    /// replaced, so a GPU whose collector misses a tick keeps its owners
    /// for the host and fixed-cost shares. An empty list returns the GPU
    /// to its owner of record.
    pub fn set_attribution(&mut self, uuid: &str, shares: Vec<OwnerShare>) {
        let mut merged: Vec<OwnerShare> = Vec::with_capacity(shares.len());
        for s in shares {
            if !(s.share.is_finite() && s.share > 0.0) {
                continue;
            }
            match merged.iter_mut().find(|m| m.owner == s.owner) {
                Some(m) => {
                    m.share += s.share;
                    if m.rule != s.rule && !m.rule.contains(&s.rule) {
                        // The same owner found two ways: keep both names.
                        m.rule = format!("{},{}", m.rule, s.rule);
                    }
                }
                None => merged.push(s),
            }
        }
        let sum: f64 = merged.iter().map(|m| m.share).sum();
        if merged.is_empty() || sum.is_nan() || sum <= 0.0 {
            self.attribution.remove(uuid);
            return;
        }
        for m in &mut merged {
            m.share /= sum;
        }
        self.attribution.insert(uuid.to_string(), merged);
    }

    /// Who owns `uuid` now and in what parts: by what runs on it where set,
    /// else its owner of record.
    pub fn owners_now(&self, uuid: &str) -> Vec<OwnerShare> {
        if let Some(v) = self.attribution.get(uuid) {
            return v.clone();
        }
        let owner = self.owner_of(uuid);
        let rule = if self.cfg.owners.contains_key(uuid) {
            BY_GPU_OWNER
        } else {
            UNALLOCATED
        };
        vec![OwnerShare {
            owner,
            share: 1.0,
            rule: rule.to_string(),
        }]
    }

    /// The row of `uuid` under `owner` (created at zero).
    fn row_of(&mut self, uuid: &str, share: &OwnerShare) -> &mut Row {
        let key = RowKey::new(uuid, &share.owner);
        let row = self.counters.rows.entry(key).or_default();
        // Every component exists from the row's start (at 0), so a
        // series never appears mid-way with a value.
        for c in Component::ALL {
            row.cost.entry(c).or_default();
        }
        row.credit.entry(Component::Energy).or_default();
        if row.attributed_by != share.rule {
            row.attributed_by.clone_from(&share.rule);
        }
        row
    }

    /// Spread `amount` of `uuid` over its owners now: `f` adds each part to
    /// its row. The parts sum to `amount` (the last takes the remainder).
    fn spread<T>(&mut self, uuid: &str, amount: f64, f: impl Fn(&mut Row, f64) -> T) {
        // Borrowed out of the map for the loop (no copy on the hot path).
        let taken = self.attribution.get_mut(uuid).map(std::mem::take);
        let owners = match taken {
            Some(v) => v,
            None => self.owners_now(uuid),
        };
        let n = owners.len();
        let mut left = amount;
        for (i, o) in owners.iter().enumerate() {
            let part = if i + 1 == n {
                left
            } else {
                (amount * o.share).min(left)
            }
            .max(0.0);
            left -= part;
            f(self.row_of(uuid, o), part);
        }
        if let Some(v) = self.attribution.get_mut(uuid) {
            *v = owners;
        }
    }

    /// Every row `uuid` books to now exists (at zero).
    fn touch_rows(&mut self, uuid: &str) {
        for o in self.owners_now(uuid) {
            self.row_of(uuid, &o);
        }
    }

    /// Seconds of downtime the first tick after a restart booked (fixed
    /// costs accrue while roimon is stopped), taken once.
    pub fn take_downtime(&mut self) -> Option<f64> {
        self.downtime.take()
    }

    /// Account one tick: every collector's outcome for the interval since the
    /// previous tick.
    pub fn ingest(&mut self, tick: Tick, reports: &[Report]) {
        let prev = self.last;
        let dt = prev.map_or(0.0, |p| (tick.mono - p.mono).max(0.0));
        let mut facility_joules = 0.0;
        let mut seen: HashSet<String> = HashSet::new();
        let mut gpu_energy_this_tick: BTreeMap<String, f64> = BTreeMap::new();
        let mut host_energy: Option<(Joules, DateTime<Utc>, f64)> = None;
        // Rates over the span each device's energy covers (after a short
        // collector failure one reading covers several ticks): W and money/s.
        let mut power_w = 0.0;
        let mut energy_rate: BTreeMap<Component, f64> = BTreeMap::new();
        // The host gauges show this tick's reading or nothing.
        self.host = None;

        for report in reports {
            let health = self
                .collectors
                .entry(report.collector.to_string())
                .or_insert(CollectorHealth {
                    up: false,
                    reported: false,
                    unavailable: false,
                });
            match &report.outcome {
                Ok(readings) => {
                    let faults = readings
                        .iter()
                        .filter(|r| matches!(r, Reading::DeviceFault { .. }))
                        .count();
                    let good = readings.len() - faults;
                    health.up = faults == 0 || good > 0;
                    health.reported = true;
                    health.unavailable = false;
                    if faults > 0 {
                        *self
                            .counters
                            .collector_errors
                            .entry(report.collector.to_string())
                            .or_default() += faults as u64;
                    }
                    for r in readings {
                        match r {
                            Reading::Gpu(g) => {
                                seen.insert(g.uuid.clone());
                                let (e, money, carbon, span) = self.ingest_gpu(tick, g);
                                if span > 0.0 {
                                    power_w += e.0 * self.cfg.pue / span;
                                    *energy_rate.entry(Component::Energy).or_default() +=
                                        money / span;
                                    *energy_rate.entry(Component::Carbon).or_default() +=
                                        carbon / span;
                                }
                                gpu_energy_this_tick.insert(g.uuid.clone(), e.0);
                                facility_joules += e.0 * self.cfg.pue;
                            }
                            Reading::Host(h) => {
                                host_energy = Some(self.ingest_host(tick, h));
                            }
                            Reading::DeviceFault { .. } => {}
                        }
                    }
                }
                Err(SampleError::Unavailable(_)) => {
                    health.up = false;
                    health.unavailable = true;
                }
                Err(SampleError::Failed(_)) => {
                    health.up = false;
                    *self
                        .counters
                        .collector_errors
                        .entry(report.collector.to_string())
                        .or_default() += 1;
                }
            }
        }

        // GPUs that did not answer: count their gap once it exceeds max_gap.
        for (uuid, st) in self.gpus.iter_mut() {
            if seen.contains(uuid) {
                continue;
            }
            st.present = false;
            let since = st.gap_mark.or(st.meter.last_mono());
            if let Some(since) = since {
                if tick.mono - since > self.cfg.max_gap.0 || st.gap_mark.is_some() {
                    let gap = tick.mono - since;
                    if gap > 0.0 {
                        self.counters
                            .unaccounted_seconds
                            .entry(uuid.clone())
                            .or_default()
                            .add(gap);
                    }
                    st.gap_mark = Some(tick.mono);
                    st.meter.reset();
                }
            }
        }

        // Who shares the host's energy and the fixed costs.
        // Before the GPU collector has reported (boot, NVML not up yet), the
        // GPUs the state already knows keep their share; `none` is for nodes
        // that have never shown a GPU.
        let sharers: Vec<String> = if !self.gpus.is_empty() {
            self.gpus.keys().cloned().collect()
        } else if !self.counters.gpu_energy_joules.is_empty() {
            self.counters.gpu_energy_joules.keys().cloned().collect()
        } else {
            vec![NO_GPU.to_string()]
        };
        let weights: Vec<f64> = sharers
            .iter()
            .map(|u| gpu_energy_this_tick.get(u).copied().unwrap_or(0.0))
            .collect();
        let share = shares(self.cfg.share_key, &weights);

        if let Some((e, from, span)) = host_energy {
            let fe = Joules(e.0 * self.cfg.pue);
            facility_joules += fe.0;
            let money = self.cfg.tariff.cost(fe, from, tick.wall);
            if span > 0.0 {
                power_w += fe.0 / span;
                *energy_rate.entry(Component::Energy).or_default() += money.0 / span;
            }
            for (u, s) in sharers.iter().zip(&share) {
                self.spread(u, fe.0 * s, |r, j| r.facility_energy_joules.add(j));
                self.spread(u, e.0 * s, |r, j| r.host_energy_joules.add(j));
                self.book(u, Component::Energy, money.0 * s);
            }
            let split: Vec<(&str, f64)> = sharers
                .iter()
                .map(String::as_str)
                .zip(share.iter().copied())
                .collect();
            let carbon = self.emit(&split, fe, from, tick.wall);
            if span > 0.0 {
                *energy_rate.entry(Component::Carbon).or_default() += carbon / span;
            }
        }

        // Fixed costs accrue with time, whether or not any device answered.
        // After a restart the downtime since the last checkpointed tick is
        // accrued too: hardware depreciates while roimon is stopped.
        let fixed_dt = match (prev, self.counters.last_wall) {
            (Some(_), _) => dt,
            (None, Some(w)) if tick.wall > w => (tick.wall - w).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        if prev.is_none() && fixed_dt > 0.0 {
            self.downtime = Some(fixed_dt);
            // The downtime had no readings: visible as unaccounted time for
            // every device the state knows, not silently skipped.
            let mut devices: Vec<String> =
                self.counters.gpu_energy_joules.keys().cloned().collect();
            if !self.counters.host_energy_joules.is_empty() {
                devices.push("host".into());
            }
            for d in devices {
                self.counters
                    .unaccounted_seconds
                    .entry(d)
                    .or_default()
                    .add(fixed_dt);
            }
        }
        if fixed_dt > 0.0 {
            for (c, rate) in self.cfg.fixed.rates() {
                let money = rate * fixed_dt;
                if money <= 0.0 {
                    continue;
                }
                for (u, s) in sharers.iter().zip(&share) {
                    self.book(u, c, money * s);
                }
            }
        }

        if facility_joules > 0.0 {
            self.counters.facility_energy_joules.add(facility_joules);
        }
        if dt > 0.0 {
            // Energy-driven components at the rate of the span their energy
            // covers; fixed costs at their configured rate.
            let fixed: BTreeMap<Component, f64> = self.cfg.fixed.rates().into_iter().collect();
            self.rates = Component::ALL
                .iter()
                .map(|c| {
                    let r = energy_rate.get(c).copied().unwrap_or(0.0)
                        + fixed.get(c).copied().unwrap_or(0.0).max(0.0);
                    (*c, r)
                })
                .collect();
            self.facility_power = power_w;
            let (_, basis) = self.cfg.tariff.price_basis_at(tick.wall);
            self.counters
                .priced_seconds
                .entry(basis.label().to_string())
                .or_default()
                .add(dt);
        }
        // Every sharer has its row from the first tick (at 0), so the first
        // scrape already shows every attributed series.
        for u in &sharers {
            self.touch_rows(u);
        }
        // A state created while the clock was ahead began no later than now.
        let created = self.counters.created.get_or_insert(tick.wall);
        if *created > tick.wall {
            *created = tick.wall;
        }
        self.counters.last_wall = Some(tick.wall);
        self.last = Some(tick);
        // The windows read the counters they are part of: take them out
        // for the call.
        let mut windows = std::mem::take(&mut self.counters.windows);
        windows.observe(tick.wall, &self.counters);
        self.counters.windows = windows;
    }

    /// Book money to a GPU and to the node total, so the node total is
    /// exactly the sum of what was attributed. Negative money (energy bought at
    /// a negative price) is booked as a credit: counters never go backwards.
    fn book(&mut self, uuid: &str, c: Component, money: f64) {
        if !money.is_finite() || money == 0.0 {
            return;
        }
        if money > 0.0 {
            self.spread(uuid, money, |r, m| r.cost.entry(c).or_default().add(m));
            self.counters.cost.entry(c).or_default().add(money);
        } else {
            self.spread(uuid, -money, |r, m| r.credit.entry(c).or_default().add(m));
            self.counters.credit.entry(c).or_default().add(-money);
        }
    }

    fn wall_at(tick: Tick, mono: f64) -> DateTime<Utc> {
        let back = tick.mono - mono;
        if back <= 0.0 {
            return tick.wall;
        }
        tick.wall - Duration::nanoseconds((back * 1e9) as i64)
    }

    /// Book one GPU's reading; returns the energy added, its energy cost, its
    /// carbon cost and the seconds the energy covers.
    fn ingest_gpu(&mut self, tick: Tick, g: &GpuReading) -> (Joules, f64, f64, f64) {
        let max_gap = self.cfg.max_gap;
        let st = self.gpus.entry(g.uuid.clone()).or_insert_with(|| GpuState {
            meter: EnergyMeter::default(),
            latest: g.clone(),
            gap_mark: None,
            present: true,
        });
        st.latest = g.clone();
        st.present = true;
        let gap_since = st.gap_mark.take();
        let d = st
            .meter
            .update(tick.mono, g.energy_counter, g.power, max_gap);
        let mut unaccounted = d.unaccounted.0;
        if let Some(since) = gap_since {
            unaccounted += (tick.mono - since).max(0.0);
        }
        if unaccounted > 0.0 {
            self.counters
                .unaccounted_seconds
                .entry(g.uuid.clone())
                .or_default()
                .add(unaccounted);
        }
        if d.counter_reset {
            *self
                .counters
                .counter_resets
                .entry(g.uuid.clone())
                .or_default() += 1;
        }
        if d.energy.0 > 0.0 {
            self.counters
                .gpu_energy_joules
                .entry(g.uuid.clone())
                .or_default()
                .add(d.energy.0);
            let facility = Joules(d.energy.0 * self.cfg.pue);
            self.spread(&g.uuid, facility.0, |r, j| r.facility_energy_joules.add(j));
            self.spread(&g.uuid, d.energy.0, |r, j| r.gpu_energy_joules.add(j));
            let money: Money =
                self.cfg
                    .tariff
                    .cost(facility, Self::wall_at(tick, d.from_mono), tick.wall);
            self.book(&g.uuid, Component::Energy, money.0);
            let carbon = self.emit(
                &[(g.uuid.as_str(), 1.0)],
                facility,
                Self::wall_at(tick, d.from_mono),
                tick.wall,
            );
            (d.energy, money.0, carbon, tick.mono - d.from_mono)
        } else {
            self.counters
                .gpu_energy_joules
                .entry(g.uuid.clone())
                .or_default();
            (d.energy, 0.0, 0.0, 0.0)
        }
    }

    /// Book the host's reading; returns its energy, the interval start and
    /// the seconds the energy covers.
    fn ingest_host(&mut self, tick: Tick, h: &HostReading) -> (Joules, DateTime<Utc>, f64) {
        let d = self
            .host_meter
            .update(tick.mono, h.energy_counter, h.power, self.cfg.max_gap);
        self.host = Some(h.clone());
        if d.counter_reset {
            *self
                .counters
                .host_counter_resets
                .entry(h.source)
                .or_default() += 1;
        }
        if d.unaccounted.0 > 0.0 {
            self.counters
                .unaccounted_seconds
                .entry("host".into())
                .or_default()
                .add(d.unaccounted.0);
        }
        let acc = self
            .counters
            .host_energy_joules
            .entry(h.source)
            .or_default();
        acc.add(d.energy.0);
        (
            d.energy,
            Self::wall_at(tick, d.from_mono),
            tick.mono - d.from_mono,
        )
    }

    /// A detached view of everything, for exporters.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(self.counters.clone())
    }

    /// A snapshot carrying `counters` instead of the live ones (the daemon
    /// publishes the last checkpointed counters).
    pub fn snapshot_with(&self, counters: Counters) -> Snapshot {
        let scores = self.scores();
        let at = self.last.map(|t| t.wall);
        let now = at.unwrap_or_else(|| self.counters.last_wall.unwrap_or_default());
        let (price, basis) = self.cfg.tariff.price_basis_at(now);
        let known_until = match &self.cfg.tariff {
            Tariff::Slots { slots, .. } => slots.last().map(|s| s.end),
            _ => None,
        };
        let age_seconds = self.price_fetched_at.map_or(0.0, |f| {
            ((now - f).num_milliseconds() as f64 / 1000.0).max(0.0)
        });
        let gpus = self
            .gpus
            .iter()
            .map(|(u, st)| {
                (
                    u.clone(),
                    GpuView {
                        reading: st.latest.clone(),
                        owner: self.owner_of(u),
                        present: st.present,
                    },
                )
            })
            .collect();
        Snapshot {
            at,
            gpus,
            host: self.host.clone(),
            pue: self.cfg.pue,
            price: PriceView {
                price_per_kwh: price.0,
                currency: self.cfg.currency.clone(),
                source: self.cfg.price_source.clone(),
                fallback: basis != Basis::Source,
                basis,
                age_seconds,
                known_until,
            },
            counters,
            cost_rate_per_sec: self.rates.clone(),
            facility_power_watts: self.facility_power,
            collectors: self.collectors.clone(),
            // Gauges: from the live counters and the live boundaries (a
            // published counter may be a checkpoint behind them).
            windows: self
                .counters
                .windows
                .views(now, &self.counters, &self.roi_weights, &scores),
            scores,
            targets: self.targets.clone(),
            budgets: Vec::new(),
            unmatched_owners: if self.gpus.is_empty() {
                Vec::new()
            } else {
                let mut v: Vec<String> = self
                    .cfg
                    .owners
                    .keys()
                    .filter(|u| !self.gpus.contains_key(*u))
                    .cloned()
                    .collect();
                v.sort();
                v
            },
            carbon: self.carbon.as_ref().map(|c| {
                let (g, basis) = c.intensity.price_basis_at(now);
                CarbonView {
                    grams_per_kwh: g.0,
                    basis,
                    source: c.source.clone(),
                    age_seconds: c.fetched_at.map_or(0.0, |f| {
                        ((now - f).num_milliseconds() as f64 / 1000.0).max(0.0)
                    }),
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::HostPowerSource;
    use crate::units::{PricePerKwh, Watts};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn cfg(share_key: ShareKey) -> EngineConfig {
        let mut owners = HashMap::new();
        owners.insert(
            "GPU-a".to_string(),
            Owner {
                team: "search".into(),
                workload: "llm".into(),
            },
        );
        EngineConfig {
            currency: "EUR".into(),
            pue: 1.5,
            tariff: Tariff::Static(PricePerKwh(0.20)),
            price_source: "static".into(),
            fixed: FixedCosts {
                capex_per_sec: 0.01,
                maintenance_per_sec: 0.002,
                staff_per_sec: 0.001,
            },
            share_key,
            owners,
            max_gap: Seconds(5.0),
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
    }

    fn tick(s: f64) -> Tick {
        Tick {
            wall: t0() + Duration::milliseconds((s * 1000.0) as i64),
            mono: s,
        }
    }

    fn gpu(uuid: &str, counter_j: Option<f64>, power: f64) -> Reading {
        Reading::Gpu(GpuReading {
            index: 0,
            uuid: uuid.into(),
            name: "Test GPU".into(),
            power: Some(Watts(power)),
            energy_counter: counter_j.map(Joules),
            utilization: Some(0.5),
            memory_used_bytes: Some(1),
            memory_total_bytes: Some(2),
            temperature_celsius: Some(50.0),
            power_limit: Some(Watts(700.0)),
            processes: None,
        })
    }

    fn host(counter_j: f64) -> Reading {
        Reading::Host(HostReading {
            cpu_utilization: Some(0.25),
            memory_used_bytes: Some(1 << 30),
            source: HostPowerSource::Rapl,
            power: Some(Watts(100.0)),
            energy_counter: Some(Joules(counter_j)),
        })
    }

    fn report(readings: Vec<Reading>) -> Vec<Report> {
        vec![Report {
            collector: "nvml",
            outcome: Ok(readings),
        }]
    }

    /// The one row of `uuid` (tests that do not change owners).
    fn only_row<'a>(c: &'a Counters, uuid: &str) -> &'a Row {
        let mut it = c.rows.iter().filter(|(k, _)| k.gpu_uuid == uuid);
        let (_, r) = it.next().expect("a row for the GPU");
        assert!(it.next().is_none(), "one row per GPU without owner changes");
        r
    }

    fn total(m: &BTreeMap<Component, Accumulator>) -> f64 {
        m.values().map(|a| a.total()).sum()
    }

    #[test]
    fn rows_carry_gpu_and_host_energy_and_the_priced_seconds() {
        let mut e = Engine::new(cfg(ShareKey::Energy), None);
        e.ingest(
            tick(0.0),
            &report(vec![
                gpu("GPU-a", Some(1000.0), 300.0),
                gpu("GPU-b", Some(0.0), 100.0),
                host(0.0),
            ]),
        );
        e.ingest(
            tick(4.0),
            &report(vec![
                gpu("GPU-a", Some(4000.0), 300.0),
                gpu("GPU-b", Some(1000.0), 100.0),
                host(1000.0),
            ]),
        );
        let c = e.counters();
        let a = only_row(c, "GPU-a");
        assert_eq!(a.gpu_energy_joules.total(), 3000.0);
        // By energy: 3/4 of the host's 1000 J.
        assert!((a.host_energy_joules.total() - 750.0).abs() < 1e-9);
        let host_rows: f64 = c.rows.values().map(|r| r.host_energy_joules.total()).sum();
        assert!((host_rows - 1000.0).abs() < 1e-9);
        // A static price covers every second.
        assert_eq!(c.priced_seconds["source"].total(), 4.0);
        assert!(!c.priced_seconds.contains_key("fallback"));
    }

    #[test]
    fn energy_cost_pue_and_attribution_exact() {
        let mut e = Engine::new(cfg(ShareKey::Energy), None);
        e.ingest(
            tick(0.0),
            &report(vec![
                gpu("GPU-a", Some(1000.0), 300.0),
                gpu("GPU-b", Some(0.0), 100.0),
                host(0.0),
            ]),
        );
        // 4 s later: GPU-a used 3000 J, GPU-b 1000 J, host 1000 J.
        e.ingest(
            tick(4.0),
            &report(vec![
                gpu("GPU-a", Some(4000.0), 300.0),
                gpu("GPU-b", Some(1000.0), 100.0),
                host(1000.0),
            ]),
        );
        let c = e.counters();
        assert_eq!(c.gpu_energy_joules["GPU-a"].total(), 3000.0);
        assert_eq!(c.host_energy_joules[&HostPowerSource::Rapl].total(), 1000.0);
        assert!((c.facility_energy_joules.total() - 5000.0 * 1.5).abs() < 1e-9);
        // Energy cost: 7500 J = 7500/3.6e6 kWh at 0.20.
        let energy_cost = 7500.0 / 3.6e6 * 0.20;
        assert!((c.cost[&Component::Energy].total() - energy_cost).abs() < 1e-15);
        assert!((c.cost[&Component::Capex].total() - 0.04).abs() < 1e-12);
        // By energy: GPU-a gets 3/4 of the host share and of fixed costs.
        let a = &only_row(c, "GPU-a").cost;
        let a_energy = (3000.0 * 1.5 + 0.75 * 1000.0 * 1.5) / 3.6e6 * 0.20;
        assert!((a[&Component::Energy].total() - a_energy).abs() < 1e-15);
        assert!((a[&Component::Capex].total() - 0.03).abs() < 1e-12);
        // Attribution sums to the node total.
        let gpus: f64 = c.rows.values().map(|r| total(&r.cost)).sum();
        assert!((gpus - total(&c.cost)).abs() < 1e-12);
        // Owners: configured and unallocated.
        let s = e.snapshot();
        assert_eq!(s.gpus["GPU-a"].owner.team, "search");
        assert_eq!(s.gpus["GPU-b"].owner, Owner::unallocated());
        assert!((s.cost_rate_per_sec[&Component::Capex] - 0.01).abs() < 1e-12);
        assert!((s.facility_power_watts - 1875.0).abs() < 1e-9);
    }

    #[test]
    fn no_gpu_node_books_everything_to_none() {
        let mut e = Engine::new(cfg(ShareKey::Equal), None);
        e.ingest(tick(0.0), &report(vec![host(0.0)]));
        e.ingest(tick(2.0), &report(vec![host(200.0)]));
        let c = e.counters();
        let keys: Vec<_> = c.rows.keys().collect();
        assert_eq!(keys, vec![&RowKey::new(NO_GPU, &Owner::unallocated())]);
        assert!((total(&only_row(c, NO_GPU).cost) - total(&c.cost)).abs() < 1e-15);
    }

    #[test]
    fn lost_gpu_counts_unaccounted_time_and_recovers() {
        let mut e = Engine::new(cfg(ShareKey::Equal), None);
        e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
        e.ingest(tick(1.0), &report(vec![gpu("GPU-a", Some(100.0), 100.0)]));
        let fault = || Reading::DeviceFault {
            device: "GPU-a".into(),
            message: "GPU is lost".into(),
        };
        for s in 2..=10 {
            e.ingest(tick(f64::from(s)), &report(vec![fault()]));
        }
        assert_eq!(e.counters().collector_errors["nvml"], 9);
        let s = e.snapshot();
        assert!(!s.gpus["GPU-a"].present);
        assert!(!s.collectors["nvml"].up);
        // Lost since t=1; counted once past the 5 s gap threshold: up to t=10.
        assert!((e.counters().unaccounted_seconds["GPU-a"].total() - 9.0).abs() < 1e-9);
        // Back at t=11 with a counter that moved a lot: not filled in.
        e.ingest(tick(11.0), &report(vec![gpu("GPU-a", Some(5000.0), 100.0)]));
        assert!((e.counters().unaccounted_seconds["GPU-a"].total() - 10.0).abs() < 1e-9);
        assert_eq!(e.counters().gpu_energy_joules["GPU-a"].total(), 100.0);
        e.ingest(tick(12.0), &report(vec![gpu("GPU-a", Some(5100.0), 100.0)]));
        assert_eq!(e.counters().gpu_energy_joules["GPU-a"].total(), 200.0);
        assert!(e.snapshot().collectors["nvml"].up);
    }

    #[test]
    fn failed_collector_counts_errors_and_fixed_costs_continue() {
        let mut e = Engine::new(cfg(ShareKey::Equal), None);
        e.register_collector("nvml");
        assert!(!e.ready());
        let failed = vec![Report {
            collector: "nvml",
            outcome: Err(SampleError::Failed("boom".into())),
        }];
        e.ingest(tick(0.0), &failed);
        e.ingest(tick(4.0), &failed);
        assert_eq!(e.counters().collector_errors["nvml"], 2);
        assert!((e.counters().cost[&Component::Capex].total() - 0.04).abs() < 1e-12);
        assert!(!e.ready());
        e.ingest(tick(5.0), &report(vec![]));
        assert!(e.ready());
    }

    #[test]
    fn resume_continues_counters_and_accrues_downtime_fixed_costs() {
        let mut e = Engine::new(cfg(ShareKey::Equal), None);
        e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
        e.ingest(tick(4.0), &report(vec![gpu("GPU-a", Some(1000.0), 100.0)]));
        let saved = e.counters().clone();
        // Restart 100 s later, driver counter reset to a small value.
        let mut e2 = Engine::new(cfg(ShareKey::Equal), Some(saved));
        let later = Tick {
            wall: t0() + Duration::seconds(104),
            mono: 0.0,
        };
        e2.ingest(later, &report(vec![gpu("GPU-a", Some(5.0), 100.0)]));
        assert_eq!(e2.counters().gpu_energy_joules["GPU-a"].total(), 1000.0);
        assert!((e2.counters().cost[&Component::Capex].total() - 1.04).abs() < 1e-9);
        // The 100 s of downtime are visible as unaccounted time for the GPU.
        assert!((e2.counters().unaccounted_seconds["GPU-a"].total() - 100.0).abs() < 1e-9);

        // A restart where NVML has not come up yet: the known GPU keeps the
        // fixed costs, nothing lands on the `none` row.
        let saved = e2.counters().clone();
        let mut e3 = Engine::new(cfg(ShareKey::Equal), Some(saved));
        e3.ingest(
            Tick {
                wall: t0() + Duration::seconds(110),
                mono: 0.0,
            },
            &[Report {
                collector: "nvml",
                outcome: Err(SampleError::Failed("not yet".into())),
            }],
        );
        assert!(!e3.counters().rows.keys().any(|k| k.gpu_uuid == NO_GPU));
        assert!(
            (only_row(e3.counters(), "GPU-a").cost[&Component::Capex].total() - 1.10).abs() < 1e-9
        );
    }

    #[test]
    fn negative_price_becomes_credit_not_a_falling_counter() {
        let mut c = cfg(ShareKey::Equal);
        c.tariff = Tariff::Slots {
            slots: vec![crate::price::Slot {
                start: t0(),
                end: t0() + Duration::hours(1),
                price: PricePerKwh(-0.10),
            }],
            fallback: PricePerKwh(0.2),
            last_known: false,
        };
        c.fixed = FixedCosts::default();
        c.max_gap = Seconds(1000.0);
        let mut e = Engine::new(c, None);
        e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
        e.ingest(
            tick(400.0),
            &report(vec![gpu("GPU-a", Some(3.6e6), 9000.0)]),
        );
        let c = e.counters();
        assert!(
            c.cost
                .get(&Component::Energy)
                .is_none_or(|a| a.total() == 0.0)
        );
        assert!((c.credit[&Component::Energy].total() - 0.15).abs() < 1e-12);
    }

    #[test]
    fn a_new_schedule_prices_from_the_next_tick_and_the_snapshot_says_what_it_rests_on() {
        let mut c = cfg(ShareKey::Equal);
        c.fixed = FixedCosts::default();
        c.pue = 1.0;
        c.max_gap = Seconds(10_000.0);
        let mut e = Engine::new(c, None);
        e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 3600.0)]));
        // 1 kWh at the static 0.20.
        e.ingest(
            tick(1000.0),
            &report(vec![gpu("GPU-a", Some(3.6e6), 3600.0)]),
        );
        // A fetched schedule: 0.50 for the first 20 s after t0, nothing after.
        e.set_tariff(
            Tariff::Slots {
                slots: vec![crate::price::Slot {
                    start: t0(),
                    end: t0() + Duration::seconds(2000),
                    price: PricePerKwh(0.50),
                }],
                fallback: PricePerKwh(0.30),
                last_known: false,
            },
            Some(t0() - Duration::seconds(100)),
        );
        e.note_source("price", true);
        // 1000 s..3000 s: 1 kWh, half in the slot (0.50), half after it (fallback 0.30).
        e.ingest(
            tick(3000.0),
            &report(vec![gpu("GPU-a", Some(7.2e6), 3600.0)]),
        );
        let energy = e.counters().cost[&Component::Energy].total();
        assert!((energy - (0.20 + 0.25 + 0.15)).abs() < 1e-12, "{energy}");
        let snap = e.snapshot();
        assert_eq!(snap.price.basis, Basis::Fallback);
        assert!(snap.price.fallback);
        assert_eq!(snap.price.price_per_kwh, 0.30);
        assert_eq!(snap.price.age_seconds, 3100.0);
        assert_eq!(snap.price.known_until, Some(t0() + Duration::seconds(2000)));
        // A failing feed counts errors without blocking readiness.
        e.note_source("price", false);
        e.note_source("price", false);
        assert_eq!(e.counters().collector_errors["price"], 2);
        assert!(!e.snapshot().collectors["price"].up);
        assert!(e.ready());
    }

    #[test]
    fn emissions_follow_facility_energy_and_are_attributed_like_cost() {
        let mut c = cfg(ShareKey::Energy);
        c.fixed = FixedCosts::default();
        c.max_gap = Seconds(10_000.0);
        let mut e = Engine::new(c, None);
        // 300 g/kWh for the first 1000 s, then 600 g/kWh; 50 EUR per tonne.
        e.set_carbon(Some(Carbon {
            intensity: Tariff::Slots {
                slots: vec![
                    crate::price::Slot {
                        start: t0(),
                        end: t0() + Duration::seconds(1000),
                        price: PricePerKwh(300.0),
                    },
                    crate::price::Slot {
                        start: t0() + Duration::seconds(1000),
                        end: t0() + Duration::hours(1),
                        price: PricePerKwh(600.0),
                    },
                ],
                fallback: PricePerKwh(0.0),
                last_known: true,
            },
            price_per_tonne: 50.0,
            source: "test".into(),
            fetched_at: Some(t0()),
        }));
        e.ingest(
            tick(0.0),
            &report(vec![
                gpu("GPU-a", Some(0.0), 1e5),
                gpu("GPU-b", Some(0.0), 1e5),
                host(0.0),
            ]),
        );
        // 2000 s: GPU-a 2.4e6 J, GPU-b 1.2e6 J, host 0.4e6 J; × PUE 1.5 = 6e6 J
        // facility = 5/3 kWh, half at 300 g and half at 600 g → 750 g.
        e.ingest(
            tick(2000.0),
            &report(vec![
                gpu("GPU-a", Some(2.4e6), 1e5),
                gpu("GPU-b", Some(1.2e6), 1e5),
                host(0.4e6),
            ]),
        );
        let k = e.counters();
        let total = k.emissions_grams.total();
        assert!((total - 750.0).abs() < 1e-9, "{total}");
        let by_gpu: f64 = k.rows.values().map(|r| r.emissions_grams.total()).sum();
        assert!((by_gpu - total).abs() < 1e-9);
        // GPU-a: its own 3.6e6 J facility + 2/3 of the host's 0.6e6 J = 4e6 J = 500 g.
        assert!((only_row(k, "GPU-a").emissions_grams.total() - 500.0).abs() < 1e-9);
        // Carbon cost: 750 g × 50 EUR/t = 0.0375 EUR, on the node and the rows.
        let carbon = k.cost[&Component::Carbon].total();
        assert!((carbon - 0.0375).abs() < 1e-12, "{carbon}");
        let rows: f64 = k
            .rows
            .values()
            .filter_map(|r| r.cost.get(&Component::Carbon))
            .map(|a| a.total())
            .sum();
        assert!((rows - carbon).abs() < 1e-12);
        let v = e.snapshot().carbon.unwrap();
        assert_eq!(v.grams_per_kwh, 600.0);
        assert_eq!(v.basis, Basis::Source);
        assert_eq!(v.age_seconds, 2000.0);
    }

    fn with_owner(mut c: EngineConfig, uuid: &str, team: &str) -> EngineConfig {
        c.owners.insert(
            uuid.to_string(),
            Owner {
                team: team.into(),
                workload: "w".into(),
            },
        );
        c
    }

    /// Σ over rows of every attributed figure equals the node's.
    fn assert_rows_add_up(c: &Counters) {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12);
        for comp in Component::ALL {
            let node = c.cost.get(&comp).map_or(0.0, Accumulator::total);
            let rows: f64 = c
                .rows
                .values()
                .filter_map(|r| r.cost.get(&comp))
                .map(Accumulator::total)
                .sum();
            assert!(close(node, rows), "{comp:?}: node {node} rows {rows}");
            let node = c.credit.get(&comp).map_or(0.0, Accumulator::total);
            let rows: f64 = c
                .rows
                .values()
                .filter_map(|r| r.credit.get(&comp))
                .map(Accumulator::total)
                .sum();
            assert!(
                close(node, rows),
                "credit {comp:?}: node {node} rows {rows}"
            );
        }
        let rows: f64 = c
            .rows
            .values()
            .map(|r| r.facility_energy_joules.total())
            .sum();
        assert!(close(c.facility_energy_joules.total(), rows));
    }

    #[test]
    fn an_owner_change_starts_a_new_row_and_the_old_one_stops_growing() {
        let base = cfg(ShareKey::Equal);
        let mut e = Engine::new(with_owner(base.clone(), "GPU-a", "vision"), None);
        e.ingest(
            tick(0.0),
            &report(vec![gpu("GPU-a", Some(0.0), 100.0), host(0.0)]),
        );
        e.ingest(
            tick(4.0),
            &report(vec![gpu("GPU-a", Some(400.0), 100.0), host(400.0)]),
        );
        let saved = e.counters().clone();
        let vision = RowKey::new(
            "GPU-a",
            &Owner {
                team: "vision".into(),
                workload: "w".into(),
            },
        );
        let before = saved.rows[&vision].clone();
        assert!(before.cost_total() > 0.0);
        assert_rows_add_up(&saved);

        // Restart 10 s later with the GPU moved to `nlp`.
        let mut e2 = Engine::new(with_owner(base, "GPU-a", "nlp"), Some(saved));
        let t = |s: f64| Tick {
            wall: t0() + Duration::milliseconds((s * 1000.0) as i64),
            mono: s - 14.0,
        };
        e2.ingest(
            t(14.0),
            &report(vec![gpu("GPU-a", Some(500.0), 100.0), host(500.0)]),
        );
        e2.ingest(
            t(16.0),
            &report(vec![gpu("GPU-a", Some(700.0), 100.0), host(700.0)]),
        );
        let c = e2.counters();
        // The old row did not move; the new one holds everything since.
        assert_eq!(c.rows[&vision], before);
        let nlp = RowKey::new(
            "GPU-a",
            &Owner {
                team: "nlp".into(),
                workload: "w".into(),
            },
        );
        // Downtime (10 s) and 2 s running: 12 s of capex at 0.01/s.
        assert!((c.rows[&nlp].cost[&Component::Capex].total() - 0.12).abs() < 1e-12);
        // 200 J GPU + 200 J host, × PUE 1.5, at 0.20/kWh.
        let energy = 400.0 * 1.5 / 3.6e6 * 0.20;
        assert!((c.rows[&nlp].cost[&Component::Energy].total() - energy).abs() < 1e-15);
        assert!((c.rows[&nlp].facility_energy_joules.total() - 600.0).abs() < 1e-9);
        assert_rows_add_up(c);
        assert_eq!(e2.take_downtime(), Some(10.0));
        assert_eq!(e2.take_downtime(), None);
    }

    #[test]
    fn a_new_row_exists_with_every_component_at_zero_from_the_first_tick() {
        let mut c = cfg(ShareKey::Equal);
        c.fixed = FixedCosts::default();
        let mut e = Engine::new(c, None);
        e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
        let row = only_row(e.counters(), "GPU-a");
        for comp in Component::ALL {
            assert_eq!(row.cost[&comp].total(), 0.0);
        }
        assert_eq!(row.credit[&Component::Energy].total(), 0.0);
    }

    #[test]
    fn legacy_checkpoints_move_to_the_owner_configured_at_upgrade_once() {
        // A checkpoint as written before rows were keyed by owner.
        let legacy = r#"{"currency":"EUR","last_wall":"2026-03-02T12:00:00Z",
            "cost":{"energy":{"sum":3.0},"capex":{"sum":2.0}},
            "gpu_cost":{"GPU-a":{"energy":{"sum":1.0},"capex":{"sum":1.5}},"GPU-b":{"energy":{"sum":2.0},"capex":{"sum":0.5}}},
            "credit":{"energy":{"sum":0.25}},
            "gpu_credit":{"GPU-b":{"energy":{"sum":0.25}}},
            "emissions_grams":{"sum":9.0},
            "facility_energy_joules":{"sum":900.0},
            "gpu_emissions_grams":{"GPU-a":{"sum":4.0},"GPU-b":{"sum":5.0}}}"#;
        let mut c: Counters = serde_json::from_str(legacy).unwrap();
        let cfg = cfg(ShareKey::Equal);
        let owner_of = |u: &str| {
            cfg.owners
                .get(u)
                .cloned()
                .unwrap_or_else(Owner::unallocated)
        };
        assert_eq!(c.migrate_legacy(owner_of), 2);
        let a = &c.rows[&RowKey::new(
            "GPU-a",
            &Owner {
                team: "search".into(),
                workload: "llm".into(),
            },
        )];
        assert_eq!(a.cost[&Component::Capex].total(), 1.5);
        assert_eq!(a.emissions_grams.total(), 4.0);
        let b = &c.rows[&RowKey::new("GPU-b", &Owner::unallocated())];
        assert_eq!(b.credit[&Component::Energy].total(), 0.25);
        assert_eq!(b.cost_total(), 2.5);
        // Facility energy was not kept per GPU: shared by energy cost (1:2).
        assert_eq!(a.facility_energy_joules.total(), 300.0);
        assert_eq!(b.facility_energy_joules.total(), 600.0);
        assert_eq!(c.validate(t0() + Duration::hours(1)), Ok(()));
        // Node totals untouched; rows add up to them.
        assert_eq!(c.cost[&Component::Energy].total(), 3.0);
        let rows: f64 = c.rows.values().map(Row::cost_total).sum();
        assert_eq!(rows, 5.0);
        // Written back without the legacy maps: a second load migrates nothing.
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("gpu_cost"), "{json}");
        let mut again: Counters = serde_json::from_str(&json).unwrap();
        assert_eq!(again.migrate_legacy(owner_of), 0);
        assert_eq!(again, c);
    }

    #[test]
    fn impossible_checkpoints_are_refused_naming_the_field() {
        let now = t0();
        let ok = Counters {
            currency: "EUR".into(),
            last_wall: Some(now - Duration::hours(1)),
            created: Some(now - Duration::days(3)),
            ..Default::default()
        };
        assert_eq!(ok.validate(now), Ok(()));
        let mut c = ok.clone();
        c.last_wall = Some(DateTime::<Utc>::from_timestamp(0, 0).unwrap());
        assert_eq!(c.validate(now).unwrap_err().field, "last_wall");
        // A last tick in the future is a clock corrected while roimon was
        // stopped, not a broken checkpoint: the daemon goes on from now.
        let mut c = ok.clone();
        c.last_wall = Some(now + Duration::days(2));
        assert_eq!(c.validate(now), Ok(()));
        let mut c = ok.clone();
        c.last_wall = Some(now - Duration::days(4));
        assert!(
            c.validate(now)
                .unwrap_err()
                .problem
                .contains("before the state was created")
        );
        let mut c = ok.clone();
        c.cost
            .insert(Component::Capex, Accumulator::from_total(-1.0));
        assert_eq!(c.validate(now).unwrap_err().field, "cost.capex");
        let mut c = ok.clone();
        c.facility_energy_joules = Accumulator::from_total(f64::INFINITY);
        assert_eq!(c.validate(now).unwrap_err().field, "facility_energy_joules");
        // Rows that do not add up to the node totals.
        let mut c = ok.clone();
        c.cost
            .insert(Component::Capex, Accumulator::from_total(2.0));
        let mut row = Row::default();
        row.cost
            .insert(Component::Capex, Accumulator::from_total(1.0));
        c.rows
            .insert(RowKey::new("GPU-y", &Owner::unallocated()), row);
        let e = c.validate(now).unwrap_err();
        assert_eq!(e.field, "cost.capex");
        assert!(e.problem.contains("add up"), "{e}");
        let mut c = ok;
        let mut row = Row::default();
        row.cost
            .insert(Component::Energy, Accumulator::from_total(f64::NAN));
        c.rows
            .insert(RowKey::new("GPU-x", &Owner::unallocated()), row);
        assert_eq!(
            c.validate(now).unwrap_err().field,
            "rows[GPU-x/unallocated/unallocated].cost.energy"
        );
    }

    #[test]
    fn every_figure_is_checked_and_named() {
        let now = t0();
        let ok = Counters {
            currency: "EUR".into(),
            last_wall: Some(now - Duration::hours(1)),
            created: Some(now - Duration::days(3)),
            ..Default::default()
        };
        let key = RowKey::new("GPU-x", &Owner::unallocated());
        type Spoil<'a> = Box<dyn Fn(&mut Counters) + 'a>;
        let cases: Vec<(&str, Spoil)> = vec![
            (
                "rows[GPU-x/unallocated/unallocated].gpu_energy_joules",
                Box::new(|c| {
                    c.rows.entry(key.clone()).or_default().gpu_energy_joules =
                        Accumulator::from_total(-3.0)
                }),
            ),
            (
                "rows[GPU-x/unallocated/unallocated].host_energy_joules",
                Box::new(|c| {
                    c.rows.entry(key.clone()).or_default().host_energy_joules =
                        Accumulator::from_total(f64::INFINITY)
                }),
            ),
            (
                "priced_seconds.source",
                Box::new(|c| {
                    c.priced_seconds
                        .insert("source".into(), Accumulator::from_total(f64::NAN));
                }),
            ),
            (
                "value_total",
                Box::new(|c| c.value_total = Accumulator::from_total(1e300)),
            ),
            (
                "value[t/w/push].models.m.output_tokens",
                Box::new(|c| {
                    let r = c
                        .value
                        .entry(ValueKey {
                            team: "t".into(),
                            workload: "w".into(),
                            source: "push".into(),
                        })
                        .or_default();
                    r.models.entry("m".into()).or_default().output_tokens =
                        Accumulator::from_total(-1.0);
                }),
            ),
            (
                "kpis[0](t/w/precision).score",
                Box::new(|c| {
                    let k = Kpi {
                        team: "t".into(),
                        workload: "w".into(),
                        indicator: "precision".into(),
                        score: f64::NAN,
                        at: None,
                    };
                    c.kpis.insert(k.key(), k);
                }),
            ),
            (
                "windows.1h.baseline_roi",
                Box::new(|c| {
                    c.windows.by_label.insert(
                        "1h".into(),
                        crate::window::WindowState {
                            seconds: 3600,
                            marks: Vec::new(),
                            baseline_roi: Some(f64::INFINITY),
                        },
                    );
                }),
            ),
            (
                "windows.1h.marks[0].value",
                Box::new(|c| {
                    let t = crate::window::Totals {
                        value: f64::NEG_INFINITY,
                        ..Default::default()
                    };
                    c.windows.by_label.insert(
                        "1h".into(),
                        crate::window::WindowState {
                            seconds: 3600,
                            marks: vec![(t0(), t)],
                            baseline_roi: None,
                        },
                    );
                }),
            ),
        ];
        for (field, spoil) in &cases {
            let mut c = ok.clone();
            spoil(&mut c);
            let e = c.validate(now).unwrap_err();
            assert_eq!(e.field, *field, "{e}");
            // Repair makes it resumable, says what it changed, and keeps
            // the sound figures.
            let said = c.repair(now);
            assert!(said.iter().any(|l| l.starts_with(field)), "{said:?}");
            assert_eq!(c.validate(now), Ok(()), "{field}");
            assert_eq!(c.currency, "EUR");
        }
    }

    #[test]
    fn repair_sets_node_totals_to_their_rows_and_keeps_sound_figures() {
        let now = t0();
        let mut c = Counters {
            currency: "EUR".into(),
            last_wall: Some(now),
            ..Default::default()
        };
        let mut good = Row::default();
        good.cost
            .insert(Component::Capex, Accumulator::from_total(2.0));
        let mut bad = Row::default();
        bad.cost
            .insert(Component::Capex, Accumulator::from_total(f64::INFINITY));
        c.rows
            .insert(RowKey::new("GPU-a", &Owner::unallocated()), good);
        c.rows
            .insert(RowKey::new("GPU-b", &Owner::unallocated()), bad);
        c.cost
            .insert(Component::Capex, Accumulator::from_total(f64::INFINITY));
        assert_eq!(c.validate(now).unwrap_err().field, "cost.capex");
        let said = c.repair(now);
        assert_eq!(c.validate(now), Ok(()));
        assert_eq!(c.cost[&Component::Capex].total(), 2.0);
        assert!(
            said.iter()
                .any(|l| l.starts_with("rows[GPU-b/unallocated/unallocated].cost.capex")),
            "{said:?}"
        );
        // Nothing to repair: nothing said, nothing changed.
        let before = c.clone();
        assert!(c.repair(now).is_empty());
        assert_eq!(c, before);
        // A last tick far in the future is refused and repaired.
        c.last_wall = Some(now + Duration::days(400));
        assert_eq!(c.validate(now).unwrap_err().field, "last_wall");
        assert!(c.repair(now)[0].starts_with("last_wall"));
        assert_eq!(c.validate(now), Ok(()));
    }

    #[test]
    fn power_and_rates_after_a_short_failure_cover_the_span_not_one_tick() {
        let mut c = cfg(ShareKey::Equal);
        c.max_gap = Seconds(10.0);
        let mut e = Engine::new(c, None);
        e.ingest(
            tick(0.0),
            &report(vec![gpu("GPU-a", Some(0.0), 100.0), host(0.0)]),
        );
        e.ingest(
            tick(1.0),
            &report(vec![gpu("GPU-a", Some(100.0), 100.0), host(100.0)]),
        );
        let failed = vec![Report {
            collector: "nvml",
            outcome: Err(SampleError::Failed("timeout".into())),
        }];
        e.ingest(tick(2.0), &failed);
        e.ingest(tick(3.0), &failed);
        // Back at 4 s: 300 J over the 3 s since the last reading (100 W).
        e.ingest(
            tick(4.0),
            &report(vec![gpu("GPU-a", Some(400.0), 100.0), host(400.0)]),
        );
        let s = e.snapshot();
        // (100 W GPU + 100 W host) × PUE 1.5, not 3 s of energy over 1 s.
        assert!(
            (s.facility_power_watts - 300.0).abs() < 1e-9,
            "{}",
            s.facility_power_watts
        );
        let energy_rate = 300.0 / 3.6e6 * 0.20;
        assert!((s.cost_rate_per_sec[&Component::Energy] - energy_rate).abs() < 1e-15);
        assert!((s.cost_rate_per_sec[&Component::Capex] - 0.01).abs() < 1e-15);
    }

    #[test]
    fn host_gauges_clear_while_the_host_collector_fails() {
        let mut e = Engine::new(cfg(ShareKey::Equal), None);
        let host_report = |r: Result<Vec<Reading>, SampleError>| {
            vec![Report {
                collector: "host",
                outcome: r,
            }]
        };
        e.ingest(tick(0.0), &host_report(Ok(vec![host(0.0)])));
        assert!(e.snapshot().host.is_some());
        e.ingest(
            tick(1.0),
            &host_report(Err(SampleError::Failed("sysfs gone".into()))),
        );
        assert_eq!(e.snapshot().host, None);
        e.ingest(tick(2.0), &host_report(Ok(vec![host(100.0)])));
        assert!(e.snapshot().host.is_some());
    }

    #[test]
    fn a_host_counter_reset_is_counted_and_its_derived_power_is_not_booked() {
        let mut c = cfg(ShareKey::Equal);
        c.fixed = FixedCosts::default();
        let mut e = Engine::new(c, None);
        let rapl = |counter: f64, watts: f64| {
            Reading::Host(HostReading {
                cpu_utilization: Some(0.25),
                memory_used_bytes: Some(1 << 30),
                source: HostPowerSource::Rapl,
                power: Some(Watts(watts)),
                energy_counter: Some(Joules(counter)),
            })
        };
        let hr = |r: Reading| {
            vec![Report {
                collector: "host",
                outcome: Ok(vec![r]),
            }]
        };
        e.ingest(tick(0.0), &hr(rapl(1000.0, 100.0)));
        e.ingest(tick(1.0), &hr(rapl(1100.0, 100.0)));
        // A reset read as a wrap: the collector derives ~131 kW from it.
        e.ingest(tick(2.0), &hr(rapl(131_072.0 + 1100.0, 131_072.0)));
        let c = e.counters();
        assert_eq!(c.host_counter_resets[&HostPowerSource::Rapl], 1);
        assert_eq!(c.host_energy_joules[&HostPowerSource::Rapl].total(), 100.0);
        assert!((c.unaccounted_seconds["host"].total() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn owners_that_match_no_gpu_are_listed_once_gpus_are_seen() {
        let mut c = cfg(ShareKey::Equal);
        c.owners.insert("gpu-A".into(), Owner::unallocated());
        let mut e = Engine::new(c, None);
        assert!(e.snapshot().unmatched_owners.is_empty(), "nothing seen yet");
        e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 1.0)]));
        assert_eq!(e.snapshot().unmatched_owners, vec!["gpu-A".to_string()]);
    }

    #[test]
    fn value_is_owned_like_cost_and_windows_set_it_against_unweighted_money() {
        let mut c = cfg(ShareKey::Equal);
        c.pue = 1.0;
        c.max_gap = Seconds(1000.0);
        c.fixed = FixedCosts {
            capex_per_sec: 0.01,
            ..Default::default()
        };
        let mut e = Engine::new(c, None);
        e.set_roi(
            &[("1h".into(), 3600)],
            crate::window::RoiWeights {
                benefit: [("precision".to_string(), 1.0)].into(),
                cost: [(Component::Capex, 0.5)].into(),
            },
            vec![Kpi {
                team: "search".into(),
                workload: "llm".into(),
                indicator: "precision".into(),
                score: 0.8,
                at: None,
            }],
        );
        e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 100.0)]));
        // Tokens and money of one scrape, half to each of two owners.
        let (a, b) = (
            Owner {
                team: "search".into(),
                workload: "llm".into(),
            },
            Owner::unallocated(),
        );
        e.book_value(
            &[(a.clone(), 0.5), (b, 0.5)],
            "vllm-1",
            3.0,
            &[ModelDelta {
                model: "opt".into(),
                input_tokens: 1000.0,
                cached_input_tokens: 400.0,
                output_tokens: 2000.0,
                requests: 4.0,
            }],
        );
        // A pushed score replaces the configured one.
        e.set_kpi(Kpi {
            team: "search".into(),
            workload: "llm".into(),
            indicator: "precision".into(),
            score: 0.6,
            at: Some(t0()),
        });
        // An older score arriving later (a back-fill, a late retry) does not
        // replace it.
        e.set_kpi(Kpi {
            team: "search".into(),
            workload: "llm".into(),
            indicator: "precision".into(),
            score: 0.1,
            at: Some(t0() - Duration::hours(1)),
        });
        e.ingest(
            tick(100.0),
            &report(vec![gpu("GPU-a", Some(36_000.0), 360.0)]),
        );
        let k = e.counters();
        assert_eq!(k.value_total.total(), 3.0);
        let row = &k.value[&ValueKey {
            team: "search".into(),
            workload: "llm".into(),
            source: "vllm-1".into(),
        }];
        assert_eq!(row.value.total(), 1.5);
        assert_eq!(row.models["opt"].cached_input_tokens.total(), 200.0);
        let s = e.snapshot();
        assert_eq!(s.scores["precision"], 0.6);
        let w = &s.windows[0];
        // 100 s of capex (1.0) + 36 kJ at 0.20/kWh (0.002).
        assert!((w.cost - 1.002).abs() < 1e-12, "{}", w.cost);
        assert_eq!(w.value, 3.0);
        assert!((w.roi.unwrap() - (3.0 - 1.002) / 1.002).abs() < 1e-12);
        assert_eq!(w.tokens, 3000.0);
        assert!((w.cost_per_million_tokens.unwrap() - 1.002 / 3000.0 * 1e6).abs() < 1e-9);
        assert_eq!(w.tokens_per_joule, Some(3000.0 / 36_000.0));
        assert!((w.cost_per_request.unwrap() - 1.002 / 4.0).abs() < 1e-12);
        // Weighted: P = 0.6, C = 0.5 × capex + 1 × energy.
        assert!((w.weighted_cost - (0.5 + 0.002)).abs() < 1e-12);
        assert!((w.weighted_efficiency.unwrap() - 0.6 / 0.502).abs() < 1e-12);
        let search = w.owners.iter().find(|o| o.team == "search").unwrap();
        assert_eq!(search.value, 1.5);
        assert_eq!(k.validate(t0() + Duration::hours(1)), Ok(()));
    }

    fn share(team: &str, share: f64, rule: &str) -> OwnerShare {
        OwnerShare {
            owner: Owner {
                team: team.into(),
                workload: "w".into(),
            },
            share,
            rule: rule.into(),
        }
    }

    #[test]
    fn a_gpu_shared_by_two_owners_splits_every_figure_by_their_shares() {
        let mut e = Engine::new(cfg(ShareKey::Equal), None);
        // Same owner twice merges; a zero share is dropped; 3 : 1 after scaling.
        e.set_attribution(
            "GPU-a",
            vec![
                share("vision", 1.0, "rule:cv"),
                share("nlp", 0.5, "rule:lm"),
                share("vision", 0.5, "rule:cv"),
                share("idle", 0.0, "idle"),
            ],
        );
        e.ingest(tick(0.0), &report(vec![gpu("GPU-a", Some(0.0), 300.0)]));
        e.ingest(tick(4.0), &report(vec![gpu("GPU-a", Some(1200.0), 300.0)]));
        let c = e.counters();
        let row = |team: &str| &c.rows[&RowKey::new("GPU-a", &share(team, 1.0, "").owner)];
        let (v, n) = (row("vision"), row("nlp"));
        // 1200 J × PUE 1.5 = 1800 J at 0.20/kWh, 3/4 and 1/4.
        let energy = 1800.0 / 3.6e6 * 0.20;
        assert!((v.cost[&Component::Energy].total() - 0.75 * energy).abs() < 1e-15);
        assert!((n.cost[&Component::Energy].total() - 0.25 * energy).abs() < 1e-15);
        assert!((v.facility_energy_joules.total() - 1350.0).abs() < 1e-9);
        assert!((n.facility_energy_joules.total() - 450.0).abs() < 1e-9);
        // Fixed costs (4 s at 0.01/s capex) split the same way.
        assert!((v.cost[&Component::Capex].total() - 0.03).abs() < 1e-12);
        assert!((n.cost[&Component::Capex].total() - 0.01).abs() < 1e-12);
        assert_eq!(v.attributed_by, "rule:cv");
        assert_eq!(n.attributed_by, "rule:lm");
        // The owner of record is not booked while processes own the GPU.
        assert!(
            !c.rows
                .contains_key(&RowKey::new("GPU-a", &e.owner_of("GPU-a")))
        );
        assert_rows_add_up(c);
        assert_eq!(c.validate(t0() + Duration::hours(1)), Ok(()));
        // An empty list returns the GPU to its owner of record.
        e.set_attribution("GPU-a", vec![]);
        e.ingest(tick(5.0), &report(vec![gpu("GPU-a", Some(1500.0), 300.0)]));
        let rec = &e.counters().rows[&RowKey::new("GPU-a", &e.owner_of("GPU-a"))];
        assert!(rec.cost[&Component::Energy].total() > 0.0);
        assert_eq!(rec.attributed_by, BY_GPU_OWNER);
    }

    #[test]
    fn a_job_moving_between_gpus_takes_its_cost_with_it() {
        let mut e = Engine::new(cfg(ShareKey::Equal), None);
        let idle = || share("idle", 1.0, "idle");
        e.set_attribution("GPU-a", vec![share("vision", 1.0, "rule:cv")]);
        e.set_attribution("GPU-b", vec![idle()]);
        let both =
            |a: f64, b: f64| report(vec![gpu("GPU-a", Some(a), 1.0), gpu("GPU-b", Some(b), 1.0)]);
        e.ingest(tick(0.0), &both(0.0, 0.0));
        e.ingest(tick(1.0), &both(100.0, 10.0));
        e.set_attribution("GPU-a", vec![idle()]);
        e.set_attribution("GPU-b", vec![share("vision", 1.0, "rule:cv")]);
        e.ingest(tick(2.0), &both(110.0, 210.0));
        let c = e.counters();
        let fe = |uuid: &str, team: &str| {
            c.rows[&RowKey::new(uuid, &share(team, 1.0, "").owner)]
                .facility_energy_joules
                .total()
        };
        assert!((fe("GPU-a", "vision") - 150.0).abs() < 1e-9);
        assert!((fe("GPU-b", "vision") - 300.0).abs() < 1e-9);
        assert!((fe("GPU-a", "idle") - 15.0).abs() < 1e-9);
        assert!((fe("GPU-b", "idle") - 15.0).abs() < 1e-9);
        assert_rows_add_up(c);
    }

    fn shares_strategy() -> impl Strategy<Value = Vec<(u8, f64)>> {
        proptest::collection::vec((0u8..4, 0.0f64..1.0), 0..4)
    }

    proptest! {
        #[test]
        fn owners_by_process_changing_every_tick_keep_rows_adding_up(
            steps in proptest::collection::vec((0.1f64..3.0, 0.0f64..800.0, shares_strategy(), shares_strategy(), any::<bool>()), 1..40)
        ) {
            let teams = ["a", "b", "c", "idle"];
            let mut e = Engine::new(cfg(ShareKey::Energy), None);
            let (mut t, mut counter, mut host_j) = (0.0, 0.0, 0.0);
            e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), 1.0), gpu("GPU-b", None, 1.0), host(0.0)]));
            let mut prev = e.counters().clone();
            for (dt, watts, sa, sb, negative) in steps {
                let to = |v: &[(u8, f64)]| v.iter().map(|(i, w)| share(teams[usize::from(*i)], *w, "rule:x")).collect::<Vec<_>>();
                e.set_attribution("GPU-a", to(&sa));
                e.set_attribution("GPU-b", to(&sb));
                if negative { e.set_tariff(Tariff::Static(PricePerKwh(-0.05)), None); } else { e.set_tariff(Tariff::Static(PricePerKwh(0.2)), None); }
                t += dt; counter += watts * dt; host_j += 50.0 * dt;
                e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), watts), gpu("GPU-b", None, watts / 3.0), host(host_j)]));
                let c = e.counters();
                assert_rows_add_up(c);
                prop_assert_eq!(c.validate(t0() + Duration::days(1)), Ok(()));
                let node_d = total(&c.cost) - total(&prev.cost);
                let rows_d: f64 = c.rows.iter().map(|(k, r)| r.cost_total() - prev.rows.get(k).map_or(0.0, Row::cost_total)).sum();
                prop_assert!((node_d - rows_d).abs() <= 1e-9 * node_d.abs().max(1e-9), "node {node_d} rows {rows_d}");
                for (k, r) in &prev.rows {
                    prop_assert!(c.rows[k].cost_total() >= r.cost_total());
                }
                prev = c.clone();
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Life {
        Run {
            dt: f64,
            watts: f64,
        },
        /// Stop for `down` seconds and restart with GPU-a owned by `team`,
        /// GPU-b present or not, and a price that may be negative.
        Restart {
            down: f64,
            team: u8,
            b_present: bool,
        },
        NegativePrice,
    }

    fn life() -> impl Strategy<Value = Life> {
        prop_oneof![
            6 => (0.1f64..3.0, 0.0f64..2000.0).prop_map(|(dt, watts)| Life::Run { dt, watts }),
            2 => (0.0f64..100.0, 0u8..3, any::<bool>()).prop_map(|(down, team, b_present)| Life::Restart { down, team, b_present }),
            1 => Just(Life::NegativePrice),
        ]
    }

    proptest! {
        #[test]
        fn owners_changing_across_restarts_keep_every_interval_adding_up(steps in proptest::collection::vec(life(), 1..40)) {
            let teams = ["vision", "nlp", "unallocated"];
            let mk = |team: usize, negative: bool| {
                let mut c = cfg(ShareKey::Energy);
                if team < 2 { c = with_owner(c, "GPU-a", teams[team]); } else { c.owners.remove("GPU-a"); }
                if negative { c.tariff = Tariff::Static(PricePerKwh(-0.05)); }
                c
            };
            let (mut team, mut negative, mut b_present) = (0usize, false, true);
            let mut e = Engine::new(mk(team, negative), None);
            let (mut wall, mut mono, mut counter, mut host_j) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            let at = |wall: f64, mono: f64| Tick { wall: t0() + Duration::microseconds((wall * 1e6) as i64), mono };
            let readings = |counter: f64, host_j: f64, b: bool, watts: f64| {
                let mut v = vec![gpu("GPU-a", Some(counter), watts), host(host_j)];
                if b { v.push(gpu("GPU-b", None, watts / 2.0)); }
                v
            };
            e.ingest(at(wall, mono), &report(readings(counter, host_j, b_present, 100.0)));
            let mut prev = e.counters().clone();
            for s in steps {
                match s {
                    Life::Run { dt, watts } => {
                        wall += dt; mono += dt; counter += watts * dt; host_j += 50.0 * dt;
                        e.ingest(at(wall, mono), &report(readings(counter, host_j, b_present, watts)));
                    }
                    Life::Restart { down, team: t, b_present: b } => {
                        team = usize::from(t); b_present = b;
                        wall += down; mono = 0.0; counter += 10.0 * down;
                        e = Engine::new(mk(team, negative), Some(e.counters().clone()));
                        e.ingest(at(wall, mono), &report(readings(counter, host_j, b_present, 100.0)));
                    }
                    Life::NegativePrice => {
                        negative = !negative;
                        e = Engine::new(mk(team, negative), Some(e.counters().clone()));
                    }
                }
                let c = e.counters();
                assert_rows_add_up(c);
                prop_assert_eq!(c.validate(t0() + Duration::days(1)), Ok(()));
                // Over this interval: Σ_rows Δ == Δ node, and no row shrank.
                let node_d: f64 = Component::ALL.iter().map(|k| c.cost.get(k).map_or(0.0, Accumulator::total) - prev.cost.get(k).map_or(0.0, Accumulator::total)).sum();
                let rows_d: f64 = c.rows.iter().map(|(k, r)| r.cost_total() - prev.rows.get(k).map_or(0.0, Row::cost_total)).sum();
                prop_assert!((node_d - rows_d).abs() <= 1e-9 * node_d.abs().max(1e-9), "node {node_d} rows {rows_d}");
                for (k, r) in &prev.rows {
                    prop_assert!(c.rows[k].cost_total() >= r.cost_total());
                    // Rows of owners not in force do not move.
                    let current = k.team == teams[team] || k.gpu_uuid != "GPU-a";
                    if !current { prop_assert_eq!(&c.rows[k], r); }
                }
                prev = c.clone();
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Normal { dt: f64, watts: f64 },
        Reset { dt: f64 },
        Gap { dt: f64 },
        Lost { dt: f64 },
        NoCounter { dt: f64, watts: f64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0.1f64..3.0, 0.0f64..1000.0).prop_map(|(dt, watts)| Step::Normal { dt, watts }),
            1 => (0.1f64..3.0).prop_map(|dt| Step::Reset { dt }),
            1 => (6.0f64..100.0).prop_map(|dt| Step::Gap { dt }),
            1 => (0.1f64..10.0).prop_map(|dt| Step::Lost { dt }),
            1 => (0.1f64..3.0, 0.0f64..1000.0).prop_map(|(dt, watts)| Step::NoCounter { dt, watts }),
        ]
    }

    proptest! {
        #[test]
        fn counters_never_go_backwards_and_attribution_adds_up(steps in proptest::collection::vec(step(), 1..60)) {
            let mut e = Engine::new(cfg(ShareKey::Energy), None);
            let mut t = 0.0;
            let mut counter = 1.0e6;
            e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), 100.0), gpu("GPU-b", None, 50.0), host(0.0)]));
            let mut prev = e.counters().clone();
            let mut host_j = 0.0;
            for s in steps {
                let readings = match s {
                    Step::Normal { dt, watts } => { t += dt; counter += watts * dt; host_j += 100.0 * dt; vec![gpu("GPU-a", Some(counter), watts), gpu("GPU-b", None, watts), host(host_j)] }
                    Step::Reset { dt } => { t += dt; counter = 10.0; vec![gpu("GPU-a", Some(counter), 100.0), gpu("GPU-b", None, 1.0)] }
                    Step::Gap { dt } => { t += dt; counter += 500.0 * dt; vec![gpu("GPU-a", Some(counter), 500.0)] }
                    Step::Lost { dt } => { t += dt; vec![Reading::DeviceFault { device: "GPU-a".into(), message: "lost".into() }] }
                    Step::NoCounter { dt, watts } => { t += dt; vec![gpu("GPU-a", None, watts)] }
                };
                e.ingest(tick(t), &report(readings));
                let c = e.counters();
                for (k, v) in &c.gpu_energy_joules { prop_assert!(v.total() >= prev.gpu_energy_joules.get(k).map_or(0.0, |a| a.total())); }
                prop_assert!(c.facility_energy_joules.total() >= prev.facility_energy_joules.total());
                for comp in Component::ALL {
                    let now = c.cost.get(&comp).map_or(0.0, |a| a.total());
                    let before = prev.cost.get(&comp).map_or(0.0, |a| a.total());
                    prop_assert!(now >= before);
                }
                for (k, v) in &c.unaccounted_seconds { prop_assert!(v.total() >= prev.unaccounted_seconds.get(k).map_or(0.0, |a| a.total())); }
                // Unaccounted time never exceeds elapsed time.
                for v in c.unaccounted_seconds.values() { prop_assert!(v.total() <= t + 1e-9); }
                let gpus: f64 = c.rows.values().map(|r| total(&r.cost)).sum();
                prop_assert!((gpus - total(&c.cost)).abs() <= 1e-9 * total(&c.cost).max(1.0));
                prev = c.clone();
            }
            // Fixed costs are exactly rate × elapsed time, whatever happened.
            prop_assert!((e.counters().cost[&Component::Capex].total() - 0.01 * t).abs() < 1e-9);
        }

        #[test]
        fn costs_over_consecutive_windows_add_up(dts in proptest::collection::vec(0.1f64..4.0, 2..40), split in 1usize..39) {
            // Cost observed at a mid-point plus cost after it equals the total.
            let mut e = Engine::new(cfg(ShareKey::Equal), None);
            let (mut t, mut counter) = (0.0, 0.0);
            e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), 200.0)]));
            let split = split.min(dts.len() - 1);
            let mut at_split = 0.0;
            for (i, dt) in dts.iter().enumerate() {
                t += dt; counter += 200.0 * dt;
                e.ingest(tick(t), &report(vec![gpu("GPU-a", Some(counter), 200.0)]));
                if i + 1 == split { at_split = total(&e.counters().cost); }
            }
            let whole = total(&e.counters().cost);
            let expected = 200.0 * t * 1.5 / 3.6e6 * 0.20 + (0.01 + 0.002 + 0.001) * t;
            prop_assert!((whole - expected).abs() < 1e-9 * expected.max(1.0));
            prop_assert!(at_split <= whole);
        }
    }
}
