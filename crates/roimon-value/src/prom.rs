//! A strict, bounded reader of the Prometheus text exposition format (0.0.4),
//! the shape every inference server's `/metrics` speaks. Small on purpose:
//! it keeps what value accounting needs (families, labels, values) and
//! refuses what is malformed, naming the line, instead of guessing.
//!
//! Accepted: `# HELP` / `# TYPE` (TYPE without HELP too), other `#` lines as
//! comments, labels with the escapes `\\`, `\"`, `\n` and an optional
//! trailing comma, values as Go's `ParseFloat` reads them (`+Inf`, `-Inf`,
//! `NaN`, `1e+06`, `8.128902e+06`, integers), an optional integer
//! timestamp in milliseconds, histogram `_bucket`/`_sum`/`_count` and
//! summary `_sum`/`_count` in any order, blank lines, CRLF line ends and a
//! missing final newline. Refused, naming the line: a body over the size cap
//! or not UTF-8, more series than the cap, a bad name, label or escape, a
//! duplicate label or series, an unknown type, a second TYPE or HELP for a
//! name, a TYPE after the family's samples, a bucket without a numeric `le`,
//! a summary sample without a numeric `quantile`, trailing text.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

/// Caps that keep one scrape's cost bounded whatever a server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most samples (series) accepted in one body.
    pub max_series: usize,
}

impl Default for Limits {
    /// 16 MiB and 200,000 series: far above any single inference server
    /// (the largest capture, TGI with 1,024-bucket histograms, has ~100 KB).
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_series: 200_000,
        }
    }
}

/// Why a body was refused. Every variant names where: the body as a whole
/// (its size) or a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromError {
    /// The body is larger than [`Limits::max_body_bytes`].
    #[error("body of {len} bytes is over the {max}-byte cap")]
    TooLarge { len: usize, max: usize },
    /// A line is malformed, or crosses a cap.
    #[error("line {line}: {msg}")]
    Line { line: usize, msg: String },
}

impl PromError {
    /// The 1-based line the error is on, if it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            PromError::TooLarge { .. } => None,
            PromError::Line { line, .. } => Some(*line),
        }
    }
}

/// A family's declared type (`untyped` when it has no TYPE line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl MetricType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Untyped,
            _ => return None,
        })
    }
}

/// One sample line: a series and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's own name (`foo_bucket`, not the family `foo`).
    pub name: String,
    /// Labels sorted by name; names are unique.
    pub labels: Vec<(String, String)>,
    /// The value; may be `NaN` or infinite (the format allows both).
    pub value: f64,
    /// Optional timestamp in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    /// The 1-based line it was read from.
    pub line: usize,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family: its TYPE/HELP and its samples in body order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    pub samples: Vec<Sample>,
}

/// A parsed body: families in the order first named.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    families: Vec<Family>,
    by_name: HashMap<String, usize>,
    samples: usize,
}

impl Exposition {
    /// Every family, in the order first named in the body.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The family called exactly `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.by_name.get(name).map(|&i| &self.families[i])
    }

    /// Number of samples (series) read.
    pub fn series_count(&self) -> usize {
        self.samples
    }

    /// Every sample whose own name is `name`, wherever its family is
    /// (`foo_sum` is found under the histogram `foo` or as its own family).
    pub fn samples_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        let mut fams: Vec<usize> = Vec::with_capacity(2);
        if let Some(&i) = self.by_name.get(name) {
            fams.push(i);
        }
        for suffix in SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(&i) = self.by_name.get(base)
                && !fams.contains(&i)
            {
                fams.push(i);
            }
        }
        fams.into_iter()
            .flat_map(move |i| self.families[i].samples.iter())
            .filter(move |s| s.name == name)
    }

    /// Whether any sample's name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.families
            .iter()
            .any(|f| f.samples.iter().any(|s| s.name.starts_with(prefix)))
    }

    /// Whether any sample is called exactly `name`.
    pub fn has_sample(&self, name: &str) -> bool {
        self.samples_named(name).next().is_some()
    }
}

/// Suffixes by which a sample belongs to a family of another name.
const SUFFIXES: [&str; 5] = ["_bucket", "_sum", "_count", "_total", "_created"];

/// Which suffixed samples a family of each type takes.
fn takes_suffix(kind: MetricType, suffix: &str) -> bool {
    match kind {
        MetricType::Histogram => matches!(suffix, "_bucket" | "_sum" | "_count" | "_created"),
        MetricType::Summary => matches!(suffix, "_sum" | "_count" | "_created"),
        MetricType::Counter => matches!(suffix, "_total" | "_created"),
        MetricType::Gauge | MetricType::Untyped => false,
    }
}

/// Parse a `/metrics` body under `limits`.
pub fn parse(body: &[u8], limits: Limits) -> Result<Exposition, PromError> {
    if body.len() > limits.max_body_bytes {
        return Err(PromError::TooLarge {
            len: body.len(),
            max: limits.max_body_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = 1 + body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        PromError::Line {
            line,
            msg: format!("not UTF-8 (byte offset {} in the body)", e.valid_up_to()),
        }
    })?;
    let mut p = Parser {
        out: Exposition::default(),
        typed: Vec::new(),
        seen: HashSet::new(),
        hasher: std::collections::hash_map::RandomState::new(),
        limits,
    };
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        p.line(l, line)
            .map_err(|msg| PromError::Line { line, msg })?;
    }
    Ok(p.out)
}

struct Parser {
    out: Exposition,
    /// Per family: whether a TYPE line named it.
    typed: Vec<bool>,
    /// Hashes of (name, sorted labels) seen, to refuse duplicate series.
    seen: HashSet<u64>,
    hasher: std::collections::hash_map::RandomState,
    limits: Limits,
}

impl Parser {
    fn line(&mut self, l: &str, line: usize) -> Result<(), String> {
        let l = l.trim_start_matches([' ', '\t']);
        if l.is_empty() {
            return Ok(());
        }
        if let Some(rest) = l.strip_prefix('#') {
            return self.comment(rest);
        }
        self.sample(l, line)
    }

    fn family_index(&mut self, name: &str) -> usize {
        if let Some(&i) = self.out.by_name.get(name) {
            return i;
        }
        let i = self.out.families.len();
        self.out.families.push(Family {
            name: name.to_owned(),
            help: None,
            kind: MetricType::Untyped,
            samples: Vec::new(),
        });
        self.typed.push(false);
        self.out.by_name.insert(name.to_owned(), i);
        i
    }

    fn comment(&mut self, rest: &str) -> Result<(), String> {
        let rest = rest.trim_start_matches([' ', '\t']);
        let (word, rest) = split_word(rest);
        let is_help = word == "HELP";
        if !is_help && word != "TYPE" {
            return Ok(()); // a plain comment
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let (name, rest) = split_word(rest);
        if name.is_empty() {
            return Err(format!("`# {word}` without a metric name"));
        }
        check_metric_name(name)?;
        let rest = rest.strip_prefix([' ', '\t']).unwrap_or(rest);
        let idx = self.family_index(name);
        if is_help {
            let fam = &mut self.out.families[idx];
            if fam.help.is_some() {
                return Err(format!("second HELP line for `{name}`"));
            }
            fam.help = Some(unescape_help(rest));
        } else {
            if self.typed[idx] {
                return Err(format!("second TYPE line for `{name}`"));
            }
            let fam = &mut self.out.families[idx];
            if !fam.samples.is_empty() {
                return Err(format!("TYPE line for `{name}` after its samples"));
            }
            let t = rest.trim_end_matches([' ', '\t']);
            fam.kind = MetricType::parse(t).ok_or_else(|| {
                format!(
                    "unknown type `{t}` for `{name}` (counter, gauge, histogram, summary or untyped)"
                )
            })?;
            self.typed[idx] = true;
        }
        Ok(())
    }

    /// The family a sample called `name` belongs to: its own name's, else
    /// the family its suffix points at when that family's type takes it,
    /// else a new untyped family of its own.
    fn family_of(&mut self, name: &str) -> usize {
        if let Some(&i) = self.out.by_name.get(name) {
            return i;
        }
        for suffix in SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(&i) = self.out.by_name.get(base)
                && takes_suffix(self.out.families[i].kind, suffix)
            {
                return i;
            }
        }
        self.family_index(name)
    }

    fn sample(&mut self, l: &str, line: usize) -> Result<(), String> {
        if self.out.samples >= self.limits.max_series {
            return Err(format!(
                "more than {} series (the cap)",
                self.limits.max_series
            ));
        }
        let name_end = l
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(l.len());
        let name = &l[..name_end];
        if name.is_empty() {
            let c = l.chars().next().unwrap_or(' ');
            return Err(format!("expected a metric name, found `{c}`"));
        }
        check_metric_name(name)?;
        let mut rest = &l[name_end..];
        let mut labels: Vec<(String, String)> = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = parse_labels(r, &mut labels)?;
        }
        labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("label `{}` twice in `{name}`", w[0].0));
        }
        if !rest.starts_with([' ', '\t']) {
            return Err(match rest.chars().next() {
                None => format!("`{name}` has no value"),
                Some(c) => format!("unexpected `{c}` after `{name}`"),
            });
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let (v, rest) = split_word(rest);
        if v.is_empty() {
            return Err(format!("`{name}` has no value"));
        }
        let value = parse_value(v).ok_or_else(|| format!("bad value `{v}` for `{name}`"))?;
        let rest = rest.trim_start_matches([' ', '\t']);
        let (ts, rest) = split_word(rest);
        let timestamp_ms =
            if ts.is_empty() {
                None
            } else {
                Some(ts.parse::<i64>().map_err(|_| {
                    format!("bad timestamp `{ts}` for `{name}` (integer milliseconds)")
                })?)
            };
        if !rest.trim_matches([' ', '\t']).is_empty() {
            return Err(format!("trailing text after the sample `{name}`"));
        }

        let idx = self.family_of(name);
        let kind = self.out.families[idx].kind;
        let fam_name = &self.out.families[idx].name;
        match kind {
            MetricType::Histogram if name == fam_name => {
                return Err(format!(
                    "histogram `{name}` sample without `_bucket`, `_sum` or `_count`"
                ));
            }
            MetricType::Histogram if name.ends_with("_bucket") => {
                let le = labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .ok_or_else(|| format!("bucket `{name}` without an `le` label"))?;
                if parse_value(&le.1).is_none_or(f64::is_nan) {
                    return Err(format!("bucket `{name}` with a bad `le` `{}`", le.1));
                }
            }
            MetricType::Summary if name == fam_name => {
                let q = labels
                    .iter()
                    .find(|(k, _)| k == "quantile")
                    .ok_or_else(|| format!("summary `{name}` sample without a `quantile` label"))?;
                if parse_value(&q.1).is_none_or(f64::is_nan) {
                    return Err(format!("summary `{name}` with a bad `quantile` `{}`", q.1));
                }
            }
            _ => {}
        }

        let mut h = self.hasher.build_hasher();
        name.hash(&mut h);
        labels.hash(&mut h);
        if !self.seen.insert(h.finish()) {
            return Err(format!("duplicate series `{name}` (same labels earlier)"));
        }
        self.out.samples += 1;
        self.out.families[idx].samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
            timestamp_ms,
            line,
        });
        Ok(())
    }
}

/// The first space- or tab-delimited word and what follows it.
fn split_word(s: &str) -> (&str, &str) {
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(format!("bad metric name `{name}`"))
    }
}

/// Read labels after `{` up to and including `}`; returns the rest.
fn parse_labels<'a>(mut s: &'a str, out: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let key = &s[..end];
        if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(match s.chars().next() {
                None => "labels not closed with `}`".to_owned(),
                Some(_) if !key.is_empty() => format!("bad label name `{key}`"),
                Some(c) => format!("expected a label name, found `{c}`"),
            });
        }
        s = s[end..].trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("label `{key}` without `=`"))?;
        s = s.trim_start_matches([' ', '\t']);
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("label `{key}` value not in double quotes"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let close = loop {
            match chars.next() {
                None => return Err(format!("label `{key}` value not closed with `\"`")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => {
                        return Err(format!("bad escape `\\{c}` in label `{key}`"));
                    }
                    None => return Err(format!("label `{key}` value not closed with `\"`")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        out.push((key.to_owned(), value));
        s = s[close + 1..].trim_start_matches([' ', '\t']);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(match s.chars().next() {
                None => "labels not closed with `}`".to_owned(),
                Some(c) => format!("expected `,` or `}}` after label `{key}`, found `{c}`"),
            });
        }
    }
}

/// A value as Go's `strconv.ParseFloat` reads the ones servers print:
/// decimal and exponent forms, `±Inf`, `NaN` (any case).
fn parse_value(s: &str) -> Option<f64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let word = digits.to_ascii_lowercase();
    if matches!(word.as_str(), "inf" | "infinity" | "nan") {
        return s.parse().ok();
    }
    // Rust's parser also takes forms Go refuses or servers never print
    // (`inf` handled above); keep to digits, one dot and an exponent.
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    s.parse().ok()
}

/// HELP text escapes: `\\` and `\n`; any other backslash is kept as is.
fn unescape_help(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('\\') => {
                    out.push('\\');
                    chars.next();
                }
                Some('n') => {
                    out.push('\n');
                    chars.next();
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Exposition, PromError> {
        parse(s.as_bytes(), Limits::default())
    }

    fn err_line(s: &str) -> usize {
        p(s).unwrap_err().line().unwrap()
    }

    #[test]
    fn values_labels_and_escapes() {
        let e = p("# TYPE a counter\na{x=\"q\\\"\\\\\\n\",y=\"2\",} 1e+06 123\r\nb +Inf\nc NaN\nd 8.128902e+06\ne -3").unwrap();
        let a = e.samples_named("a").next().unwrap();
        assert_eq!(a.value, 1e6);
        assert_eq!(a.timestamp_ms, Some(123));
        assert_eq!(a.label("x"), Some("q\"\\\n"));
        assert_eq!(e.samples_named("b").next().unwrap().value, f64::INFINITY);
        assert!(e.samples_named("c").next().unwrap().value.is_nan());
        assert_eq!(e.samples_named("d").next().unwrap().value, 8_128_902.0);
        assert_eq!(e.samples_named("e").next().unwrap().value, -3.0);
        assert_eq!(e.family("a").unwrap().kind, MetricType::Counter);
    }

    #[test]
    fn histogram_in_any_order() {
        let e = p("# TYPE h histogram\nh_sum 3\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n").unwrap();
        assert_eq!(e.family("h").unwrap().samples.len(), 4);
        assert_eq!(e.samples_named("h_sum").next().unwrap().value, 3.0);
        assert_eq!(e.series_count(), 4);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(err_line("a 1\n\nb{x=\"1\"} 2\nb{x=\"1\"} 3"), 4);
        assert_eq!(err_line("a 1\n# TYPE a counter"), 2);
        assert_eq!(err_line("# TYPE a counter\n# TYPE a gauge"), 2);
        assert_eq!(err_line("# TYPE a sometype"), 1);
        assert_eq!(err_line("a{x=\"\\q\"} 1"), 1);
        assert_eq!(err_line("a{x=\"1\",x=\"2\"} 1"), 1);
        assert_eq!(err_line("a 1 2 3"), 1);
        assert_eq!(err_line("a 0x10"), 1);
        assert_eq!(err_line("a"), 1);
        assert_eq!(err_line("# TYPE h histogram\nh_bucket 1"), 2);
        assert_eq!(err_line("# TYPE h histogram\nh 1"), 2);
        assert_eq!(err_line("# TYPE s summary\ns 1"), 2);
        assert_eq!(err_line("1a 1"), 1);
        assert_eq!(err_line("a 1.5ms"), 1);
        assert_eq!(err_line("ok 1\na{x=\"1\" 1"), 2);
    }

    #[test]
    fn caps() {
        let l = Limits {
            max_body_bytes: 10,
            max_series: 2,
        };
        assert!(matches!(
            parse(b"a 1\nb 2\nc 3", l),
            Err(PromError::TooLarge { .. })
        ));
        let l = Limits {
            max_body_bytes: 100,
            max_series: 2,
        };
        assert_eq!(parse(b"a 1\nb 2\nc 3", l).unwrap_err().line(), Some(3));
    }
}
