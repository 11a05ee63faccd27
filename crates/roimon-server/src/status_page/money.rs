//! Money now and so far: the node's power and cost rate, each GPU (power,
//! utilisation, cost rate, energy, cost, idle), each owner (cost rate, month
//! to date, value, cost and ROI over the last day, budget with a bar) and
//! the ROI windows. Figures the summary also has carry their exact value
//! in a `data-*` attribute.

use super::fmt::{data, esc, kwh, money, pct, signed_pct, watts};
use super::{Inputs, OwnerKey, health};
use roimon_core::BudgetView;
use std::collections::{BTreeMap, BTreeSet};

/// Below this utilisation a GPU is idle (as the idle-GPU alert says).
pub const IDLE_BELOW: f64 = 0.05;

/// The window whose value, cost and ROI the owners table shows.
const OWNER_WINDOW_SECS: i64 = 86_400;

/// The node now: power, price, cost rate and cost so far.
pub fn now_section(i: &Inputs) -> String {
    let s = i.snap;
    let cur = esc(&s.price.currency);
    let rate: f64 = s.cost_rate_per_sec.values().sum::<f64>() * 3600.0 + 0.0;
    let total: f64 = s.counters.cost.values().map(|a| a.total()).sum::<f64>() + 0.0;
    let credit: f64 = s.counters.credit.values().map(|a| a.total()).sum::<f64>() + 0.0;
    let gpu_power: f64 = s
        .gpus
        .values()
        .filter(|g| g.present)
        .filter_map(|g| g.reading.power.map(|w| w.0))
        .sum::<f64>()
        + 0.0;
    format!(
        "<section id=\"now\"><h2>Money now and so far</h2><div class=\"scroll\"><table>\
         <tr><td>facility power</td><td class=\"n\" id=\"facility-power\"{}>{}</td><td>GPUs {} (PUE {:.2})</td></tr>\
         <tr><td>cost rate</td><td class=\"n\" id=\"cost-rate\"{}>{} {cur}/h</td><td>every component</td></tr>\
         <tr><td>cost so far</td><td class=\"n\" id=\"cost-total\"{}>{} {cur}</td><td>credit {} {cur}; facility energy {}</td></tr>\
         </table></div></section>",
        data("power-watts", Some(s.facility_power_watts)),
        watts(s.facility_power_watts),
        watts(gpu_power),
        s.pue,
        data("cost-rate-per-hour", Some(rate)),
        money(rate),
        data("cost", Some(total)),
        money(total),
        money(credit),
        kwh(s.counters.facility_energy_joules.total()),
    )
}

/// One row per GPU.
pub fn gpus_section(i: &Inputs) -> String {
    let s = i.snap;
    let c = &s.counters;
    let mut rows = String::new();
    for (uuid, g) in &s.gpus {
        let r = &g.reading;
        let cost: f64 = c
            .rows
            .iter()
            .filter(|(k, _)| &k.gpu_uuid == uuid)
            .map(|(_, row)| row.cost_total())
            .sum::<f64>()
            + 0.0;
        let energy = c.gpu_energy_joules.get(uuid).map_or(0.0, |a| a.total());
        let rate = s.gpu_cost_rate_per_sec.get(uuid).map(|r| r * 3600.0);
        let idle = g.present && r.utilization.is_some_and(|u| u < IDLE_BELOW);
        let state = if !g.present {
            "<span class=\"bad\">not answering</span>".to_string()
        } else if idle {
            let burning = r.power.is_some_and(|w| w.0 > 100.0);
            format!(
                "<span class=\"tag {}\">idle</span>",
                if burning { "warn" } else { "mute" }
            )
        } else {
            "<span class=\"tag ok\">busy</span>".to_string()
        };
        rows.push_str(&format!(
            "<tr data-gpu-uuid=\"{}\" data-idle=\"{idle}\"><td>{}</td><td class=\"wide\">{}</td><td>{}/{}</td>\
             <td class=\"n\"{}>{}</td><td class=\"n\"{}>{}</td><td class=\"n\"{}>{}</td>\
             <td class=\"n\"{}>{}</td><td class=\"n\"{}>{}</td><td>{state}</td></tr>",
            esc(uuid),
            r.index,
            esc(&r.name),
            esc(&g.owner.team),
            esc(&g.owner.workload),
            data("power-watts", r.power.map(|w| w.0)),
            r.power.map_or("–".into(), |w| watts(w.0)),
            data("utilization-ratio", r.utilization),
            r.utilization.map_or("–".into(), pct),
            data("cost-rate-per-hour", rate),
            rate.map_or("–".into(), money),
            data("energy-joules", Some(energy)),
            kwh(energy),
            data("cost", Some(cost)),
            money(cost),
        ));
    }
    let cur = esc(&s.price.currency);
    format!(
        "<section id=\"gpus\"><h2>GPUs</h2><div class=\"scroll\"><table><tr><th>gpu</th><th class=\"wide\">model</th><th>team/workload</th>\
         <th class=\"n\">power</th><th class=\"n\">util.</th><th class=\"n\">cost rate ({cur}/h)</th><th class=\"n\">energy</th>\
         <th class=\"n\">cost so far ({cur})</th><th>state</th></tr>{rows}</table></div>\
         <p class=\"mute\">Idle: below {:.0} % utilisation. Cost so far: over every owner the GPU has had.</p></section>",
        IDLE_BELOW * 100.0
    )
}

/// Every owner the page knows: current GPU owners, owners with money in
/// the day's window, owners with a budget or value.
fn owners(i: &Inputs) -> BTreeSet<OwnerKey> {
    let s = i.snap;
    let mut out: BTreeSet<OwnerKey> = s
        .gpus
        .values()
        .map(|g| (g.owner.team.clone(), g.owner.workload.clone()))
        .collect();
    if let Some(w) = s.windows.iter().find(|w| w.seconds == OWNER_WINDOW_SECS) {
        out.extend(
            w.owners
                .iter()
                .map(|o| (o.team.clone(), o.workload.clone())),
        );
    }
    out.extend(
        s.budgets
            .iter()
            .filter(|b| !b.workload.is_empty())
            .map(|b| (b.team.clone(), b.workload.clone())),
    );
    out.extend(i.month_to_date.keys().cloned());
    out
}

/// A budget bar: spent (filled) and forecast (a mark) against the month's
/// budget, red when the forecast goes over.
fn bar(b: &BudgetView) -> String {
    let scale = b
        .monthly
        .max(b.forecast)
        .max(b.spent)
        .max(f64::MIN_POSITIVE);
    let x = |v: f64| (v.max(0.0) / scale * 120.0).min(120.0);
    let over = b.forecast > b.monthly;
    format!(
        "<svg class=\"bar\" width=\"124\" height=\"14\" viewBox=\"0 0 124 14\" role=\"img\" aria-label=\"{} of {} spent, {} forecast\">\
         <rect x=\"2\" y=\"3\" width=\"{:.1}\" height=\"8\" fill=\"none\" stroke=\"#888\"/>\
         <rect x=\"2\" y=\"3\" width=\"{:.1}\" height=\"8\" fill=\"{}\"/>\
         <line x1=\"{:.1}\" y1=\"0\" x2=\"{:.1}\" y2=\"14\" stroke=\"{}\" stroke-width=\"2\"/></svg>",
        money(b.spent),
        money(b.monthly),
        money(b.forecast),
        x(b.monthly),
        x(b.spent),
        if b.spent > b.monthly {
            "#c62828"
        } else {
            "#2f81f7"
        },
        2.0 + x(b.forecast),
        2.0 + x(b.forecast),
        if over { "#c62828" } else { "#1a7f37" },
    )
}

fn budget_cell(b: Option<&BudgetView>) -> String {
    match b {
        None => "<td class=\"mute\">no budget</td>".into(),
        Some(b) => format!(
            "<td{}{}{}>{}<br><span class=\"small\">{} of {}, month end ≈ {}</span>{}</td>",
            data("budget-monthly", Some(b.monthly)),
            data("budget-spent", Some(b.spent)),
            data("budget-forecast", Some(b.forecast)),
            bar(b),
            money(b.spent),
            money(b.monthly),
            money(b.forecast),
            if b.forecast > b.monthly {
                " <span class=\"bad\">over budget</span>"
            } else {
                ""
            }
        ),
    }
}

/// One row per owner, then the team-wide budgets.
pub fn owners_section(i: &Inputs) -> String {
    let s = i.snap;
    let day = s.windows.iter().find(|w| w.seconds == OWNER_WINDOW_SECS);
    let mut rate: BTreeMap<OwnerKey, f64> = BTreeMap::new();
    for (uuid, g) in &s.gpus {
        if let Some(r) = s.gpu_cost_rate_per_sec.get(uuid) {
            *rate
                .entry((g.owner.team.clone(), g.owner.workload.clone()))
                .or_default() += r * 3600.0;
        }
    }
    let mut rows = String::new();
    for (team, workload) in owners(i) {
        let key = (team.clone(), workload.clone());
        let w = day.and_then(|d| {
            d.owners
                .iter()
                .find(|o| o.team == team && o.workload == workload)
        });
        let mtd = i.month_to_date.get(&key);
        let unmeasured = health::unmeasured(i, &team, &workload);
        let roi = match (&unmeasured, w.and_then(|o| o.roi)) {
            (Some((words, failing)), _) => format!(
                "<td class=\"{} why\" data-unmeasured=\"true\">{}</td>",
                if *failing { "bad" } else { "mute" },
                esc(words)
            ),
            (None, Some(r)) => format!(
                "<td class=\"n\"{}>{}</td>",
                data("roi", Some(r)),
                signed_pct(r)
            ),
            (None, None) => "<td class=\"n mute\">–</td>".into(),
        };
        let budget = s
            .budgets
            .iter()
            .find(|b| b.team == team && b.workload == workload);
        rows.push_str(&format!(
            "<tr data-team=\"{}\" data-workload=\"{}\"><td>{}/{}</td><td class=\"n\"{}>{}</td><td class=\"n\"{}>{}</td>\
             <td class=\"n\"{}>{}</td><td class=\"n\"{}>{}</td>{roi}{}</tr>",
            esc(&team),
            esc(&workload),
            esc(&team),
            esc(&workload),
            data("cost-rate-per-hour", rate.get(&key).copied()),
            rate.get(&key).map_or("–".into(), |r| money(*r)),
            data("month-to-date", mtd.map(|m| m.spent)),
            mtd.map_or("–".into(), |m| format!(
                "{}<br><span class=\"mute small\">month end ≈ {}</span>",
                money(m.spent),
                money(m.forecast)
            )),
            data("value", w.map(|o| o.value)),
            w.map_or("–".into(), |o| money(o.value)),
            data("cost", w.map(|o| o.cost)),
            w.map_or("–".into(), |o| money(o.cost)),
            budget_cell(budget),
        ));
    }
    for b in s.budgets.iter().filter(|b| b.workload.is_empty()) {
        rows.push_str(&format!(
            "<tr data-team=\"{}\" data-workload=\"\"><td>{} (whole team)</td><td></td><td class=\"n\"{}>{}</td><td></td><td></td><td></td>{}</tr>",
            esc(&b.team),
            esc(&b.team),
            data("month-to-date", Some(b.spent)),
            money(b.spent),
            budget_cell(Some(b)),
        ));
    }
    let cur = esc(&s.price.currency);
    format!(
        "<section id=\"owners\"><h2>Teams</h2><div class=\"scroll\"><table><tr><th>team/workload</th><th class=\"n\">cost rate ({cur}/h)</th>\
         <th class=\"n\">month to date ({cur})</th><th class=\"n\">value 24 h ({cur})</th><th class=\"n\">cost 24 h ({cur})</th>\
         <th class=\"n\">ROI 24 h</th><th>budget this month</th></tr>{rows}</table></div>\
         <p class=\"mute\">ROI = (value − cost) / cost over the last 24 h. Month to date: net cost booked in the ledger.</p></section>"
    )
}

/// The ROI windows of the node.
pub fn windows_section(i: &Inputs) -> String {
    let s = i.snap;
    let cur = esc(&s.price.currency);
    let unmeasured = i.board.targets.iter().any(|(label, h)| {
        health::target_down(label, h, i.as_of().unwrap_or_default(), false).is_some()
    });
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("–".to_string(), f);
    let mut rows = String::new();
    for w in &s.windows {
        let roi = if unmeasured {
            "<td class=\"warn\">value partly not measured</td>".to_string()
        } else {
            format!(
                "<td class=\"n\"{}>{}</td>",
                data("roi", w.roi),
                opt(w.roi, &signed_pct)
            )
        };
        rows.push_str(&format!(
            "<tr data-window=\"{}\"><td>{}</td><td class=\"n\"{}>{}</td><td class=\"n\"{}>{}</td>{roi}<td class=\"n\">{}</td>\
             <td class=\"n wide\">{}</td><td class=\"n wide\">{}</td></tr>",
            esc(&w.window),
            esc(&w.window),
            data("value", Some(w.value)),
            money(w.value),
            data("cost", Some(w.cost)),
            money(w.cost),
            opt(w.baseline_roi, &signed_pct),
            opt(w.weighted_efficiency, &|e| format!("{e:.4e}")),
            opt(w.cost_per_million_tokens, &money),
        ));
    }
    format!(
        "<section id=\"windows\"><h2>ROI by window (node)</h2><div class=\"scroll\"><table><tr><th>window</th><th class=\"n\">value ({cur})</th>\
         <th class=\"n\">cost ({cur})</th><th class=\"n\">ROI</th><th class=\"n\">baseline</th><th class=\"n wide\">weighted eff. P/C per h</th>\
         <th class=\"n wide\">cost per 1M tokens ({cur})</th></tr>{rows}</table></div></section>"
    )
}
