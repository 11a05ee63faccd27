//! What one ledger row holds, as a fixed array of figures with the ledger's
//! column names, and how the engine's cumulative counters map onto ledger
//! keys: cost rows by (GPU, owner), value rows by owner under the
//! [`VALUE_GPU`] marker. Hour rows are differences of these totals.

use roimon_core::{Component, Counters};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Number of summed figures per row.
pub const N: usize = 14;

/// The summed columns of the `ledger` table, in order. Units: joules,
/// currency (major unit), grams CO2e, counts.
pub const FIELDS: [&str; N] = [
    "gpu_energy_joules",
    "host_energy_joules",
    "facility_energy_joules",
    "cost_energy",
    "cost_capex",
    "cost_maintenance",
    "cost_staff",
    "cost_carbon",
    "credit",
    "emissions_grams",
    "value",
    "input_tokens",
    "output_tokens",
    "requests",
];

/// Index of the GPU's own energy (J).
pub const GPU_ENERGY: usize = 0;
/// Index of the host energy share (J).
pub const HOST_ENERGY: usize = 1;
/// Index of the facility energy (J).
pub const FACILITY_ENERGY: usize = 2;
/// Index of the first cost component (energy, capex, maintenance, staff,
/// carbon follow in [`Component::ALL`] order).
pub const COST: usize = 3;
/// Index of the credit (all components).
pub const CREDIT: usize = 8;
/// Index of emissions (g).
pub const EMISSIONS: usize = 9;
/// Index of value (currency).
pub const VALUE: usize = 10;
/// Index of input tokens.
pub const INPUT_TOKENS: usize = 11;
/// Index of output tokens.
pub const OUTPUT_TOKENS: usize = 12;
/// Index of requests.
pub const REQUESTS: usize = 13;

/// The `gpu_uuid` of value rows: value (and tokens, requests) is produced
/// by an owner, not by one GPU.
pub const VALUE_GPU: &str = "value";

/// The figures of one row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures(pub [f64; N]);

impl Default for Figures {
    fn default() -> Self {
        Self([0.0; N])
    }
}

impl Figures {
    /// `self − other`, figure by figure.
    pub fn minus(&self, other: &Figures) -> Figures {
        let mut out = *self;
        for (o, b) in out.0.iter_mut().zip(other.0) {
            *o -= b;
        }
        out
    }

    /// Add `other` into `self`.
    pub fn add(&mut self, other: &Figures) {
        for (o, b) in self.0.iter_mut().zip(other.0) {
            *o += b;
        }
    }

    /// Every figure is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0.0)
    }

    /// Cost over every component.
    pub fn cost_total(&self) -> f64 {
        self.0[COST..COST + 5].iter().sum::<f64>() + 0.0
    }

    /// Net cost: cost − credit.
    pub fn net_cost(&self) -> f64 {
        self.cost_total() - self.0[CREDIT]
    }
}

/// Whose figures a ledger row holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// GPU UUID, `none` for a node without GPUs, [`VALUE_GPU`] for value.
    pub gpu_uuid: String,
    /// Team.
    pub team: String,
    /// Workload.
    pub workload: String,
}

/// Seconds of sampled time priced by the source, and by a fallback
/// (`fallback` or `last_known`).
pub type Priced = [f64; 2];

/// Cumulative totals of every key, and how the time was priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// By key.
    #[serde(with = "pairs")]
    pub rows: BTreeMap<Key, Figures>,
    /// Priced seconds (source, fallback).
    pub priced: Priced,
    /// GPU-seconds by key (cost rows). `None` in a hour book written before
    /// the ledger counted them: the hour that begins there has no
    /// GPU-seconds (its counters started again at 0 mid-hour).
    #[serde(default, with = "seconds_pairs")]
    pub gpu_seconds: Option<BTreeMap<Key, f64>>,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            priced: [0.0; 2],
            gpu_seconds: Some(BTreeMap::new()),
        }
    }
}

/// Maps with struct keys as a list of pairs (JSON keys are strings).
mod pairs {
    use super::{Figures, Key};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<Key, Figures>, s: S) -> Result<S::Ok, S::Error> {
        m.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Key, Figures>, D::Error> {
        Ok(Vec::<(Key, Figures)>::deserialize(d)?.into_iter().collect())
    }
}

/// GPU-seconds by key as a list of pairs, absent when unknown.
mod seconds_pairs {
    use super::Key;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        m: &Option<BTreeMap<Key, f64>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        m.as_ref()
            .map(|m| m.iter().collect::<Vec<_>>())
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<BTreeMap<Key, f64>>, D::Error> {
        Ok(Option::<Vec<(Key, f64)>>::deserialize(d)?.map(|v| v.into_iter().collect()))
    }
}

/// The engine's counters as ledger totals: every cost row and every value
/// row (summed over sources and models) under its key.
pub fn totals(c: &Counters) -> Totals {
    let mut rows: BTreeMap<Key, Figures> = BTreeMap::new();
    let mut seconds: BTreeMap<Key, f64> = BTreeMap::new();
    for (k, r) in &c.rows {
        let key = Key {
            gpu_uuid: k.gpu_uuid.clone(),
            team: k.team.clone(),
            workload: k.workload.clone(),
        };
        *seconds.entry(key.clone()).or_default() += r.gpu_seconds.total();
        let f = rows.entry(key).or_default();
        f.0[GPU_ENERGY] += r.gpu_energy_joules.total();
        f.0[HOST_ENERGY] += r.host_energy_joules.total();
        f.0[FACILITY_ENERGY] += r.facility_energy_joules.total();
        for (i, comp) in Component::ALL.iter().enumerate() {
            f.0[COST + i] += r.cost.get(comp).map_or(0.0, |a| a.total());
        }
        f.0[CREDIT] += r.credit_total();
        f.0[EMISSIONS] += r.emissions_grams.total();
    }
    for (k, v) in &c.value {
        let f = rows
            .entry(Key {
                gpu_uuid: VALUE_GPU.into(),
                team: k.team.clone(),
                workload: k.workload.clone(),
            })
            .or_default();
        f.0[VALUE] += v.value.total();
        for m in v.models.values() {
            f.0[INPUT_TOKENS] += m.input_tokens.total();
            f.0[OUTPUT_TOKENS] += m.output_tokens.total();
            f.0[REQUESTS] += m.requests.total();
        }
    }
    let by = |b: &str| c.priced_seconds.get(b).map_or(0.0, |a| a.total());
    Totals {
        rows,
        priced: [by("source"), by("fallback") + by("last_known")],
        gpu_seconds: Some(seconds),
    }
}

/// The node totals the engine keeps beside its rows: (what, value, the
/// ledger column or columns it must equal the sum of).
pub fn node_totals(c: &Counters) -> Vec<(String, f64, Vec<usize>)> {
    let mut out = Vec::new();
    for (i, comp) in Component::ALL.iter().enumerate() {
        out.push((
            format!("node cost {}", comp.as_str()),
            c.cost.get(comp).map_or(0.0, |a| a.total()),
            vec![COST + i],
        ));
    }
    out.push((
        "node credit".into(),
        c.credit.values().map(|a| a.total()).sum::<f64>(),
        vec![CREDIT],
    ));
    out.push((
        "node facility energy".into(),
        c.facility_energy_joules.total(),
        vec![FACILITY_ENERGY],
    ));
    out.push((
        "node emissions".into(),
        c.emissions_grams.total(),
        vec![EMISSIONS],
    ));
    out.push(("node value".into(), c.value_total.total(), vec![VALUE]));
    out
}
