//! The cheapest 1 h and 4 h windows of the known price schedule (as
//! `roimon plan window` finds them), so a person who can defer a job sees
//! when it costs least, what that saves against starting now, or why the
//! schedule cannot say.

use super::fmt::{esc, money, time_el};
use chrono::{DateTime, Utc};
use roimon_commands::plan::window::WindowJson;

/// The section: a table of windows, or why there is none.
pub fn section(found: &Result<Vec<WindowJson>, String>, today: DateTime<Utc>) -> String {
    let body = match found {
        Err(why) => format!(
            "<p class=\"mute\">No known price schedule to look in: {}</p>",
            esc(why)
        ),
        Ok(w) if w.is_empty() => {
            "<p class=\"mute\">The known price schedule is too short for a 1 h window.</p>".into()
        }
        Ok(windows) => table(windows, today),
    };
    format!(
        "<section id=\"cheapest\"><h2>Cheapest times to run</h2>{body}\
         <p class=\"mute\">For a job drawing 1 kW, from now on, over the price schedule the daemon knows (<code>roimon plan window</code> for other jobs).</p></section>"
    )
}

fn at(s: &str, today: DateTime<Utc>) -> String {
    s.parse::<DateTime<Utc>>()
        .map_or_else(|_| esc(s), |t| time_el(t, today))
}

fn table(windows: &[WindowJson], today: DateTime<Utc>) -> String {
    let mut rows = String::new();
    for w in windows {
        let cur = esc(&w.currency);
        let flat = (w.cost_worst - w.cost).abs() <= 1e-12 * w.cost.abs().max(1.0);
        let saving = match (w.saving_vs_now, flat) {
            (_, true) => "the price is flat: any start costs the same".to_string(),
            (Some(s), false) => format!("{} {cur} less than starting now", money(s)),
            (None, false) => "now is not in the known schedule".to_string(),
        };
        rows.push_str(&format!(
            "<tr data-hours=\"{}\"><td>{} h</td><td>{} – {}</td><td class=\"n\">{:.4} {cur}/kWh</td><td class=\"n\">{} {cur}</td><td>{saving}</td></tr>",
            w.hours,
            w.hours,
            at(&w.start, today),
            at(&w.end, today),
            w.avg_price_per_kwh,
            money(w.cost),
        ));
    }
    format!(
        "<div class=\"scroll\"><table><tr><th>length</th><th>cheapest start – end</th><th class=\"n\">average price</th>\
         <th class=\"n\">cost per kW drawn</th><th>against starting now</th></tr>{rows}</table></div>"
    )
}
