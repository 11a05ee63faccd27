//! `[price]`: the electricity price source (static, time-of-use, or fetched
//! from a publisher), its adders and VAT, and the checks fetched sources need.

use crate::check::check_fetch_keys;
use crate::{Check, Ctx, Failure};
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

impl Check for Price {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        let p = self;
        if p.currency.len() != 3 || !p.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return ctx.fail(
                "currency",
                format!(
                    "must be an ISO 4217 code like \"EUR\", got {:?}",
                    p.currency
                ),
            );
        }
        if !(p.price_per_kwh.is_finite() && p.price_per_kwh >= 0.0 && p.price_per_kwh < 100.0) {
            return ctx.fail(
                "price_per_kwh",
                format!("must be between 0 and 100 per kWh, got {}", p.price_per_kwh),
            );
        }
        if p.timezone.parse::<chrono_tz::Tz>().is_err() {
            return ctx.fail(
                "timezone",
                format!("unknown IANA time zone {:?}", p.timezone),
            );
        }
        p.check_fetched(ctx)?;
        if p.source == PriceSource::Schedule && p.schedule.is_empty() {
            return ctx.fail(
                "schedule",
                "source = \"schedule\" needs at least one [[price.schedule]] rule",
            );
        }
        let schedule = ctx.at("schedule");
        for (i, r) in p.schedule.iter().enumerate() {
            r.check(&schedule.item(i))?;
        }
        Ok(())
    }
}

impl Check for PriceRule {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.from_hour > 23 {
            return ctx.fail(
                "from_hour",
                format!("must be 0..=23, got {}", self.from_hour),
            );
        }
        if self.to_hour > 24 {
            return ctx.fail("to_hour", format!("must be 0..=24, got {}", self.to_hour));
        }
        if !(self.price_per_kwh.is_finite()
            && self.price_per_kwh >= 0.0
            && self.price_per_kwh < 100.0)
        {
            return ctx.fail(
                "price_per_kwh",
                format!(
                    "must be between 0 and 100 per kWh, got {}",
                    self.price_per_kwh
                ),
            );
        }
        for d in &self.days {
            if parse_weekday(d).is_none() {
                return ctx.fail(
                    "days",
                    format!("unknown weekday {d:?} (use mon, tue, wed, thu, fri, sat, sun)"),
                );
            }
        }
        Ok(())
    }
}

impl Price {
    /// Checks of the keys that fetched sources need.
    fn check_fetched(&self, ctx: &Ctx) -> Result<(), Failure> {
        let p = self;
        let need = |k: &str, v: bool| {
            if v {
                Ok(())
            } else {
                ctx.fail(k, format!("source = \"{}\" needs `{k}`", p.source.label()))
            }
        };
        if p.retries > 10 {
            return ctx.fail("retries", format!("must be at most 10, got {}", p.retries));
        }
        if p.days_ahead > 7 {
            return ctx.fail(
                "days_ahead",
                format!("must be at most 7, got {}", p.days_ahead),
            );
        }
        if p.source.is_fetched()
            && p.max_abs_price_per_kwh.is_none()
            && roimon_price::schedule::default_bound(&p.currency).is_none()
        {
            return ctx.fail(
                "max_abs_price_per_kwh",
                format!(
                    "there is no built-in plausibility bound for {}: set the largest believable price per kWh",
                    p.currency
                ),
            );
        }
        if !(p.vat.is_finite() && (0.0..1.0).contains(&p.vat)) {
            return ctx.fail(
                "vat",
                format!(
                    "must be a fraction 0 ≤ vat < 1 (0.19 = 19 %), got {}",
                    p.vat
                ),
            );
        }
        let adders = ctx.at("adders");
        for (i, a) in p.adders.iter().enumerate() {
            if !a.per_kwh.is_finite() || a.per_kwh.abs() > 100.0 {
                return adders.item(i).fail(
                    "per_kwh",
                    format!("must be a finite amount per kWh, got {}", a.per_kwh),
                );
            }
        }
        if let Some(b) = p.max_abs_price_per_kwh {
            if !(b.is_finite() && b > 0.0) {
                return ctx.fail("max_abs_price_per_kwh", format!("must be > 0, got {b}"));
            }
        }
        check_fetch_keys(
            ctx,
            [
                p.refresh_secs,
                p.timeout_secs,
                p.retry_initial_secs,
                p.retry_max_secs,
            ],
            p.base_url.as_deref(),
            p.token_env.is_some() && p.token_file.is_some(),
        )?;
        let has_token = p.token_env.is_some() || p.token_file.is_some();
        match p.source {
            PriceSource::Static | PriceSource::Schedule => Ok(()),
            PriceSource::Entsoe => {
                need("area", p.area.is_some())?;
                need("token_env", has_token)
            }
            PriceSource::Nordpool | PriceSource::Energidataservice => {
                need("area", p.area.is_some())
            }
            PriceSource::Tibber => need("token_env", has_token),
            PriceSource::Awattar => Ok(()),
            PriceSource::Octopus => {
                need("product", p.product.is_some())?;
                match p.region.as_deref() {
                    Some(r)
                        if r.len() == 1
                            && ('A'..='P').contains(&r.chars().next().unwrap_or('?')) =>
                    {
                        Ok(())
                    }
                    Some(r) => ctx.fail(
                        "region",
                        format!("must be one letter A..P (GSP group), got {r:?}"),
                    ),
                    None => need("region", false),
                }
            }
            PriceSource::Json => {
                need("url", p.url.is_some())?;
                match &p.mapping {
                    None => need("mapping", false),
                    Some(m) => m.check().or_else(|e| ctx.fail("mapping", e)),
                }
            }
            PriceSource::Csv => {
                need("path", p.path.is_some())?;
                match p.unit.as_deref().map(str::parse::<roimon_price::Unit>) {
                    Some(Err(e)) => ctx.fail("unit", e.to_string()),
                    _ => Ok(()),
                }
            }
        }
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
