//! The live price feed: fetch the configured publisher over HTTP (through
//! `roimon-http`: timeouts, retries with exponential backoff and jitter,
//! `Retry-After`), normalise with `roimon-price`, keep the schedule in the
//! state dir so a restart without network still prices, and hand each new
//! schedule to the sampler. Secrets come from `token_env`/`token_file` and
//! never reach a log line, nor do the query values of a configured URL
//! (an `apikey=` in a `json` URL), also when a server echoes them.

use crate::config::{FallbackPolicy, Price, PriceSource};
use crate::inbox::Event;
use chrono::{DateTime, Datelike, Duration as TimeDelta, NaiveDate, TimeZone, Utc};
use roimon_core::{PricePerKwh, Tariff};
use roimon_http::{Auth, Client, ClientConfig, Jitter, Request, RetryPolicy, Secret, spread};
use roimon_price::parse::{
    awattar, csv, energidataservice, entsoe, generic, nordpool, octopus, tibber,
};
use roimon_price::{Adjustments, Parsed, PriceError, Schedule, Unit, normalise};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most pages followed for a paginated source (Octopus).
const MAX_PAGES: usize = 20;
/// How long fetched history is kept in the schedule.
const KEEP_HISTORY_DAYS: i64 = 7;
/// How far past the end of the window a fetch asks for a slot is believed: a
/// day, for publishers that answer in whole days of their own time zone.
/// With `days_ahead` at most 7, nothing beyond nine days from now is kept.
const AHEAD_SLACK_DAYS: i64 = 1;

/// Why a fetch failed. Its text is safe to log: secrets are redacted.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchError {
    /// The publisher has no data for the window.
    NoData(String),
    /// The body was fetched but rejected.
    Rejected(String),
    /// HTTP or transport failure after all retries, with the server's last
    /// `Retry-After` (the next fetch must not come sooner).
    Http(String, Option<Duration>),
    /// A local problem (token, file).
    Local(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NoData(m) => write!(f, "no data: {m}"),
            FetchError::Rejected(m) => write!(f, "rejected: {m}"),
            FetchError::Http(m, _) => write!(f, "HTTP: {m}"),
            FetchError::Local(m) => write!(f, "{m}"),
        }
    }
}

impl From<PriceError> for FetchError {
    fn from(e: PriceError) -> Self {
        match e {
            // A publisher's words (a quoted field, an error message it
            // sent) are cut and escaped where they are taken in.
            PriceError::NoData(m) => FetchError::NoData(roimon_http::outside(&m)),
            other => FetchError::Rejected(roimon_http::outside(&other.to_string())),
        }
    }
}

impl FetchError {
    /// The wait the server asked for, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Http(_, hint) => *hint,
            _ => None,
        }
    }
}

impl From<roimon_http::Error> for FetchError {
    fn from(e: roimon_http::Error) -> Self {
        match e {
            roimon_http::Error::TooLarge { .. } => FetchError::Rejected(e.to_string()),
            roimon_http::Error::Local(m) => FetchError::Local(m),
            other => FetchError::Http(other.to_string(), other.retry_after()),
        }
    }
}

/// A client for one feed: this per-request timeout, retry policy,
/// credential and texts scrubbed from its errors (see [`secrets`]); the
/// defaults of `roimon-http` for the rest.
pub fn http_client(
    timeout: Duration,
    retry: RetryPolicy,
    auth: Auth,
    scrub: Vec<Secret>,
) -> Result<Client, FetchError> {
    Client::new(ClientConfig {
        timeout,
        retry,
        auth,
        scrub,
        ..ClientConfig::default()
    })
    .map_err(|e| FetchError::Local(e.to_string()))
}

/// Send `req` with `http`; the body as text.
pub async fn get_text(http: &Client, req: &Request) -> Result<String, FetchError> {
    let resp = http.send(req).await?;
    // The body's own buffer becomes the text: no second copy of a large body.
    String::from_utf8(Vec::from(resp.body))
        .map_err(|_| FetchError::Rejected("response body is not UTF-8".into()))
}

/// What a feed's errors are scrubbed of: its token, and what each
/// configured URL carries (every query value, a password; see
/// [`roimon_http::url_secrets`]).
pub fn secrets<'a>(token: Option<&Secret>, urls: impl IntoIterator<Item = &'a str>) -> Vec<Secret> {
    token
        .cloned()
        .into_iter()
        .chain(urls.into_iter().flat_map(roimon_http::url_secrets))
        .collect()
}

/// Redact every text an error carries of `secrets` (see [`roimon_http::redact`]).
pub fn redact_error<'a>(
    secrets: impl IntoIterator<Item = &'a Secret> + Clone,
    e: FetchError,
) -> FetchError {
    let r = |m: &str| roimon_http::redact(m, secrets.clone());
    match e {
        FetchError::NoData(m) => FetchError::NoData(r(&m)),
        FetchError::Rejected(m) => FetchError::Rejected(r(&m)),
        FetchError::Http(m, h) => FetchError::Http(r(&m), h),
        FetchError::Local(m) => FetchError::Local(r(&m)),
    }
}

/// Fetches one configured price source.
#[derive(Debug)]
pub struct Fetcher {
    http: Client,
    /// The token (also when it travels inside a URL the feed builds) and
    /// the query values of the configured URLs: every error text is
    /// scrubbed of them.
    scrub: Vec<Secret>,
    cfg: Price,
}

impl Fetcher {
    /// A fetcher for `cfg` (a fetched source). Fails on an unreadable token.
    pub fn new(cfg: &Price, retry_initial: Duration) -> Result<Self, FetchError> {
        let token = Secret::load("price", cfg.token_env.as_deref(), cfg.token_file.as_deref())
            .map_err(FetchError::Local)?;
        let auth = match (cfg.source, &token) {
            (PriceSource::Tibber | PriceSource::Json, Some(t)) => Auth::Bearer(t.clone()),
            // ENTSO-E reads it from the query, first parameter.
            (PriceSource::Entsoe, Some(t)) => Auth::Query {
                name: "securityToken".into(),
                value: t.clone(),
            },
            _ => Auth::None,
        };
        let retry = RetryPolicy {
            retries: cfg.retries,
            initial: retry_initial,
            max: Duration::from_secs_f64(cfg.retry_max_secs),
        };
        let scrub = secrets(
            token.as_ref(),
            [cfg.url.as_deref(), cfg.base_url.as_deref()]
                .into_iter()
                .flatten(),
        );
        Ok(Self {
            http: http_client(
                Duration::from_secs_f64(cfg.timeout_secs),
                retry,
                auth,
                scrub.clone(),
            )?,
            scrub,
            cfg: cfg.clone(),
        })
    }

    fn base(&self, default: &str) -> String {
        base_url(self.cfg.base_url.as_deref(), default)
    }

    /// Fetch and normalise the prices for `[from, to)` (sources that publish
    /// fixed windows, like Tibber, return theirs). Every error text is
    /// scrubbed of the token and the configured URLs' query values; parsing
    /// runs off the async thread.
    pub async fn fetch(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Schedule, FetchError> {
        let res = async {
            let parsed = self.fetch_parsed(from, to).await?;
            let (cur, adj, bound) = (
                self.cfg.currency.clone(),
                adjustments(&self.cfg),
                self.cfg.max_abs_price_per_kwh,
            );
            blocking(move || normalise(parsed, &cur, &adj, bound).map_err(FetchError::from)).await
        }
        .await;
        res.map_err(|e| redact_error(&self.scrub, e))
    }

    async fn get(&self, url: String) -> Result<String, FetchError> {
        get_text(&self.http, &Request::get(url)).await
    }

    async fn fetch_parsed(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Parsed, FetchError> {
        let area = self.cfg.area.clone().unwrap_or_default();
        let cur = self.cfg.currency.clone();
        match self.cfg.source {
            PriceSource::Static | PriceSource::Schedule => Err(FetchError::Local(
                "static and schedule prices are not fetched".into(),
            )),
            PriceSource::Entsoe => {
                let f = |t: DateTime<Utc>| t.format("%Y%m%d%H%M").to_string();
                let url = format!(
                    "{}/api?documentType=A44&in_Domain={area}&out_Domain={area}&periodStart={}&periodEnd={}",
                    self.base("https://web-api.tp.entsoe.eu"),
                    f(from),
                    f(to)
                );
                let body = self.get(url).await?;
                parse_off_thread(move || entsoe::parse(&body)).await
            }
            PriceSource::Nordpool => {
                // One request per delivery day (CET), each may be unpublished.
                let mut all: Option<Parsed> = None;
                let mut no_data = Vec::new();
                for day in cet_days(from, to) {
                    let url = format!(
                        "{}/api/DayAheadPriceIndices?date={day}&market=DayAhead&indexNames={area}&currency={cur}&resolutionInMinutes=15",
                        self.base("https://dataportal-api.nordpoolgroup.com")
                    );
                    let body = self.get(url).await?;
                    let a = area.clone();
                    match parse_off_thread(move || nordpool::parse(&body, &a)).await {
                        Ok(p) => extend(&mut all, p),
                        Err(FetchError::NoData(m)) => no_data.push(format!("{day}: {m}")),
                        Err(e) => return Err(e),
                    }
                }
                all.ok_or_else(|| FetchError::NoData(no_data.join("; ")))
            }
            PriceSource::Awattar => {
                let url = format!(
                    "{}/v1/marketdata?start={}&end={}",
                    self.base("https://api.awattar.de"),
                    from.timestamp_millis(),
                    to.timestamp_millis()
                );
                let body = self.get(url).await?;
                parse_off_thread(move || awattar::parse(&body)).await
            }
            PriceSource::Tibber => {
                let q = "{ viewer { homes { currentSubscription { priceInfo { today { total energy tax startsAt currency } tomorrow { total energy tax startsAt currency } } } } } }";
                let body = serde_json::json!({ "query": q }).to_string();
                let url = format!("{}/v1-beta/gql", self.base("https://api.tibber.com"));
                // A read-only query: safe to send twice.
                let req = Request::post(url, roimon_http::Body::json(body)).idempotent(true);
                let text = get_text(&self.http, &req).await?;
                let home = self.cfg.home;
                parse_off_thread(move || tibber::parse(&text, home)).await
            }
            PriceSource::Octopus => {
                let product = self.cfg.product.clone().unwrap_or_default();
                let region = self.cfg.region.clone().unwrap_or_default();
                let f = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
                let base = self.base("https://api.octopus.energy");
                let mut url = format!(
                    "{base}/v1/products/{product}/electricity-tariffs/E-1R-{product}-{region}/standard-unit-rates/?period_from={}&period_to={}",
                    f(from),
                    f(to)
                );
                let mut all: Option<Parsed> = None;
                for page in 0..MAX_PAGES {
                    let body = match self.get(url.clone()).await {
                        Ok(b) => b,
                        // Pages are newest first: keep what was read.
                        Err(e) if all.is_some() => {
                            tracing::warn!(page, error = %roimon_http::log_safe(&roimon_http::redact(&e.to_string(), &self.scrub)), "Octopus: a later page failed; using the pages read");
                            break;
                        }
                        Err(e) => return Err(e),
                    };
                    let vat = self.cfg.include_vat;
                    let (p, next) =
                        blocking(move || octopus::parse_page(&body, vat).map_err(FetchError::from))
                            .await?;
                    extend(&mut all, p);
                    match next {
                        // Follow `next` through the configured base URL (a
                        // proxy in an air-gapped site), keeping its path and query.
                        Some(n) => url = rebase(&n, &base),
                        None => break,
                    }
                }
                all.ok_or_else(|| FetchError::NoData("no unit rates".into()))
            }
            PriceSource::Energidataservice => {
                // The API reads start and end in Danish local time.
                let f = |t: DateTime<Utc>| {
                    t.with_timezone(&chrono_tz::Europe::Copenhagen)
                        .format("%Y-%m-%dT%H:%M")
                        .to_string()
                };
                let url = format!(
                    "{}/dataset/DayAheadPrices?start={}&end={}&limit=10000&filter=%7B%22PriceArea%22:%5B%22{area}%22%5D%7D",
                    self.base("https://api.energidataservice.dk"),
                    f(from),
                    f(to)
                );
                let body = self.get(url).await?;
                parse_off_thread(move || energidataservice::parse(&body, &area, &cur)).await
            }
            PriceSource::Json => {
                let url = self
                    .cfg
                    .url
                    .clone()
                    .unwrap_or_default()
                    .replace(
                        "{start}",
                        &from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    )
                    .replace(
                        "{end}",
                        &to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    );
                let Some(m) = self.cfg.mapping.clone() else {
                    return Err(FetchError::Local("price.mapping is missing".into()));
                };
                let body = self.get(url).await?;
                parse_off_thread(move || generic::parse(&body, &m)).await
            }
            PriceSource::Csv => {
                let path = self.cfg.path.clone().unwrap_or_default();
                let unit: Unit = self
                    .cfg
                    .unit
                    .clone()
                    .unwrap_or_else(|| format!("{cur}/kWh"))
                    .parse()
                    .map_err(|e: PriceError| FetchError::Local(e.to_string()))?;
                blocking(move || {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| FetchError::Local(format!("{}: {e}", path.display())))?;
                    csv::parse(&text, unit, Some(&cur))
                        .map_err(|e| FetchError::Rejected(format!("{}: {e}", path.display())))
                })
                .await
            }
        }
    }
}

/// The adders and VAT of a price config.
pub fn adjustments(cfg: &Price) -> Adjustments {
    Adjustments {
        adders: cfg
            .adders
            .iter()
            .map(|a| (a.name.clone(), a.per_kwh))
            .collect(),
        vat: cfg.vat,
    }
}

/// What identifies a fetched price series: a kept schedule from another
/// identity (another area, product, home, URL…) is not loaded.
pub fn identity(cfg: &Price) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{:?}|{:?}|{}|{}",
        cfg.source.label(),
        cfg.currency,
        cfg.area.as_deref().unwrap_or(""),
        cfg.product.as_deref().unwrap_or(""),
        cfg.region.as_deref().unwrap_or(""),
        cfg.home,
        cfg.include_vat,
        cfg.url,
        cfg.mapping,
        cfg.path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        cfg.unit.as_deref().unwrap_or(""),
    )
}

/// Run a fetch as its own task, so that even a panic inside is one failed
/// fetch and not a dead feed.
pub async fn isolated<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, FetchError>> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::spawn(fut).await.unwrap_or_else(|e| {
        Err(FetchError::Rejected(format!(
            "internal error in the fetch: {e}"
        )))
    })
}

/// Merge a fresh schedule into the kept one and write it, off the async
/// thread. Should that task die, the fresh schedule alone stands.
pub async fn absorb_kept(
    store: &Store,
    kept: Option<Stored>,
    new: Schedule,
    source: &'static str,
    identity: &str,
    now: DateTime<Utc>,
) -> Stored {
    let fresh = new.clone();
    let (st, id) = (store.clone(), identity.to_string());
    blocking(move || Ok(st.absorb(kept, new, source, &id, now)))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "merging the fetched schedule failed; using the fresh one alone");
            Stored {
                source: source.to_string(),
                identity: identity.to_string(),
                fetched_at: now,
                schedule: fresh,
            }
        })
}

/// Run blocking work (file I/O, fsync, parsing a large body) off the async
/// thread that also serves `/metrics`. A panic inside becomes an error.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FetchError> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(FetchError::Rejected(format!(
            "internal error while parsing: {e}"
        )))
    })
}

async fn parse_off_thread(
    f: impl FnOnce() -> Result<Parsed, PriceError> + Send + 'static,
) -> Result<Parsed, FetchError> {
    blocking(move || f().map_err(FetchError::from)).await
}

/// `next` (an absolute URL from the publisher) moved onto `base`: its path
/// and query kept.
fn rebase(next: &str, base: &str) -> String {
    let rest = next
        .split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
        .unwrap_or(next);
    format!("{base}{rest}")
}

/// The configured base URL or the publisher's default, without a trailing `/`.
pub fn base_url(configured: Option<&str>, default: &str) -> String {
    configured
        .unwrap_or(default)
        .trim_end_matches('/')
        .to_string()
}

fn extend(all: &mut Option<Parsed>, p: Parsed) {
    match all {
        Some(a) => a.slots.extend(p.slots),
        None => *all = Some(p),
    }
}

/// The delivery days (in CET/CEST, as Nord Pool counts them) that `[from, to)` touches.
fn cet_days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let tz = chrono_tz::Europe::Oslo;
    let first = from.with_timezone(&tz).date_naive();
    // A window ending at midnight UTC ends on the day before in CET/CEST.
    let last = (to - TimeDelta::hours(3)).with_timezone(&tz).date_naive();
    let mut out = Vec::new();
    let mut d = first;
    while d <= last && out.len() < 31 {
        out.push(d);
        d = d.succ_opt().unwrap_or(d);
    }
    out
}

/// The window a refresh asks for: from the start of yesterday (UTC) to the
/// end of the last day ahead, so a restart after downtime refills history.
pub fn window(now: DateTime<Utc>, days_ahead: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = Utc
        .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .single()
        .unwrap_or(now);
    (
        today - TimeDelta::days(1),
        today + TimeDelta::days(i64::from(days_ahead) + 1),
    )
}

/// The span of time a schedule may hold at `now`, when fetches ask for
/// windows ending at `window_end`: the kept history before, a day past the
/// window after. A slot outside it cannot price anything soon (1970), or is
/// no market's price yet (9999) and would claim the schedule is known for
/// ever; it is dropped.
pub fn kept_range(now: DateTime<Utc>, window_end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        now - TimeDelta::days(KEEP_HISTORY_DAYS),
        window_end.max(now) + TimeDelta::days(AHEAD_SLACK_DAYS),
    )
}

/// Bound a fetched schedule to [`kept_range`]: slots wholly outside it are
/// dropped, slots straddling an edge are clipped. A fetch left without a slot
/// in its window `[from, to)` is a failure, not a success: it would neither
/// price the window nor say when the schedule ends. Returns the outcome and
/// how many slots were dropped (counted whether the fetch succeeds or not).
pub fn usable(
    mut s: Schedule,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (Result<Schedule, FetchError>, usize) {
    let total = s.slots.len();
    let (lo, hi) = kept_range(now, to);
    let dropped = s.retain_within(lo, hi);
    if s.slots.iter().any(|x| x.end > from && x.start < to) {
        return (Ok(s), dropped);
    }
    let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let why = format!(
        "none of the {total} slots fetched is in the window {} .. {} ({dropped} outside {} .. {} dropped)",
        f(from),
        f(to),
        f(lo),
        f(hi)
    );
    let e = if dropped == total {
        FetchError::Rejected(why)
    } else {
        FetchError::NoData(why)
    };
    (Err(e), dropped)
}

/// Bound a fetch's outcome with [`usable`] for its window, logging the slots
/// dropped and adding them to `dropped_total`; `what` names the feed.
pub fn bound_fetched(
    fetched: Result<Schedule, FetchError>,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    label: &str,
    what: &str,
    dropped_total: &mut u64,
) -> Result<Schedule, FetchError> {
    let (res, dropped) = usable(fetched?, now, window.0, window.1);
    if dropped > 0 {
        *dropped_total = dropped_total.saturating_add(dropped as u64);
        tracing::warn!(
            source = label,
            dropped,
            dropped_total = *dropped_total,
            "fetched {what} slots outside the time a schedule may cover were dropped"
        );
    }
    res
}

/// The schedule as kept in the state dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The `source` label it came from.
    pub source: String,
    /// What identifies the series (area, product, URL…); see [`identity`].
    #[serde(default)]
    pub identity: String,
    /// When its newest part was fetched.
    pub fetched_at: DateTime<Utc>,
    /// The schedule.
    pub schedule: Schedule,
}

/// `prices.json` in the state dir: written atomically (tmp, fsync, rename).
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("prices.json"),
        }
    }

    /// Load a kept schedule for this source and currency, with the current
    /// adders and VAT applied again to the recorded market prices, and pruned
    /// to `range` (see [`kept_range`]): slots a schedule kept by an older
    /// version, or edited by hand, holds outside it are dropped and logged. A
    /// schedule out of order, or with nothing left, is not loaded.
    pub fn load(
        &self,
        source: &str,
        identity: &str,
        currency: &str,
        adj: &Adjustments,
        range: (DateTime<Utc>, DateTime<Utc>),
    ) -> Option<Stored> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let mut s: Stored = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "kept price schedule is unreadable; ignoring it");
                return None;
            }
        };
        if s.source != source
            || s.identity != identity
            || !s.schedule.currency.eq_ignore_ascii_case(currency)
        {
            tracing::info!(file = %self.path.display(), kept = %s.source, "kept price schedule is for another source or currency; ignoring it");
            return None;
        }
        if !s.schedule.is_ordered() {
            tracing::warn!(file = %self.path.display(), "kept schedule has overlapping or unsorted slots; ignoring it");
            return None;
        }
        let dropped = s.schedule.retain_within(range.0, range.1);
        if dropped > 0 {
            tracing::warn!(file = %self.path.display(), source, dropped, from = %range.0, until = %range.1, "kept schedule held slots outside the time it may cover; dropped them");
        }
        if s.schedule.slots.is_empty() {
            tracing::info!(file = %self.path.display(), "kept schedule has no slot left to price with; ignoring it");
            return None;
        }
        for slot in &mut s.schedule.slots {
            slot.price_per_kwh = adj.apply(slot.market_per_kwh);
        }
        s.schedule.adjustments = adj.clone();
        Some(s)
    }

    /// The store of another schedule kind (carbon) under `file` in `dir`.
    pub fn named(dir: &Path, file: &str) -> Self {
        Self {
            path: dir.join(file),
        }
    }

    /// Merge a fresh schedule into the kept one (history older than a week
    /// is dropped) and keep the result; a failed write is logged, not fatal.
    pub fn absorb(
        &self,
        kept: Option<Stored>,
        new: Schedule,
        source: &str,
        identity: &str,
        now: DateTime<Utc>,
    ) -> Stored {
        let merged = match kept {
            Some(mut k) => {
                k.schedule
                    .merge(new, now - TimeDelta::days(KEEP_HISTORY_DAYS));
                k.fetched_at = now;
                k
            }
            None => Stored {
                source: source.to_string(),
                identity: identity.to_string(),
                fetched_at: now,
                schedule: new,
            },
        };
        if let Err(e) = self.save(&merged) {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot keep the fetched schedule in the state dir");
        }
        merged
    }

    /// Write atomically.
    pub fn save(&self, s: &Stored) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec(s).map_err(std::io::Error::other)?;
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// The tariff for a schedule under the configured fallback policy.
pub fn tariff(cfg: &Price, s: &Schedule) -> Tariff {
    Tariff::Slots {
        slots: s.core_slots(),
        fallback: PricePerKwh(cfg.price_per_kwh),
        last_known: cfg.fallback == FallbackPolicy::LastKnown,
    }
}

/// Run the feed until the runtime stops: load the kept schedule, then fetch
/// and refresh forever. Failures (a missing token included) are logged
/// (redacted), reported, and retried with a growing, jittered delay that
/// honours `Retry-After`; the last good schedule stays in force. Each fetch
/// runs as its own task, so even a panic is one failed fetch, not a dead feed.
pub async fn run(
    cfg: Price,
    state_dir: PathBuf,
    retry_initial: Duration,
    tx: std::sync::mpsc::Sender<Event>,
) {
    let store = Store::new(&state_dir);
    let label = cfg.source.label();
    let id = identity(&cfg);
    let refresh = Duration::from_secs_f64(cfg.refresh_secs);
    let policy = RetryPolicy {
        retries: 0,
        initial: retry_initial.max(Duration::from_millis(10)).min(refresh),
        max: refresh,
    };
    let mut kept = {
        let (store, id, adj, cur) = (
            store.clone(),
            id.clone(),
            adjustments(&cfg),
            cfg.currency.clone(),
        );
        let now = Utc::now();
        let range = kept_range(now, window(now, cfg.days_ahead).1);
        blocking(move || Ok(store.load(label, &id, &cur, &adj, range)))
            .await
            .unwrap_or(None)
    };
    if let Some(k) = &kept {
        tracing::info!(source = label, slots = k.schedule.slots.len(), fetched_at = %k.fetched_at, "pricing from the kept schedule until the next fetch");
        let _ = tx.send(Event::Tariff(tariff(&cfg, &k.schedule), k.fetched_at));
    }
    let mut failures: u32 = 0;
    let mut jitter = Jitter::new();
    let fetcher = loop {
        match Fetcher::new(&cfg, retry_initial) {
            Ok(f) => break std::sync::Arc::new(f),
            Err(e) => {
                failures = failures.saturating_add(1);
                let _ = tx.send(Event::Outcome("price", false));
                let wait = policy.backoff(failures - 1, &mut jitter);
                tracing::error!(source = label, error = %e, next_try_s = wait.as_secs(), "price feed cannot start; pricing at the kept schedule or the fallback");
                tokio::time::sleep(wait).await;
            }
        }
    };
    failures = 0;
    let mut dropped_total: u64 = 0;
    loop {
        let now = Utc::now();
        let (from, to) = window(now, cfg.days_ahead);
        let f = fetcher.clone();
        let fetched = isolated(async move { f.fetch(from, to).await }).await;
        let before = dropped_total;
        let fetched = bound_fetched(fetched, (from, to), now, label, "price", &mut dropped_total);
        if dropped_total > before {
            let _ = tx.send(Event::Dropped("price", dropped_total - before));
        }
        let wait = match fetched {
            Ok(new) => {
                failures = 0;
                let n = new.slots.len();
                let merged = absorb_kept(&store, kept.take(), new, label, &id, now).await;
                let until = merged.schedule.end();
                tracing::info!(source = label, slots = n, known_until = ?until, "price schedule fetched");
                let _ = tx.send(Event::Tariff(tariff(&cfg, &merged.schedule), now));
                let _ = tx.send(Event::Outcome("price", true));
                kept = Some(merged);
                // Tomorrow not yet published (the schedule ends within 12 h):
                // look again every 15 minutes until it is.
                spread(if until.is_some_and(|u| u >= now + TimeDelta::hours(12)) {
                    refresh
                } else {
                    refresh.min(Duration::from_secs(900))
                })
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let _ = tx.send(Event::Outcome("price", false));
                let wait = policy
                    .backoff(failures - 1, &mut jitter)
                    .max(e.retry_after().unwrap_or_default());
                tracing::warn!(source = label, error = %roimon_http::log_safe(&e.to_string()), failures, next_try_s = wait.as_secs(), "price fetch failed; the last good schedule (or the fallback) stays in force");
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_covers_yesterday_to_the_last_day_ahead() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 15, 30, 0).unwrap();
        let (a, b) = window(now, 1);
        assert_eq!(a, Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap());
        assert_eq!(b, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn nord_pool_days_are_cet_days() {
        let from = Utc.with_ymd_and_hms(2025, 10, 25, 22, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2025, 10, 26, 23, 0, 0).unwrap();
        assert_eq!(
            cet_days(from, to),
            vec![NaiveDate::from_ymd_opt(2025, 10, 26).unwrap()]
        );
    }

    #[test]
    fn a_kept_schedule_of_another_series_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let sched = Schedule {
            currency: "EUR".into(),
            slots: vec![roimon_price::PriceSlot {
                start: now,
                end: now + TimeDelta::hours(1),
                market_per_kwh: 0.1,
                price_per_kwh: 0.1,
            }],
            adjustments: Adjustments::default(),
        };
        let kept = store.absorb(None, sched, "entsoe", "entsoe|EUR|NL", now);
        assert_eq!(kept.schedule.slots.len(), 1);
        let range = kept_range(now, window(now, 1).1);
        let adj = Adjustments {
            adders: vec![("tax".into(), 0.1)],
            vat: 0.2,
        };
        // Same series: loaded, with today's adders and VAT re-applied.
        let same = store
            .load("entsoe", "entsoe|EUR|NL", "EUR", &adj, range)
            .unwrap();
        assert!((same.schedule.slots[0].price_per_kwh - 0.24).abs() < 1e-12);
        // Another area, source or currency: not loaded.
        assert!(
            store
                .load("entsoe", "entsoe|EUR|BE", "EUR", &adj, range)
                .is_none()
        );
        assert!(
            store
                .load("nordpool", "entsoe|EUR|NL", "EUR", &adj, range)
                .is_none()
        );
        assert!(
            store
                .load("entsoe", "entsoe|EUR|NL", "SEK", &adj, range)
                .is_none()
        );
    }

    #[test]
    fn next_pages_are_fetched_through_the_configured_base() {
        assert_eq!(
            rebase(
                "https://api.octopus.energy/v1/products/P/x/?page=2&period_from=a",
                "http://proxy:8080"
            ),
            "http://proxy:8080/v1/products/P/x/?page=2&period_from=a"
        );
    }

    fn slot(start: DateTime<Utc>, hours: i64, market: f64) -> roimon_price::PriceSlot {
        roimon_price::PriceSlot {
            start,
            end: start + TimeDelta::hours(hours),
            market_per_kwh: market,
            price_per_kwh: market,
        }
    }

    fn eur(slots: Vec<roimon_price::PriceSlot>) -> Schedule {
        Schedule {
            currency: "EUR".into(),
            slots,
            adjustments: Adjustments::default(),
        }
    }

    #[test]
    fn a_fetch_of_only_far_future_or_ancient_slots_is_a_failure() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let (from, to) = window(now, 1);
        let y9999 = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        let y1970 = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        for far in [y9999, y1970] {
            let s = eur((0..24)
                .map(|h| slot(far + TimeDelta::hours(h), 1, 0.1))
                .collect());
            let (res, dropped) = usable(s, now, from, to);
            assert_eq!(dropped, 24);
            let e = res.unwrap_err();
            assert!(matches!(e, FetchError::Rejected(_)), "{e}");
            assert!(e.to_string().contains("24 outside"), "{e}");
        }
        // Slots inside the kept history but none in the window: no data.
        let old = eur(vec![slot(now - TimeDelta::days(5), 1, 0.1)]);
        assert!(matches!(
            usable(old, now, from, to),
            (Err(FetchError::NoData(_)), 0)
        ));
    }

    #[test]
    fn known_until_comes_from_usable_slots_only() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let (from, to) = window(now, 1);
        let y9999 = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        let y1970 = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        let s = eur(vec![
            slot(y1970, 1, 0.1),
            slot(from, 24, 0.2),
            slot(from + TimeDelta::days(1), 24, 0.3),
            // Straddles the end of what may be kept: clipped, not dropped.
            slot(to, 72, 0.4),
            slot(y9999, 1, 0.5),
        ]);
        let (s, dropped) = usable(s, now, from, to);
        assert_eq!(dropped, 2);
        let s = s.unwrap();
        assert_eq!(s.slots.len(), 3);
        assert_eq!(s.end(), Some(to + TimeDelta::days(AHEAD_SLACK_DAYS)));
        // And a merge into a kept schedule ends there too.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let kept = store.absorb(None, s, "awattar", "a", now);
        assert_eq!(
            kept.schedule.end(),
            Some(to + TimeDelta::days(AHEAD_SLACK_DAYS))
        );
    }

    #[test]
    fn a_kept_schedule_is_pruned_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let range = kept_range(now, window(now, 1).1);
        let y9999 = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        let y1970 = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        // As an older version kept it: a year-9999 slot pinning the end.
        let stored = Stored {
            source: "awattar".into(),
            identity: "a".into(),
            fetched_at: now,
            schedule: eur(vec![
                slot(y1970, 1, 0.1),
                slot(now, 1, 0.2),
                slot(y9999, 1, 0.3),
            ]),
        };
        store.save(&stored).unwrap();
        let adj = Adjustments::default();
        let got = store.load("awattar", "a", "EUR", &adj, range).unwrap();
        assert_eq!(got.schedule.slots, vec![slot(now, 1, 0.2)]);
        // Nothing usable left: not loaded at all.
        let only_far = Stored {
            schedule: eur(vec![slot(y9999, 1, 0.3)]),
            ..stored.clone()
        };
        store.save(&only_far).unwrap();
        assert!(store.load("awattar", "a", "EUR", &adj, range).is_none());
        // Overlapping slots (a hand-edited file): not trusted.
        let overlapping = Stored {
            schedule: eur(vec![
                slot(now, 2, 0.1),
                slot(now + TimeDelta::hours(1), 1, 0.2),
            ]),
            ..stored
        };
        store.save(&overlapping).unwrap();
        assert!(store.load("awattar", "a", "EUR", &adj, range).is_none());
    }
}
