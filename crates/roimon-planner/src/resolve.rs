//! Turns the allocation file into the solver's instance: checks every number
//! (naming the dotted key of a bad one), asks the caller's `measure` for the
//! coefficients the file leaves `"measured"`, and records where each
//! coefficient came from.

use crate::model::{Coef, Coefficient, Gpu, Instance, Pair, PlanFile, Workload};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many GPU types (bounds the integer programme).
pub const MAX_GPU_TYPES: usize = 64;
/// At most this many workloads.
pub const MAX_WORKLOADS: usize = 10_000;
/// At most this many GPUs of one type (the solver's integers are 32-bit).
pub const MAX_COUNT: u32 = 1_000_000;

/// One coefficient the file leaves `"measured"`: what the ledger must give.
#[derive(Debug, Clone, PartialEq)]
pub enum CoefKey {
    /// Energy cost ÷ facility kWh paid.
    PricePerKwh,
    /// Carbon intensity (g CO2e per kWh).
    CarbonGPerKwh,
    /// Capex + maintenance + staff of the GPUs of this model ÷ GPU-hours.
    GpuCostPerHour {
        /// GPU type (model name).
        gpu: String,
    },
    /// 95th percentile of the owner's hourly token rate (tokens/s).
    Demand {
        /// Workload (owner) name.
        workload: String,
    },
    /// Value ÷ tokens × 1e6.
    ValuePerMillionTokens {
        /// Workload (owner) name.
        workload: String,
    },
    /// Tokens ÷ GPU-seconds of the owner's rows on GPUs of that model.
    TokensPerSecond {
        /// Workload (owner) name.
        workload: String,
        /// GPU type (model name).
        gpu: String,
    },
    /// (GPU energy − idle power × GPU-seconds) ÷ tokens.
    JoulesPerToken {
        /// Workload (owner) name.
        workload: String,
        /// GPU type (model name).
        gpu: String,
        /// The file's idle power of that type (W), subtracted.
        idle_watts: f64,
    },
}

impl CoefKey {
    /// The coefficient's name as it appears in the output's `coefficients`.
    pub fn name(&self) -> String {
        match self {
            CoefKey::PricePerKwh => "energy.price_per_kwh".into(),
            CoefKey::CarbonGPerKwh => "energy.carbon_g_per_kwh".into(),
            CoefKey::GpuCostPerHour { gpu } => format!("gpu.{gpu}.cost_per_hour"),
            CoefKey::Demand { workload } => format!("workload.{workload}.demand_tokens_per_second"),
            CoefKey::ValuePerMillionTokens { workload } => {
                format!("workload.{workload}.value_per_million_tokens")
            }
            CoefKey::TokensPerSecond { workload, gpu } => {
                format!("workload.{workload}.on.{gpu}.tokens_per_second")
            }
            CoefKey::JoulesPerToken { workload, gpu, .. } => {
                format!("workload.{workload}.on.{gpu}.joules_per_token")
            }
        }
    }
}

/// A measured coefficient as the ledger gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The number.
    pub value: f64,
    /// The ledger window, `"<from>/<to>"` (RFC 3339).
    pub window: String,
    /// Samples (ledger rows) behind it.
    pub samples: u64,
    /// 10th percentile over the window, when known.
    pub p10: Option<f64>,
    /// 90th percentile over the window, when known.
    pub p90: Option<f64>,
}

/// Why a file cannot be planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// A number out of range, a duplicate name, an unknown GPU type.
    #[error("key `{key}`: {message}")]
    Invalid {
        /// Dotted key path usable with `roimon_config::locate`, e.g.
        /// `workload[2].on.H100.tokens_per_second`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A `"measured"` coefficient the ledger has no data for.
    #[error("coefficient {name}: {message}")]
    Unmeasured {
        /// The coefficient's name (as in the output's `coefficients`).
        name: String,
        /// Why (names the window).
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ResolveError {
    ResolveError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A range a number must lie in.
#[derive(Clone, Copy)]
enum Range {
    /// ≥ 0.
    NonNeg,
    /// > 0.
    Positive,
    /// ≥ 1.
    AtLeastOne,
    /// In [0, 1].
    Unit,
    /// Any finite number.
    Finite,
}

fn check(key: &str, v: f64, r: Range) -> Result<f64, ResolveError> {
    if !v.is_finite() {
        return Err(invalid(key, format!("must be a finite number, found {v}")));
    }
    let ok = match r {
        Range::NonNeg => v >= 0.0,
        Range::Positive => v > 0.0,
        Range::AtLeastOne => v >= 1.0,
        Range::Unit => (0.0..=1.0).contains(&v),
        Range::Finite => true,
    };
    if ok {
        Ok(v)
    } else {
        let want = match r {
            Range::NonNeg => "≥ 0",
            Range::Positive => "> 0",
            Range::AtLeastOne => "≥ 1",
            Range::Unit => "in [0, 1]",
            Range::Finite => "finite",
        };
        Err(invalid(key, format!("must be {want}, found {v}")))
    }
}

/// Resolves coefficients one by one, recording each.
struct Resolver<'m> {
    measure: &'m mut dyn FnMut(&CoefKey) -> Result<Measured, String>,
    coefficients: Vec<Coefficient>,
    spread: BTreeMap<String, (f64, f64)>,
}

impl Resolver<'_> {
    fn coef(
        &mut self,
        key: &str,
        c: Coef,
        r: Range,
        what: impl FnOnce() -> CoefKey,
    ) -> Result<f64, ResolveError> {
        let k = what();
        let name = k.name();
        match c {
            Coef::Given(v) => {
                let v = check(key, v, r)?;
                self.coefficients.push(Coefficient {
                    name,
                    value: v,
                    source: "file".into(),
                    window: None,
                    samples: None,
                });
                Ok(v)
            }
            Coef::Measured => {
                let m = (self.measure)(&k).map_err(|message| ResolveError::Unmeasured {
                    name: name.clone(),
                    message,
                })?;
                let v = check(key, m.value, r).map_err(|e| match e {
                    ResolveError::Invalid { key, message } => invalid(
                        key,
                        format!("the measured value over {} {message}", m.window),
                    ),
                    other => other,
                })?;
                if let (Some(lo), Some(hi)) = (m.p10, m.p90) {
                    if lo.is_finite() && hi.is_finite() {
                        self.spread.insert(name.clone(), (lo.min(hi), lo.max(hi)));
                    }
                }
                self.coefficients.push(Coefficient {
                    name,
                    value: v,
                    source: "ledger".into(),
                    window: Some(m.window),
                    samples: Some(m.samples),
                });
                Ok(v)
            }
        }
    }

    /// A number the file must give (never measured), recorded as a coefficient.
    fn given(&mut self, key: &str, name: String, v: f64, r: Range) -> Result<f64, ResolveError> {
        let v = check(key, v, r)?;
        self.coefficients.push(Coefficient {
            name,
            value: v,
            source: "file".into(),
            window: None,
            samples: None,
        });
        Ok(v)
    }
}

/// Checks the file and resolves every coefficient into an [`Instance`].
///
/// `measure` is asked once for each coefficient the file leaves
/// `"measured"`; its error becomes [`ResolveError::Unmeasured`].
pub fn resolve(
    file: &PlanFile,
    measure: &mut dyn FnMut(&CoefKey) -> Result<Measured, String>,
) -> Result<Instance, ResolveError> {
    let hours = check("hours", file.hours, Range::Positive)?;
    if file.currency.trim().is_empty() {
        return Err(invalid("currency", "must name the currency, found \"\""));
    }
    let min_roi = file
        .min_roi
        .map(|v| check("min_roi", v, Range::Finite))
        .transpose()?;
    if let Some(r) = min_roi {
        if r <= -1.0 {
            return Err(invalid(
                "min_roi",
                format!("must be > -1 (ROI = (V − C) / C is never below -1), found {r}"),
            ));
        }
    }
    let budget = file
        .budget
        .map(|v| check("budget", v, Range::NonNeg))
        .transpose()?;
    let power_cap_kw = file
        .power_cap_kw
        .map(|v| check("power_cap_kw", v, Range::Positive))
        .transpose()?;
    if file.gpu.len() > MAX_GPU_TYPES {
        return Err(invalid(
            "gpu",
            format!(
                "at most {MAX_GPU_TYPES} GPU types, found {}",
                file.gpu.len()
            ),
        ));
    }
    if file.workload.len() > MAX_WORKLOADS {
        return Err(invalid(
            "workload",
            format!(
                "at most {MAX_WORKLOADS} workloads, found {}",
                file.workload.len()
            ),
        ));
    }

    let mut r = Resolver {
        measure,
        coefficients: Vec::new(),
        spread: BTreeMap::new(),
    };
    let price_per_kwh = r.coef(
        "energy.price_per_kwh",
        file.energy.price_per_kwh,
        Range::NonNeg,
        || CoefKey::PricePerKwh,
    )?;
    let pue = r.given(
        "energy.pue",
        "energy.pue".into(),
        file.energy.pue,
        Range::AtLeastOne,
    )?;
    let carbon_g_per_kwh = match file.energy.carbon_g_per_kwh {
        Some(c) => Some(r.coef("energy.carbon_g_per_kwh", c, Range::NonNeg, || {
            CoefKey::CarbonGPerKwh
        })?),
        None => None,
    };

    let (gpus, index) = resolve_gpus(file, &mut r)?;
    let workloads = resolve_workloads(file, &index, &gpus, &mut r)?;

    Ok(Instance {
        hours,
        currency: file.currency.clone(),
        objective: file.objective,
        min_roi,
        budget,
        power_cap_kw,
        price_per_kwh,
        pue,
        carbon_g_per_kwh,
        gpus,
        workloads,
        coefficients: r.coefficients,
        spread: r.spread,
    })
}

/// The `[[gpu]]` tables, checked, with the index of each type by name.
fn resolve_gpus<'f>(
    file: &'f PlanFile,
    r: &mut Resolver<'_>,
) -> Result<(Vec<Gpu>, BTreeMap<&'f str, usize>), ResolveError> {
    let mut gpus = Vec::with_capacity(file.gpu.len());
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, g) in file.gpu.iter().enumerate() {
        let key = |k: &str| format!("gpu[{i}].{k}");
        if g.kind.trim().is_empty() {
            return Err(invalid(key("type"), "must name the GPU type"));
        }
        if index.insert(g.kind.as_str(), i).is_some() {
            return Err(invalid(
                key("type"),
                format!("GPU type \"{}\" is listed twice", g.kind),
            ));
        }
        if g.count > MAX_COUNT {
            return Err(invalid(
                key("count"),
                format!("at most {MAX_COUNT} GPUs of one type, found {}", g.count),
            ));
        }
        let cost_per_hour = r.coef(
            &key("cost_per_hour"),
            g.cost_per_hour,
            Range::NonNeg,
            || CoefKey::GpuCostPerHour {
                gpu: g.kind.clone(),
            },
        )?;
        let idle_watts = r.given(
            &key("idle_watts"),
            format!("gpu.{}.idle_watts", g.kind),
            g.idle_watts,
            Range::NonNeg,
        )?;
        gpus.push(Gpu {
            kind: g.kind.clone(),
            count: g.count,
            cost_per_hour,
            idle_watts,
        });
    }
    Ok((gpus, index))
}

/// The `[[workload]]` tables, checked, each pair pointing at its GPU type.
fn resolve_workloads(
    file: &PlanFile,
    index: &BTreeMap<&str, usize>,
    gpus: &[Gpu],
    r: &mut Resolver<'_>,
) -> Result<Vec<Workload>, ResolveError> {
    let mut names = BTreeSet::new();
    let mut workloads = Vec::with_capacity(file.workload.len());
    for (i, w) in file.workload.iter().enumerate() {
        let key = |k: &str| format!("workload[{i}].{k}");
        if w.name.trim().is_empty() {
            return Err(invalid(
                key("name"),
                "must name the workload (team/workload)",
            ));
        }
        if !names.insert(w.name.as_str()) {
            return Err(invalid(
                key("name"),
                format!("workload \"{}\" is listed twice", w.name),
            ));
        }
        let demand = r.coef(
            &key("demand_tokens_per_second"),
            w.demand_tokens_per_second,
            Range::NonNeg,
            || CoefKey::Demand {
                workload: w.name.clone(),
            },
        )?;
        let min_served = check(&key("min_served"), w.min_served, Range::Unit)?;
        let value_per_million_tokens = r.coef(
            &key("value_per_million_tokens"),
            w.value_per_million_tokens,
            Range::NonNeg,
            || CoefKey::ValuePerMillionTokens {
                workload: w.name.clone(),
            },
        )?;
        let mut on = Vec::with_capacity(w.on.len());
        for (t, o) in &w.on {
            let Some(&g) = index.get(t.as_str()) else {
                return Err(invalid(
                    key(&format!("on.{t}")),
                    format!(
                        "GPU type \"{t}\" is not listed under [[gpu]] (known: {})",
                        file.gpu
                            .iter()
                            .map(|g| g.kind.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            let tokens_per_second = r.coef(
                &key(&format!("on.{t}.tokens_per_second")),
                o.tokens_per_second,
                Range::NonNeg,
                || CoefKey::TokensPerSecond {
                    workload: w.name.clone(),
                    gpu: t.clone(),
                },
            )?;
            let joules_per_token = r.coef(
                &key(&format!("on.{t}.joules_per_token")),
                o.joules_per_token,
                Range::NonNeg,
                || CoefKey::JoulesPerToken {
                    workload: w.name.clone(),
                    gpu: t.clone(),
                    idle_watts: gpus[g].idle_watts,
                },
            )?;
            on.push(Pair {
                gpu: g,
                tokens_per_second,
                joules_per_token,
            });
        }
        on.sort_by_key(|p| p.gpu);
        workloads.push(Workload {
            name: w.name.clone(),
            demand,
            min_served,
            value_per_million_tokens,
            on,
        });
    }
    Ok(workloads)
}
