//! Helpers shared by the parsers: time stamps in the publishers' many
//! spellings, and slot ends inferred from the spacing of starts.

use crate::schedule::{PriceError, RawSlot};
use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, Utc};

/// Years a price or intensity slot may fall in. Anything outside is a broken
/// or hostile response, and refusing it keeps every later `time + duration`
/// far from chrono's overflow.
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

fn in_range(t: DateTime<Utc>, shown: &str) -> Result<DateTime<Utc>, PriceError> {
    if YEARS.contains(&t.year()) {
        Ok(t)
    } else {
        Err(PriceError::Parse(format!(
            "time stamp {shown:?} is outside the years {}..={}",
            YEARS.start(),
            YEARS.end()
        )))
    }
}

/// Parse an RFC 3339 time stamp with an offset, or one without seconds
/// (`2024-09-01T22:00Z`, as ENTSO-E writes them), or a naive one taken as
/// UTC; years outside [`YEARS`] are refused.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, PriceError> {
    in_range(parse_any_time(s)?, s)
}

fn parse_any_time(s: &str) -> Result<DateTime<Utc>, PriceError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    // "2024-09-01T22:00Z" (no seconds).
    if let Some(body) = s.strip_suffix('Z') {
        for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(n) = NaiveDateTime::parse_from_str(body, fmt) {
                return Ok(n.and_utc());
            }
        }
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M%:z") {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(n.and_utc());
        }
    }
    Err(PriceError::Parse(format!("not a time stamp: {s:?}")))
}

/// Milliseconds since the epoch to UTC.
pub fn from_epoch_ms(ms: i64) -> Result<DateTime<Utc>, PriceError> {
    let t = DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| PriceError::Parse(format!("epoch milliseconds out of range: {ms}")))?;
    in_range(t, &ms.to_string())
}

/// Give slots known only by their start an end: the next start, and for the
/// last one the spacing before it (or `default` when there is only one).
/// Input must be sorted by start.
pub fn ends_from_starts(starts: &[(DateTime<Utc>, f64)], default: TimeDelta) -> Vec<RawSlot> {
    let mut out = Vec::with_capacity(starts.len());
    for (i, &(start, value)) in starts.iter().enumerate() {
        let end = match starts.get(i + 1) {
            Some(&(next, _)) => next,
            None if i > 0 => start + (start - starts[i - 1].0),
            None => start + default,
        };
        out.push(RawSlot { start, end, value });
    }
    out
}

/// Most JSON objects and arrays a response may hold: eight per slot
/// believed from one fetch (a slot with its per-area entries and some
/// wrapping), far above any publisher's real answer.
pub const MAX_JSON_CONTAINERS: usize = 8 * crate::schedule::MAX_SLOTS;
/// Most XML tags (opening and closing) a response may hold: an ENTSO-E
/// point is six, a time series' header a few dozen.
pub const MAX_XML_TAGS: usize = 32 * crate::schedule::MAX_SLOTS;
/// Most lines a price sheet may hold.
pub const MAX_LINES: usize = 4 * crate::schedule::MAX_SLOTS;

fn count(text: &str, of: &[u8]) -> usize {
    text.bytes().filter(|b| of.contains(b)).count()
}

/// Refuse a JSON body that holds more objects and arrays than
/// [`MAX_JSON_CONTAINERS`] before it is parsed: its tree would be built
/// whole (hundreds of MB for a few hundred thousand slots) only to be
/// refused by the slot cap. Braces inside strings count too, which only
/// errs on the side of the cap.
pub fn bounded_json(text: &str, who: &str) -> Result<(), PriceError> {
    let n = count(text, b"{[");
    if n > MAX_JSON_CONTAINERS {
        return Err(PriceError::Parse(format!(
            "{who}: the response holds over {n} JSON objects and arrays, more than the \
             {MAX_JSON_CONTAINERS} read from one fetch ({} slots at most)",
            crate::schedule::MAX_SLOTS
        )));
    }
    Ok(())
}

/// Refuse an XML body with more tags than [`MAX_XML_TAGS`] before its
/// tree is built.
pub fn bounded_xml(text: &str, who: &str) -> Result<(), PriceError> {
    let n = count(text, b"<");
    if n > MAX_XML_TAGS {
        return Err(PriceError::Parse(format!(
            "{who}: the response holds over {n} XML tags, more than the {MAX_XML_TAGS} \
             read from one fetch ({} slots at most)",
            crate::schedule::MAX_SLOTS
        )));
    }
    Ok(())
}

/// Refuse a sheet with more lines than [`MAX_LINES`] before its rows are
/// read.
pub fn bounded_lines(text: &str, who: &str) -> Result<(), PriceError> {
    let n = count(text, b"\n");
    if n > MAX_LINES {
        return Err(PriceError::Parse(format!(
            "{who}: {n} lines, more than the {MAX_LINES} read from one fetch ({} slots at most)",
            crate::schedule::MAX_SLOTS
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_spellings() {
        let want = DateTime::parse_from_rfc3339("2024-09-01T22:00:00Z").unwrap();
        for s in [
            "2024-09-01T22:00Z",
            "2024-09-01T22:00:00Z",
            "2024-09-02T00:00:00.000+02:00",
            "2024-09-02T00:00+02:00",
            "2024-09-01T22:00:00",
        ] {
            assert_eq!(parse_time(s).unwrap(), want, "{s}");
        }
        assert!(parse_time("yesterday").is_err());
        // Far-future or ancient stamps would overflow `time + duration` later.
        assert!(parse_time("+262142-12-31T00:00:00").is_err());
        assert!(parse_time("0001-01-01T00:00:00Z").is_err());
        assert!(from_epoch_ms(i64::MAX / 4).is_err());
    }

    #[test]
    fn ends_follow_spacing() {
        let t = parse_time("2025-01-01T00:00Z").unwrap();
        let q = TimeDelta::minutes(15);
        let s = ends_from_starts(&[(t, 1.0), (t + q, 2.0)], TimeDelta::hours(1));
        assert_eq!(s[0].end, t + q);
        assert_eq!(s[1].end, t + q + q);
        let one = ends_from_starts(&[(t, 1.0)], TimeDelta::hours(1));
        assert_eq!(one[0].end, t + TimeDelta::hours(1));
    }
}
