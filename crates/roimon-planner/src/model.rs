//! The allocation file as written (coefficients given or `"measured"`), the
//! resolved instance the solver reads (every coefficient a number, with
//! where it came from), an allocation, and the contract's formulas that
//! turn an allocation into money, energy and emissions.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A coefficient as the file gives it: a number, or the string
/// `"measured"` (then the binary resolves it from the ledger).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Coef {
    /// Given in the file.
    Given(f64),
    /// To be measured from the ledger.
    Measured,
}

impl<'de> Deserialize<'de> for Coef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(v) => Ok(Coef::Given(v)),
            #[allow(clippy::cast_precision_loss)]
            Raw::Int(v) => Ok(Coef::Given(v as f64)),
            Raw::Text(t) if t == "measured" => Ok(Coef::Measured),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "expected a number or \"measured\", found \"{t}\""
            ))),
        }
    }
}

/// What the allocation maximises or minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Maximise value − cost.
    #[default]
    Profit,
    /// Maximise (value − cost) / cost, exactly (Dinkelbach).
    Roi,
    /// Minimise cost.
    Cost,
}

/// The allocation file (`../shared/contract.md`, "Allocation file").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// The period planned (hours); money and energy are totals over it.
    pub hours: f64,
    /// Currency of every money figure.
    pub currency: String,
    /// What is optimised.
    #[serde(default)]
    pub objective: Objective,
    /// Optional: V − C ≥ min_roi · C.
    pub min_roi: Option<f64>,
    /// Optional: C ≤ budget.
    pub budget: Option<f64>,
    /// Optional: facility power ≤ cap (kW).
    pub power_cap_kw: Option<f64>,
    /// Electricity.
    pub energy: EnergyFile,
    /// GPU types with their inventory.
    #[serde(default)]
    pub gpu: Vec<GpuFile>,
    /// Workloads with their demand and where they run.
    #[serde(default)]
    pub workload: Vec<WorkloadFile>,
}

/// `[energy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyFile {
    /// Price paid per facility kWh.
    pub price_per_kwh: Coef,
    /// Power usage effectiveness (facility / IT).
    pub pue: f64,
    /// Optional carbon intensity (g CO2e per kWh).
    pub carbon_g_per_kwh: Option<Coef>,
}

/// `[[gpu]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuFile {
    /// The GPU type (matched to the ledger's model names when measured).
    #[serde(rename = "type")]
    pub kind: String,
    /// GPUs of this type available.
    pub count: u32,
    /// Cost per allocated GPU-hour (capex + maintenance + staff).
    pub cost_per_hour: Coef,
    /// Idle power per allocated GPU (W).
    pub idle_watts: f64,
}

/// `[[workload]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    /// `team/workload` (the ledger's owner when measured).
    pub name: String,
    /// Demand (tokens/s).
    pub demand_tokens_per_second: Coef,
    /// Share of demand that must be served, in [0, 1].
    #[serde(default)]
    pub min_served: f64,
    /// Value per million tokens served.
    pub value_per_million_tokens: Coef,
    /// Per GPU type the workload runs on.
    #[serde(default)]
    pub on: BTreeMap<String, OnFile>,
}

/// `[workload.on.<type>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnFile {
    /// Tokens/s one GPU of this type serves for this workload.
    pub tokens_per_second: Coef,
    /// Energy per token above idle (J).
    pub joules_per_token: Coef,
}

/// Where a resolved coefficient came from (one row of the output's
/// `coefficients`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coefficient {
    /// Its name, e.g. `energy.price_per_kwh`, `gpu.H100.cost_per_hour`,
    /// `workload.search/chat.demand_tokens_per_second`,
    /// `workload.search/chat.on.H100.tokens_per_second`.
    pub name: String,
    /// The number used.
    pub value: f64,
    /// `"file"` or `"ledger"`.
    pub source: String,
    /// The ledger window (`"<from>/<to>"`, RFC 3339), null from the file.
    pub window: Option<String>,
    /// Samples behind a measured figure, null from the file.
    pub samples: Option<u64>,
}

/// A GPU type with every coefficient a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    /// Type name.
    pub kind: String,
    /// Available.
    pub count: u32,
    /// Cost per allocated GPU-hour.
    pub cost_per_hour: f64,
    /// Idle power per allocated GPU (W).
    pub idle_watts: f64,
}

/// One (GPU type, workload) pair the workload may run on.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Index into [`Instance::gpus`].
    pub gpu: usize,
    /// Tokens/s per GPU.
    pub tokens_per_second: f64,
    /// Joules per token above idle.
    pub joules_per_token: f64,
}

/// A workload with every coefficient a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// `team/workload`.
    pub name: String,
    /// Demand (tokens/s).
    pub demand: f64,
    /// Share of demand that must be served.
    pub min_served: f64,
    /// Value per million tokens.
    pub value_per_million_tokens: f64,
    /// The GPU types it runs on, in the order of [`Instance::gpus`].
    pub on: Vec<Pair>,
}

/// The resolved instance: what the solver and the analysis read.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Period (h).
    pub hours: f64,
    /// Currency.
    pub currency: String,
    /// Objective.
    pub objective: Objective,
    /// Optional minimum ROI.
    pub min_roi: Option<f64>,
    /// Optional budget.
    pub budget: Option<f64>,
    /// Optional facility power cap (kW).
    pub power_cap_kw: Option<f64>,
    /// Price per facility kWh.
    pub price_per_kwh: f64,
    /// PUE.
    pub pue: f64,
    /// Optional carbon intensity (g/kWh).
    pub carbon_g_per_kwh: Option<f64>,
    /// GPU types, in file order.
    pub gpus: Vec<Gpu>,
    /// Workloads, in file order.
    pub workloads: Vec<Workload>,
    /// Every coefficient with where it came from.
    pub coefficients: Vec<Coefficient>,
    /// The 10th and 90th percentiles of measured coefficients over their
    /// window, keyed by coefficient name (empty for figures from the file).
    pub spread: BTreeMap<String, (f64, f64)>,
}

/// One cell of an allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Index into [`Instance::gpus`].
    pub gpu: usize,
    /// Index into [`Instance::workloads`].
    pub workload: usize,
    /// GPUs given.
    pub gpus: u32,
    /// Tokens/s served on them.
    pub tokens_per_second: f64,
}

/// An allocation: the cells with gpus > 0 or tokens > 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Allocation {
    /// The cells.
    pub cells: Vec<Cell>,
}

/// The contract's totals of an allocation over the period.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    /// Σ s · 3600 · hours · value_per_million / 1e6.
    pub value: f64,
    /// cost_energy + cost_gpus.
    pub cost: f64,
    /// energy_kwh · price.
    pub cost_energy: f64,
    /// Σ cost_per_hour · n · hours.
    pub cost_gpus: f64,
    /// value − cost.
    pub profit: f64,
    /// profit / cost (0 when cost is 0).
    pub roi: f64,
    /// power_kw · hours.
    pub energy_kwh: f64,
    /// it_watts · pue / 1000.
    pub power_kw: f64,
    /// energy_kwh · carbon / 1000, when the carbon intensity is known.
    pub emissions_kg: Option<f64>,
}

impl Instance {
    /// The pair of workload `w` on GPU type `g`, if it runs there.
    pub fn pair(&self, g: usize, w: usize) -> Option<&Pair> {
        self.workloads.get(w)?.on.iter().find(|p| p.gpu == g)
    }

    /// IT watts of one cell (idle of its GPUs plus energy per token).
    pub fn cell_it_watts(&self, c: &Cell) -> f64 {
        let idle = self.gpus[c.gpu].idle_watts * f64::from(c.gpus);
        let jpt = self
            .pair(c.gpu, c.workload)
            .map_or(0.0, |p| p.joules_per_token);
        idle + jpt * c.tokens_per_second
    }

    /// Value of one cell over the period.
    pub fn cell_value(&self, c: &Cell) -> f64 {
        c.tokens_per_second
            * 3600.0
            * self.hours
            * self.workloads[c.workload].value_per_million_tokens
            / 1e6
    }

    /// Cost of one cell over the period (its GPUs and its facility energy).
    pub fn cell_cost(&self, c: &Cell) -> f64 {
        let energy_kwh = self.cell_it_watts(c) * self.pue / 1000.0 * self.hours;
        energy_kwh * self.price_per_kwh
            + self.gpus[c.gpu].cost_per_hour * f64::from(c.gpus) * self.hours
    }

    /// The contract's totals of `a`, exactly as written there.
    pub fn evaluate(&self, a: &Allocation) -> Totals {
        let mut it_watts = 0.0;
        let mut cost_gpus = 0.0;
        let mut value = 0.0;
        for c in &a.cells {
            it_watts += self.cell_it_watts(c);
            cost_gpus += self.gpus[c.gpu].cost_per_hour * f64::from(c.gpus) * self.hours;
            value += self.cell_value(c);
        }
        let power_kw = it_watts * self.pue / 1000.0;
        let energy_kwh = power_kw * self.hours;
        let cost_energy = energy_kwh * self.price_per_kwh;
        let cost = cost_energy + cost_gpus;
        let profit = value - cost;
        Totals {
            value,
            cost,
            cost_energy,
            cost_gpus,
            profit,
            roi: if cost > 0.0 { profit / cost } else { 0.0 },
            energy_kwh,
            power_kw,
            emissions_kg: self.carbon_g_per_kwh.map(|g| energy_kwh * g / 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> Instance {
        Instance {
            hours: 10.0,
            currency: "EUR".into(),
            objective: Objective::Profit,
            min_roi: None,
            budget: None,
            power_cap_kw: None,
            price_per_kwh: 0.2,
            pue: 1.5,
            carbon_g_per_kwh: Some(400.0),
            gpus: vec![Gpu {
                kind: "H100".into(),
                count: 4,
                cost_per_hour: 2.0,
                idle_watts: 100.0,
            }],
            workloads: vec![Workload {
                name: "a/b".into(),
                demand: 1000.0,
                min_served: 0.0,
                value_per_million_tokens: 10.0,
                on: vec![Pair {
                    gpu: 0,
                    tokens_per_second: 1000.0,
                    joules_per_token: 0.4,
                }],
            }],
            coefficients: vec![],
            spread: BTreeMap::new(),
        }
    }

    #[test]
    fn totals_follow_the_contract_by_hand() {
        let i = one();
        let a = Allocation {
            cells: vec![Cell {
                gpu: 0,
                workload: 0,
                gpus: 2,
                tokens_per_second: 500.0,
            }],
        };
        let t = i.evaluate(&a);
        // it_watts = 2·100 + 0.4·500 = 400 W; power = 0.6 kW; 6 kWh.
        assert!((t.power_kw - 0.6).abs() < 1e-12);
        assert!((t.energy_kwh - 6.0).abs() < 1e-12);
        assert!((t.cost_energy - 1.2).abs() < 1e-12);
        assert!((t.cost_gpus - 40.0).abs() < 1e-12);
        // value = 500 · 36000 · 10 / 1e6 = 180.
        assert!((t.value - 180.0).abs() < 1e-9);
        assert!((t.profit - (180.0 - 41.2)).abs() < 1e-9);
        assert_eq!(t.emissions_kg.map(|e| (e * 1e9).round() / 1e9), Some(2.4));
    }

    #[test]
    fn coef_reads_numbers_and_measured_only() {
        #[derive(Deserialize)]
        struct T {
            a: Coef,
            b: Coef,
            c: Coef,
        }
        let t: T = toml::from_str("a = 1.5\nb = 3\nc = \"measured\"").unwrap();
        assert_eq!(t.a, Coef::Given(1.5));
        assert_eq!(t.b, Coef::Given(3.0));
        assert_eq!(t.c, Coef::Measured);
        assert!(toml::from_str::<T>("a = 1\nb = 2\nc = \"measure\"").is_err());
    }
}
