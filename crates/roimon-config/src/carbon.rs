//! `[carbon]`: the grid carbon-intensity source and carbon price, and their
//! checks.

use crate::check::check_fetch_keys;
use crate::{Check, Ctx, Failure};
use serde::Deserialize;
use std::path::PathBuf;

/// `[carbon] source`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CarbonSource {
    /// No emissions accounting.
    #[default]
    None,
    /// One configured intensity (`grams_per_kwh`).
    Static,
    /// Electricity Maps v3 (`auth-token`), by `zone`.
    Electricitymaps,
    /// UK Carbon Intensity API: national, or regional by `region_id` or `postcode`.
    Uk,
}
impl CarbonSource {
    /// The `source` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Static => "static",
            Self::Electricitymaps => "electricitymaps",
            Self::Uk => "uk",
        }
    }
}

/// `[carbon]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CarbonCfg {
    /// none | static | electricitymaps | uk
    pub source: CarbonSource,
    /// static: the intensity; fetched: the fallback before any data (g CO2e/kWh).
    pub grams_per_kwh: Option<f64>,
    /// Carbon price per tonne CO2e in `price.currency`; > 0 adds the `carbon` cost component.
    pub price_per_tonne: f64,
    /// The API address (each source has its public default).
    pub base_url: Option<String>,
    /// electricitymaps: the zone (`DE`, `FR`, `US-CAL-CISO`, …).
    pub zone: Option<String>,
    /// uk: regional intensity by region id (1..17).
    pub region_id: Option<u32>,
    /// uk: regional intensity by outward postcode (`BH1`).
    pub postcode: Option<String>,
    /// Environment variable holding the API token.
    pub token_env: Option<String>,
    /// File holding the API token.
    pub token_file: Option<PathBuf>,
    /// Seconds between refreshes.
    pub refresh_secs: f64,
    /// Timeout of one request, seconds.
    pub timeout_secs: f64,
    /// Retries of one request.
    pub retries: u32,
    /// First retry wait, seconds (doubles, with jitter).
    pub retry_initial_secs: f64,
    /// Longest retry wait, seconds.
    pub retry_max_secs: f64,
}
impl Default for CarbonCfg {
    fn default() -> Self {
        Self {
            source: CarbonSource::None,
            grams_per_kwh: None,
            price_per_tonne: 0.0,
            base_url: None,
            zone: None,
            region_id: None,
            postcode: None,
            token_env: None,
            token_file: None,
            refresh_secs: 900.0,
            timeout_secs: 10.0,
            retries: 3,
            retry_initial_secs: 1.0,
            retry_max_secs: 300.0,
        }
    }
}

impl Check for CarbonCfg {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.source == CarbonSource::None {
            return Ok(());
        }
        match self.grams_per_kwh {
            None => {
                return ctx.fail(
                    "grams_per_kwh",
                    "needed: the intensity (static) or the fallback before any data arrives",
                );
            }
            Some(g) if !(g.is_finite() && (0.0..=3000.0).contains(&g)) => {
                return ctx.fail("grams_per_kwh", format!("must be 0..=3000 g/kWh, got {g}"));
            }
            _ => {}
        }
        if self.retries > 10 {
            return ctx.fail(
                "retries",
                format!("must be at most 10, got {}", self.retries),
            );
        }
        if !(self.price_per_tonne.is_finite() && self.price_per_tonne >= 0.0) {
            return ctx.fail(
                "price_per_tonne",
                format!("must be ≥ 0, got {}", self.price_per_tonne),
            );
        }
        check_fetch_keys(
            ctx,
            [
                self.refresh_secs,
                self.timeout_secs,
                self.retry_initial_secs,
                self.retry_max_secs,
            ],
            self.base_url.as_deref(),
            self.token_env.is_some() && self.token_file.is_some(),
        )?;
        match self.source {
            CarbonSource::Electricitymaps if self.zone.is_none() => {
                ctx.fail("zone", "source = \"electricitymaps\" needs `zone`")
            }
            CarbonSource::Electricitymaps
                if self.token_env.is_none() && self.token_file.is_none() =>
            {
                ctx.fail(
                    "token_env",
                    "source = \"electricitymaps\" needs `token_env` or `token_file`",
                )
            }
            CarbonSource::Uk if self.region_id.is_some() && self.postcode.is_some() => {
                ctx.fail("postcode", "give region_id or postcode, not both")
            }
            _ => Ok(()),
        }
    }
}
