//! `[price]`: the electricity price source (static, time-of-use, or fetched
//! from a publisher), its adders and VAT, and the checks fetched sources need.

use super::check_fetch_keys;
use chrono::Weekday;
use serde::Deserialize;
use std::path::PathBuf;

/// `[price] source`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// One price.
    #[default]
    Static,
    /// Time-of-use rules.
    Schedule,
    /// ENTSO-E Transparency Platform day-ahead prices (A44).
    Entsoe,
    /// Nord Pool data portal day-ahead prices.
    Nordpool,
    /// aWATTar market data (DE/AT).
    Awattar,
    /// Tibber consumer prices (GraphQL; taxes included).
    Tibber,
    /// Octopus Energy Agile unit rates (GB).
    Octopus,
    /// Energi Data Service day-ahead prices (DK).
    Energidataservice,
    /// Any HTTP JSON, through `[price.mapping]`.
    Json,
    /// A CSV price sheet on disk.
    Csv,
}
impl PriceSource {
    /// The `source` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Schedule => "schedule",
            Self::Entsoe => "entsoe",
            Self::Nordpool => "nordpool",
            Self::Awattar => "awattar",
            Self::Tibber => "tibber",
            Self::Octopus => "octopus",
            Self::Energidataservice => "energidataservice",
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }

    /// Whether prices come from outside (fetched), not from the config.
    pub fn is_fetched(self) -> bool {
        !matches!(self, Self::Static | Self::Schedule)
    }
}

/// `[price] fallback`: what prices energy when no fetched slot covers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FallbackPolicy {
    /// The configured `price_per_kwh`.
    #[default]
    Price,
    /// The last slot's price before the gap (the fallback price before any).
    LastKnown,
}

/// `[price]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Price {
    /// static | schedule | entsoe | nordpool | awattar | tibber | octopus |
    /// energidataservice | json | csv
    pub source: PriceSource,
    /// ISO 4217 code.
    pub currency: String,
    /// static: the price; schedule: the price when no rule matches; fetched
    /// sources: the fallback.
    pub price_per_kwh: f64,
    /// What prices energy when no fetched slot covers it.
    pub fallback: FallbackPolicy,
    /// IANA time zone of the schedule's rules.
    pub timezone: String,
    /// Time-of-use rules, first match wins.
    pub schedule: Vec<PriceRule>,
    /// HTTP sources: the API address (each source has its public default).
    pub base_url: Option<String>,
    /// entsoe: bidding zone EIC code; nordpool: delivery area; energidataservice: price area.
    pub area: Option<String>,
    /// Name of an environment variable holding the API token.
    pub token_env: Option<String>,
    /// A file holding the API token (first line).
    pub token_file: Option<PathBuf>,
    /// Seconds between refreshes once tomorrow is known.
    pub refresh_secs: f64,
    /// Timeout of one HTTP request, seconds (connect + headers + body).
    pub timeout_secs: f64,
    /// Retries of one request after the first try.
    pub retries: u32,
    /// First wait before a retry, seconds; doubles per retry (with jitter).
    pub retry_initial_secs: f64,
    /// Longest wait between retries (and longest `Retry-After` honoured), seconds.
    pub retry_max_secs: f64,
    /// Days after today to fetch (day-ahead markets publish tomorrow around midday).
    pub days_ahead: u32,
    /// Adders per kWh on top of the market price, in order.
    pub adders: Vec<Adder>,
    /// VAT as a fraction, applied after the adders.
    pub vat: f64,
    /// Reject a fetched price beyond ± this per kWh (default by currency).
    pub max_abs_price_per_kwh: Option<f64>,
    /// tibber: which home of the account (0-based).
    pub home: usize,
    /// octopus: product code, e.g. `AGILE-24-10-01`.
    pub product: Option<String>,
    /// octopus: region letter A..P (the GSP group).
    pub region: Option<String>,
    /// octopus: use `value_inc_vat` (true) or `value_exc_vat`.
    pub include_vat: bool,
    /// json: the URL; `{start}` and `{end}` are replaced by RFC 3339 UTC times.
    pub url: Option<String>,
    /// json: where the slots are in the body.
    pub mapping: Option<roimon_price::parse::generic::Mapping>,
    /// csv: the price sheet.
    pub path: Option<PathBuf>,
    /// csv: unit of the price column (default `<currency>/kWh`).
    pub unit: Option<String>,
}
impl Default for Price {
    fn default() -> Self {
        Self {
            source: PriceSource::Static,
            currency: "EUR".into(),
            price_per_kwh: 0.25,
            fallback: FallbackPolicy::Price,
            timezone: "UTC".into(),
            schedule: Vec::new(),
            base_url: None,
            area: None,
            token_env: None,
            token_file: None,
            refresh_secs: 3600.0,
            timeout_secs: 10.0,
            retries: 3,
            retry_initial_secs: 1.0,
            retry_max_secs: 300.0,
            days_ahead: 1,
            adders: Vec::new(),
            vat: 0.0,
            max_abs_price_per_kwh: None,
            home: 0,
            product: None,
            region: None,
            include_vat: true,
            url: None,
            mapping: None,
            path: None,
            unit: None,
        }
    }
}

/// `[[price.adders]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adder {
    /// What it is (`grid_fee`, `electricity_tax`).
    pub name: String,
    /// Currency per kWh.
    pub per_kwh: f64,
}

/// `[[price.schedule]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRule {
    /// A name (`peak`).
    #[serde(default)]
    pub name: String,
    /// Weekdays (`mon` … `sun`); empty or absent: every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// First local hour covered, 0..=23.
    pub from_hour: u32,
    /// Local hour the rule ends at, 1..=24; ≤ from_hour wraps past midnight.
    pub to_hour: u32,
    /// The price.
    pub price_per_kwh: f64,
}

/// Checks of the keys that fetched sources need; `(key, message)` on error.
pub(super) fn check_fetched_price(p: &Price) -> Option<(String, String)> {
    let bad = |k: &str, m: String| Some((format!("price.{k}"), m));
    let need = |k: &str, v: bool| {
        (!v).then(|| {
            (
                format!("price.{k}"),
                format!("source = \"{}\" needs `{k}`", p.source.label()),
            )
        })
    };
    if p.retries > 10 {
        return bad("retries", format!("must be at most 10, got {}", p.retries));
    }
    if p.days_ahead > 7 {
        return bad(
            "days_ahead",
            format!("must be at most 7, got {}", p.days_ahead),
        );
    }
    if p.source.is_fetched()
        && p.max_abs_price_per_kwh.is_none()
        && roimon_price::schedule::default_bound(&p.currency).is_none()
    {
        return bad(
            "max_abs_price_per_kwh",
            format!(
                "there is no built-in plausibility bound for {}: set the largest believable price per kWh",
                p.currency
            ),
        );
    }
    if !(p.vat.is_finite() && (0.0..1.0).contains(&p.vat)) {
        return bad(
            "vat",
            format!(
                "must be a fraction 0 ≤ vat < 1 (0.19 = 19 %), got {}",
                p.vat
            ),
        );
    }
    for (i, a) in p.adders.iter().enumerate() {
        if !a.per_kwh.is_finite() || a.per_kwh.abs() > 100.0 {
            return bad(
                &format!("adders[{i}].per_kwh"),
                format!("must be a finite amount per kWh, got {}", a.per_kwh),
            );
        }
    }
    if let Some(b) = p.max_abs_price_per_kwh {
        if !(b.is_finite() && b > 0.0) {
            return bad("max_abs_price_per_kwh", format!("must be > 0, got {b}"));
        }
    }
    if let Some(e) = check_fetch_keys(
        "price",
        [
            p.refresh_secs,
            p.timeout_secs,
            p.retry_initial_secs,
            p.retry_max_secs,
        ],
        p.base_url.as_deref(),
        p.token_env.is_some() && p.token_file.is_some(),
    ) {
        return Some(e);
    }
    let has_token = p.token_env.is_some() || p.token_file.is_some();
    match p.source {
        PriceSource::Static | PriceSource::Schedule => None,
        PriceSource::Entsoe => {
            need("area", p.area.is_some()).or_else(|| need("token_env", has_token))
        }
        PriceSource::Nordpool | PriceSource::Energidataservice => need("area", p.area.is_some()),
        PriceSource::Tibber => need("token_env", has_token),
        PriceSource::Awattar => None,
        PriceSource::Octopus => {
            need("product", p.product.is_some()).or_else(|| match p.region.as_deref() {
                Some(r)
                    if r.len() == 1 && ('A'..='P').contains(&r.chars().next().unwrap_or('?')) =>
                {
                    None
                }
                Some(r) => bad(
                    "region",
                    format!("must be one letter A..P (GSP group), got {r:?}"),
                ),
                None => need("region", false),
            })
        }
        PriceSource::Json => need("url", p.url.is_some()).or_else(|| match &p.mapping {
            None => need("mapping", false),
            Some(m) => m.check().err().map(|e| ("price.mapping".to_string(), e)),
        }),
        PriceSource::Csv => need("path", p.path.is_some()).or_else(|| {
            p.unit
                .as_deref()
                .and_then(|u| u.parse::<roimon_price::Unit>().err())
                .map(|e| ("price.unit".to_string(), e.to_string()))
        }),
    }
}

pub(super) fn parse_weekday(s: &str) -> Option<Weekday> {
    match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Some(Weekday::Mon),
        "tue" | "tuesday" => Some(Weekday::Tue),
        "wed" | "wednesday" => Some(Weekday::Wed),
        "thu" | "thursday" => Some(Weekday::Thu),
        "fri" | "friday" => Some(Weekday::Fri),
        "sat" | "saturday" => Some(Weekday::Sat),
        "sun" | "sunday" => Some(Weekday::Sun),
        _ => None,
    }
}
