//! Parser: ENTSO-E Transparency Platform day-ahead prices (document type A44,
//! `Publication_MarketDocument` XML), and its "no data" acknowledgement.
//!
//! Elements are matched by local name, so the namespace and its version
//! (`publicationdocument:7:0`, `7:3`, ...) do not matter.
//!
//! What the body holds and how it is read:
//!
//! - Each `TimeSeries` states `currency_Unit.name` (e.g. `EUR`, becomes
//!   [`Parsed::currency`]) and `price_Measure_Unit.name`, which must be `MWH`
//!   ([`Unit::PerMwh`]); any other unit is [`PriceError::Invalid`].
//! - Each `Period` has a `timeInterval` (`start`, `end`), a `resolution` (an
//!   ISO 8601 duration of fixed length: `PT15M`, `PT60M`, `PT1H`, `P1D`, ...)
//!   and `Point`s with a 1-based `position` and a `price.amount`. One
//!   [`RawSlot`] is emitted per resolution step; equal neighbours are not
//!   merged.
//! - Curve type `A03` (variable sized block, also assumed when `curveType` is
//!   absent): a missing position repeats the previous point's value, up to
//!   the end of the Period, so a whole Period is always covered. A missing
//!   position 1 is a [`PriceError::Parse`].
//! - Curve type `A01` (sequential fixed size block): every position should be
//!   present. A missing one is left as a gap (no slot) rather than filled:
//!   the curve type promises no repetition, so a price is not invented.
//! - Other curve types (`A02`, `A04`, `A05`, breakpoint curves that day-ahead
//!   prices do not use) are [`PriceError::Invalid`].
//!
//! Choosing among several TimeSeries covering the same time (DE-LU documents
//! carry a PT60M series with `classificationSequence_AttributeInstanceComponent.position`
//! 1 and a PT15M series with position 2): Periods are ranked by the
//! classification sequence position of their series (lowest first; absent
//! counts as 1), then by resolution (finest first), then by document order.
//! Going down that ranking, a Period's slots are kept where they overlap no
//! slot already kept. So the best series wins wherever it has data, series
//! covering other times (other days) are all kept, and the result never holds
//! overlapping slots.
//!
//! The "no data" answer is an `Acknowledgement_MarketDocument` (sent with
//! HTTP 200) whose `Reason/code` is 999: [`PriceError::NoData`] with the
//! reason's text. An acknowledgement with any other code, and any other root
//! element, is a [`PriceError::Parse`].

use super::util::parse_time;
use crate::schedule::{Parsed, PriceError, RawSlot, Unit};
use chrono::{DateTime, TimeDelta, Utc};
use roxmltree::{Document, Node};
use std::collections::BTreeMap;

/// The most resolution steps one Period may hold (a leap year at PT15M is
/// 35 136); more means a broken document, not a bigger allocation.
const MAX_STEPS: i64 = 100_000;

/// Parse an ENTSO-E A44 (day-ahead prices) response body.
///
/// Returns the chosen, non-overlapping slots in EUR/MWh (or whatever
/// currency the document states, per MWh); see the module documentation for
/// gap filling and series selection. An acknowledgement with reason code 999
/// is [`PriceError::NoData`].
pub fn parse(xml: &str) -> Result<Parsed, PriceError> {
    let body = xml.trim_start_matches('\u{feff}').trim_start();
    super::util::bounded_xml(body, "ENTSO-E")?;
    let doc =
        Document::parse(body).map_err(|e| PriceError::Parse(format!("ENTSO-E: not XML: {e}")))?;
    let root = doc.root_element();
    match root.tag_name().name() {
        "Publication_MarketDocument" => publication(root),
        "Acknowledgement_MarketDocument" => Err(acknowledgement(root)),
        other => Err(PriceError::Parse(format!(
            "ENTSO-E: root element is {other}, expected Publication_MarketDocument \
             or Acknowledgement_MarketDocument"
        ))),
    }
}

/// How missing positions in a Period are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    /// A03: a missing position repeats the previous one.
    Variable,
    /// A01: every position is present; a missing one is a gap.
    Fixed,
}

/// One Period, expanded to slots, with what ranks it against the others.
#[derive(Debug)]
struct Candidate {
    sequence: u32,
    resolution: TimeDelta,
    order: usize,
    slots: Vec<RawSlot>,
}

fn publication(root: Node<'_, '_>) -> Result<Parsed, PriceError> {
    if let Some(kind) = child_text(root, "type") {
        if kind != "A44" {
            return Err(PriceError::Parse(format!(
                "ENTSO-E: document type {kind}, expected A44 (day-ahead prices)"
            )));
        }
    }
    let mut currency: Option<String> = None;
    let mut candidates = Vec::new();
    let mut any_series = false;
    for (si, ts) in children(root, "TimeSeries").enumerate() {
        any_series = true;
        let ctx = format!("TimeSeries {}", si + 1);
        if let Some(c) = child_text(ts, "currency_Unit.name") {
            match &currency {
                Some(prev) if !prev.eq_ignore_ascii_case(c) => {
                    return Err(PriceError::Invalid(format!(
                        "ENTSO-E: {ctx} states currency {c}, an earlier series {prev}"
                    )));
                }
                Some(_) => {}
                None => currency = Some(c.to_ascii_uppercase()),
            }
        }
        match child_text(ts, "price_Measure_Unit.name") {
            Some(u) if u.eq_ignore_ascii_case("MWH") => {}
            Some(u) => {
                return Err(PriceError::Invalid(format!(
                    "ENTSO-E: {ctx}: price_Measure_Unit.name is {u:?}, expected MWH"
                )));
            }
            None => {
                return Err(PriceError::Parse(format!(
                    "ENTSO-E: {ctx} has no price_Measure_Unit.name"
                )));
            }
        }
        let sequence = match child_text(
            ts,
            "classificationSequence_AttributeInstanceComponent.position",
        ) {
            None => 1,
            Some(s) => s.parse::<u32>().map_err(|_| {
                PriceError::Parse(format!(
                    "ENTSO-E: {ctx}: classificationSequence_AttributeInstanceComponent.position \
                     {s:?} is not a whole number"
                ))
            })?,
        };
        let curve = match child_text(ts, "curveType") {
            None | Some("A03") => Curve::Variable,
            Some("A01") => Curve::Fixed,
            Some(other) => {
                return Err(PriceError::Invalid(format!(
                    "ENTSO-E: {ctx}: curveType {other} is not supported (A01 and A03 are)"
                )));
            }
        };
        for (pi, period) in children(ts, "Period").enumerate() {
            let ctx = format!("{ctx}, Period {}", pi + 1);
            let (resolution, slots) = expand_period(period, curve, &ctx)?;
            candidates.push(Candidate {
                sequence,
                resolution,
                order: candidates.len(),
                slots,
            });
        }
    }
    if !any_series {
        return Err(PriceError::NoData(
            "ENTSO-E: the Publication_MarketDocument holds no TimeSeries".into(),
        ));
    }
    Ok(Parsed {
        currency,
        unit: Unit::PerMwh,
        slots: select(candidates),
    })
}

/// Keep, in ranking order, every slot that overlaps none already kept.
fn select(mut candidates: Vec<Candidate>) -> Vec<RawSlot> {
    candidates.sort_by_key(|c| (c.sequence, c.resolution, c.order));
    // Kept slots by start; they never overlap, so they are sorted by end too.
    let mut kept: BTreeMap<DateTime<Utc>, RawSlot> = BTreeMap::new();
    for c in candidates {
        for s in c.slots {
            let clashes = kept
                .range(..s.end)
                .next_back()
                .is_some_and(|(_, k)| k.end > s.start);
            if !clashes {
                kept.insert(s.start, s);
            }
        }
    }
    kept.into_values().collect()
}

/// One Period to its resolution and its slots.
fn expand_period(
    period: Node<'_, '_>,
    curve: Curve,
    ctx: &str,
) -> Result<(TimeDelta, Vec<RawSlot>), PriceError> {
    let interval = child(period, "timeInterval")
        .ok_or_else(|| PriceError::Parse(format!("ENTSO-E: {ctx} has no timeInterval")))?;
    let time = |name: &str| -> Result<DateTime<Utc>, PriceError> {
        let s = child_text(interval, name).ok_or_else(|| {
            PriceError::Parse(format!("ENTSO-E: {ctx}: timeInterval has no {name}"))
        })?;
        parse_time(s).map_err(|e| PriceError::Parse(format!("ENTSO-E: {ctx}: {name}: {e}")))
    };
    let (start, end) = (time("start")?, time("end")?);
    let res_text = child_text(period, "resolution")
        .ok_or_else(|| PriceError::Parse(format!("ENTSO-E: {ctx} has no resolution")))?;
    let resolution = parse_resolution(res_text)
        .map_err(|e| PriceError::Parse(format!("ENTSO-E: {ctx}: {e}")))?;
    let step = resolution.num_seconds();
    let span = (end - start).num_seconds();
    if span <= 0 {
        return Err(PriceError::Parse(format!(
            "ENTSO-E: {ctx}: timeInterval ends ({end}) at or before it starts ({start})"
        )));
    }
    if span % step != 0 {
        return Err(PriceError::Parse(format!(
            "ENTSO-E: {ctx}: [{start}, {end}) is not a whole number of {res_text} steps"
        )));
    }
    let steps = span / step;
    if steps > MAX_STEPS {
        return Err(PriceError::Parse(format!(
            "ENTSO-E: {ctx}: {steps} steps of {res_text}, more than the {MAX_STEPS} a price \
             document can hold"
        )));
    }
    // `steps` is at most MAX_STEPS, so it fits a usize.
    let mut values: Vec<Option<f64>> = vec![None; steps as usize];
    for point in children(period, "Point") {
        let pos_text = child_text(point, "position")
            .ok_or_else(|| PriceError::Parse(format!("ENTSO-E: {ctx}: a Point has no position")))?;
        let pos = pos_text.parse::<usize>().map_err(|_| {
            PriceError::Parse(format!(
                "ENTSO-E: {ctx}: position {pos_text:?} is not a whole number"
            ))
        })?;
        let amount_text = child_text(point, "price.amount").ok_or_else(|| {
            PriceError::Parse(format!("ENTSO-E: {ctx}: Point {pos} has no price.amount"))
        })?;
        let amount = amount_text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                PriceError::Parse(format!(
                    "ENTSO-E: {ctx}: Point {pos}: price.amount {amount_text:?} is not a number"
                ))
            })?;
        let slot = pos
            .checked_sub(1)
            .and_then(|i| values.get_mut(i))
            .ok_or_else(|| {
                PriceError::Parse(format!(
                    "ENTSO-E: {ctx}: position {pos} is outside 1..={steps} ({res_text} over \
                     [{start}, {end}))"
                ))
            })?;
        if slot.replace(amount).is_some() {
            return Err(PriceError::Parse(format!(
                "ENTSO-E: {ctx}: position {pos} appears twice"
            )));
        }
    }
    if curve == Curve::Variable {
        if values.first().is_some_and(Option::is_none) {
            return Err(PriceError::Parse(format!(
                "ENTSO-E: {ctx}: curve A03 without position 1, nothing to repeat"
            )));
        }
        let mut last = None;
        for v in &mut values {
            match v {
                Some(x) => last = Some(*x),
                None => *v = last,
            }
        }
    }
    let slots = values
        .into_iter()
        .zip(0i64..)
        .filter_map(|(v, i)| {
            v.map(|value| RawSlot {
                start: start + TimeDelta::seconds(step * i),
                end: start + TimeDelta::seconds(step * (i + 1)),
                value,
            })
        })
        .collect();
    Ok((resolution, slots))
}

/// An ISO 8601 duration of fixed length (`PT15M`, `PT60M`, `PT1H30M`, `P1D`,
/// `P1W`) as a positive [`TimeDelta`]. Years and months have no fixed length
/// and are refused, as are fractions.
fn parse_resolution(s: &str) -> Result<TimeDelta, String> {
    let bad = || format!("resolution {s:?} is not an ISO 8601 duration of fixed length");
    let rest = s.trim().strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match rest.split_once('T') {
        Some((_, "")) => return Err(bad()),
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    if date.is_empty() && time.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    for (part, units) in [
        (date, &[('W', 604_800), ('D', 86_400)][..]),
        (time, &[('H', 3_600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut digits = String::new();
        for ch in part.chars() {
            if ch.is_ascii_digit() {
                digits.push(ch);
                continue;
            }
            let &(_, secs) = units.iter().find(|(u, _)| *u == ch).ok_or_else(bad)?;
            let n: i64 = digits.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(secs)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(bad)?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(bad());
        }
    }
    if total <= 0 {
        return Err(format!("resolution {s:?} is not a positive duration"));
    }
    Ok(TimeDelta::seconds(total))
}

/// The acknowledgement's meaning: [`PriceError::NoData`] for reason 999,
/// otherwise a [`PriceError::Parse`] carrying its codes and texts.
fn acknowledgement(root: Node<'_, '_>) -> PriceError {
    let reasons: Vec<(&str, &str)> = children(root, "Reason")
        .map(|r| {
            (
                child_text(r, "code").unwrap_or(""),
                child_text(r, "text").unwrap_or(""),
            )
        })
        .collect();
    let texts = |pick: &dyn Fn(&str) -> bool| -> String {
        reasons
            .iter()
            .filter(|(c, _)| pick(c))
            .map(|(c, t)| {
                if t.is_empty() {
                    format!("reason code {c}")
                } else {
                    (*t).to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if reasons.iter().any(|(c, _)| *c == "999") {
        PriceError::NoData(texts(&|c| c == "999"))
    } else if reasons.is_empty() {
        PriceError::Parse("ENTSO-E: acknowledgement without a Reason and without data".into())
    } else {
        let codes: Vec<&str> = reasons.iter().map(|(c, _)| *c).collect();
        PriceError::Parse(format!(
            "ENTSO-E: acknowledgement instead of data, reason code {}: {}",
            codes.join(", "),
            texts(&|_| true)
        ))
    }
}

/// Element children of `node` with local name `name`.
fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The first element child of `node` with local name `name`.
fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed text of the first child named `name`, if it has any.
fn child_text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name)
        .and_then(|c| c.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn doc(series: &[String]) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <Publication_MarketDocument xmlns=\"urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3\">\
             <type>A44</type>{}</Publication_MarketDocument>",
            series.concat()
        )
    }

    fn series(seq: Option<u32>, curve: Option<&str>, unit: &str, periods: &[String]) -> String {
        let seq = seq
            .map(|s| {
                format!(
                    "<classificationSequence_AttributeInstanceComponent.position>{s}\
                     </classificationSequence_AttributeInstanceComponent.position>"
                )
            })
            .unwrap_or_default();
        let curve = curve
            .map(|c| format!("<curveType>{c}</curveType>"))
            .unwrap_or_default();
        format!(
            "<TimeSeries><currency_Unit.name>EUR</currency_Unit.name>\
             <price_Measure_Unit.name>{unit}</price_Measure_Unit.name>{seq}{curve}{}</TimeSeries>",
            periods.concat()
        )
    }

    fn period(start: &str, end: &str, res: &str, points: &[(&str, &str)]) -> String {
        let pts: String = points
            .iter()
            .map(|(p, a)| {
                format!("<Point><position>{p}</position><price.amount>{a}</price.amount></Point>")
            })
            .collect();
        format!(
            "<Period><timeInterval><start>{start}</start><end>{end}</end></timeInterval>\
             <resolution>{res}</resolution>{pts}</Period>"
        )
    }

    fn values(p: &Parsed) -> Vec<f64> {
        p.slots.iter().map(|s| s.value).collect()
    }

    const D0: &str = "2024-01-01T00:00Z";
    const H4: &str = "2024-01-01T04:00Z";

    #[test]
    fn a03_gap_repeats_previous_value_to_the_end_of_the_period() {
        let xml = doc(&[series(
            None,
            Some("A03"),
            "MWH",
            &[period(D0, H4, "PT60M", &[("1", "10.5"), ("3", "-30")])],
        )]);
        let p = parse(&xml).unwrap();
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.unit, Unit::PerMwh);
        assert_eq!(values(&p), vec![10.5, 10.5, -30.0, -30.0]);
        assert_eq!(p.slots[0].start, t(D0));
        assert_eq!(p.slots[3].end, t(H4));
        for w in p.slots.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
    }

    #[test]
    fn absent_curve_type_is_a03() {
        let xml = doc(&[series(
            None,
            None,
            "MWH",
            &[period(D0, H4, "PT60M", &[("1", "1"), ("2", "2")])],
        )]);
        assert_eq!(values(&parse(&xml).unwrap()), vec![1.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn a03_without_position_one_is_a_parse_error() {
        let xml = doc(&[series(
            None,
            Some("A03"),
            "MWH",
            &[period(D0, H4, "PT60M", &[("2", "1")])],
        )]);
        let e = parse(&xml).unwrap_err();
        assert!(
            matches!(&e, PriceError::Parse(m) if m.contains("position 1")),
            "{e}"
        );
    }

    #[test]
    fn a01_missing_position_is_a_gap_not_a_repeat() {
        let xml = doc(&[series(
            None,
            Some("A01"),
            "MWH",
            &[period(
                D0,
                H4,
                "PT60M",
                &[("1", "1"), ("2", "2"), ("4", "4")],
            )],
        )]);
        let p = parse(&xml).unwrap();
        assert_eq!(values(&p), vec![1.0, 2.0, 4.0]);
        assert_eq!(p.slots[1].end, t("2024-01-01T02:00Z"));
        assert_eq!(p.slots[2].start, t("2024-01-01T03:00Z"));
    }

    #[test]
    fn pt15m_period_yields_one_slot_per_quarter_hour() {
        let pts: Vec<(String, String)> = (1..=8)
            .map(|i| (i.to_string(), format!("{i}.25")))
            .collect();
        let pts: Vec<(&str, &str)> = pts.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let xml = doc(&[series(
            None,
            Some("A03"),
            "MWH",
            &[period(D0, "2024-01-01T02:00Z", "PT15M", &pts)],
        )]);
        let p = parse(&xml).unwrap();
        assert_eq!(p.slots.len(), 8);
        assert_eq!(p.slots[1].start, t("2024-01-01T00:15Z"));
        assert_eq!(p.slots[1].end, t("2024-01-01T00:30Z"));
        assert_eq!(p.slots[7].value, 8.25);
        assert_eq!(p.slots[7].end, t("2024-01-01T02:00Z"));
    }

    #[test]
    fn lowest_classification_sequence_wins_over_finer_resolution() {
        // Sequence 2 at PT15M comes first in the document; sequence 1 at
        // PT60M must still be chosen.
        let quarter = series(
            Some(2),
            Some("A03"),
            "MWH",
            &[period(D0, "2024-01-01T01:00Z", "PT15M", &[("1", "99")])],
        );
        let hour = series(
            Some(1),
            Some("A03"),
            "MWH",
            &[period(D0, "2024-01-01T01:00Z", "PT60M", &[("1", "7")])],
        );
        let p = parse(&doc(&[quarter, hour])).unwrap();
        assert_eq!(values(&p), vec![7.0]);
        assert_eq!(p.slots[0].end - p.slots[0].start, TimeDelta::hours(1));
    }

    #[test]
    fn same_sequence_prefers_the_finest_resolution() {
        let hour = series(
            None,
            Some("A03"),
            "MWH",
            &[period(D0, "2024-01-01T01:00Z", "PT60M", &[("1", "7")])],
        );
        let quarter = series(
            Some(1),
            Some("A03"),
            "MWH",
            &[period(
                D0,
                "2024-01-01T01:00Z",
                "PT15M",
                &[("1", "5"), ("3", "6")],
            )],
        );
        let p = parse(&doc(&[hour, quarter])).unwrap();
        assert_eq!(values(&p), vec![5.0, 5.0, 6.0, 6.0]);
    }

    #[test]
    fn series_covering_other_days_are_all_kept_without_overlap() {
        // Sequence 1 covers day 1 only; sequence 2 covers days 1 and 2.
        let best = series(
            Some(1),
            None,
            "MWH",
            &[period(D0, "2024-01-01T02:00Z", "PT60M", &[("1", "1")])],
        );
        let other = series(
            Some(2),
            None,
            "MWH",
            &[
                period(D0, "2024-01-01T02:00Z", "PT60M", &[("1", "50")]),
                period("2024-01-01T02:00Z", H4, "PT60M", &[("1", "3")]),
            ],
        );
        let p = parse(&doc(&[other, best])).unwrap();
        assert_eq!(values(&p), vec![1.0, 1.0, 3.0, 3.0]);
        for w in p.slots.windows(2) {
            assert!(w[0].end <= w[1].start, "{w:?}");
        }
    }

    #[test]
    fn partial_overlap_keeps_only_the_free_time() {
        // Sequence 1 covers 00:00-01:30 at PT30M; sequence 2 covers 00:00-04:00
        // at PT60M. The 01:00-02:00 hour clashes with 01:00-01:30 and is dropped.
        let best = series(
            Some(1),
            None,
            "MWH",
            &[period(D0, "2024-01-01T01:30Z", "PT30M", &[("1", "1")])],
        );
        let other = series(
            Some(2),
            None,
            "MWH",
            &[period(D0, H4, "PT1H", &[("1", "9"), ("3", "3")])],
        );
        let p = parse(&doc(&[best, other])).unwrap();
        assert_eq!(values(&p), vec![1.0, 1.0, 1.0, 3.0, 3.0]);
        assert_eq!(p.slots[3].start, t("2024-01-01T02:00Z"));
    }

    #[test]
    fn namespace_and_its_version_are_ignored() {
        let body = series(None, None, "MWH", &[period(D0, H4, "PT60M", &[("1", "2")])]);
        for open in [
            "<Publication_MarketDocument xmlns=\"urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:0\">",
            "<Publication_MarketDocument>",
            "<p:Publication_MarketDocument xmlns:p=\"urn:x\">",
        ] {
            let close = if open.starts_with("<p:") {
                "</p:Publication_MarketDocument>"
            } else {
                "</Publication_MarketDocument>"
            };
            let body = if open.starts_with("<p:") {
                body.replace('<', "<p:").replace("<p:/", "</p:")
            } else {
                body.clone()
            };
            let p = parse(&format!("{open}{body}{close}")).unwrap();
            assert_eq!(p.slots.len(), 4, "{open}");
        }
    }

    #[test]
    fn acknowledgement_999_is_no_data_with_its_text() {
        let xml = "<?xml version=\"1.0\"?>\
            <Acknowledgement_MarketDocument xmlns=\"urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0\">\
            <mRID>x</mRID><Reason><code>999</code><text>No matching data found for X</text></Reason>\
            </Acknowledgement_MarketDocument>";
        assert_eq!(
            parse(xml).unwrap_err(),
            PriceError::NoData("No matching data found for X".into())
        );
    }

    #[test]
    fn acknowledgement_with_another_code_is_a_parse_error() {
        let xml = "<Acknowledgement_MarketDocument><Reason><code>A05</code>\
            <text>Rejected</text></Reason></Acknowledgement_MarketDocument>";
        let e = parse(xml).unwrap_err();
        assert!(
            matches!(&e, PriceError::Parse(m) if m.contains("A05") && m.contains("Rejected")),
            "{e}"
        );
    }

    #[test]
    fn other_roots_and_non_xml_are_parse_errors() {
        for body in [
            "<GL_MarketDocument><type>A65</type></GL_MarketDocument>",
            "{\"data\": []}",
            "",
        ] {
            assert!(matches!(parse(body), Err(PriceError::Parse(_))), "{body:?}");
        }
        let e = parse("<Foo/>").unwrap_err();
        assert!(e.to_string().contains("Foo"), "{e}");
    }

    #[test]
    fn wrong_unit_is_invalid_and_named() {
        let xml = doc(&[series(
            None,
            None,
            "KWH",
            &[period(D0, H4, "PT60M", &[("1", "2")])],
        )]);
        let e = parse(&xml).unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("KWH")),
            "{e}"
        );
    }

    #[test]
    fn bad_amount_or_position_is_a_parse_error_naming_it() {
        for (pos, amount, named) in [
            ("1", "12,5", "12,5"),
            ("1", "NaN", "NaN"),
            ("x1", "1", "x1"),
            ("-1", "1", "-1"),
        ] {
            let xml = doc(&[series(
                None,
                None,
                "MWH",
                &[period(D0, H4, "PT60M", &[(pos, amount)])],
            )]);
            let e = parse(&xml).unwrap_err();
            assert!(
                matches!(&e, PriceError::Parse(m) if m.contains(named)),
                "{named}: {e}"
            );
        }
    }

    #[test]
    fn positions_outside_the_period_or_repeated_are_parse_errors() {
        for pts in [
            &[("0", "1")][..],
            &[("1", "1"), ("5", "1")][..],
            &[("1", "1"), ("1", "2")][..],
        ] {
            let xml = doc(&[series(None, None, "MWH", &[period(D0, H4, "PT60M", pts)])]);
            assert!(matches!(parse(&xml), Err(PriceError::Parse(_))), "{pts:?}");
        }
    }

    #[test]
    fn period_must_be_whole_steps_and_forward() {
        let ragged = doc(&[series(
            None,
            None,
            "MWH",
            &[period(D0, "2024-01-01T01:10Z", "PT15M", &[("1", "1")])],
        )]);
        assert!(matches!(parse(&ragged), Err(PriceError::Parse(_))));
        let backwards = doc(&[series(
            None,
            None,
            "MWH",
            &[period(H4, D0, "PT60M", &[("1", "1")])],
        )]);
        assert!(matches!(parse(&backwards), Err(PriceError::Parse(_))));
    }

    #[test]
    fn unsupported_curve_type_is_invalid() {
        let xml = doc(&[series(
            None,
            Some("A05"),
            "MWH",
            &[period(D0, H4, "PT60M", &[("1", "1")])],
        )]);
        let e = parse(&xml).unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("A05")),
            "{e}"
        );
    }

    #[test]
    fn conflicting_currencies_are_invalid() {
        let eur = series(None, None, "MWH", &[period(D0, H4, "PT60M", &[("1", "1")])]);
        let pln = eur
            .replace(">EUR<", ">PLN<")
            .replace(D0, "2024-01-02T00:00Z")
            .replace(H4, "2024-01-02T04:00Z");
        let e = parse(&doc(&[eur, pln])).unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("PLN")),
            "{e}"
        );
    }

    #[test]
    fn publication_without_series_is_no_data() {
        assert!(matches!(parse(&doc(&[])), Err(PriceError::NoData(_))));
    }

    #[test]
    fn document_type_other_than_a44_is_a_parse_error() {
        let xml = doc(&[]).replace("<type>A44</type>", "<type>A65</type>");
        let e = parse(&xml).unwrap_err();
        assert!(
            matches!(&e, PriceError::Parse(m) if m.contains("A65")),
            "{e}"
        );
    }

    #[test]
    fn resolutions() {
        let ok = |s: &str| parse_resolution(s).unwrap();
        assert_eq!(ok("PT60M"), TimeDelta::hours(1));
        assert_eq!(ok("PT1H"), TimeDelta::hours(1));
        assert_eq!(ok("PT15M"), TimeDelta::minutes(15));
        assert_eq!(ok("PT30M"), TimeDelta::minutes(30));
        assert_eq!(ok("PT1H30M"), TimeDelta::minutes(90));
        assert_eq!(ok("P1D"), TimeDelta::days(1));
        assert_eq!(ok("P1W"), TimeDelta::days(7));
        assert_eq!(ok("P1DT1H"), TimeDelta::hours(25));
        for bad in [
            "",
            "P",
            "PT",
            "60M",
            "PT0M",
            "P1M",
            "P1Y",
            "PT1.5H",
            "PTM",
            "PT15",
            "PT99999999999999999999M",
        ] {
            assert!(parse_resolution(bad).is_err(), "{bad:?}");
        }
    }
}
