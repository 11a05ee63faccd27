//! Value sources as pure functions: an inference server's `/metrics` body
//! in, tokens and requests per model out ([`prom`], [`server`]); cumulative
//! counters into what was served between scrapes, across server and roimon
//! restarts ([`state`]); its money value ([`pricing`]); and pushed value and
//! KPI points in InfluxDB line protocol ([`push`]). No HTTP and no clock
//! here: the daemon fetches and passes `now`, this crate reads.

pub mod pricing;
pub mod prom;
pub mod push;
pub mod server;
pub mod state;

pub use pricing::{Prices, PricesError};
pub use prom::{Exposition, Family, Limits, MetricType, PromError, Sample};
pub use push::{
    Applied, Change, Dedup, KPI_MEASUREMENT, KnownOwners, NO_WORKLOAD, PointData, PointKey,
    Precision, PushError, PushRules, PushedPoint, VALUE_MEASUREMENT, apply, check_name,
    parse_batch,
};
pub use server::{
    ExtractError, MAX_LABEL_BYTES, ModelCounters, Scrape, ServerKind, detect, extract,
};
pub use state::{
    Bounds, DEFAULT_MAX_MODELS, DEFAULT_MAX_REQUESTS_PER_SECOND, DEFAULT_MAX_TOKENS_PER_SECOND,
    Delta, MAX_MODELS, Rejection, TargetState, Update,
};

/// Why a scrape body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Parse(#[from] PromError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

/// Parse a `/metrics` body and read it as `kind`'s counters (see
/// [`server::extract`] for `default_model`).
pub fn read_scrape(
    body: &[u8],
    kind: ServerKind,
    default_model: &str,
    limits: Limits,
) -> Result<Scrape, ScrapeError> {
    let e = prom::parse(body, limits)?;
    Ok(server::extract(&e, kind, default_model)?)
}
