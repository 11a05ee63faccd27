//! InfluxDB line protocol, written: a [`Point`] (measurement, tags, fields,
//! an explicit nanosecond timestamp) and its one-line encoding with the
//! escaping each part needs, so any name or owner a user configures arrives
//! as written.

use std::fmt::Write as _;

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A float (`1.5`).
    Float(f64),
    /// A signed integer (`3i`).
    Int(i64),
    /// A string (`"text"`).
    Str(String),
    /// A boolean (`true`).
    Bool(bool),
}

/// One point: a series (measurement + tags) with field values at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Measurement name.
    pub measurement: String,
    /// Tags; empty values are left out (line protocol has no empty tag).
    pub tags: Vec<(String, String)>,
    /// Fields; non-finite floats are left out.
    pub fields: Vec<(String, Field)>,
    /// Nanoseconds since the Unix epoch: always explicit, so a point sent
    /// twice overwrites itself instead of adding a second one.
    pub timestamp_ns: i64,
}

impl Point {
    /// A point of `measurement` at `timestamp_ns`, without tags or fields yet.
    pub fn new(measurement: impl Into<String>, timestamp_ns: i64) -> Self {
        Self {
            measurement: measurement.into(),
            tags: Vec::new(),
            fields: Vec::new(),
            timestamp_ns,
        }
    }

    /// With this tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// With this float field.
    pub fn float(mut self, key: impl Into<String>, value: f64) -> Self {
        self.fields.push((key.into(), Field::Float(value)));
        self
    }

    /// With this integer field.
    pub fn int(mut self, key: impl Into<String>, value: i64) -> Self {
        self.fields.push((key.into(), Field::Int(value)));
        self
    }

    /// With this string field.
    pub fn string(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((key.into(), Field::Str(value.into())));
        self
    }

    /// Append this point's line (without a newline) to `out`. Returns false
    /// and appends nothing when no field is left to write (a point needs
    /// one) or the measurement is empty. Tags are sorted by key, as InfluxDB
    /// recommends; a newline or carriage return anywhere becomes a space, so
    /// a point is always exactly one line.
    pub fn encode_into(&self, out: &mut String) -> bool {
        let fields: Vec<&(String, Field)> = self
            .fields
            .iter()
            .filter(|(k, v)| !k.is_empty() && !matches!(v, Field::Float(f) if !f.is_finite()))
            .collect();
        if fields.is_empty() || self.measurement.is_empty() {
            return false;
        }
        let start = out.len();
        out.reserve(64 + 32 * (self.tags.len() + fields.len()));
        escape(out, &self.measurement, b", ");
        let mut tags: Vec<&(String, String)> = self
            .tags
            .iter()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in tags {
            out.push(',');
            escape(out, k, b",= ");
            out.push('=');
            escape(out, v, b",= ");
        }
        for (i, (k, v)) in fields.into_iter().enumerate() {
            out.push(if i == 0 { ' ' } else { ',' });
            escape(out, k, b",= ");
            out.push('=');
            match v {
                Field::Float(f) => {
                    // Shortest text that reads back as the same f64.
                    let _ = write!(out, "{f:?}");
                }
                Field::Int(n) => {
                    let _ = write!(out, "{n}i");
                }
                Field::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Field::Str(s) => {
                    out.push('"');
                    for c in s.chars() {
                        match c {
                            '"' | '\\' => {
                                out.push('\\');
                                out.push(c);
                            }
                            // One point, one line: the buffer and the
                            // bisection of rejected batches rely on it.
                            '\n' | '\r' => out.push(' '),
                            c => out.push(c),
                        }
                    }
                    out.push('"');
                }
            }
        }
        let _ = write!(out, " {}", self.timestamp_ns);
        debug_assert!(!out[start..].contains('\n'));
        true
    }

    /// This point's line, or `None` when it has nothing to write.
    pub fn to_line(&self) -> Option<String> {
        let mut s = String::new();
        self.encode_into(&mut s).then_some(s)
    }
}

/// Append `s` with a backslash before each of `special` and before each
/// backslash (two backslashes read as one; a lone one at the end would
/// escape the separator after it).
fn escape(out: &mut String, s: &str, special: &[u8]) {
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push_str("\\ "),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && special.contains(&(c as u8)) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// Encode points as a batch body: one line each, newline-separated;
/// points with nothing to write are skipped. Returns how many were written.
pub fn encode_lines<'a>(points: impl IntoIterator<Item = &'a Point>, out: &mut String) -> usize {
    let mut n = 0;
    for p in points {
        let before = out.len();
        if !out.is_empty() {
            out.push('\n');
        }
        if p.encode_into(out) {
            n += 1;
        } else {
            out.truncate(before);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_point() {
        let p = Point::new("roimon_gpu", 1_764_590_400_000_000_000)
            .tag("team", "search")
            .tag("gpu_uuid", "GPU-a")
            .float("power_watts", 250.5)
            .int("count", 3)
            .string("model", "llama")
            .float("zero", 0.0);
        assert_eq!(
            p.to_line().unwrap(),
            "roimon_gpu,gpu_uuid=GPU-a,team=search power_watts=250.5,count=3i,model=\"llama\",zero=0.0 1764590400000000000"
        );
    }

    #[test]
    fn escaping_of_every_part() {
        let p = Point::new("my meas,x=y", -5)
            .tag("t k,=", "v a,l=ue")
            .float("f k=,", 1e300)
            .string("s", "say \"hi\" \\ bye");
        assert_eq!(
            p.to_line().unwrap(),
            r#"my\ meas\,x=y,t\ k\,\==v\ a\,l\=ue f\ k\=\,=1e300,s="say \"hi\" \\ bye" -5"#
        );
    }

    #[test]
    fn newlines_and_trailing_backslashes_cannot_break_a_line() {
        let p = Point::new("m\n", 1)
            .tag("team", "a\nb\\")
            .string("s", "line1\nline2");
        let l = p.to_line().unwrap();
        assert_eq!(l, "m\\ ,team=a\\ b\\\\ s=\"line1 line2\" 1");
        assert_eq!(
            Point::new("m", 1)
                .tag("t", "a\\b")
                .float("f", 1.0)
                .to_line(),
            Some("m,t=a\\\\b f=1.0 1".into())
        );
        assert_eq!(
            Point::new("m", 1).tag("t", "x\\").float("f", 1.0).to_line(),
            Some("m,t=x\\\\ f=1.0 1".into())
        );
    }

    #[test]
    fn empty_tags_and_non_finite_fields_are_left_out() {
        let p = Point::new("m", 7)
            .tag("workload", "")
            .tag("team", "a")
            .float("nan", f64::NAN)
            .float("inf", f64::INFINITY)
            .float("ok", -2.25);
        assert_eq!(p.to_line().unwrap(), "m,team=a ok=-2.25 7");
        assert_eq!(Point::new("m", 7).float("nan", f64::NAN).to_line(), None);
        assert_eq!(Point::new("", 7).float("a", 1.0).to_line(), None);
    }

    #[test]
    fn floats_round_trip() {
        for f in [0.1, 1.0 / 3.0, 123_456_789.123_456_78, 5e-324, -0.0] {
            let l = Point::new("m", 0).float("f", f).to_line().unwrap();
            let text = l.split(' ').nth(1).unwrap().trim_start_matches("f=");
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), f.to_bits(), "{l}");
        }
    }

    #[test]
    fn batches_skip_empty_points() {
        let pts = [
            Point::new("a", 1).float("v", 1.0),
            Point::new("b", 2),
            Point::new("c", 3).int("v", 2),
        ];
        let mut out = String::new();
        assert_eq!(encode_lines(&pts, &mut out), 2);
        assert_eq!(out, "a v=1.0 1\nc v=2i 3");
    }
}
