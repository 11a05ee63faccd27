//! The last hour's facility power and cost rate as a small inline SVG: two
//! lines on one time axis (the history's span, up to an hour), each scaled
//! to its own peak (named above it), no script and no external asset.

use super::fmt::{esc, money, watts};
use roimon_daemon::published::{HISTORY_SPAN_SECS, Point};

const W: f64 = 600.0;
const H: f64 = 140.0;
const LEFT: f64 = 4.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 18.0;

/// The chart section (a note instead while there are fewer than 2 points).
pub fn section(points: &[Point], currency: &str) -> String {
    if points.len() < 2 {
        return "<section id=\"history\"><h2>Last hour</h2><p class=\"mute\">Not enough samples yet for a chart (one point every 10 s).</p></section>".into();
    }
    format!(
        "<section id=\"history\"><h2>Last hour</h2>{}</section>",
        svg(points, currency)
    )
}

/// Seconds the time axis spans: the history's, at least a minute, at most
/// an hour.
fn span_secs(points: &[Point]) -> f64 {
    match (points.first(), points.last()) {
        (Some(a), Some(b)) => {
            ((b.at - a.at).num_milliseconds() as f64 / 1000.0).clamp(60.0, HISTORY_SPAN_SECS as f64)
        }
        _ => 60.0,
    }
}

/// Polyline points for `v` of each point, scaled to `peak`.
fn line(points: &[Point], v: impl Fn(&Point) -> f64, peak: f64) -> String {
    let Some(last) = points.last() else {
        return String::new();
    };
    let span = span_secs(points);
    let plot_h = H - TOP - BOTTOM;
    points
        .iter()
        .map(|p| {
            let before = (last.at - p.at).num_milliseconds() as f64 / 1000.0;
            let x = LEFT + (1.0 - before / span).clamp(0.0, 1.0) * (W - 2.0 * LEFT);
            let frac = if peak > 0.0 {
                (v(p) / peak).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let y = TOP + plot_h * (1.0 - frac);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The SVG.
pub fn svg(points: &[Point], currency: &str) -> String {
    let peak_w = points.iter().map(|p| p.power_watts).fold(0.0, f64::max);
    let peak_c = points.iter().map(|p| p.cost_per_hour).fold(0.0, f64::max);
    let base = H - BOTTOM;
    format!(
        "<svg class=\"chart\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"Facility power and cost rate over the last hour\" data-points=\"{}\">\
         <line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#888\"/>\
         <polyline fill=\"none\" stroke=\"#2f81f7\" stroke-width=\"2\" points=\"{}\"/>\
         <polyline fill=\"none\" stroke=\"#d4a72c\" stroke-width=\"2\" stroke-dasharray=\"5 3\" points=\"{}\"/>\
         <text x=\"{LEFT}\" y=\"12\" fill=\"#2f81f7\">power, peak {}</text>\
         <text x=\"{}\" y=\"12\" text-anchor=\"end\" fill=\"#d4a72c\">cost rate, peak {} {}/h</text>\
         <text x=\"{LEFT}\" y=\"{}\">−{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">now</text></svg>",
        points.len(),
        W - LEFT,
        line(points, |p| p.power_watts, peak_w),
        line(points, |p| p.cost_per_hour, peak_c),
        watts(peak_w),
        W - LEFT,
        money(peak_c),
        esc(currency),
        H - 4.0,
        super::fmt::age(span_secs(points)),
        W - LEFT,
        H - 4.0,
    )
}
