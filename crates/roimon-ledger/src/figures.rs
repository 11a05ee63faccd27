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

#[cfg(test)]
mod tests {
    use super::*;
    use roimon_core::units::Accumulator;
    use roimon_core::{ModelCounts, Row, RowKey, ValueKey, ValueRow};

    fn acc(x: f64) -> Accumulator {
        Accumulator::from_total(x)
    }

    fn figures(pairs: &[(usize, f64)]) -> Figures {
        let mut f = Figures::default();
        for (i, v) in pairs {
            f.0[*i] = *v;
        }
        f
    }

    #[test]
    fn minus_add_and_is_zero_work_figure_by_figure() {
        let a = Figures([10.0; N]);
        let b = Figures([4.0; N]);
        // 10 - 4 = 6 in every column.
        assert_eq!(a.minus(&b), Figures([6.0; N]));
        // 10 + 4 = 14 in every column.
        let mut c = a;
        c.add(&b);
        assert_eq!(c, Figures([14.0; N]));
        assert!(Figures::default().is_zero());
        assert!(a.minus(&a).is_zero());
        // One non-zero figure, in the last column, is not zero.
        assert!(!figures(&[(REQUESTS, 1.0)]).is_zero());
    }

    #[test]
    fn cost_total_sums_the_five_components_and_net_cost_takes_the_credit_off() {
        // Energy 1 + capex 2 + maintenance 4 + staff 8 + carbon 16 = 31; the
        // GPU energy (1000 J) and value (99) beside them are not cost.
        let f = figures(&[
            (GPU_ENERGY, 1000.0),
            (COST, 1.0),
            (COST + 1, 2.0),
            (COST + 2, 4.0),
            (COST + 3, 8.0),
            (COST + 4, 16.0),
            (CREDIT, 0.5),
            (VALUE, 99.0),
        ]);
        assert_eq!(f.cost_total(), 31.0);
        // 31 - 0.5 = 30.5.
        assert_eq!(f.net_cost(), 30.5);
        // Negative zeros (a difference of equal totals) print as 0, not -0.
        let z = figures(&[
            (COST, -0.0),
            (COST + 1, -0.0),
            (COST + 2, -0.0),
            (COST + 3, -0.0),
            (COST + 4, -0.0),
        ]);
        assert_eq!(format!("{}", z.cost_total()), "0");
    }

    fn key(gpu: &str) -> Key {
        Key {
            gpu_uuid: gpu.into(),
            team: "t".into(),
            workload: "w".into(),
        }
    }

    fn counters() -> Counters {
        let mut c = Counters::default();
        let row = Row {
            gpu_energy_joules: acc(1.0),
            host_energy_joules: acc(2.0),
            facility_energy_joules: acc(4.0),
            cost: [
                (Component::Energy, acc(10.0)),
                (Component::Capex, acc(20.0)),
                (Component::Maintenance, acc(40.0)),
                (Component::Staff, acc(80.0)),
                (Component::Carbon, acc(160.0)),
            ]
            .into(),
            credit: [
                (Component::Energy, acc(0.5)),
                (Component::Carbon, acc(0.25)),
            ]
            .into(),
            emissions_grams: acc(7.0),
            ..Default::default()
        };
        c.rows.insert(
            RowKey {
                gpu_uuid: "GPU-a".into(),
                team: "t".into(),
                workload: "w".into(),
            },
            row,
        );
        let model = |i: f64, o: f64, r: f64| ModelCounts {
            input_tokens: acc(i),
            output_tokens: acc(o),
            requests: acc(r),
            ..Default::default()
        };
        c.value.insert(
            ValueKey {
                team: "t".into(),
                workload: "w".into(),
                source: "push".into(),
            },
            ValueRow {
                value: acc(3.0),
                models: [("m1".into(), model(11.0, 13.0, 17.0))].into(),
            },
        );
        c.value.insert(
            ValueKey {
                team: "t".into(),
                workload: "w".into(),
                source: "scrape".into(),
            },
            ValueRow {
                value: acc(5.0),
                models: [("m2".into(), model(1.0, 2.0, 3.0))].into(),
            },
        );
        c.priced_seconds = [
            ("source".into(), acc(30.0)),
            ("fallback".into(), acc(6.0)),
            ("last_known".into(), acc(4.0)),
        ]
        .into();
        c.cost = [
            (Component::Energy, acc(10.0)),
            (Component::Capex, acc(20.0)),
            (Component::Maintenance, acc(40.0)),
            (Component::Staff, acc(80.0)),
            (Component::Carbon, acc(160.0)),
        ]
        .into();
        c.credit = [
            (Component::Energy, acc(0.5)),
            (Component::Carbon, acc(0.25)),
        ]
        .into();
        c.facility_energy_joules = acc(4.0);
        c.emissions_grams = acc(7.0);
        c.value_total = acc(8.0);
        c
    }

    #[test]
    fn totals_put_every_counter_in_its_column() {
        let t = totals(&counters());
        // The cost row: energies 1, 2, 4 J; components 10..160 in
        // Component::ALL order; credit 0.5 + 0.25 = 0.75; 7 g.
        let mut cost = Figures::default();
        cost.0[..10].copy_from_slice(&[1.0, 2.0, 4.0, 10.0, 20.0, 40.0, 80.0, 160.0, 0.75, 7.0]);
        // The value row sums both sources: value 3 + 5 = 8, input tokens
        // 11 + 1 = 12, output 13 + 2 = 15, requests 17 + 3 = 20.
        let mut value = Figures::default();
        value.0[VALUE..].copy_from_slice(&[8.0, 12.0, 15.0, 20.0]);
        let want: BTreeMap<Key, Figures> = [(key("GPU-a"), cost), (key(VALUE_GPU), value)].into();
        assert_eq!(t.rows, want);
        // Priced: source 30 s; fallback 6 s + last known 4 s = 10 s.
        assert_eq!(t.priced, [30.0, 10.0]);
    }

    #[test]
    fn node_totals_name_their_columns() {
        let got = node_totals(&counters());
        let want: Vec<(String, f64, Vec<usize>)> = vec![
            ("node cost energy".into(), 10.0, vec![3]),
            ("node cost capex".into(), 20.0, vec![4]),
            ("node cost maintenance".into(), 40.0, vec![5]),
            ("node cost staff".into(), 80.0, vec![6]),
            ("node cost carbon".into(), 160.0, vec![7]),
            // 0.5 + 0.25.
            ("node credit".into(), 0.75, vec![8]),
            ("node facility energy".into(), 4.0, vec![2]),
            ("node emissions".into(), 7.0, vec![9]),
            ("node value".into(), 8.0, vec![10]),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn totals_round_trip_through_json_as_a_list_of_pairs() {
        let t = totals(&counters());
        let json = serde_json::to_value(&t).unwrap();
        let rows = json["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0]["gpu_uuid"], "GPU-a");
        assert_eq!(rows[0][1][3], 10.0);
        let back: Totals = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
    }
}
