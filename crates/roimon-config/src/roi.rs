//! `[roi]`: the rolling windows and the weights of the ROI model (benefit
//! indicators weighted into P, cost components into C; financial ROI always
//! uses unweighted money).

use crate::{Check, Ctx, Failure};
use roimon_core::Component;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[roi]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Roi {
    /// Window labels: `5m`, `1h`, `24h`, `7d`, `30d`, …
    pub windows: Vec<String>,
    /// Benefit indicator → weight (empty: no weighted efficiency).
    pub benefit_weights: BTreeMap<String, f64>,
    /// Cost component → weight (energy, capex, maintenance, staff, carbon;
    /// missing ones weigh 1).
    pub cost_weights: BTreeMap<String, f64>,
}

impl Default for Roi {
    fn default() -> Self {
        Self {
            windows: ["5m", "1h", "24h", "7d", "30d"].map(String::from).to_vec(),
            benefit_weights: BTreeMap::new(),
            cost_weights: BTreeMap::new(),
        }
    }
}

impl Roi {
    /// (label, seconds) of every window.
    pub fn window_spec(&self) -> Vec<(String, i64)> {
        self.windows
            .iter()
            .filter_map(|w| roimon_core::window::parse_window(w).map(|s| (w.clone(), s)))
            .collect()
    }

    /// The weights as the core wants them.
    pub fn weights(&self) -> roimon_core::window::RoiWeights {
        roimon_core::window::RoiWeights {
            benefit: self.benefit_weights.clone(),
            cost: self
                .cost_weights
                .iter()
                .filter_map(|(k, v)| component(k).map(|c| (c, *v)))
                .collect(),
        }
    }
}

fn component(name: &str) -> Option<Component> {
    Component::ALL.into_iter().find(|c| c.as_str() == name)
}

impl Check for Roi {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.windows.is_empty() || self.windows.len() > 10 {
            return ctx.fail(
                "windows",
                format!("give 1 to 10 windows, got {}", self.windows.len()),
            );
        }
        let mut seen = BTreeMap::new();
        for (i, w) in self.windows.iter().enumerate() {
            match roimon_core::window::parse_window(w) {
                Some(s) if (60..=31_622_400).contains(&s) => {
                    if let Some(j) = seen.insert(s, i) {
                        return ctx.fail(
                            "windows",
                            format!(
                                "{w:?} is the same span as {}",
                                ctx.at("windows").item(j).path()
                            ),
                        );
                    }
                }
                _ => {
                    return ctx.fail(
                        "windows",
                        format!(
                            "{w:?} is not a window from 1m to 366d like \"5m\", \"1h\", \"24h\", \"7d\""
                        ),
                    );
                }
            }
        }
        let benefit = ctx.at("benefit_weights");
        for (k, v) in &self.benefit_weights {
            if !(v.is_finite() && *v >= 0.0) {
                return benefit.fail(k, format!("must be a finite number ≥ 0, got {v}"));
            }
        }
        let cost = ctx.at("cost_weights");
        for (k, v) in &self.cost_weights {
            if component(k).is_none() {
                return cost.fail(
                    k,
                    "not a cost component (energy, capex, maintenance, staff, carbon)",
                );
            }
            if !(v.is_finite() && *v >= 0.0) {
                return cost.fail(k, format!("must be a finite number ≥ 0, got {v}"));
            }
        }
        Ok(())
    }
}
