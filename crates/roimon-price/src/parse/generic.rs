//! Parser: Generic HTTP JSON with a small field mapping.
//!
//! A site whose utility has no parser of its own can still be priced if the
//! utility (or a home-automation bridge) publishes its prices as JSON: the
//! daemon's config names, in a [`Mapping`], where the array of slots is and
//! which fields of each item hold the start, the end (or a duration) and the
//! price. Paths are dotted (`data.prices`, `period.start`); a numeric segment
//! indexes an array (`homes.0.prices`). Keys that themselves contain a dot
//! cannot be addressed.

use crate::parse::util;
use crate::schedule::{Parsed, PriceError, RawSlot, Unit};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::str::FromStr;

/// How the start and end fields spell a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// A string: RFC 3339, or anything [`util::parse_time`] accepts (no
    /// seconds, `Z` suffix; naive times are taken as UTC).
    #[default]
    Rfc3339,
    /// Seconds since the epoch: a number (fractions allowed) or a numeric
    /// string. Times outside 1990..2200 are refused, which catches
    /// milliseconds configured as seconds and the reverse.
    EpochS,
    /// Milliseconds since the epoch: a number or a numeric string (1990..2200).
    EpochMs,
}

/// Where the slots are in a JSON body. Deserialized directly from the
/// daemon's TOML config, so unknown keys are an error, not a silent no-op.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Dotted path to the array of slots; `""` (the default) means the root
    /// is the array.
    #[serde(default)]
    pub items: String,
    /// Field (dotted path inside an item) holding the start.
    pub start: String,
    /// Field holding the exclusive end.
    #[serde(default)]
    pub end: Option<String>,
    /// Field holding the duration in seconds.
    #[serde(default)]
    pub duration: Option<String>,
    /// A fixed duration in seconds for every slot. When none of `end`,
    /// `duration` and `duration_secs` is set, a slot ends at the next start
    /// (the last one after the spacing before it, or 1 h when alone).
    #[serde(default)]
    pub duration_secs: Option<u64>,
    /// Field holding the price: a JSON number or a numeric string.
    pub price: String,
    /// `EUR/MWh`, `EUR/kWh`, `ct/kWh`, `p/kWh`, `g/kWh`... The part before
    /// `/` is taken as the stated currency when it is an ISO code (three
    /// ASCII letters) and the unit is a major-unit one.
    pub unit: String,
    /// How the time fields are spelled.
    #[serde(default)]
    pub time_format: TimeFormat,
}

/// How a slot's end is found.
enum EndRule<'a> {
    Field(&'a str),
    DurationField(&'a str),
    Fixed(TimeDelta),
    NextStart,
}

impl Mapping {
    /// Check the mapping without a body: the unit parses, the start and price
    /// fields are named, and at most one of `end`, `duration` and
    /// `duration_secs` is set (a fixed duration must be positive).
    pub fn check(&self) -> Result<(), String> {
        self.parsed_unit()?;
        if self.start.trim().is_empty() {
            return Err("`start` must name a field".into());
        }
        if self.price.trim().is_empty() {
            return Err("`price` must name a field".into());
        }
        for (key, v) in [("end", &self.end), ("duration", &self.duration)] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err(format!("`{key}` must name a field when set"));
            }
        }
        let set = [
            self.end.is_some(),
            self.duration.is_some(),
            self.duration_secs.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if set > 1 {
            return Err(
                "set at most one of `end`, `duration` and `duration_secs` (none: a slot ends at the next start)"
                    .into(),
            );
        }
        if let Some(d) = self.duration_secs {
            fixed_duration(d)?;
        }
        Ok(())
    }

    fn parsed_unit(&self) -> Result<Unit, String> {
        Unit::from_str(&self.unit).map_err(|e| format!("`unit`: {e}"))
    }

    /// The ISO currency stated by `unit`, if any.
    fn currency(&self, unit: Unit) -> Option<String> {
        if !matches!(unit, Unit::PerMwh | Unit::PerKwh) {
            return None;
        }
        let (num, _) = self.unit.split_once('/')?;
        let num = num.trim();
        (num.len() == 3 && num.chars().all(|c| c.is_ascii_alphabetic()))
            .then(|| num.to_ascii_uppercase())
    }

    fn end_rule(&self) -> Result<EndRule<'_>, String> {
        Ok(match (&self.end, &self.duration, self.duration_secs) {
            (Some(f), _, _) => EndRule::Field(f),
            (_, Some(f), _) => EndRule::DurationField(f),
            (_, _, Some(d)) => EndRule::Fixed(fixed_duration(d)?),
            _ => EndRule::NextStart,
        })
    }
}

fn fixed_duration(secs: u64) -> Result<TimeDelta, String> {
    i64::try_from(secs)
        .ok()
        .filter(|&s| s > 0)
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(|| format!("`duration_secs` must be a positive number of seconds, got {secs}"))
}

/// Read the slots out of `json` as `m` says.
///
/// Errors: a bad mapping is [`PriceError::Invalid`]; a body that is not JSON,
/// an `items` path that does not lead to an array, or an item whose field is
/// missing or mistyped is [`PriceError::Parse`], naming the item's index and
/// the field. An empty array, or a `null` where the array should be, is
/// [`PriceError::NoData`].
pub fn parse(json: &str, m: &Mapping) -> Result<Parsed, PriceError> {
    m.check()
        .map_err(|e| PriceError::Invalid(format!("price mapping: {e}")))?;
    let unit = m.parsed_unit().map_err(PriceError::Invalid)?;
    let rule = m.end_rule().map_err(PriceError::Invalid)?;
    super::util::bounded_json(json, "generic")?;
    let root: Value =
        serde_json::from_str(json).map_err(|e| PriceError::Parse(format!("not JSON: {e}")))?;
    let items = match lookup(&root, &m.items) {
        Ok(Value::Array(a)) => a,
        Ok(Value::Null) => {
            return Err(PriceError::NoData(format!("`{}` is null", m.items)));
        }
        Ok(other) => {
            return Err(PriceError::Parse(format!(
                "`items` path {:?}: expected an array, got {}",
                m.items,
                show(other)
            )));
        }
        Err(at) => {
            return Err(PriceError::Parse(format!(
                "`items` path {:?}: nothing at `{at}`",
                m.items
            )));
        }
    };
    if items.is_empty() {
        return Err(PriceError::NoData(format!(
            "the array at {:?} is empty",
            m.items
        )));
    }

    let mut starts = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let err = |field: &str, msg: String| {
            PriceError::Parse(format!("item {i}: field `{field}`: {msg}"))
        };
        let get = |field: &str| -> Result<&Value, PriceError> {
            lookup(item, field).map_err(|_| err(field, "missing".into()))
        };
        let start = time(get(&m.start)?, m.time_format).map_err(|e| err(&m.start, e))?;
        let value = number(get(&m.price)?).map_err(|e| err(&m.price, e))?;
        let end = match rule {
            EndRule::NextStart => {
                starts.push((start, value));
                continue;
            }
            EndRule::Field(f) => time(get(f)?, m.time_format).map_err(|e| err(f, e))?,
            EndRule::DurationField(f) => {
                let secs = number(get(f)?).map_err(|e| err(f, e))?;
                let d = duration(secs).map_err(|e| err(f, e))?;
                add(start, d).map_err(|e| err(f, e))?
            }
            EndRule::Fixed(d) => add(start, d).map_err(|e| err("duration_secs", e))?,
        };
        slots.push(RawSlot { start, end, value });
    }
    if !starts.is_empty() {
        starts.sort_by_key(|&(s, _)| s);
        slots = util::ends_from_starts(&starts, TimeDelta::hours(1));
    }
    Ok(Parsed {
        currency: m.currency(unit),
        unit,
        slots,
    })
}

/// Follow a dotted path; `""` is `v` itself. On failure, the segment where
/// the path broke off.
fn lookup<'v>(v: &'v Value, path: &str) -> Result<&'v Value, String> {
    if path.trim().is_empty() {
        return Ok(v);
    }
    let mut cur = v;
    for seg in path.split('.') {
        let seg = seg.trim();
        let next = match cur {
            Value::Object(o) => o.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|n| a.get(n)),
            _ => None,
        };
        cur = next.ok_or_else(|| seg.to_string())?;
    }
    Ok(cur)
}

/// A JSON value for an error message, cut short.
fn show(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

fn number(v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|x| x.is_finite())
        .ok_or_else(|| format!("expected a number, got {}", show(v)))
}

fn time(v: &Value, fmt: TimeFormat) -> Result<DateTime<Utc>, String> {
    match fmt {
        TimeFormat::Rfc3339 => match v {
            Value::String(s) => util::parse_time(s)
                .map_err(|_| format!("expected an RFC 3339 time, got {}", show(v))),
            _ => Err(format!(
                "expected an RFC 3339 time string, got {} (set time_format = \"epoch_s\" or \"epoch_ms\" for numbers)",
                show(v)
            )),
        },
        TimeFormat::EpochS | TimeFormat::EpochMs => {
            let what = if fmt == TimeFormat::EpochS {
                "seconds"
            } else {
                "milliseconds"
            };
            let n = number(v).map_err(|_| format!("expected epoch {what}, got {}", show(v)))?;
            let ms = if fmt == TimeFormat::EpochS {
                n * 1000.0
            } else {
                n
            };
            // Seconds read as milliseconds land in January 1970, milliseconds
            // read as seconds some 50 000 years ahead; neither is a price.
            if !(EPOCH_MS_MIN..EPOCH_MS_MAX).contains(&ms) {
                let hint = match fmt {
                    TimeFormat::EpochS if ms >= EPOCH_MS_MAX => {
                        " (milliseconds? set time_format = \"epoch_ms\")"
                    }
                    TimeFormat::EpochMs if (0.0..EPOCH_MS_MIN).contains(&ms) => {
                        " (seconds? set time_format = \"epoch_s\")"
                    }
                    _ => "",
                };
                return Err(format!(
                    "epoch {what} {} is not between 1990 and 2200{hint}",
                    show(v)
                ));
            }
            util::from_epoch_ms(ms.round() as i64).map_err(|e| e.to_string())
        }
    }
}

/// 1990-01-01T00:00Z and 2200-01-01T00:00Z in epoch milliseconds: the range
/// an epoch time stamp in a price feed is believed in.
const EPOCH_MS_MIN: f64 = 631_152_000_000.0;
const EPOCH_MS_MAX: f64 = 7_258_118_400_000.0;

fn duration(secs: f64) -> Result<TimeDelta, String> {
    if !(secs > 0.0 && secs < 1.0e12) {
        return Err(format!(
            "duration must be a positive number of seconds, got {secs}"
        ));
    }
    TimeDelta::try_milliseconds((secs * 1000.0).round() as i64)
        .ok_or_else(|| format!("duration out of range: {secs}"))
}

fn add(t: DateTime<Utc>, d: TimeDelta) -> Result<DateTime<Utc>, String> {
    t.checked_add_signed(d)
        .ok_or_else(|| format!("start {t} plus {d} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(items: &str, start: &str, price: &str, unit: &str) -> Mapping {
        Mapping {
            items: items.into(),
            start: start.into(),
            end: None,
            duration: None,
            duration_secs: None,
            price: price.into(),
            unit: unit.into(),
            time_format: TimeFormat::Rfc3339,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        util::parse_time(s).unwrap()
    }

    #[test]
    fn dotted_paths_and_array_index() {
        let body = r#"{"data":[{"prices":[
            {"period":{"start":"2026-03-01T00:00:00+01:00","end":"2026-03-01T00:15:00+01:00"},"p":{"eur":"0.2114"}},
            {"period":{"start":"2026-03-01T00:15:00+01:00","end":"2026-03-01T00:30:00+01:00"},"p":{"eur":0.1987}}
        ]}]}"#;
        let mut m = mapping("data.0.prices", "period.start", "p.eur", "EUR/kWh");
        m.end = Some("period.end".into());
        let p = parse(body, &m).unwrap();
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.unit, Unit::PerKwh);
        assert_eq!(p.slots.len(), 2);
        assert_eq!(p.slots[0].start, t("2026-02-28T23:00Z"));
        assert_eq!(p.slots[0].end, t("2026-02-28T23:15Z"));
        assert_eq!(p.slots[0].value, 0.2114);
        assert_eq!(p.slots[1].value, 0.1987);
        assert_eq!(p.slots[1].end, t("2026-02-28T23:30Z"));
    }

    #[test]
    fn epoch_ms_with_duration_field() {
        let body = r#"[{"ts":1761350400000,"len":900,"ct":"31.5"},{"ts":1761351300000,"len":"900","ct":-2}]"#;
        let mut m = mapping("", "ts", "ct", "ct/kWh");
        m.duration = Some("len".into());
        m.time_format = TimeFormat::EpochMs;
        let p = parse(body, &m).unwrap();
        assert_eq!(p.currency, None, "ct is not an ISO code");
        assert_eq!(p.unit, Unit::MinorPerKwh);
        assert_eq!(p.slots[0].start, t("2025-10-25T00:00Z"));
        assert_eq!(p.slots[0].end, t("2025-10-25T00:15Z"));
        assert_eq!(p.slots[1].start, t("2025-10-25T00:15Z"));
        assert_eq!(p.slots[1].value, -2.0);
    }

    #[test]
    fn epoch_s_fixed_duration_and_next_start() {
        let body = r#"{"r":[{"t":1700002800,"v":90},{"t":1700000000.5,"v":80}]}"#;
        let mut m = mapping("r", "t", "v", "SEK/MWh");
        m.time_format = TimeFormat::EpochS;
        m.duration_secs = Some(1800);
        let p = parse(body, &m).unwrap();
        assert_eq!(p.currency.as_deref(), Some("SEK"));
        assert_eq!(p.slots[1].start.timestamp_millis(), 1_700_000_000_500);
        assert_eq!(p.slots[0].end.timestamp(), 1_700_002_800 + 1800);
        // Without an end rule: sorted, next start, the last after the spacing.
        m.duration_secs = None;
        let p = parse(body, &m).unwrap();
        assert_eq!(p.slots[0].value, 80.0);
        assert_eq!(p.slots[0].end.timestamp(), 1_700_002_800);
        assert_eq!(
            p.slots[1].end - p.slots[1].start,
            p.slots[0].end - p.slots[0].start
        );
    }

    #[test]
    fn epoch_in_the_wrong_unit_is_refused_with_a_hint() {
        let mut m = mapping("", "t", "v", "EUR/MWh");
        m.time_format = TimeFormat::EpochS;
        let e = parse(r#"[{"t":1761350400000,"v":1}]"#, &m).unwrap_err();
        assert!(e.to_string().contains("item 0: field `t`: epoch seconds 1761350400000 is not between 1990 and 2200 (milliseconds?"), "{e}");
        m.time_format = TimeFormat::EpochMs;
        let e = parse(r#"[{"t":1761350400,"v":1}]"#, &m).unwrap_err();
        assert!(e.to_string().contains("(seconds? set time_format"), "{e}");
        let e = parse(r#"[{"t":"2025-10-25T00:00Z","v":1}]"#, &m).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected epoch milliseconds, got \"2025-10-25T00:00Z\""),
            "{e}"
        );
    }

    #[test]
    fn single_item_without_end_lasts_an_hour() {
        let m = mapping("", "s", "v", "EUR/MWh");
        let p = parse(r#"[{"s":"2026-01-01T00:00Z","v":1}]"#, &m).unwrap();
        assert_eq!(p.slots[0].end - p.slots[0].start, TimeDelta::hours(1));
    }

    #[test]
    fn errors_name_item_and_field() {
        let m = mapping("d", "s", "price", "EUR/MWh");
        let body = r#"{"d":[{"s":"2026-01-01T00:00Z","price":1},{"s":"2026-01-01T01:00Z","price":2},
            {"s":"2026-01-01T02:00Z","price":3},{"s":"2026-01-01T03:00Z","price":"abc"}]}"#;
        let e = parse(body, &m).unwrap_err();
        assert_eq!(
            e,
            PriceError::Parse("item 3: field `price`: expected a number, got \"abc\"".into())
        );
        let e = parse(r#"{"d":[{"s":"2026-01-01T00:00Z","cost":1}]}"#, &m).unwrap_err();
        assert_eq!(
            e,
            PriceError::Parse("item 0: field `price`: missing".into())
        );
        let e = parse(r#"{"d":[{"s":1767225600,"price":1}]}"#, &m).unwrap_err();
        assert!(
            e.to_string()
                .contains("item 0: field `s`: expected an RFC 3339"),
            "{e}"
        );
        let e = parse(r#"{"d":[{"s":"soon","price":1}]}"#, &m).unwrap_err();
        assert!(e.to_string().contains("item 0: field `s`"), "{e}");
        let e = parse(r#"{"data":[]}"#, &m).unwrap_err();
        assert!(e.to_string().contains("nothing at `d`"), "{e}");
        let e = parse(r#"{"d":{"s":1}}"#, &m).unwrap_err();
        assert!(matches!(e, PriceError::Parse(_)), "{e}");
        let e = parse("<html>", &m).unwrap_err();
        assert!(e.to_string().contains("not JSON"), "{e}");
        let mut d = mapping("", "s", "v", "EUR/MWh");
        d.duration = Some("len".into());
        let e = parse(r#"[{"s":"2026-01-01T00:00Z","v":1,"len":0}]"#, &d).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("response does not parse: item 0: field `len`"),
            "{e}"
        );
    }

    #[test]
    fn empty_or_null_is_no_data() {
        let m = mapping("data.prices", "s", "v", "EUR/MWh");
        assert!(matches!(
            parse(r#"{"data":{"prices":[]}}"#, &m),
            Err(PriceError::NoData(_))
        ));
        assert!(matches!(
            parse(r#"{"data":{"prices":null}}"#, &m),
            Err(PriceError::NoData(_))
        ));
    }

    #[test]
    fn check_rejects_bad_mappings() {
        let mut m = mapping("", "s", "v", "EUR/MWh");
        assert_eq!(m.check(), Ok(()));
        m.end = Some("e".into());
        m.duration_secs = Some(3600);
        assert!(m.check().unwrap_err().contains("at most one"));
        m.end = None;
        m.duration_secs = Some(0);
        assert!(m.check().unwrap_err().contains("positive"));
        m.duration_secs = None;
        m.unit = "EUR/GJ".into();
        assert!(m.check().unwrap_err().starts_with("`unit`"));
        assert!(matches!(parse("[]", &m), Err(PriceError::Invalid(_))));
        m.unit = "øre/kWh".into();
        m.price = " ".into();
        assert!(m.check().unwrap_err().contains("`price`"));
    }

    #[test]
    fn currency_only_from_iso_major_units() {
        let p = |u: &str| {
            let m = mapping("", "s", "v", u);
            parse(r#"[{"s":"2026-01-01T00:00Z","v":1}]"#, &m)
                .unwrap()
                .currency
        };
        assert_eq!(p("Eur/MWh").as_deref(), Some("EUR"));
        assert_eq!(p("NOK/kWh").as_deref(), Some("NOK"));
        assert_eq!(p("ore/kWh"), None);
        assert_eq!(p("kWh"), None);
        assert_eq!(p("g/kWh"), None);
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let m: Mapping = serde_json::from_str(
            r#"{"start":"s","price":"v","unit":"EUR/MWh","time_format":"epoch_ms"}"#,
        )
        .unwrap();
        assert_eq!(m.items, "");
        assert_eq!(m.time_format, TimeFormat::EpochMs);
        let m: Mapping =
            serde_json::from_str(r#"{"items":"x","start":"s","price":"v","unit":"EUR/MWh"}"#)
                .unwrap();
        assert_eq!(m.time_format, TimeFormat::Rfc3339);
        let e = serde_json::from_str::<Mapping>(
            r#"{"start":"s","price":"v","unit":"EUR/MWh","stat":"x"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `stat`"), "{e}");
    }
}
