//! The page's small words: HTML escaping (every string the page shows goes
//! through [`esc`]), figures for people (money, power, energy, percentages)
//! and exact figures for machines (`data-*` attributes), times and ages.

use chrono::{DateTime, Utc};

/// `s` safe as HTML text and as a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// ` data-NAME="V"` with the exact figure (Rust's shortest round-trip form,
/// as the summary's JSON writes it), or nothing when there is none.
pub fn data(name: &str, v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!(" data-{name}=\"{v}\""),
        _ => String::new(),
    }
}

/// Money for people: 4 decimals below 100, 2 above.
pub fn money(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A ratio as a signed percentage (ROI).
pub fn signed_pct(r: f64) -> String {
    format!("{:+.1} %", r * 100.0)
}

/// A ratio in [0, 1] as a percentage (utilisation).
pub fn pct(r: f64) -> String {
    format!("{:.0} %", r * 100.0)
}

/// Power: W below 10 kW, kW above.
pub fn watts(w: f64) -> String {
    if w.abs() >= 10_000.0 {
        format!("{:.2} kW", w / 1000.0)
    } else {
        format!("{w:.1} W")
    }
}

/// Energy in kWh.
pub fn kwh(joules: f64) -> String {
    format!("{:.3} kWh", joules / 3.6e6)
}

/// A time of day for people, with its date when it is not `today`'s.
pub fn when(t: DateTime<Utc>, today: DateTime<Utc>) -> String {
    if t.date_naive() == today.date_naive() {
        t.format("%H:%M:%S UTC").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// A `<time>` element for `t` (machine form in its attribute).
pub fn time_el(t: DateTime<Utc>, today: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        when(t, today)
    )
}

/// An age in words: "42 s", "5 min", "3 h 5 min", "2 d 4 h".
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc("<a href=\"x\" title='y'>&</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn exact_figures_round_trip_and_ages_read_as_words() {
        let v = 0.1 + 0.2;
        let d = data("cost", Some(v));
        let parsed: f64 = d.split('"').nth(1).unwrap().parse().unwrap();
        assert_eq!(parsed, v);
        assert_eq!(data("cost", None), "");
        assert_eq!(data("cost", Some(f64::NAN)), "");
        assert_eq!(age(42.4), "42 s");
        assert_eq!(age(600.0), "10 min");
        assert_eq!(age(3.0 * 3600.0 + 300.0), "3 h 5 min");
        assert_eq!(age(2.0 * 86_400.0 + 4.0 * 3600.0), "2 d 4 h");
    }
}
