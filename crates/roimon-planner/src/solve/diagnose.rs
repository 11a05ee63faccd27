//! Why an instance is infeasible, in words: a floor no inventory can meet,
//! floors that together need more GPUs than there are, or a limit (budget,
//! power cap, emissions cap, minimum ROI) that the floors break, found by
//! solving relaxed programmes with one limit at a time.

use crate::model::Instance;
use crate::solve::{self, Col, Goal, Infeasible, Limits, RunError, SolveOptions};
use std::time::Instant;

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn names(list: &[String]) -> String {
    const SHOWN: usize = 6;
    if list.len() <= SHOWN {
        list.join(", ")
    } else {
        format!(
            "{} and {} more",
            list[..SHOWN].join(", "),
            list.len() - SHOWN
        )
    }
}

fn floor_of(inst: &Instance, w: usize) -> f64 {
    let wl = &inst.workloads[w];
    wl.min_served * wl.demand
}

/// A floor as words: `a/b (min_served 0.95 of 50000 = 47500 tokens/s)`.
fn floor_words(inst: &Instance, w: usize) -> String {
    let wl = &inst.workloads[w];
    format!(
        "{} (min_served {} of {} = {} tokens/s)",
        wl.name,
        fmt_num(wl.min_served),
        fmt_num(wl.demand),
        fmt_num(floor_of(inst, w))
    )
}

/// Is the programme with these limits feasible? `None` when the time ran out.
fn feasible(inst: &Instance, cols: &[Col], limits: &Limits, deadline: Instant) -> Option<bool> {
    match solve::run_limits(inst, cols, limits, Goal::Feasible, deadline) {
        Ok(_) => Some(true),
        Err(RunError::Infeasible) => Some(false),
        Err(_) => None,
    }
}

fn floors_only(inst: &Instance, floors: Vec<bool>) -> Limits {
    let _ = inst;
    Limits {
        floors,
        budget: None,
        power_cap_kw: None,
        emissions_cap_kg: None,
        min_roi: None,
        ratio_floor: None,
        fix: None,
    }
}

/// Names the constraints that conflict; called once `solve` found no
/// feasible allocation.
pub(crate) fn diagnose(
    inst: &Instance,
    opts: &SolveOptions,
    cols: &[Col],
    deadline: Instant,
) -> Infeasible {
    // The diagnosis gets its own time, as long again as the solve had.
    let deadline = deadline.max(Instant::now()) + opts.time_limit;
    let floored: Vec<usize> = (0..inst.workloads.len())
        .filter(|&w| floor_of(inst, w) > 0.0)
        .collect();

    // 1. A floor above what every GPU of its types could serve.
    let mut conflicts = unservable_floors(inst, &floored);
    if !conflicts.is_empty() {
        return Infeasible { conflicts };
    }

    // 2. Floors that together need more GPUs than the inventory has.
    if let Some(c) = floors_over_inventory(inst, cols, &floored, deadline) {
        conflicts.push(c);
        return Infeasible { conflicts };
    }

    // 3. A limit the floors break on its own.
    let floors_words: Vec<String> = floored
        .iter()
        .map(|&w| inst.workloads[w].name.clone())
        .collect();
    let what = if floored.is_empty() {
        "any allocation".to_string()
    } else {
        format!("meeting the floors of {}", names(&floors_words))
    };
    let all = solve::all_limits(inst, opts);
    let base = floors_only(inst, vec![true; inst.workloads.len()]);
    let mut single = Vec::new();
    if let Some(b) = all.budget {
        let lim = Limits {
            budget: Some(b),
            ..base.clone()
        };
        if feasible(inst, cols, &lim, deadline) == Some(false) {
            let least = solve::run_limits(inst, cols, &base, Goal::Cost, deadline)
                .ok()
                .map(|r| inst.evaluate(&solve::clean(inst, cols, &r)).cost);
            single.push(match least {
                Some(c) => format!(
                    "budget {} {cur}: {what} costs at least {} {cur}",
                    fmt_num(b),
                    fmt_num(c),
                    cur = inst.currency
                ),
                None => format!("budget {} {}: {what} costs more", fmt_num(b), inst.currency),
            });
        }
    }
    let least_watts = || {
        solve::run_limits(inst, cols, &base, Goal::Watts, deadline)
            .ok()
            .map(|r| inst.evaluate(&solve::clean(inst, cols, &r)))
    };
    if let Some(p) = all.power_cap_kw {
        let lim = Limits {
            power_cap_kw: Some(p),
            ..base.clone()
        };
        if feasible(inst, cols, &lim, deadline) == Some(false) {
            single.push(match least_watts() {
                Some(t) => format!(
                    "power_cap_kw {}: {what} needs at least {} kW",
                    fmt_num(p),
                    fmt_num(t.power_kw)
                ),
                None => format!("power_cap_kw {}: {what} needs more", fmt_num(p)),
            });
        }
    }
    if let Some(e) = all.emissions_cap_kg {
        let lim = Limits {
            emissions_cap_kg: Some(e),
            ..base.clone()
        };
        if feasible(inst, cols, &lim, deadline) == Some(false) {
            single.push(match least_watts().and_then(|t| t.emissions_kg) {
                Some(k) => format!(
                    "emissions_cap {} kg: {what} emits at least {} kg",
                    fmt_num(e),
                    fmt_num(k)
                ),
                None => format!("emissions_cap {} kg: {what} emits more", fmt_num(e)),
            });
        }
    }
    if let Some(r) = all.min_roi {
        let lim = Limits {
            min_roi: Some(r),
            ..base.clone()
        };
        if feasible(inst, cols, &lim, deadline) == Some(false) {
            single.push(match solve::best_roi(inst, cols, &base, deadline) {
                Some(best) => format!(
                    "min_roi {}: the best ROI {what} is {}",
                    fmt_num(r),
                    fmt_num(best)
                ),
                None => format!("min_roi {}: {what} cannot reach it", fmt_num(r)),
            });
        }
    }
    if !single.is_empty() {
        return Infeasible { conflicts: single };
    }

    // 4. Limits that only together break the floors: a minimal set.
    let mut keep = all.clone();
    keep.floors = vec![true; inst.workloads.len()];
    type Drop = fn(&mut Limits);
    let drops: [(&str, Drop); 4] = [
        ("budget", |l| l.budget = None),
        ("power_cap_kw", |l| l.power_cap_kw = None),
        ("emissions_cap", |l| l.emissions_cap_kg = None),
        ("min_roi", |l| l.min_roi = None),
    ];
    for (_, drop) in &drops {
        let mut trial = keep.clone();
        drop(&mut trial);
        if trial != keep && feasible(inst, cols, &trial, deadline) == Some(false) {
            keep = trial;
        }
    }
    let mut named = Vec::new();
    if let Some(b) = keep.budget {
        named.push(format!("budget {} {}", fmt_num(b), inst.currency));
    }
    if let Some(p) = keep.power_cap_kw {
        named.push(format!("power_cap_kw {}", fmt_num(p)));
    }
    if let Some(e) = keep.emissions_cap_kg {
        named.push(format!("emissions_cap {} kg", fmt_num(e)));
    }
    if let Some(r) = keep.min_roi {
        named.push(format!("min_roi {}", fmt_num(r)));
    }
    if named.is_empty() {
        conflicts.push("no allocation meets every constraint".into());
    } else {
        conflicts.push(format!(
            "{} cannot all hold while {what}",
            named.join(" and ")
        ));
    }
    Infeasible { conflicts }
}

/// The floors above what every GPU of their types could serve, each named
/// with what its types can serve.
fn unservable_floors(inst: &Instance, floored: &[usize]) -> Vec<String> {
    let mut conflicts = Vec::new();
    for &w in floored {
        let wl = &inst.workloads[w];
        let most: f64 = wl
            .on
            .iter()
            .map(|p| p.tokens_per_second * f64::from(inst.gpus[p.gpu].count))
            .sum();
        if floor_of(inst, w) > most * (1.0 + 1e-12) {
            let parts: Vec<String> = wl
                .on
                .iter()
                .map(|p| {
                    format!(
                        "{}: {} GPUs × {}",
                        inst.gpus[p.gpu].kind,
                        inst.gpus[p.gpu].count,
                        fmt_num(p.tokens_per_second)
                    )
                })
                .collect();
            let limit = if parts.is_empty() {
                "it lists no GPU type".to_string()
            } else {
                format!(
                    "its GPU types can serve at most {} ({})",
                    fmt_num(most),
                    parts.join(", ")
                )
            };
            conflicts.push(format!(
                "workload {}: min_served {} needs {} tokens/s, but {limit}",
                wl.name,
                fmt_num(wl.min_served),
                fmt_num(floor_of(inst, w))
            ));
        }
    }
    conflicts
}

/// A minimal set of floors that together need more GPUs than the inventory
/// of their types has, named; `None` when the floors fit together.
fn floors_over_inventory(
    inst: &Instance,
    cols: &[Col],
    floored: &[usize],
    deadline: Instant,
) -> Option<String> {
    let all_floors = vec![true; inst.workloads.len()];
    if feasible(inst, cols, &floors_only(inst, all_floors.clone()), deadline) != Some(false) {
        return None;
    }
    let mut keep = all_floors;
    for &w in floored {
        if Instant::now() >= deadline {
            break;
        }
        keep[w] = false;
        if feasible(inst, cols, &floors_only(inst, keep.clone()), deadline) != Some(false) {
            keep[w] = true;
        }
    }
    let set: Vec<usize> = floored.iter().copied().filter(|&w| keep[w]).collect();
    let mut types: Vec<usize> = set
        .iter()
        .flat_map(|&w| inst.workloads[w].on.iter().map(|p| p.gpu))
        .collect();
    types.sort_unstable();
    types.dedup();
    let inv: Vec<String> = types
        .iter()
        .map(|&g| format!("{}: {} GPUs", inst.gpus[g].kind, inst.gpus[g].count))
        .collect();
    let inv = names(&inv);
    let words: Vec<String> = set.iter().map(|&w| floor_words(inst, w)).collect();
    Some(format!(
        "the floors of {} cannot all be met: together they need more GPUs than the \
             inventory of their types ({})",
        names(&words),
        inv
    ))
}
