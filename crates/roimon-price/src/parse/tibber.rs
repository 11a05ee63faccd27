//! Parser: Tibber GraphQL price info (consumer prices incl. taxes).
//!
//! Reads the response to a query for
//! `viewer { homes { currentSubscription { priceInfo { current today tomorrow } } } }`
//! (`POST https://api.tibber.com/v1-beta/gql`). Each price entry has `total`
//! (what the customer pays per kWh: energy plus tax, VAT included), `energy`,
//! `tax`, `startsAt` (local time with an offset, e.g.
//! `2025-01-04T00:00:00.000+01:00`) and, when the query asks for it,
//! `currency`.
//!
//! How the body is read:
//!
//! - `today` and `tomorrow` of the chosen home are joined, sorted by start;
//!   `current` is ignored (it repeats one of `today`'s entries). The value is
//!   `total` in the home's currency per kWh ([`Unit::PerKwh`]): Tibber prices
//!   already hold taxes and VAT, so the config should not add them again.
//! - Tibber gives starts only. A slot ends at the next entry's start; the
//!   last one lasts as long as the spacing before it (hourly or quarter-hourly
//!   subscriptions both work), and a lone entry lasts one hour. A `null`
//!   `total` leaves its own slot out (a gap) without stretching its
//!   neighbour over it.
//! - `currency` comes from the entries when they state it (they must all
//!   agree, else [`PriceError::Invalid`]); otherwise it is `None` and the
//!   configured currency is used.
//! - A GraphQL `errors` array (bad token, bad query) is
//!   [`PriceError::Invalid`] carrying the first error's message.
//! - A home index beyond the list, or a home without a current subscription
//!   or price info, is [`PriceError::Invalid`].
//! - `today` and `tomorrow` both empty is [`PriceError::NoData`] (`tomorrow`
//!   alone is empty until about 13:00 local time).

use super::util::{ends_from_starts, parse_time};
use crate::schedule::{Parsed, PriceError, Unit};
use chrono::TimeDelta;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Response {
    data: Option<Data>,
    errors: Option<Vec<GqlError>>,
}

#[derive(Debug, Deserialize)]
struct GqlError {
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    viewer: Option<Viewer>,
}

#[derive(Debug, Deserialize)]
struct Viewer {
    #[serde(default)]
    homes: Vec<Option<Home>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Home {
    current_subscription: Option<Subscription>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    price_info: Option<PriceInfo>,
}

#[derive(Debug, Deserialize)]
struct PriceInfo {
    today: Option<Vec<Price>>,
    tomorrow: Option<Vec<Price>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Price {
    total: Option<f64>,
    starts_at: String,
    currency: Option<String>,
}

/// Parse a Tibber `priceInfo` GraphQL response and return the consumer
/// prices (`total`, per kWh, taxes included) of home number `home` (0-based,
/// in the order of `viewer.homes`) for today and tomorrow.
pub fn parse(json: &str, home: usize) -> Result<Parsed, PriceError> {
    super::util::bounded_json(json, "Tibber")?;
    let resp: Response = serde_json::from_str(json)
        .map_err(|e| PriceError::Parse(format!("Tibber: not the expected JSON: {e}")))?;
    if let Some(first) = resp.errors.as_ref().and_then(|e| e.first()) {
        return Err(PriceError::Invalid(format!(
            "Tibber: GraphQL error: {}",
            first.message.as_deref().unwrap_or("(no message)")
        )));
    }
    let viewer = resp
        .data
        .and_then(|d| d.viewer)
        .ok_or_else(|| PriceError::Parse("Tibber: no data.viewer in the response".into()))?;
    let count = viewer.homes.len();
    let h = viewer.homes.into_iter().nth(home).ok_or_else(|| {
        PriceError::Invalid(format!(
            "Tibber: home {home} does not exist; the token sees {count} home(s) (0-based)"
        ))
    })?;
    let info = h
        .and_then(|h| h.current_subscription)
        .and_then(|s| s.price_info)
        .ok_or_else(|| {
            PriceError::Invalid(format!(
                "Tibber: home {home} has no current subscription with price info"
            ))
        })?;

    let mut entries: Vec<Price> = info.today.unwrap_or_default();
    let today_len = entries.len();
    entries.extend(info.tomorrow.unwrap_or_default());
    // Where entry `i` of `entries` sits in the response, for error texts.
    let place = |i: usize| match i.checked_sub(today_len) {
        None => format!("priceInfo.today[{i}]"),
        Some(j) => format!("priceInfo.tomorrow[{j}]"),
    };
    if entries.is_empty() {
        return Err(PriceError::NoData(
            "Tibber: today and tomorrow are both empty".into(),
        ));
    }

    let mut currency: Option<String> = None;
    let mut starts = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if let Some(c) = e
            .currency
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            match &currency {
                None => currency = Some(c.to_ascii_uppercase()),
                Some(seen) if seen.eq_ignore_ascii_case(c) => {}
                Some(seen) => {
                    return Err(PriceError::Invalid(format!(
                        "Tibber: entries state two currencies, {seen} and {c} (at {})",
                        place(i)
                    )));
                }
            }
        }
        let start = parse_time(&e.starts_at)
            .map_err(|err| PriceError::Parse(format!("Tibber: {}.startsAt: {err}", place(i))))?;
        starts.push((start, e.total));
    }
    starts.sort_by_key(|&(t, _)| t);
    starts.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);

    // Ends come from every start, priced or not, so a null leaves a gap.
    let timed: Vec<_> = starts.iter().map(|&(t, _)| (t, 0.0)).collect();
    let slots: Vec<_> = ends_from_starts(&timed, TimeDelta::hours(1))
        .into_iter()
        .zip(&starts)
        .filter_map(|(mut slot, &(_, total))| {
            slot.value = total?;
            Some(slot)
        })
        .collect();
    if slots.is_empty() {
        return Err(PriceError::NoData("Tibber: every total is null".into()));
    }
    Ok(Parsed {
        currency,
        unit: Unit::PerKwh,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(today: &str, tomorrow: &str) -> String {
        format!(
            r#"{{"data":{{"viewer":{{"homes":[{{"currentSubscription":{{"priceInfo":{{
            "current":null,"today":[{today}],"tomorrow":[{tomorrow}]}}}}}}]}}}}}}"#
        )
    }

    fn entry(total: &str, starts_at: &str) -> String {
        format!(r#"{{"total":{total},"energy":0.1,"tax":0.05,"startsAt":"{starts_at}"}}"#)
    }

    #[test]
    fn quarter_hours_end_at_the_next_start_and_last_keeps_spacing() {
        let b = body(
            &[
                entry("0.25", "2025-10-01T00:15:00.000+02:00"),
                entry("0.2", "2025-10-01T00:00:00.000+02:00"),
            ]
            .join(","),
            &entry("-0.01", "2025-10-01T00:30:00.000+02:00"),
        );
        let p = parse(&b, 0).unwrap();
        assert_eq!(p.unit, Unit::PerKwh);
        assert_eq!(p.currency, None);
        let v: Vec<f64> = p.slots.iter().map(|s| s.value).collect();
        assert_eq!(v, vec![0.2, 0.25, -0.01]);
        assert_eq!(p.slots[0].start, parse_time("2025-09-30T22:00Z").unwrap());
        assert_eq!(p.slots[2].end, parse_time("2025-09-30T22:45Z").unwrap());
    }

    #[test]
    fn a_lone_entry_lasts_an_hour_and_null_total_is_a_gap() {
        let p = parse(&body(&entry("0.3", "2025-01-04T00:00:00+01:00"), ""), 0).unwrap();
        assert_eq!(p.slots.len(), 1);
        assert_eq!(p.slots[0].end - p.slots[0].start, TimeDelta::hours(1));

        let b = body(
            &[
                entry("0.1", "2025-01-04T00:00:00+01:00"),
                entry("null", "2025-01-04T01:00:00+01:00"),
                entry("0.3", "2025-01-04T02:00:00+01:00"),
            ]
            .join(","),
            "",
        );
        let p = parse(&b, 0).unwrap();
        assert_eq!(p.slots.len(), 2);
        // The first slot is not stretched over the missing hour.
        assert_eq!(p.slots[0].end, parse_time("2025-01-04T00:00Z").unwrap());
        assert_eq!(p.slots[1].start, parse_time("2025-01-04T01:00Z").unwrap());
        assert_eq!(p.slots[1].end, parse_time("2025-01-04T02:00Z").unwrap());
    }

    #[test]
    fn currency_is_taken_from_the_entries() {
        let e = r#"{"total":1.2,"startsAt":"2025-01-04T00:00:00+01:00","currency":"nok"}"#;
        let p = parse(&body(e, ""), 0).unwrap();
        assert_eq!(p.currency.as_deref(), Some("NOK"));
        let two = format!(
            r#"{e},{{"total":1.2,"startsAt":"2025-01-04T01:00:00+01:00","currency":"SEK"}}"#
        );
        let err = parse(&body(&two, ""), 0).unwrap_err();
        assert!(
            matches!(&err, PriceError::Invalid(m) if m.contains("NOK") && m.contains("SEK")),
            "{err:?}"
        );
    }

    #[test]
    fn graphql_errors_carry_the_first_message() {
        let b = r#"{"errors":[{"message":"invalid token","extensions":{"code":"UNAUTHENTICATED"}},
            {"message":"second"}],"data":null}"#;
        let e = parse(b, 0).unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("invalid token") && !m.contains("second")),
            "{e:?}"
        );
    }

    #[test]
    fn missing_home_subscription_or_data() {
        let b = body(&entry("0.3", "2025-01-04T00:00:00+01:00"), "");
        let e = parse(&b, 1).unwrap_err();
        assert!(
            matches!(&e, PriceError::Invalid(m) if m.contains("home 1") && m.contains("1 home")),
            "{e:?}"
        );
        let b = r#"{"data":{"viewer":{"homes":[{"currentSubscription":null}]}}}"#;
        assert!(matches!(parse(b, 0), Err(PriceError::Invalid(_))));
        assert!(matches!(
            parse(r#"{"data":null}"#, 0),
            Err(PriceError::Parse(_))
        ));
        assert!(matches!(parse("<html>", 0), Err(PriceError::Parse(_))));
        assert!(matches!(
            parse(&body("", ""), 0),
            Err(PriceError::NoData(_))
        ));
        let all_null = body(&entry("null", "2025-01-04T00:00:00+01:00"), "");
        assert!(matches!(parse(&all_null, 0), Err(PriceError::NoData(_))));
    }
}
