//! The status page at `/`: what a person opens to see whether the node's
//! figures can be trusted and what it costs. Server-rendered HTML5, no
//! script, no external asset, CSS inline, refreshing itself every
//! [`REFRESH_SECS`]. Health comes first (collectors, price and carbon feeds,
//! value targets, checkpoint, readiness) with every failure said in words;
//! an owner whose value is not measured says so instead of showing an ROI.
//! Then money now and so far, per GPU and per owner (with budgets), and the
//! last hour's power and cost rate as an inline SVG, and the cheapest 1 h
//! and 4 h windows of the known price schedule. Every figure the
//! summary also has is carried exactly in a `data-*` attribute next to the
//! rounded text, and the page carries the snapshot's time (`data-at` on
//! `<body>`), so a reader can check it against `/api/v1/summary`.
//!
//! Rendering only: the handler in `router` gathers the [`Inputs`].

mod chart;
mod cheapest;
mod fmt;
mod health;
mod money;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use roimon_core::Snapshot;
use roimon_daemon::published::{Board, Point};
use std::collections::BTreeMap;

pub use fmt::esc;

/// Seconds between the page's own reloads.
pub const REFRESH_SECS: u32 = 10;

/// An owner: (team, workload).
pub type OwnerKey = (String, String);

/// What an owner spent this month, from the ledger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonthToDate {
    /// Net cost (cost − credit) booked this month so far.
    pub spent: f64,
    /// Month-end spend if the recent run rate holds.
    pub forecast: f64,
}

/// Everything the page shows, gathered by the handler.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The booked snapshot (the one `/api/v1/summary` shows).
    pub snap: &'a Snapshot,
    /// The daemon's version.
    pub version: &'a str,
    /// Why `/readyz` fails, or `None` when it answers 200.
    pub not_ready: Option<String>,
    /// Whether the sampler published recently (`/healthz`).
    pub live: bool,
    /// Checkpoint writes failed in a row.
    pub checkpoint_failures: u32,
    /// How the feeds and value targets fare.
    pub board: &'a Board,
    /// The last hour's power and cost rate.
    pub history: &'a [Point],
    /// This month's spend per owner (empty without a ledger).
    pub month_to_date: &'a BTreeMap<OwnerKey, MonthToDate>,
    /// Links to this month's CSV statements: (href, label).
    pub statements: &'a [(String, String)],
    /// The cheapest 1 h and 4 h windows of the known price schedule, or
    /// why it cannot be read (`None`: not looked for).
    pub cheapest: Option<Result<Vec<roimon_commands::plan::window::WindowJson>, String>>,
    /// The last plan of `[plan] file` with links to its JSON and pictures,
    /// as escaped HTML (empty without `[plan]`).
    pub plan: String,
}

impl Inputs<'_> {
    /// The time the page is as of: the snapshot's tick (or the counters'
    /// last tick before the first one).
    pub fn as_of(&self) -> Option<DateTime<Utc>> {
        self.snap.at.or(self.snap.counters.last_wall)
    }

    /// "Today", for times shown without their date.
    fn today(&self) -> DateTime<Utc> {
        self.as_of().unwrap_or_default()
    }
}

const STYLE: &str = "\
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#c62828;--warn:#9a6700;--mute:#6e7781;--line:#d0d7de}\
*{box-sizing:border-box}\
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;padding:12px;max-width:1280px}\
h1{font-size:1.35em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em;border-bottom:1px solid var(--line)}\
h3{font-size:1em;margin:.8em 0 .3em}\
.asof{color:var(--mute);margin:0}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}\
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}\
td.n,th.n{text-align:right;white-space:nowrap}\
.ok{color:var(--ok)}.bad{color:var(--bad);font-weight:600}.warn{color:var(--warn)}.mute{color:var(--mute)}\
.verdict{font-weight:600;padding:6px 10px;border-left:4px solid var(--ok)}\
.verdict.bad{border-left-color:var(--bad)}\
ul.problems{padding-left:1.2em}ul.problems li{margin:.2em 0}\
.why{min-width:15em}.small{font-size:.85em}.tag{display:inline-block;padding:0 6px;border-radius:8px;border:1px solid currentColor;font-size:.85em}\
svg{max-width:100%;height:auto}\
.chart text{font-size:11px;fill:currentColor}\
@media (max-width:600px){body{font-size:14px;padding:6px}th,td{padding:3px 4px}.wide{display:none}}";

/// The page.
pub fn render(i: &Inputs) -> String {
    let at = i.as_of();
    // The snapshot's time written as the summary's `at` is (same text), so
    // a reader can match the page with the summary of the same snapshot.
    let at_attr = i.snap.at.map_or(String::new(), |t| {
        let text = serde_json::to_value(t)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        format!(" data-at=\"{}\"", esc(&text))
    });
    let as_of = at.map_or("no sample yet".to_string(), |t| {
        format!("as of {}", fmt::time_el(t, t))
    });
    let mut body = String::new();
    body.push_str(&format!(
        "<header><h1>roimon {}</h1><p class=asof>Node status {as_of} · refreshes every {REFRESH_SECS} s</p></header>",
        esc(i.version)
    ));
    body.push_str(&health::section(i));
    body.push_str(&money::now_section(i));
    body.push_str(&chart::section(i.history, &i.snap.price.currency));
    body.push_str(&money::gpus_section(i));
    body.push_str(&money::owners_section(i));
    body.push_str(&money::windows_section(i));
    if let Some(c) = &i.cheapest {
        body.push_str(&cheapest::section(c, i.today()));
    }
    body.push_str(&statements(i.statements));
    if !i.plan.is_empty() {
        body.push_str(&format!("<section id=\"plan\">{}</section>", i.plan));
    }
    body.push_str(
        "<footer><p class=mute><a href=\"/api/v1/summary\">/api/v1/summary</a> · \
         <a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · \
         <a href=\"/readyz\">/readyz</a></p></footer>",
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <title>roimon {}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head>\
         <body{at_attr} data-currency=\"{}\">{body}</body></html>\n",
        esc(i.version),
        esc(&i.snap.price.currency),
    )
}

/// The month's CSV statements, one link per team.
fn statements(links: &[(String, String)]) -> String {
    if links.is_empty() {
        return String::new();
    }
    let items: String = links
        .iter()
        .map(|(href, label)| format!("<li><a href=\"{}\">{}</a></li>", esc(href), esc(label)))
        .collect();
    format!(
        "<section id=\"statements\"><h2>Statements this month (CSV from the ledger)</h2><ul>{items}</ul></section>"
    )
}
