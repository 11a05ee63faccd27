//! The normalised form every source is turned into: `[start, end)` UTC slots
//! with a price per kWh in one currency's major unit, validated, with the
//! configured adders and VAT applied and recorded beside the market price.

use chrono::{DateTime, Utc};
use roimon_core::{PricePerKwh, Slot};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The unit a publisher states its values in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Major currency unit per MWh (markets: EUR/MWh).
    PerMwh,
    /// Major currency unit per kWh (retail: EUR/kWh).
    PerKwh,
    /// Minor unit (cent, penny, øre) per kWh.
    MinorPerKwh,
    /// Grams CO2-equivalent per kWh (carbon intensity; not a price).
    GramsPerKwh,
}

impl Unit {
    /// Convert a value in this unit to major units (or grams) per kWh.
    pub fn to_per_kwh(self, v: f64) -> f64 {
        match self {
            Unit::PerMwh => v / 1000.0,
            Unit::PerKwh | Unit::GramsPerKwh => v,
            Unit::MinorPerKwh => v / 100.0,
        }
    }
}

impl FromStr for Unit {
    type Err = PriceError;
    /// `EUR/MWh`, `MWh`, `EUR/kWh`, `kWh`, `ct/kWh`, `p/kWh`, `öre/kWh`, `g/kWh`.
    fn from_str(s: &str) -> Result<Self, PriceError> {
        let l = s.trim().to_ascii_lowercase();
        let (num, den) = l.split_once('/').unwrap_or(("", l.as_str()));
        let num = num.trim();
        match den.trim() {
            "mwh" if !is_minor(num) => Ok(Unit::PerMwh),
            "kwh" if num == "g" || num == "gco2" || num == "gco2eq" => Ok(Unit::GramsPerKwh),
            "kwh" if is_minor(num) => Ok(Unit::MinorPerKwh),
            "kwh" => Ok(Unit::PerKwh),
            _ => Err(PriceError::Invalid(format!(
                "unknown unit {s:?} (expected e.g. EUR/MWh, EUR/kWh, ct/kWh, p/kWh)"
            ))),
        }
    }
}

fn is_minor(num: &str) -> bool {
    matches!(
        num,
        "ct" | "c" | "cent" | "cents" | "p" | "pence" | "öre" | "ore" | "øre" | "gr" | "rp"
    )
}

/// One slot as the publisher gave it, before unit conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawSlot {
    /// Inclusive start, UTC.
    pub start: DateTime<Utc>,
    /// Exclusive end, UTC.
    pub end: DateTime<Utc>,
    /// Value in the publisher's unit.
    pub value: f64,
}

/// What a parser returns: raw slots, their unit, and the currency the body
/// states (None when the body does not say; the configured one is then used).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// ISO currency code stated by the body, if any.
    pub currency: Option<String>,
    /// Unit of every value.
    pub unit: Unit,
    /// Slots, in any order.
    pub slots: Vec<RawSlot>,
}

/// Why a response could not be turned into a schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    /// The body is not what the publisher's format says it is.
    #[error("response does not parse: {0}")]
    Parse(String),
    /// The publisher answered that it has no data (not yet published, or
    /// none for that area/window).
    #[error("no data: {0}")]
    NoData(String),
    /// It parsed, but the values cannot be trusted (NaN, absurd, overlapping,
    /// wrong currency or unit).
    #[error("rejected: {0}")]
    Invalid(String),
}

/// Adders per kWh (grid fees, taxes) and VAT, applied as
/// `(market + Σ adders) × (1 + vat)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Adjustments {
    /// Named adders in currency per kWh, applied in this order.
    pub adders: Vec<(String, f64)>,
    /// VAT as a fraction (0.19 = 19 %).
    pub vat: f64,
}

impl Adjustments {
    /// The price paid for a market price.
    pub fn apply(&self, market: f64) -> f64 {
        let with_adders = self.adders.iter().fold(market, |p, (_, a)| p + a);
        with_adders * (1.0 + self.vat)
    }
}

/// One normalised slot: the market price and the price paid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriceSlot {
    /// Inclusive start, UTC.
    pub start: DateTime<Utc>,
    /// Exclusive end, UTC.
    pub end: DateTime<Utc>,
    /// Market (or source) price per kWh before adders and VAT.
    pub market_per_kwh: f64,
    /// Price paid per kWh: `(market + adders) × (1 + vat)`.
    pub price_per_kwh: f64,
}

/// A validated schedule: sorted, non-overlapping slots in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// ISO currency code.
    pub currency: String,
    /// Sorted by start; never overlapping; gaps allowed.
    pub slots: Vec<PriceSlot>,
    /// The adders and VAT that turned market prices into paid prices.
    pub adjustments: Adjustments,
}

impl Schedule {
    /// The slots in the core's form (price paid), for the engine's tariff.
    pub fn core_slots(&self) -> Vec<Slot> {
        self.slots
            .iter()
            .map(|s| Slot {
                start: s.start,
                end: s.end,
                price: PricePerKwh(s.price_per_kwh),
            })
            .collect()
    }

    /// The end of the last slot, if any.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.slots.last().map(|s| s.end)
    }

    /// Merge a newer schedule in: where a new slot covers time, it replaces
    /// what was known (an old slot straddling it is clipped to the part the
    /// new one leaves); where the new schedule has no slot (before, after, or
    /// in a gap), the old slots stay. Old slots, or the pieces of them left
    /// over, ending at or before `keep_after` are dropped to bound memory
    /// (so merging the same newer schedule twice changes nothing).
    ///
    /// Both schedules must be sorted and non-overlapping (what [`normalise`]
    /// returns, and what a merge leaves). One sweep over both, then a sort:
    /// O((old + new) log(old + new)), however the two interleave.
    pub fn merge(&mut self, newer: Schedule, keep_after: DateTime<Utc>) {
        if newer.slots.is_empty() {
            return;
        }
        let new = &newer.slots;
        let mut slots: Vec<PriceSlot> = Vec::with_capacity(self.slots.len() + new.len());
        // `first` is the first new slot that may still overlap an old one:
        // old slots come in start order and are disjoint, so a new slot that
        // ends at or before one old slot's start ends before every later one.
        let mut first = 0;
        for old in self.slots.iter().filter(|s| s.end > keep_after) {
            while first < new.len() && new[first].end <= old.start {
                first += 1;
            }
            // Subtract every new slot overlapping this old one, keeping the
            // pieces left over.
            let mut rest = Some(*old);
            for n in new[first..].iter().take_while(|n| n.start < old.end) {
                let Some(r) = rest else { break };
                if n.start > r.start && n.start > keep_after {
                    slots.push(PriceSlot { end: n.start, ..r });
                }
                rest = (n.end < r.end).then_some(PriceSlot { start: n.end, ..r });
            }
            slots.extend(rest);
        }
        slots.extend(newer.slots);
        slots.sort_by_key(|s| s.start);
        self.slots = slots;
        self.currency = newer.currency;
        self.adjustments = newer.adjustments;
    }

    /// Keep only what lies in `[from, until)`: a slot wholly outside it is
    /// dropped, one straddling an edge is clipped to it. Returns how many
    /// slots were dropped. This is how a schedule is bounded in time: history
    /// older than what is kept, and "prices" for years no market has
    /// published yet, never reach the tariff.
    pub fn retain_within(&mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> usize {
        let before = self.slots.len();
        self.slots.retain(|s| s.end > from && s.start < until);
        for s in &mut self.slots {
            s.start = s.start.max(from);
            s.end = s.end.min(until);
        }
        before - self.slots.len()
    }

    /// Whether the slots are sorted by start and none overlaps another (a
    /// schedule read back from disk is checked before it is trusted).
    pub fn is_ordered(&self) -> bool {
        self.slots.iter().all(|s| s.start < s.end)
            && self.slots.windows(2).all(|w| w[0].end <= w[1].start)
    }

    /// Slots overlapping `[from, to)`.
    pub fn window(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<PriceSlot> {
        self.slots
            .iter()
            .filter(|s| s.end > from && s.start < to)
            .copied()
            .collect()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.slots {
            writeln!(
                f,
                "{}  {}  {:>10.5} {}/kWh",
                s.start.format("%Y-%m-%dT%H:%MZ"),
                s.end.format("%Y-%m-%dT%H:%MZ"),
                s.price_per_kwh,
                self.currency
            )?;
        }
        Ok(())
    }
}

/// The largest believable |price| per kWh in a currency's major unit, when
/// the currency is known: market caps are about 4 EUR/kWh (EPEX +4000 EUR/MWh),
/// so a larger figure means a unit or parsing mistake.
pub fn default_bound(currency: &str) -> Option<f64> {
    match currency.to_ascii_uppercase().as_str() {
        "EUR" | "GBP" | "USD" | "CHF" | "AUD" | "CAD" | "NZD" => Some(10.0),
        "SEK" | "NOK" | "DKK" | "PLN" | "RON" | "BGN" => Some(150.0),
        "CZK" => Some(300.0),
        "HUF" => Some(5000.0),
        _ => None,
    }
}

/// The shortest slot a publisher is believed: five minutes, the shortest
/// settlement period of any market in operation (the Australian NEM, the
/// real-time markets of the US ISOs). Anything shorter is a mistake in the
/// time unit or in the body, not a price, and a schedule of one-second slots
/// would cost a merge and the state file 300 times what five-minute ones do.
pub const MIN_SLOT_SECS: i64 = 300;

/// The most slots believed from one fetch: a fetch covers at most nine days
/// (yesterday to seven days ahead), which is 2 592 five-minute slots; 10 000
/// also matches the page size the largest publisher (Energi Data Service) is
/// asked for. More is a broken or hostile publisher, rejected before any
/// sorting or merging is done.
pub const MAX_SLOTS: usize = 10_000;

/// Turn parsed slots into a validated schedule in `currency`.
///
/// Rejects: a stated currency other than `currency`; more than [`MAX_SLOTS`]
/// slots; a non-finite value; a price whose magnitude exceeds `bound` per kWh
/// (or [`default_bound`]); `end <= start`; a slot shorter than
/// [`MIN_SLOT_SECS`]; overlapping slots; an empty result (that is
/// [`PriceError::NoData`]). Exact duplicates (same start, end and value) are
/// collapsed; everything else that overlaps is an error.
pub fn normalise(
    parsed: Parsed,
    currency: &str,
    adjustments: &Adjustments,
    bound: Option<f64>,
) -> Result<Schedule, PriceError> {
    if let Some(stated) = &parsed.currency {
        if !stated.eq_ignore_ascii_case(currency) {
            return Err(PriceError::Invalid(format!(
                "the source states currency {stated}, the config says {currency}"
            )));
        }
    }
    if parsed.unit == Unit::GramsPerKwh {
        return Err(PriceError::Invalid(
            "carbon intensity (g/kWh) is not a price".into(),
        ));
    }
    let bound = bound.or_else(|| default_bound(currency));
    let mut raw = parsed.slots;
    if raw.is_empty() {
        return Err(PriceError::NoData(
            "the response holds no price slots".into(),
        ));
    }
    if raw.len() > MAX_SLOTS {
        return Err(PriceError::Invalid(format!(
            "the response holds {} slots, more than the {MAX_SLOTS} believed from one fetch",
            raw.len()
        )));
    }
    raw.sort_by(|a, b| a.start.cmp(&b.start).then(a.end.cmp(&b.end)));
    raw.dedup_by(|b, a| a.start == b.start && a.end == b.end && a.value == b.value);
    let mut slots = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        if r.end <= r.start {
            return Err(PriceError::Invalid(format!(
                "slot {} ends at or before it starts ({})",
                r.start, r.end
            )));
        }
        if (r.end - r.start).num_seconds() < MIN_SLOT_SECS {
            return Err(PriceError::Invalid(format!(
                "slot {} lasts {} s, shorter than the {MIN_SLOT_SECS} s of the shortest market",
                r.start,
                (r.end - r.start).num_seconds()
            )));
        }
        if !r.value.is_finite() {
            return Err(PriceError::Invalid(format!(
                "slot {}: price is not a number ({})",
                r.start, r.value
            )));
        }
        let market = parsed.unit.to_per_kwh(r.value);
        if let Some(b) = bound {
            if market.abs() > b {
                return Err(PriceError::Invalid(format!(
                    "slot {}: {market} {currency}/kWh is beyond ±{b} {currency}/kWh; wrong unit or currency?",
                    r.start
                )));
            }
        }
        if i > 0 && raw[i - 1].end > r.start {
            return Err(PriceError::Invalid(format!(
                "slots overlap: [{}, {}) and [{}, {})",
                raw[i - 1].start,
                raw[i - 1].end,
                r.start,
                r.end
            )));
        }
        slots.push(PriceSlot {
            start: r.start,
            end: r.end,
            market_per_kwh: market,
            price_per_kwh: adjustments.apply(market),
        });
    }
    Ok(Schedule {
        currency: currency.to_ascii_uppercase(),
        slots,
        adjustments: adjustments.clone(),
    })
}

/// The unit label of a carbon-intensity schedule's `currency` field.
pub const CARBON_UNIT: &str = "gCO2e";

/// Turn parsed carbon-intensity slots (grams CO2e per kWh) into a validated
/// schedule (`currency` = [`CARBON_UNIT`], price fields hold g/kWh). Rejects
/// a unit other than g/kWh, values outside 0..=3000 g/kWh (coal is about
/// 1000), NaN, and overlaps, like [`normalise`].
pub fn normalise_carbon(parsed: Parsed) -> Result<Schedule, PriceError> {
    if parsed.unit != Unit::GramsPerKwh {
        return Err(PriceError::Invalid(format!(
            "carbon intensity must be in g/kWh, got {:?}",
            parsed.unit
        )));
    }
    for r in &parsed.slots {
        if r.value.is_finite() && !(0.0..=3000.0).contains(&r.value) {
            return Err(PriceError::Invalid(format!(
                "slot {}: {} g/kWh is not a believable grid intensity",
                r.start, r.value
            )));
        }
    }
    let as_price = Parsed {
        currency: None,
        unit: Unit::PerKwh,
        slots: parsed.slots,
    };
    let mut s = normalise(as_price, CARBON_UNIT, &Adjustments::default(), Some(3000.0))?;
    s.currency = CARBON_UNIT.to_string();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 - 1_700_000_000 % 3600, 0).unwrap()
            + TimeDelta::hours(h)
    }

    fn parsed(unit: Unit, v: &[(i64, i64, f64)]) -> Parsed {
        Parsed {
            currency: Some("EUR".into()),
            unit,
            slots: v
                .iter()
                .map(|&(a, b, value)| RawSlot {
                    start: t(a),
                    end: t(b),
                    value,
                })
                .collect(),
        }
    }

    #[test]
    fn units_convert_to_major_per_kwh() {
        assert_eq!(Unit::PerMwh.to_per_kwh(81.02), 0.08102);
        assert_eq!(Unit::MinorPerKwh.to_per_kwh(25.0), 0.25);
        assert_eq!("EUR/MWh".parse::<Unit>().unwrap(), Unit::PerMwh);
        assert_eq!("Eur/MWh".parse::<Unit>().unwrap(), Unit::PerMwh);
        assert_eq!("ct/kWh".parse::<Unit>().unwrap(), Unit::MinorPerKwh);
        assert_eq!("p/kWh".parse::<Unit>().unwrap(), Unit::MinorPerKwh);
        assert_eq!("SEK/kWh".parse::<Unit>().unwrap(), Unit::PerKwh);
        assert_eq!("g/kWh".parse::<Unit>().unwrap(), Unit::GramsPerKwh);
        assert!("EUR/GJ".parse::<Unit>().is_err());
    }

    #[test]
    fn adders_then_vat() {
        let adj = Adjustments {
            adders: vec![("grid".into(), 0.08), ("tax".into(), 0.02)],
            vat: 0.19,
        };
        let s = normalise(
            parsed(Unit::PerMwh, &[(0, 1, 100.0), (1, 2, -50.0)]),
            "EUR",
            &adj,
            None,
        )
        .unwrap();
        assert!((s.slots[0].price_per_kwh - (0.1 + 0.1) * 1.19).abs() < 1e-12);
        assert_eq!(s.slots[1].market_per_kwh, -0.05);
        assert!((s.slots[1].price_per_kwh - 0.05 * 1.19).abs() < 1e-12);
        assert_eq!(s.adjustments, adj);
    }

    #[test]
    fn rejects_what_cannot_be_trusted() {
        let none = Adjustments::default();
        let bad = |p: Parsed| normalise(p, "EUR", &none, None).unwrap_err();
        assert!(matches!(
            bad(parsed(Unit::PerMwh, &[(0, 1, f64::NAN)])),
            PriceError::Invalid(_)
        ));
        assert!(matches!(
            bad(parsed(Unit::PerKwh, &[(0, 1, 80.0)])),
            PriceError::Invalid(_)
        ));
        assert!(matches!(
            bad(parsed(Unit::PerMwh, &[(0, 2, 1.0), (1, 3, 1.0)])),
            PriceError::Invalid(_)
        ));
        assert!(matches!(
            bad(parsed(Unit::PerMwh, &[(1, 1, 1.0)])),
            PriceError::Invalid(_)
        ));
        assert!(matches!(
            bad(parsed(Unit::PerMwh, &[])),
            PriceError::NoData(_)
        ));
        let mut sek = parsed(Unit::PerMwh, &[(0, 1, 1.0)]);
        sek.currency = Some("SEK".into());
        let e = bad(sek);
        assert!(e.to_string().contains("SEK"), "{e}");
        // Exact duplicates collapse; negative prices stay.
        let s = normalise(
            parsed(Unit::PerMwh, &[(1, 2, -5.0), (0, 1, 3.0), (1, 2, -5.0)]),
            "EUR",
            &none,
            None,
        )
        .unwrap();
        assert_eq!(s.slots.len(), 2);
        assert_eq!(s.slots[1].price_per_kwh, -0.005);
    }

    #[test]
    fn carbon_is_validated_like_prices() {
        let mut p = parsed(Unit::GramsPerKwh, &[(1, 2, 450.0), (0, 1, 300.0)]);
        p.currency = None;
        let s = normalise_carbon(p.clone()).unwrap();
        assert_eq!(s.currency, CARBON_UNIT);
        assert_eq!(s.slots[0].price_per_kwh, 300.0);
        assert_eq!(s.slots[1].price_per_kwh, 450.0);
        p.slots[0].value = 12_000.0;
        assert!(matches!(
            normalise_carbon(p.clone()),
            Err(PriceError::Invalid(_))
        ));
        p.slots[0].value = -1.0;
        assert!(matches!(
            normalise_carbon(p.clone()),
            Err(PriceError::Invalid(_))
        ));
        p.unit = Unit::PerMwh;
        assert!(matches!(normalise_carbon(p), Err(PriceError::Invalid(_))));
        // And a carbon series is never taken for a price.
        let g = parsed(Unit::GramsPerKwh, &[(0, 1, 300.0)]);
        assert!(normalise(g, "EUR", &Adjustments::default(), None).is_err());
    }

    #[test]
    fn merge_clips_straddling_slots_and_keeps_old_data_in_new_gaps() {
        let none = Adjustments::default();
        let mut old = normalise(parsed(Unit::PerMwh, &[(0, 6, 1.0)]), "EUR", &none, None).unwrap();
        // New data for hours 1..2 and 4..5 only.
        let new = normalise(
            parsed(Unit::PerMwh, &[(1, 2, 10.0), (4, 5, 40.0)]),
            "EUR",
            &none,
            None,
        )
        .unwrap();
        old.merge(new, t(-10));
        let got: Vec<(DateTime<Utc>, DateTime<Utc>, f64)> = old
            .slots
            .iter()
            .map(|s| (s.start, s.end, (s.market_per_kwh * 1000.0).round()))
            .collect();
        assert_eq!(
            got,
            vec![
                (t(0), t(1), 1.0),
                (t(1), t(2), 10.0),
                (t(2), t(4), 1.0),
                (t(4), t(5), 40.0),
                (t(5), t(6), 1.0),
            ]
        );
        // Still a valid schedule: sorted and disjoint.
        assert!(old.slots.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn merge_replaces_overlap_and_keeps_history() {
        let none = Adjustments::default();
        let mut old = normalise(
            parsed(Unit::PerMwh, &[(0, 1, 1.0), (1, 2, 2.0), (2, 3, 3.0)]),
            "EUR",
            &none,
            None,
        )
        .unwrap();
        let new = normalise(
            parsed(Unit::PerMwh, &[(2, 3, 30.0), (3, 4, 40.0)]),
            "EUR",
            &none,
            None,
        )
        .unwrap();
        old.merge(new, t(1));
        let v: Vec<f64> = old
            .slots
            .iter()
            .map(|s| s.market_per_kwh * 1000.0)
            .collect();
        assert_eq!(v, vec![2.0, 30.0, 40.0]);
        assert_eq!(old.end(), Some(t(4)));
    }

    fn seconds(slots: &[(i64, i64)]) -> Parsed {
        let t0 = t(0);
        Parsed {
            currency: None,
            unit: Unit::PerMwh,
            slots: slots
                .iter()
                .map(|&(a, b)| RawSlot {
                    start: t0 + TimeDelta::seconds(a),
                    end: t0 + TimeDelta::seconds(b),
                    value: 50.0,
                })
                .collect(),
        }
    }

    #[test]
    fn slots_shorter_than_five_minutes_are_rejected_and_five_minutes_are_not() {
        let none = Adjustments::default();
        let five: Vec<(i64, i64)> = (0..12).map(|i| (i * 300, (i + 1) * 300)).collect();
        assert_eq!(
            normalise(seconds(&five), "EUR", &none, None)
                .unwrap()
                .slots
                .len(),
            12
        );
        let e = normalise(seconds(&[(0, 300), (300, 599)]), "EUR", &none, None).unwrap_err();
        assert!(matches!(e, PriceError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("299 s"), "{e}");
        // One-second slots, as a broken aWATTar body had.
        let ones: Vec<(i64, i64)> = (0..600).map(|i| (i, i + 1)).collect();
        assert!(matches!(
            normalise(seconds(&ones), "EUR", &none, None),
            Err(PriceError::Invalid(_))
        ));
    }

    #[test]
    fn more_slots_than_one_fetch_can_hold_are_rejected_before_sorting() {
        let none = Adjustments::default();
        let hours =
            |n: i64| -> Vec<(i64, i64)> { (0..n).map(|i| (i * 3600, (i + 1) * 3600)).collect() };
        let ok = normalise(seconds(&hours(MAX_SLOTS as i64)), "EUR", &none, None).unwrap();
        assert_eq!(ok.slots.len(), MAX_SLOTS);
        let e = normalise(seconds(&hours(MAX_SLOTS as i64 + 1)), "EUR", &none, None).unwrap_err();
        assert!(matches!(e, PriceError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("10001 slots"), "{e}");
    }

    #[test]
    fn retain_within_drops_what_is_outside_and_clips_what_straddles() {
        let none = Adjustments::default();
        let mut s = normalise(
            parsed(
                Unit::PerMwh,
                &[
                    (-200, -100, 1.0),
                    (-1, 1, 2.0),
                    (2, 3, 3.0),
                    (9, 11, 4.0),
                    (50, 60, 5.0),
                ],
            ),
            "EUR",
            &none,
            None,
        )
        .unwrap();
        assert_eq!(s.retain_within(t(0), t(10)), 2);
        let got: Vec<(DateTime<Utc>, DateTime<Utc>)> =
            s.slots.iter().map(|x| (x.start, x.end)).collect();
        assert_eq!(got, vec![(t(0), t(1)), (t(2), t(3)), (t(9), t(10))]);
        assert!(s.is_ordered());
        assert_eq!(s.end(), Some(t(10)));
        assert_eq!(s.retain_within(t(20), t(30)), 3);
        assert_eq!(s.end(), None);
    }

    #[test]
    fn merging_large_interleaved_schedules_is_not_quadratic() {
        // 100 000 old and 100 000 new slots: a merge that compares every old
        // slot with every new one does 1e10 steps (minutes); a sweep does
        // 2e5 (well under a second, even unoptimised).
        let n = 100_000i64;
        let make = |offset: i64, value: f64| Schedule {
            currency: "EUR".into(),
            slots: (0..n)
                .map(|i| PriceSlot {
                    start: t(0) + TimeDelta::seconds(offset + i * 600),
                    end: t(0) + TimeDelta::seconds(offset + i * 600 + 300),
                    market_per_kwh: value,
                    price_per_kwh: value,
                })
                .collect(),
            adjustments: Adjustments::default(),
        };
        let (old, new) = (make(0, 1.0), make(150, 2.0));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut merged = old;
            merged.merge(new, t(-1));
            let _ = tx.send(merged);
        });
        let merged = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("merging 100 000 into 100 000 slots took over 20 s");
        // Each old slot keeps its first half; every new slot is whole.
        assert_eq!(merged.slots.len(), 2 * n as usize);
        assert!(merged.is_ordered());
        assert_eq!(merged.slots[0].end, t(0) + TimeDelta::seconds(150));
        assert_eq!(merged.slots[1].price_per_kwh, 2.0);
    }
}
