//! The weighted ROI model (P/C with separate benefit and cost weights) and
//! financial ROI (V − M)/M on the unweighted money M, for one-shot scenario
//! evaluation. Weights express importance in the score; they never change
//! what was paid.

use serde::Serialize;
use std::collections::BTreeMap;

/// Weights of the model. `cost = None` means every cost weight is 1.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Weights {
    /// Benefit indicator → weight.
    pub benefit: BTreeMap<String, f64>,
    /// Cost indicator → weight; `None`: all 1.
    pub cost: Option<BTreeMap<String, f64>>,
}

/// One scenario to evaluate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// Benefit indicator → score.
    pub benefit: BTreeMap<String, f64>,
    /// Cost indicator → money.
    pub cost: BTreeMap<String, f64>,
    /// Money produced, enabling financial ROI.
    pub value: Option<f64>,
}

/// The result for one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioResult {
    /// Name.
    pub name: String,
    /// P(T) = Σ w_i P_i.
    pub benefit_score: f64,
    /// C(T) = Σ v_j C_j (weighted).
    pub cost: f64,
    /// M(T) = Σ C_j: the money actually spent (unweighted).
    pub money_cost: f64,
    /// P(T) / C(T).
    pub weighted_efficiency: f64,
    /// Financial ROI (V − M) / M, when a value was given.
    pub roi: Option<f64>,
    /// 1 = first in the order asked for ([`RankBy`]; by default the
    /// highest weighted efficiency).
    pub rank: usize,
}

/// What orders the scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RankBy {
    /// Highest weighted efficiency P/C first.
    #[default]
    Efficiency,
    /// Highest financial ROI first; scenarios without a value (no ROI) after
    /// every one with it. Ties, and the scenarios without ROI among
    /// themselves, by weighted efficiency.
    Roi,
}

/// Why a scenario cannot be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoiError {
    /// An indicator has no weight.
    #[error("scenario `{scenario}`: {kind} indicator `{indicator}` has no weight")]
    Unweighted {
        /// Scenario.
        scenario: String,
        /// benefit or cost.
        kind: &'static str,
        /// Indicator.
        indicator: String,
    },
    /// A weight has no indicator.
    #[error("scenario `{scenario}`: {kind} weight `{indicator}` has no indicator")]
    Missing {
        /// Scenario.
        scenario: String,
        /// benefit or cost.
        kind: &'static str,
        /// Indicator.
        indicator: String,
    },
    /// A benefit score is outside [0, 1].
    #[error("scenario `{scenario}`: benefit score `{indicator}` must be in [0, 1], got {value}")]
    ScoreOutOfRange {
        /// Scenario.
        scenario: String,
        /// Indicator.
        indicator: String,
        /// Value.
        value: f64,
    },
    /// A cost is negative.
    #[error("scenario `{scenario}`: cost `{indicator}` is negative ({value})")]
    NegativeCost {
        /// Scenario.
        scenario: String,
        /// Indicator.
        indicator: String,
        /// Value.
        value: f64,
    },
    /// The weighted cost is zero: the ratio is undefined.
    #[error("scenario `{scenario}`: total weighted cost is zero")]
    ZeroCost {
        /// Scenario.
        scenario: String,
    },
    /// A number is not finite.
    #[error("scenario `{scenario}`: `{indicator}` is not a finite number")]
    NotFinite {
        /// Scenario.
        scenario: String,
        /// Indicator.
        indicator: String,
    },
    /// A weight is negative or not a number.
    #[error("{kind} weight `{indicator}` must be a finite number ≥ 0, got {value}")]
    BadWeight {
        /// benefit or cost.
        kind: &'static str,
        /// Indicator.
        indicator: String,
        /// Value.
        value: f64,
    },
    /// No scenarios.
    #[error("no [[scenario]] to evaluate")]
    Empty,
}

fn weighted(
    scenario: &str,
    kind: &'static str,
    values: &BTreeMap<String, f64>,
    weights: Option<&BTreeMap<String, f64>>,
) -> Result<f64, RoiError> {
    for (k, v) in values {
        if !v.is_finite() {
            return Err(RoiError::NotFinite {
                scenario: scenario.into(),
                indicator: k.clone(),
            });
        }
    }
    let Some(weights) = weights else {
        return Ok(values.values().sum());
    };
    if let Some((k, w)) = weights.iter().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
        return Err(RoiError::BadWeight {
            kind,
            indicator: k.clone(),
            value: *w,
        });
    }
    for k in values.keys() {
        if !weights.contains_key(k) {
            return Err(RoiError::Unweighted {
                scenario: scenario.into(),
                kind,
                indicator: k.clone(),
            });
        }
    }
    let mut sum = 0.0;
    for (k, w) in weights {
        let v = values.get(k).ok_or_else(|| RoiError::Missing {
            scenario: scenario.into(),
            kind,
            indicator: k.clone(),
        })?;
        sum += w * v;
    }
    Ok(sum)
}

/// Evaluate and rank scenarios.
pub fn evaluate(
    weights: &Weights,
    scenarios: &[Scenario],
) -> Result<Vec<ScenarioResult>, RoiError> {
    if scenarios.is_empty() {
        return Err(RoiError::Empty);
    }
    let mut out = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        for (k, v) in &s.cost {
            if *v < 0.0 {
                return Err(RoiError::NegativeCost {
                    scenario: s.name.clone(),
                    indicator: k.clone(),
                    value: *v,
                });
            }
        }
        let p = weighted(&s.name, "benefit", &s.benefit, Some(&weights.benefit))?;
        if let Some((k, v)) = s.benefit.iter().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
            return Err(RoiError::ScoreOutOfRange {
                scenario: s.name.clone(),
                indicator: k.clone(),
                value: *v,
            });
        }
        let c = weighted(&s.name, "cost", &s.cost, weights.cost.as_ref())?;
        if c == 0.0 {
            return Err(RoiError::ZeroCost {
                scenario: s.name.clone(),
            });
        }
        if let Some(v) = s.value {
            if !v.is_finite() {
                return Err(RoiError::NotFinite {
                    scenario: s.name.clone(),
                    indicator: "value".into(),
                });
            }
        }
        let money: f64 = s.cost.values().sum();
        if s.value.is_some() && money == 0.0 {
            return Err(RoiError::ZeroCost {
                scenario: s.name.clone(),
            });
        }
        out.push(ScenarioResult {
            name: s.name.clone(),
            benefit_score: p,
            cost: c,
            money_cost: money,
            weighted_efficiency: p / c,
            roi: s.value.map(|v| (v - money) / money),
            rank: 0,
        });
    }
    rank(&mut out, RankBy::default());
    Ok(out)
}

/// Set every result's `rank` (1 = first) in the order `by`; ties keep the
/// order of the input.
pub fn rank(results: &mut [ScenarioResult], by: RankBy) {
    let eff = |r: &ScenarioResult| r.weighted_efficiency;
    let mut order: Vec<usize> = (0..results.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&results[a], &results[b]);
        let first = match by {
            RankBy::Efficiency => std::cmp::Ordering::Equal,
            // Some(roi) before None; higher ROI first.
            RankBy::Roi => match (a.roi, b.roi) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            },
        };
        first.then_with(|| eff(b).total_cmp(&eff(a)))
    });
    for (rank, i) in order.into_iter().enumerate() {
        results[i].rank = rank + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn doc_weights() -> Weights {
        Weights {
            benefit: m(&[
                ("precision", 0.3),
                ("coverage", 0.2),
                ("satisfaction", 0.25),
                ("growth", 0.25),
            ]),
            cost: Some(m(&[
                ("server", 0.3),
                ("maintenance", 0.2),
                ("energy", 0.25),
                ("staff", 0.25),
            ])),
        }
    }

    #[test]
    fn worked_examples_of_the_domain() {
        let s42 = Scenario {
            name: "4.2".into(),
            benefit: m(&[
                ("precision", 0.95),
                ("coverage", 0.85),
                ("satisfaction", 0.9),
                ("growth", 0.8),
            ]),
            cost: m(&[
                ("server", 500.0),
                ("maintenance", 100.0),
                ("energy", 50.0),
                ("staff", 5000.0),
            ]),
            value: None,
        };
        let s43 = Scenario {
            name: "4.3".into(),
            benefit: m(&[
                ("precision", 0.98),
                ("coverage", 0.9),
                ("satisfaction", 0.92),
                ("growth", 0.85),
            ]),
            cost: m(&[
                ("server", 1000.0),
                ("maintenance", 100.0),
                ("energy", 50.0),
                ("staff", 5000.0),
            ]),
            value: Some(2000.0),
        };
        let r = evaluate(&doc_weights(), &[s42, s43]).unwrap();
        assert!((r[0].benefit_score - 0.88).abs() < 1e-12);
        assert!((r[0].cost - 1432.5).abs() < 1e-9);
        assert!((r[0].weighted_efficiency - 6.1431e-4).abs() < 5e-9);
        assert!((r[1].benefit_score - 0.9165).abs() < 1e-12);
        assert!((r[1].cost - 1582.5).abs() < 1e-9);
        assert!((r[1].weighted_efficiency - 5.7915e-4).abs() < 5e-9);
        assert_eq!((r[0].rank, r[1].rank), (1, 2));
        assert_eq!(r[0].roi, None);
        // Financial ROI on the money actually spent, not the weighted cost:
        // 6150 spent against 2000 earned.
        assert_eq!(r[1].money_cost, 6150.0);
        assert!((r[1].roi.unwrap() - (2000.0 - 6150.0) / 6150.0).abs() < 1e-12);
        assert!((r[1].roi.unwrap() - (-0.6748)).abs() < 5e-5);
    }

    fn result(name: &str, eff: f64, roi: Option<f64>) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            benefit_score: 0.0,
            cost: 1.0,
            money_cost: 1.0,
            weighted_efficiency: eff,
            roi,
            rank: 0,
        }
    }

    #[test]
    fn ranks_by_efficiency_or_by_roi() {
        let mut r = vec![
            result("efficient-no-value", 3.0, None),
            result("low-roi", 2.0, Some(-0.5)),
            result("high-roi", 1.0, Some(0.25)),
            result("inefficient-no-value", 0.5, None),
        ];
        rank(&mut r, RankBy::Efficiency);
        let ranks = |r: &[ScenarioResult]| r.iter().map(|x| x.rank).collect::<Vec<_>>();
        assert_eq!(ranks(&r), [1, 2, 3, 4]);
        rank(&mut r, RankBy::Roi);
        // ROI first, highest first; those without ROI after, by efficiency.
        assert_eq!(ranks(&r), [3, 2, 1, 4]);
    }

    #[test]
    fn scores_outside_0_1_are_refused() {
        let mut w = doc_weights();
        w.cost = None;
        for bad in [1.5, -0.1] {
            let s = Scenario {
                name: "too-good".into(),
                benefit: m(&[
                    ("precision", 0.9),
                    ("coverage", bad),
                    ("satisfaction", 0.9),
                    ("growth", 0.9),
                ]),
                cost: m(&[("energy", 10.0)]),
                value: None,
            };
            let e = evaluate(&w, std::slice::from_ref(&s)).unwrap_err();
            assert_eq!(
                e,
                RoiError::ScoreOutOfRange {
                    scenario: "too-good".into(),
                    indicator: "coverage".into(),
                    value: bad,
                }
            );
            assert!(
                e.to_string().contains("`coverage` must be in [0, 1]"),
                "{e}"
            );
        }
    }

    #[test]
    fn negative_or_nan_weights_are_refused() {
        let mut w = BTreeMap::new();
        w.insert("energy".to_string(), -1.0);
        let mut v = BTreeMap::new();
        v.insert("energy".to_string(), 5.0);
        let e = weighted("s", "cost", &v, Some(&w)).unwrap_err();
        assert!(e.to_string().contains("cost weight `energy`"), "{e}");
        w.insert("energy".to_string(), f64::NAN);
        assert!(matches!(
            weighted("s", "cost", &v, Some(&w)),
            Err(RoiError::BadWeight { .. })
        ));
    }

    #[test]
    fn errors_name_the_indicator() {
        let mut s = Scenario {
            name: "x".into(),
            benefit: m(&[
                ("precision", 1.0),
                ("coverage", 1.0),
                ("satisfaction", 1.0),
                ("growth", 1.0),
                ("luck", 1.0),
            ]),
            cost: m(&[
                ("server", 1.0),
                ("maintenance", 1.0),
                ("energy", 1.0),
                ("staff", 1.0),
            ]),
            value: None,
        };
        let e = evaluate(&doc_weights(), std::slice::from_ref(&s)).unwrap_err();
        assert!(e.to_string().contains("`luck` has no weight"), "{e}");
        s.benefit.remove("luck");
        s.benefit.remove("growth");
        let e = evaluate(&doc_weights(), std::slice::from_ref(&s)).unwrap_err();
        assert!(
            e.to_string().contains("weight `growth` has no indicator"),
            "{e}"
        );
        s.benefit.insert("growth".into(), 1.0);
        s.cost.insert("server".into(), -1.0);
        assert!(matches!(
            evaluate(&doc_weights(), std::slice::from_ref(&s)),
            Err(RoiError::NegativeCost { .. })
        ));
        s.cost = m(&[
            ("server", 0.0),
            ("maintenance", 0.0),
            ("energy", 0.0),
            ("staff", 0.0),
        ]);
        assert!(matches!(
            evaluate(&doc_weights(), &[s]),
            Err(RoiError::ZeroCost { .. })
        ));
    }

    #[test]
    fn cost_weights_default_to_one() {
        let w = Weights {
            benefit: m(&[("a", 1.0)]),
            cost: None,
        };
        let s = Scenario {
            name: "s".into(),
            benefit: m(&[("a", 0.5)]),
            cost: m(&[("x", 10.0), ("y", 30.0)]),
            value: Some(60.0),
        };
        let r = evaluate(&w, &[s]).unwrap();
        assert_eq!(r[0].cost, 40.0);
        assert_eq!(r[0].roi, Some(0.5));
    }
}
