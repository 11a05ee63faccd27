//! `[roi]`: the rolling windows and the weights of the ROI model (benefit
//! indicators weighted into P, cost components into C; financial ROI always
//! uses unweighted money).

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

/// Semantic checks of `[roi]`.
pub fn check_roi(r: &Roi) -> Option<(String, String)> {
    if r.windows.is_empty() || r.windows.len() > 10 {
        return Some((
            "roi.windows".into(),
            format!("give 1 to 10 windows, got {}", r.windows.len()),
        ));
    }
    let mut seen = BTreeMap::new();
    for (i, w) in r.windows.iter().enumerate() {
        match roimon_core::window::parse_window(w) {
            Some(s) if (60..=31_622_400).contains(&s) => {
                if let Some(j) = seen.insert(s, i) {
                    return Some((
                        "roi.windows".into(),
                        format!("{w:?} is the same span as roi.windows[{j}]"),
                    ));
                }
            }
            _ => {
                return Some((
                    "roi.windows".into(),
                    format!(
                        "{w:?} is not a window from 1m to 366d like \"5m\", \"1h\", \"24h\", \"7d\""
                    ),
                ));
            }
        }
    }
    for (k, v) in &r.benefit_weights {
        if !(v.is_finite() && *v >= 0.0) {
            return Some((
                format!("roi.benefit_weights.{k}"),
                format!("must be a finite number ≥ 0, got {v}"),
            ));
        }
    }
    for (k, v) in &r.cost_weights {
        if component(k).is_none() {
            return Some((
                format!("roi.cost_weights.{k}"),
                "not a cost component (energy, capex, maintenance, staff, carbon)".into(),
            ));
        }
        if !(v.is_finite() && *v >= 0.0) {
            return Some((
                format!("roi.cost_weights.{k}"),
                format!("must be a finite number ≥ 0, got {v}"),
            ));
        }
    }
    None
}
