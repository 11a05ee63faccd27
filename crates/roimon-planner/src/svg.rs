//! The analysis as pictures: a tornado, a Monte Carlo histogram and a
//! Pareto front, written as SVG text directly (no plotting library, no
//! fonts): each has a title, titled axes in units and currency, and its
//! key figures written on it so it reads without the JSON.

use crate::analysis::monte_carlo::MonteCarlo;
use crate::analysis::pareto::Point;
use crate::analysis::sensitivity::Row;
use std::fmt::Write as _;

const W: f64 = 800.0;
const H: f64 = 500.0;
const FONT: &str = "font-family=\"sans-serif\"";
const LOW: &str = "#4477aa";
const HIGH: &str = "#ee7733";
const INK: &str = "#222222";
const GRID: &str = "#dddddd";

/// Escapes text for XML character data and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A figure in a fixed frame with a plot area and two linear axes.
struct Fig {
    s: String,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Fig {
    fn new(title: &str, left: f64, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> Fig {
        let mut s = String::new();
        let _ = write!(
            s,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\n<title>{t}</title>\n\
             <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
             <text x=\"{cx}\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\" {FONT} fill=\"{INK}\">{t}</text>\n",
            t = escape(title),
            cx = W / 2.0
        );
        let (x0, x1) = widen(x0, x1);
        let (y0, y1) = widen(y0, y1);
        Fig {
            s,
            left,
            right: W - 30.0,
            top: 60.0,
            bottom: H - 70.0,
            x0,
            x1,
            y0,
            y1,
        }
    }

    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left)
    }

    fn py(&self, y: f64) -> f64 {
        self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, size: u32, fill: &str, t: &str) {
        let _ = writeln!(
            self.s,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" font-size=\"{size}\" {FONT} fill=\"{fill}\">{}</text>",
            escape(t)
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str, extra: &str) {
        let _ = writeln!(
            self.s,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{stroke}\" {extra}/>"
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, tip: &str) {
        let _ = writeln!(
            self.s,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"><title>{}</title></rect>",
            w.max(0.0),
            h.max(0.0),
            escape(tip)
        );
    }

    /// The x axis with ticks, grid and its title.
    fn x_axis(&mut self, title: &str) {
        for t in ticks(self.x0, self.x1) {
            let x = self.px(t);
            self.line((x, self.top), (x, self.bottom), GRID, "");
            self.line((x, self.bottom), (x, self.bottom + 5.0), INK, "");
            let label = fmt_tick(t, self.x1 - self.x0);
            self.text(x, self.bottom + 18.0, "middle", 11, INK, &label);
        }
        self.line((self.left, self.bottom), (self.right, self.bottom), INK, "");
        let cx = (self.left + self.right) / 2.0;
        self.text(cx, self.bottom + 40.0, "middle", 13, INK, title);
    }

    /// The y axis with ticks, grid and its title (rotated).
    fn y_axis(&mut self, title: &str) {
        for t in ticks(self.y0, self.y1) {
            let y = self.py(t);
            self.line((self.left, y), (self.right, y), GRID, "");
            self.line((self.left - 5.0, y), (self.left, y), INK, "");
            let label = fmt_tick(t, self.y1 - self.y0);
            self.text(self.left - 8.0, y + 4.0, "end", 11, INK, &label);
        }
        self.line((self.left, self.top), (self.left, self.bottom), INK, "");
        let cy = (self.top + self.bottom) / 2.0;
        let _ = writeln!(
            self.s,
            "<text x=\"18\" y=\"{cy:.1}\" text-anchor=\"middle\" font-size=\"13\" {FONT} fill=\"{INK}\" transform=\"rotate(-90 18 {cy:.1})\">{}</text>",
            escape(title)
        );
    }

    fn finish(mut self) -> String {
        self.s.push_str("</svg>\n");
        self.s
    }
}

/// A non-empty, finite range (a single value gets ±1 or ±10 %).
fn widen(a: f64, b: f64) -> (f64, f64) {
    let (a, b) = if a.is_finite() && b.is_finite() {
        (a.min(b), a.max(b))
    } else {
        (0.0, 1.0)
    };
    if b - a > 1e-12 * a.abs().max(b.abs()).max(1e-300) {
        let pad = (b - a) * 0.05;
        (a - pad, b + pad)
    } else {
        let d = if a == 0.0 { 1.0 } else { a.abs() * 0.1 };
        (a - d, b + d)
    }
}

/// Round tick values covering [a, b] (about six).
fn ticks(a: f64, b: f64) -> Vec<f64> {
    let raw = (b - a) / 6.0;
    if raw.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !raw.is_finite() {
        return vec![a];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (a / step).ceil() * step;
    let mut out = Vec::new();
    while t <= b + step * 1e-9 && out.len() < 20 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A tick label with as many decimals as the span needs, thousands as k/M.
fn fmt_tick(v: f64, span: f64) -> String {
    let (div, suffix) = if span >= 5e6 || v.abs() >= 1e7 {
        (1e6, "M")
    } else if span >= 5e3 || v.abs() >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let step = span / div / 6.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let decimals = if step >= 1.0 {
        0
    } else {
        ((-step.log10()).ceil() as usize).min(6)
    };
    format!("{:.*}{suffix}", decimals, v / div)
}

/// A money figure for labels: two decimals, or thousands with grouping.
pub fn fmt_money(v: f64) -> String {
    if v.abs() >= 1e4 {
        #[allow(clippy::cast_possible_truncation)]
        let r = v.round() as i64;
        let digits = r.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        format!("{}{grouped}", if r < 0 { "-" } else { "" })
    } else {
        format!("{v:.2}")
    }
}

/// The tornado: one row per group (widest range on top), bars from the
/// base profit to the profit at the low (blue) and high (orange) scale,
/// the scale factors and the break-even written beside each row.
pub fn tornado(rows: &[Row], currency: &str, hours: f64) -> String {
    let base = rows.first().map_or(0.0, |r| r.base);
    let lo = rows
        .iter()
        .flat_map(|r| [r.profit_low, r.profit_high])
        .fold(base, f64::min);
    let hi = rows
        .iter()
        .flat_map(|r| [r.profit_low, r.profit_high])
        .fold(base, f64::max);
    let title = format!("Tornado: the plan's profit over {hours} h as each parameter moves");
    let mut f = Fig::new(&title, 190.0, (lo, hi), (0.0, 1.0));
    f.right = W - 150.0;
    f.x_axis(&format!(
        "Profit of the fixed plan over the period ({currency})"
    ));
    #[allow(clippy::cast_precision_loss)]
    let band = (f.bottom - f.top) / rows.len().max(1) as f64;
    let bx = f.px(base);
    for (i, r) in rows.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let y = f.top + band * i as f64;
        let h = band * 0.6;
        let yb = y + band * 0.2;
        for (p, k, colour, end) in [
            (r.profit_low, r.low, LOW, "low"),
            (r.profit_high, r.high, HIGH, "high"),
        ] {
            let x = f.px(p);
            let tip = format!(
                "{} ×{k:.3} ({end}): profit {} {currency}",
                r.parameter,
                fmt_money(p)
            );
            f.rect(x.min(bx), yb, (x - bx).abs(), h, colour, &tip);
        }
        f.text(
            f.left - 8.0,
            yb + h / 2.0 - 2.0,
            "end",
            12,
            INK,
            r.parameter.name(),
        );
        let scales = format!("×{:.2} / ×{:.2} ({})", r.low, r.high, r.swing_source);
        f.text(
            f.left - 8.0,
            yb + h / 2.0 + 12.0,
            "end",
            10,
            "#555555",
            &scales,
        );
        let be = r.break_even.map_or_else(
            || "break-even: none".to_string(),
            |k| format!("break-even ×{k:.3}"),
        );
        f.text(f.right + 8.0, yb + h / 2.0 + 4.0, "start", 11, INK, &be);
    }
    let base_line = format!("base profit {} {currency}", fmt_money(base));
    f.line(
        (bx, f.top - 6.0),
        (bx, f.bottom),
        INK,
        "stroke-width=\"1.5\"",
    );
    f.text(bx, f.top - 10.0, "middle", 11, INK, &base_line);
    legend(
        &mut f,
        &[
            (LOW, "parameter scaled down"),
            (HIGH, "parameter scaled up"),
        ],
    );
    f.finish()
}

fn legend(f: &mut Fig, items: &[(&str, &str)]) {
    let mut x = f.left;
    let y = H - 14.0;
    for (colour, label) in items {
        f.rect(x, y - 10.0, 12.0, 12.0, colour, label);
        f.text(x + 16.0, y, "start", 11, INK, label);
        #[allow(clippy::cast_precision_loss)]
        let width = label.chars().count() as f64;
        x += 40.0 + width * 6.5;
    }
}

/// The Monte Carlo histogram of the fixed plan's profit with P5, P50 and
/// P95 marked and the probability of a loss in the title.
pub fn monte_carlo(mc: &MonteCarlo, currency: &str, hours: f64) -> String {
    let v = &mc.profits;
    let (lo, hi) = (
        v.first().copied().unwrap_or(0.0),
        v.last().copied().unwrap_or(0.0),
    );
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let bins = ((v.len() as f64).sqrt().ceil() as usize).clamp(1, 40);
    let (a, b) = if hi > lo { (lo, hi) } else { widen(lo, hi) };
    let width = (b - a) / bins as f64;
    let mut counts = vec![0usize; bins];
    for x in v {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = (((x - a) / width).floor().max(0.0) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let title = format!(
        "Monte Carlo: profit over {hours} h, {} draws (seed {}), P(loss) = {:.1} %",
        mc.draws,
        mc.seed,
        mc.p_profit_below_0 * 100.0
    );
    #[allow(clippy::cast_precision_loss)]
    let mut f = Fig::new(&title, 70.0, (a, b), (0.0, top as f64 * 1.1));
    f.y0 = 0.0;
    f.x_axis(&format!(
        "Profit of the fixed plan over the period ({currency})"
    ));
    f.y_axis("Draws per bin");
    for (i, &c) in counts.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x0 = a + width * i as f64;
        let (px0, px1) = (f.px(x0), f.px(x0 + width));
        #[allow(clippy::cast_precision_loss)]
        let py = f.py(c as f64);
        let tip = format!(
            "{} to {} {currency}: {c} draws",
            fmt_money(x0),
            fmt_money(x0 + width)
        );
        let fill = if x0 + width <= 0.0 { "#cc6677" } else { LOW };
        f.rect(
            px0,
            py,
            (px1 - px0 - 1.0).max(0.5),
            f.bottom - py,
            fill,
            &tip,
        );
    }
    for (i, (name, p)) in [
        ("P5", mc.profit_p5),
        ("P50", mc.profit_p50),
        ("P95", mc.profit_p95),
    ]
    .into_iter()
    .enumerate()
    {
        let x = f.px(p);
        f.line(
            (x, f.top),
            (x, f.bottom),
            HIGH,
            "stroke-width=\"2\" stroke-dasharray=\"6 3\"",
        );
        #[allow(clippy::cast_precision_loss)]
        let y = f.top + 12.0 + 14.0 * i as f64;
        f.text(
            x + 4.0,
            y,
            "start",
            11,
            INK,
            &format!("{name} {} {currency}", fmt_money(p)),
        );
    }
    if a < 0.0 && b > 0.0 {
        let x = f.px(0.0);
        f.line((x, f.top), (x, f.bottom), "#cc6677", "stroke-width=\"1.5\"");
    }
    legend(
        &mut f,
        &[
            (LOW, "draws with a profit"),
            ("#cc6677", "draws with a loss"),
            (HIGH, "P5 / P50 / P95"),
        ],
    );
    f.finish()
}

/// The Pareto front of profit against emissions, the chosen plan (the one
/// `roimon plan` returned) marked.
pub fn pareto(front: &[Point], chosen: Option<(f64, f64)>, currency: &str, hours: f64) -> String {
    let xs = front
        .iter()
        .map(|p| p.emissions_kg)
        .chain(chosen.map(|c| c.0));
    let ys = front.iter().map(|p| p.profit).chain(chosen.map(|c| c.1));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let title = format!(
        "Pareto front: profit against emissions over {hours} h ({} plans)",
        front.len()
    );
    let mut f = Fig::new(&title, 80.0, (x0, x1), (y0, y1));
    f.x_axis("Emissions over the period (kg CO2e)");
    f.y_axis(&format!("Profit over the period ({currency})"));
    let path: Vec<String> = front
        .iter()
        .map(|p| format!("{:.1},{:.1}", f.px(p.emissions_kg), f.py(p.profit)))
        .collect();
    if path.len() > 1 {
        let _ = writeln!(
            f.s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{LOW}\" stroke-width=\"1.5\"/>",
            path.join(" ")
        );
    }
    for p in front {
        let (x, y) = (f.px(p.emissions_kg), f.py(p.profit));
        let _ = writeln!(
            f.s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{LOW}\"><title>{}</title></circle>",
            escape(&format!(
                "{:.1} kg CO2e, profit {} {currency}, ROI {:.3}",
                p.emissions_kg,
                fmt_money(p.profit),
                p.roi
            ))
        );
    }
    if let Some((e, p)) = chosen {
        let (x, y) = (f.px(e), f.py(p));
        let _ = writeln!(
            f.s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"none\" stroke=\"{HIGH}\" stroke-width=\"2.5\" transform=\"rotate(45 {x:.1} {y:.1})\"/>",
            x - 6.0,
            y - 6.0
        );
        let label = format!("chosen plan: {:.1} kg, {} {currency}", e, fmt_money(p));
        let anchor = if x > (f.left + f.right) / 2.0 {
            "end"
        } else {
            "start"
        };
        let dx = if anchor == "end" { -12.0 } else { 12.0 };
        f.text(x + dx, y + 28.0, anchor, 11, INK, &label);
    }
    legend(
        &mut f,
        &[
            (
                LOW,
                "non-dominated plans (max profit under an emissions cap)",
            ),
            (HIGH, "chosen plan"),
        ],
    );
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_markup_out() {
        assert_eq!(escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&apos;");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = ticks(0.0, 100.0);
        assert_eq!(t.first().copied(), Some(0.0));
        assert_eq!(t.last().copied(), Some(100.0));
        assert!(t.windows(2).all(|w| (w[1] - w[0] - 20.0).abs() < 1e-9));
    }

    #[test]
    fn money_is_grouped_in_thousands() {
        assert_eq!(fmt_money(-1_234_567.4), "-1,234,567");
        assert_eq!(fmt_money(12.345), "12.35");
    }
}
