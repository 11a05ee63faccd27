//! The analysis flags of `roimon plan FILE` (`--sensitivity [--swing]`,
//! `--monte-carlo N --seed S`, `--pareto carbon [--points]`, `--svg DIR`):
//! checked before the solve (exit 2 naming the flag), run on the plan
//! found, added to the JSON under the contract's keys or printed as tables,
//! and drawn as SVG.

use roimon_planner::analysis::monte_carlo::{self, MonteCarlo};
use roimon_planner::analysis::pareto::Point;
use roimon_planner::analysis::sensitivity::{Row, Swing};
use roimon_planner::analysis::{self, ParetoError};
use roimon_planner::svg::fmt_money;
use roimon_planner::{Instance, Plan, SolveOptions};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The default ±swing.
pub const DEFAULT_SWING: f64 = 0.2;
/// The most Monte Carlo draws.
pub const MAX_DRAWS: usize = 10_000_000;
/// The most Pareto caps.
pub const MAX_POINTS: usize = 1000;

/// The analysis flags (flattened into `roimon plan`).
#[derive(Debug, Clone, clap::Args)]
pub struct AnalysisArgs {
    /// Tornado and break-even of the plan: each parameter group scaled by
    /// 1 − swing and 1 + swing, the plan fixed and re-optimised.
    #[arg(long)]
    pub sensitivity: bool,
    /// How far each group moves: a fraction in [0, 1] (default 0.2), or
    /// `measured` (a coefficient measured from the ledger moves to its
    /// P10/P90, the others by 0.2). Used by --sensitivity and --monte-carlo.
    #[arg(long)]
    pub swing: Option<String>,
    /// Monte Carlo of the fixed plan with N draws.
    #[arg(long, value_name = "N")]
    pub monte_carlo: Option<usize>,
    /// Seed of the Monte Carlo (default 0): the same seed gives the same
    /// figures.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Pareto front of profit against emissions (`carbon`; needs
    /// energy.carbon_g_per_kwh).
    #[arg(long, value_name = "carbon")]
    pub pareto: Option<String>,
    /// Emissions caps of the Pareto front (default 11, at least 2).
    #[arg(long, value_name = "N")]
    pub points: Option<usize>,
    /// Write tornado.svg, monte-carlo.svg and pareto.svg (those of the
    /// analyses asked for) into DIR.
    #[arg(long, value_name = "DIR")]
    pub svg: Option<PathBuf>,
}

/// The analysis asked for, checked.
#[derive(Debug, Clone)]
pub struct Asked {
    swing: Option<Swing>,
    sensitivity: bool,
    monte_carlo: Option<(usize, u64)>,
    pareto: Option<usize>,
    svg: Option<PathBuf>,
}

impl Asked {
    /// Whether anything was asked.
    pub fn any(&self) -> bool {
        self.sensitivity || self.monte_carlo.is_some() || self.pareto.is_some()
    }
}

/// A flag error: the flag and why.
pub type FlagError = (&'static str, String);

impl AnalysisArgs {
    /// The first analysis flag given, if any (they apply to allocation
    /// files only).
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.sensitivity, "--sensitivity"),
            (self.swing.is_some(), "--swing"),
            (self.monte_carlo.is_some(), "--monte-carlo"),
            (self.seed.is_some(), "--seed"),
            (self.pareto.is_some(), "--pareto"),
            (self.points.is_some(), "--points"),
            (self.svg.is_some(), "--svg"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// Checks the flags (before anything is solved).
    pub fn check(&self) -> Result<Asked, FlagError> {
        let swing = match self.swing.as_deref() {
            None => None,
            Some("measured") => Some(Swing::Measured(DEFAULT_SWING)),
            Some(t) => match t.parse::<f64>() {
                Ok(s) if s.is_finite() && (0.0..=1.0).contains(&s) => Some(Swing::Fixed(s)),
                _ => {
                    return Err((
                        "--swing",
                        format!("must be a fraction in [0, 1] or \"measured\", got \"{t}\""),
                    ));
                }
            },
        };
        if swing.is_some() && !self.sensitivity && self.monte_carlo.is_none() {
            return Err((
                "--swing",
                "applies to --sensitivity or --monte-carlo; give one of them".into(),
            ));
        }
        let monte_carlo = match self.monte_carlo {
            None => {
                if self.seed.is_some() {
                    return Err(("--seed", "applies to --monte-carlo N; give it".into()));
                }
                None
            }
            Some(n) if (1..=MAX_DRAWS).contains(&n) => Some((n, self.seed.unwrap_or(0))),
            Some(n) => {
                return Err((
                    "--monte-carlo",
                    format!("draws must be in [1, {MAX_DRAWS}], got {n}"),
                ));
            }
        };
        let pareto = match self.pareto.as_deref() {
            None => {
                if self.points.is_some() {
                    return Err(("--points", "applies to --pareto carbon; give it".into()));
                }
                None
            }
            Some("carbon") => match self.points.unwrap_or(11) {
                p if (2..=MAX_POINTS).contains(&p) => Some(p),
                p => {
                    return Err(("--points", format!("must be in [2, {MAX_POINTS}], got {p}")));
                }
            },
            Some(o) => {
                return Err((
                    "--pareto",
                    format!("the only front is \"carbon\" (profit against emissions), got \"{o}\""),
                ));
            }
        };
        let asked = Asked {
            swing,
            sensitivity: self.sensitivity,
            monte_carlo,
            pareto,
            svg: self.svg.clone(),
        };
        if asked.svg.is_some() && !asked.any() {
            return Err((
                "--svg",
                "draws the analysis: give --sensitivity, --monte-carlo N or --pareto carbon".into(),
            ));
        }
        Ok(asked)
    }
}

/// Checks what needs the resolved instance: the front needs a carbon
/// intensity.
pub fn check_instance(asked: &Asked, inst: &Instance) -> Result<(), FlagError> {
    if asked.pareto.is_some() && inst.carbon_g_per_kwh.is_none() {
        return Err(("--pareto", ParetoError::NoCarbon.to_string()));
    }
    Ok(())
}

/// What the analysis found.
#[derive(Debug, Default)]
pub struct Found {
    sensitivity: Option<Vec<Row>>,
    monte_carlo: Option<MonteCarlo>,
    pareto: Option<Vec<Point>>,
}

/// Runs the analysis asked for on `plan`. `daily_prices`: the ledger's
/// daily mean prices when the price is measured. Err: a message and the
/// exit code.
pub fn run(
    asked: &Asked,
    inst: &Instance,
    plan: &Plan,
    opts: &SolveOptions,
    daily_prices: Option<&[f64]>,
) -> Result<Found, (String, u8)> {
    let swing = asked.swing.unwrap_or(Swing::Fixed(DEFAULT_SWING));
    let mut found = Found::default();
    if asked.sensitivity {
        found.sensitivity = Some(analysis::sensitivity(inst, plan, swing, opts));
    }
    if let Some((draws, seed)) = asked.monte_carlo {
        let spread = match swing {
            Swing::Measured(_) => Some(&inst.spread),
            Swing::Fixed(_) => None,
        };
        let o = monte_carlo::Options {
            draws,
            seed,
            swing: swing.swing(),
            spread,
            daily_prices,
        };
        found.monte_carlo = Some(monte_carlo::run(inst, &plan.allocation, &o));
    }
    if let Some(points) = asked.pareto {
        let profit_plan = (opts.objective.unwrap_or(inst.objective)
            == roimon_planner::Objective::Profit
            && opts.emissions_cap_kg.is_none())
        .then_some(plan);
        match analysis::pareto(inst, opts, points, profit_plan) {
            Ok(f) => found.pareto = Some(f),
            Err(e @ ParetoError::NoCarbon) => return Err((e.to_string(), 2)),
            Err(e @ ParetoError::Infeasible(_)) => return Err((e.to_string(), 1)),
        }
    }
    Ok(found)
}

/// Adds the contract's keys to the plan's JSON object.
pub fn insert_json(doc: &mut Value, inst: &Instance, found: &Found) {
    let Some(o) = doc.as_object_mut() else { return };
    if let Some(rows) = &found.sensitivity {
        o.insert("sensitivity".into(), analysis::sensitivity_json(rows));
    }
    if let Some(m) = &found.monte_carlo {
        o.insert("monte_carlo".into(), analysis::monte_carlo_json(m));
    }
    if let Some(f) = &found.pareto {
        o.insert("pareto".into(), analysis::pareto_json(inst, f));
    }
}

/// The pictures of what was found: (file name, SVG text).
pub fn pictures(inst: &Instance, plan: &Plan, found: &Found) -> Vec<(&'static str, String)> {
    let mut files = Vec::new();
    if let Some(rows) = &found.sensitivity {
        files.push((
            "tornado.svg",
            roimon_planner::svg::tornado(rows, &inst.currency, inst.hours),
        ));
    }
    if let Some(m) = &found.monte_carlo {
        files.push((
            "monte-carlo.svg",
            roimon_planner::svg::monte_carlo(m, &inst.currency, inst.hours),
        ));
    }
    if let Some(f) = &found.pareto {
        let chosen = plan.totals.emissions_kg.map(|e| (e, plan.totals.profit));
        files.push((
            "pareto.svg",
            roimon_planner::svg::pareto(f, chosen, &inst.currency, inst.hours),
        ));
    }
    files
}

/// Writes the pictures of what was found into the `--svg` directory.
pub fn write_svg(asked: &Asked, inst: &Instance, plan: &Plan, found: &Found) -> Result<(), String> {
    let Some(dir) = &asked.svg else { return Ok(()) };
    std::fs::create_dir_all(dir).map_err(|e| format!("--svg {}: {e}", dir.display()))?;
    for (name, text) in pictures(inst, plan, found) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("--svg {}: {e}", path.display()))?;
    }
    Ok(())
}

fn opt_money(v: Option<f64>) -> String {
    v.map_or_else(|| "infeasible".into(), fmt_money)
}

/// The analysis as readable tables (after the plan's own table).
pub fn tables(inst: &Instance, found: &Found) -> String {
    let cur = &inst.currency;
    let mut s = String::new();
    if let Some(rows) = &found.sensitivity {
        let base = rows.first().map_or(0.0, |r| r.base);
        let _ = writeln!(
            s,
            "\nSensitivity of the plan's profit over {} h (base {} {cur}); widest range first",
            inst.hours,
            fmt_money(base)
        );
        let _ = writeln!(
            s,
            "{:<26} {:>6} {:>6} {:>14} {:>14} {:>8} {:>8} {:>14} {:>14} {:>10}  range from",
            "parameter",
            "low",
            "high",
            "profit low",
            "profit high",
            "ROI low",
            "ROI high",
            "re-opt low",
            "re-opt high",
            "break-even",
        );
        for r in rows {
            let _ = writeln!(
                s,
                "{:<26} {:>6} {:>6} {:>14} {:>14} {:>8.3} {:>8.3} {:>14} {:>14} {:>10}  {}",
                r.parameter.name(),
                format!("×{:.2}", r.low),
                format!("×{:.2}", r.high),
                fmt_money(r.profit_low),
                fmt_money(r.profit_high),
                r.roi_low,
                r.roi_high,
                opt_money(r.profit_low_reoptimised),
                opt_money(r.profit_high_reoptimised),
                r.break_even
                    .map_or_else(|| "none".into(), |k| format!("×{k:.4}")),
                r.swing_source
            );
        }
        let _ = writeln!(
            s,
            "(low/high and break-even are scale factors of the group; profit and ROI of the same GPUs and tokens, \
             capped at the new demand and capacity; re-opt: solved again)"
        );
    }
    if let Some(m) = &found.monte_carlo {
        let _ = writeln!(
            s,
            "\nMonte Carlo of the plan: {} draws, seed {} (price: {})",
            m.draws, m.seed, m.price_source
        );
        let _ = writeln!(s, "{:<16} {:>14} {:>14} {:>14}", "", "P5", "P50", "P95");
        let _ = writeln!(
            s,
            "{:<16} {:>14} {:>14} {:>14}",
            format!("profit ({cur})"),
            fmt_money(m.profit_p5),
            fmt_money(m.profit_p50),
            fmt_money(m.profit_p95)
        );
        let _ = writeln!(
            s,
            "{:<16} {:>14.4} {:>14.4} {:>14.4}",
            "ROI", m.roi_p5, m.roi_p50, m.roi_p95
        );
        let _ = write!(s, "P(profit < 0) = {:.2} %", m.p_profit_below_0 * 100.0);
        match (m.p_roi_below_min, inst.min_roi) {
            (Some(p), Some(r)) => {
                let _ = writeln!(s, "; P(ROI < min_roi {r}) = {:.2} %", p * 100.0);
            }
            _ => {
                let _ = writeln!(s, "; no min_roi");
            }
        }
    }
    if let Some(front) = &found.pareto {
        let _ = writeln!(
            s,
            "\nPareto front, profit against emissions over {} h: {} non-dominated plans",
            inst.hours,
            front.len()
        );
        let _ = writeln!(
            s,
            "{:>14} {:>14} {:>8} {:>14} {:>6}  binding",
            "emissions kg",
            format!("profit {cur}"),
            "ROI",
            format!("cost {cur}"),
            "GPUs",
        );
        for p in front {
            let gpus: u32 = p.allocation.cells.iter().map(|c| c.gpus).sum();
            let _ = writeln!(
                s,
                "{:>14.3} {:>14} {:>8.3} {:>14} {:>6}  {}",
                p.emissions_kg,
                fmt_money(p.profit),
                p.roi,
                fmt_money(p.cost),
                gpus,
                if p.binding.is_empty() {
                    "-".into()
                } else {
                    p.binding.join(", ")
                }
            );
        }
    }
    s
}

/// The ledger's daily mean prices paid (energy cost ÷ facility kWh, one
/// figure per UTC day of the window), for the Monte Carlo when the price
/// is measured; `None` when the price comes from the file or no ledger
/// can be read (the price is then drawn from the triangle like every
/// other group: `price_source` says which). The Monte Carlo uses them only
/// when there are at least 7 days.
pub fn daily_prices(inst: &Instance, measure: &super::MeasureArgs) -> Option<Vec<f64>> {
    let measured = inst
        .coefficients
        .iter()
        .any(|c| c.name == "energy.price_per_kwh" && c.source == "ledger");
    if !measured {
        return None;
    }
    let paths = crate::plan_measured::ledger_paths(measure.state_dir.as_deref(), &measure.ledger);
    let m = roimon_ledger::measure::Measure::open(&paths, measure.from, measure.to).ok()?;
    Some(m.daily_mean_prices(measure.from, measure.to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> AnalysisArgs {
        AnalysisArgs {
            sensitivity: false,
            swing: None,
            monte_carlo: None,
            seed: None,
            pareto: None,
            points: None,
            svg: None,
        }
    }

    #[test]
    fn swing_is_a_fraction_or_measured_and_needs_an_analysis() {
        let mut a = args();
        a.sensitivity = true;
        a.swing = Some("measured".into());
        assert!(matches!(a.check().unwrap().swing, Some(Swing::Measured(_))));
        a.swing = Some("0.3".into());
        assert_eq!(a.check().unwrap().swing, Some(Swing::Fixed(0.3)));
        for bad in ["1.5", "-0.1", "NaN", "wide"] {
            a.swing = Some(bad.into());
            assert_eq!(a.check().unwrap_err().0, "--swing", "{bad}");
        }
        let mut b = args();
        b.swing = Some("0.2".into());
        assert_eq!(b.check().unwrap_err().0, "--swing");
    }

    #[test]
    fn monte_carlo_pareto_and_svg_flags_are_checked() {
        let mut a = args();
        a.monte_carlo = Some(0);
        assert_eq!(a.check().unwrap_err().0, "--monte-carlo");
        a.monte_carlo = Some(100);
        assert_eq!(a.check().unwrap().monte_carlo, Some((100, 0)));
        a.seed = Some(9);
        assert_eq!(a.check().unwrap().monte_carlo, Some((100, 9)));
        let mut p = args();
        p.points = Some(5);
        assert_eq!(p.check().unwrap_err().0, "--points");
        p.pareto = Some("carbon".into());
        assert_eq!(p.check().unwrap().pareto, Some(5));
        p.points = Some(1);
        assert_eq!(p.check().unwrap_err().0, "--points");
        p.pareto = Some("cost".into());
        assert_eq!(p.check().unwrap_err().0, "--pareto");
        assert_eq!(args().first_given(), None);
        let mut s = args();
        s.svg = Some("out".into());
        assert_eq!(s.first_given(), Some("--svg"));
        assert_eq!(s.check().unwrap_err().0, "--svg");
        s.sensitivity = true;
        assert!(s.check().unwrap().svg.is_some());
    }
}
