//! `[value]`: where the value a node produces comes from: inference servers
//! scraped on their own `/metrics` (`[[value.scrape]]`, priced per token and
//! per request) and static benefit indicator scores (`[[value.kpis]]`).

use crate::{Check, Ctx, Failure};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[value]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Value {
    /// Inference servers to scrape.
    pub scrape: Vec<ScrapeTarget>,
    /// Static benefit indicator scores (the model's Pᵢ).
    pub kpis: Vec<StaticKpi>,
    /// Most tokens (prompt + generated) a target may serve per second
    /// (default 1e7); a scrape's delta above it is refused. A target's own
    /// `max_tokens_per_second` overrides it.
    pub max_tokens_per_second: Option<f64>,
    /// Most successful requests a target may finish per second (default 1e6).
    pub max_requests_per_second: Option<f64>,
    /// Most models booked per target (default 64).
    pub max_models: Option<usize>,
}

/// Prices of what a server serves, in the price currency.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UnitPrices {
    /// Per million prompt tokens (cached ones included unless
    /// `cached_input_per_million_tokens` is set).
    pub input_per_million_tokens: f64,
    /// Per million prompt tokens served from a prefix cache, where the
    /// server reports them separately.
    pub cached_input_per_million_tokens: Option<f64>,
    /// Per million generated tokens.
    pub output_per_million_tokens: f64,
    /// Per successful request.
    pub per_request: f64,
}

/// `[[value.scrape]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeTarget {
    /// The server's own metrics URL.
    pub url: String,
    /// The `target`/`source` label (default: the URL's host:port).
    #[serde(default)]
    pub name: Option<String>,
    /// `auto` or a server kind.
    #[serde(default = "auto")]
    pub kind: String,
    /// Owner of its value …
    #[serde(default)]
    pub team: Option<String>,
    /// … and workload.
    #[serde(default)]
    pub workload: Option<String>,
    /// Or: the GPUs it runs on; their owners share its value equally.
    #[serde(default)]
    pub gpu_uuids: Vec<String>,
    /// Seconds between scrapes.
    #[serde(default = "fifteen")]
    pub interval_secs: f64,
    /// One scrape's timeout.
    #[serde(default = "five")]
    pub timeout_secs: f64,
    /// A bearer token for the endpoint, from the environment …
    #[serde(default)]
    pub token_env: Option<String>,
    /// … or a file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Default prices.
    #[serde(flatten)]
    pub prices: UnitPrices,
    /// Prices per model name, replacing the defaults for that model.
    #[serde(default)]
    pub models: BTreeMap<String, UnitPrices>,
    /// This target's `value.max_tokens_per_second`.
    #[serde(default)]
    pub max_tokens_per_second: Option<f64>,
    /// This target's `value.max_requests_per_second`.
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// This target's `value.max_models`.
    #[serde(default)]
    pub max_models: Option<usize>,
}

fn auto() -> String {
    "auto".into()
}
fn fifteen() -> f64 {
    15.0
}
fn five() -> f64 {
    5.0
}

/// `[[value.kpis]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKpi {
    /// Indicator name (`precision`, `coverage`, `satisfaction`, `growth`, …).
    pub name: String,
    /// Score.
    pub value: f64,
    /// Team.
    pub team: String,
    /// Workload.
    #[serde(default = "unallocated")]
    pub workload: String,
}

/// Server kinds `kind` may name.
pub const KINDS: [&str; 8] = [
    "auto", "vllm", "tgi", "triton", "sglang", "llamacpp", "nim", "trtllm",
];

impl ScrapeTarget {
    /// The label naming this target.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let rest = self
                .url
                .split_once("://")
                .map_or(self.url.as_str(), |(_, r)| r);
            rest.split('/').next().unwrap_or(rest).to_string()
        })
    }
}

impl Check for UnitPrices {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        for (k, v) in [
            (
                "input_per_million_tokens",
                Some(self.input_per_million_tokens),
            ),
            (
                "cached_input_per_million_tokens",
                self.cached_input_per_million_tokens,
            ),
            (
                "output_per_million_tokens",
                Some(self.output_per_million_tokens),
            ),
            ("per_request", Some(self.per_request)),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=1e9).contains(&v))
            {
                return ctx.fail(k, format!("must be between 0 and 1e9, got {v}"));
            }
        }
        Ok(())
    }
}

impl Value {
    /// What `t`'s scrapes may book: its own limits, else `[value]`'s, else
    /// the defaults.
    pub fn bounds(&self, t: &ScrapeTarget) -> roimon_value::Bounds {
        let d = roimon_value::Bounds::default();
        roimon_value::Bounds {
            max_tokens_per_second: t
                .max_tokens_per_second
                .or(self.max_tokens_per_second)
                .unwrap_or(d.max_tokens_per_second),
            max_requests_per_second: t
                .max_requests_per_second
                .or(self.max_requests_per_second)
                .unwrap_or(d.max_requests_per_second),
            max_models: t.max_models.or(self.max_models).unwrap_or(d.max_models),
            ..d
        }
    }
}

/// The bounds `[value]` and each target may set, at `ctx`.
fn check_limits(
    ctx: &Ctx,
    tokens: Option<f64>,
    requests: Option<f64>,
    models: Option<usize>,
) -> Result<(), Failure> {
    for (k, v) in [
        ("max_tokens_per_second", tokens),
        ("max_requests_per_second", requests),
    ] {
        if let Some(v) = v
            && !(v.is_finite() && (1.0..=1e12).contains(&v))
        {
            return ctx.fail(k, format!("must be between 1 and 1e12 per second, got {v}"));
        }
    }
    if let Some(m) = models
        && !(1..=roimon_value::MAX_MODELS).contains(&m)
    {
        return ctx.fail(
            "max_models",
            format!(
                "must be between 1 and {}, got {m}",
                roimon_value::MAX_MODELS
            ),
        );
    }
    Ok(())
}

impl Check for ScrapeTarget {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        let t = self;
        if !(t.url.starts_with("http://") || t.url.starts_with("https://")) {
            return ctx.fail(
                "url",
                format!("must be an http:// or https:// URL, got {:?}", t.url),
            );
        }
        if !KINDS.contains(&t.kind.as_str()) {
            return ctx.fail(
                "kind",
                format!("must be one of {}, got {:?}", KINDS.join(", "), t.kind),
            );
        }
        if !(t.interval_secs.is_finite() && (1.0..=3600.0).contains(&t.interval_secs)) {
            return ctx.fail(
                "interval_secs",
                format!("must be between 1 and 3600, got {}", t.interval_secs),
            );
        }
        if !(t.timeout_secs.is_finite() && (0.1..=60.0).contains(&t.timeout_secs)) {
            return ctx.fail(
                "timeout_secs",
                format!("must be between 0.1 and 60, got {}", t.timeout_secs),
            );
        }
        match (&t.team, t.gpu_uuids.is_empty()) {
            (Some(_), false) => {
                return ctx.fail(
                    "gpu_uuids",
                    "give either team/workload or gpu_uuids, not both",
                );
            }
            (None, true) => {
                return ctx.fail(
                    "team",
                    "the owner of its value: team (and workload), or gpu_uuids",
                );
            }
            _ => {}
        }
        if t.workload.is_some() && t.team.is_none() {
            return ctx.fail("workload", "needs team");
        }
        if t.token_env.is_some() && t.token_file.is_some() {
            return ctx.fail("token_file", "give token_env or token_file, not both");
        }
        check_limits(
            ctx,
            t.max_tokens_per_second,
            t.max_requests_per_second,
            t.max_models,
        )?;
        t.prices.check(ctx)?;
        let models = ctx.at("models");
        for (m, p) in &t.models {
            p.check(&models.at(m))?;
        }
        Ok(())
    }
}

impl Check for StaticKpi {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.name.trim().is_empty() {
            return ctx.fail("name", "must not be empty");
        }
        if !(self.value.is_finite() && (0.0..=1.0).contains(&self.value)) {
            return ctx.fail(
                "value",
                format!("a score must be between 0 and 1, got {}", self.value),
            );
        }
        Ok(())
    }
}

impl Check for Value {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        check_limits(
            ctx,
            self.max_tokens_per_second,
            self.max_requests_per_second,
            self.max_models,
        )?;
        let scrape = ctx.at("scrape");
        let mut names = BTreeMap::new();
        for (i, t) in self.scrape.iter().enumerate() {
            let at = scrape.item(i);
            t.check(&at)?;
            if let Some(j) = names.insert(t.label(), i) {
                return at.fail(
                    "name",
                    format!(
                        "{:?} is already the name of {}",
                        t.label(),
                        scrape.item(j).path()
                    ),
                );
            }
        }
        let kpis = ctx.at("kpis");
        for (i, kpi) in self.kpis.iter().enumerate() {
            kpi.check(&kpis.item(i))?;
        }
        Ok(())
    }
}

fn unallocated() -> String {
    roimon_core::engine::UNALLOCATED.into()
}
