//! The live price feed: fetch the configured publisher over HTTP (timeouts,
//! retries with exponential backoff and jitter, `Retry-After`), normalise with
//! `roimon-price`, keep the schedule in the state dir so a restart without
//! network still prices, and hand each new schedule to the sampler. Secrets
//! come from `token_env`/`token_file` and never reach a log line.

use crate::config::{FallbackPolicy, Price, PriceSource};
use chrono::{DateTime, Datelike, Duration as TimeDelta, NaiveDate, TimeZone, Utc};
use roimon_core::{PricePerKwh, Tariff};
use roimon_price::parse::{
    awattar, csv, energidataservice, entsoe, generic, nordpool, octopus, tibber,
};
use roimon_price::{Adjustments, Parsed, PriceError, Schedule, Unit, normalise};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Largest response body accepted.
const MAX_BODY: usize = 32 << 20;
/// Longest wait for a connection to open (less if the request's timeout is).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `Retry-After` believed (a day); longer is taken as a day.
const MAX_HINT: Duration = Duration::from_secs(86_400);

/// A body read up to a limit.
enum Capped {
    Whole(Vec<u8>),
    Over,
}

/// Read a body chunk by chunk, giving up as soon as it passes `limit`
/// (chunked bodies have no Content-Length to check first).
async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Capped, reqwest::Error> {
    if resp.content_length().is_some_and(|l| l > limit as u64) {
        return Ok(Capped::Over);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Ok(Capped::Over);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(out))
}
/// Most pages followed for a paginated source (Octopus).
const MAX_PAGES: usize = 20;
/// How long fetched history is kept in the schedule.
const KEEP_HISTORY_DAYS: i64 = 7;
/// How far past the end of the window a fetch asks for a slot is believed: a
/// day, for publishers that answer in whole days of their own time zone.
/// With `days_ahead` at most 7, nothing beyond nine days from now is kept.
const AHEAD_SLACK_DAYS: i64 = 1;

/// An API token. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl Secret {
    /// Read the token named by `token_env` or `token_file` of config
    /// section `section` (named in error messages).
    pub fn load(
        section: &str,
        token_env: Option<&str>,
        token_file: Option<&Path>,
    ) -> Result<Option<Secret>, String> {
        if let Some(var) = token_env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
                Ok(_) => Err(format!(
                    "{section}.token_env: environment variable {var} is empty"
                )),
                Err(_) => Err(format!(
                    "{section}.token_env: environment variable {var} is not set"
                )),
            };
        }
        if let Some(path) = token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("{section}.token_file: cannot read {}: {e}", path.display())
            })?;
            let first = text.lines().next().unwrap_or("").trim().to_string();
            if first.is_empty() {
                return Err(format!("{section}.token_file: {} is empty", path.display()));
            }
            return Ok(Some(Secret(first)));
        }
        Ok(None)
    }

    /// The token text, for building a request. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

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
            PriceError::NoData(m) => FetchError::NoData(m),
            other => FetchError::Rejected(other.to_string()),
        }
    }
}

/// A small xorshift generator for retry jitter (no cryptographic use).
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter((t ^ u64::from(std::process::id()).rotate_left(32)) | 1)
    }
    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub retries: u32,
    /// First backoff.
    pub initial: Duration,
    /// Longest wait (also caps `Retry-After`).
    pub max: Duration,
}

impl RetryPolicy {
    /// Backoff before retry `attempt` (0-based): exponential, with "equal
    /// jitter" (half fixed, half random) so many nodes do not retry in step.
    fn backoff(&self, attempt: u32, jitter: &mut Jitter) -> Duration {
        let exp = self.initial.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
        let d = exp.min(self.max.as_secs_f64());
        Duration::from_secs_f64(d / 2.0 + d / 2.0 * jitter.next())
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

impl RetryPolicy {
    /// One backoff with fresh jitter.
    pub fn backoff_once(&self, attempt: u32) -> Duration {
        self.backoff(attempt, &mut Jitter::new())
    }
}

/// `d` spread by ±10 % so that thousands of nodes started together do not
/// refresh in step.
pub fn spread(d: Duration) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() * (0.9 + 0.2 * Jitter::new().next()))
}

/// `Retry-After`: delta seconds or an HTTP date.
fn retry_after(h: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// How a token travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Not by the client (or inside the URL, built by the caller).
    None,
    /// `Authorization: Bearer …`.
    Bearer,
    /// In a named header (`auth-token` for Electricity Maps).
    Header(&'static str),
}

/// An HTTP client with the fetch discipline every outside source shares:
/// timeouts, bounded bodies, retries with jittered backoff, `Retry-After`,
/// and redaction of the token from every error text.
#[derive(Debug)]
pub struct Http {
    client: reqwest::Client,
    token: Option<Secret>,
    auth: Auth,
    retry: RetryPolicy,
    timeout: Duration,
    jitter: Mutex<Jitter>,
}

/// The request of one try.
#[derive(Debug, Clone)]
pub enum Req {
    /// GET this URL.
    Get(String),
    /// POST this JSON body to this URL.
    PostJson(String, String),
}

impl Http {
    /// A client with this per-request timeout and retry policy.
    pub fn new(
        timeout: Duration,
        retry: RetryPolicy,
        token: Option<Secret>,
        auth: Auth,
    ) -> Result<Self, FetchError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(CONNECT_TIMEOUT))
            .user_agent(concat!("roimon/", env!("CARGO_PKG_VERSION")))
            // Follow redirects only on the same scheme, host and port: a
            // token in a custom header would otherwise travel to any host.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let first = attempt.previous().first();
                let same = first.is_some_and(|f| {
                    f.scheme() == attempt.url().scheme()
                        && f.host_str() == attempt.url().host_str()
                        && f.port_or_known_default() == attempt.url().port_or_known_default()
                });
                if attempt.previous().len() > 5 {
                    attempt.error("too many redirects")
                } else if same {
                    attempt.follow()
                } else {
                    attempt.error("redirect to another origin refused")
                }
            }))
            .build()
            .map_err(|e| FetchError::Local(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            token,
            auth,
            retry,
            timeout,
            jitter: Mutex::new(Jitter::new()),
        })
    }

    /// The token, if any.
    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }

    /// `s` with every occurrence of the token replaced: as is, in any letter
    /// case, with any of its bytes percent-encoded (either hex case, a space
    /// as `+`), and base64-encoded (standard or URL-safe alphabet, at any
    /// offset inside a longer base64 text, as in a `Basic` credential).
    pub fn redact(&self, s: &str) -> String {
        match &self.token {
            Some(Secret(t)) if !t.is_empty() => redact_token(s, t),
            _ => s.to_string(),
        }
    }

    /// Redact every text an error carries.
    pub fn redact_error(&self, e: FetchError) -> FetchError {
        match e {
            FetchError::NoData(m) => FetchError::NoData(self.redact(&m)),
            FetchError::Rejected(m) => FetchError::Rejected(self.redact(&m)),
            FetchError::Http(m, h) => FetchError::Http(self.redact(&m), h),
            FetchError::Local(m) => FetchError::Local(self.redact(&m)),
        }
    }

    fn sleep_for(&self, attempt: u32) -> Duration {
        let mut j = self.jitter.lock().unwrap_or_else(|e| e.into_inner());
        self.retry.backoff(attempt, &mut j)
    }

    /// One request with retries. 429 and 503 honour `Retry-After` (a wait
    /// longer than `retry_max` ends this fetch and is handed to the caller,
    /// so the next fetch does not come sooner); other 5xx and transport
    /// errors back off; other 4xx fail at once (retrying a bad token does not
    /// help). Bodies are read chunk by chunk and refused past [`MAX_BODY`].
    pub async fn fetch_text(&self, req: &Req) -> Result<String, FetchError> {
        let mut last = String::new();
        let mut hint: Option<Duration> = None;
        for attempt in 0..=self.retry.retries {
            let mut b = match req {
                Req::Get(u) => self.client.get(u),
                Req::PostJson(u, body) => self
                    .client
                    .post(u)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone()),
            };
            if let Some(Secret(t)) = &self.token {
                match self.auth {
                    Auth::None => {}
                    Auth::Bearer => b = b.bearer_auth(t),
                    Auth::Header(name) => b = b.header(name, t.as_str()),
                }
            }
            let wait = match b.send().await {
                Ok(resp) if resp.status().is_success() => match read_capped(resp, MAX_BODY).await {
                    Ok(Capped::Whole(body)) => {
                        return String::from_utf8(body).map_err(|_| {
                            FetchError::Rejected("response body is not UTF-8".into())
                        });
                    }
                    Ok(Capped::Over) => {
                        return Err(FetchError::Rejected(format!(
                            "response body larger than {MAX_BODY} bytes"
                        )));
                    }
                    Err(e) => {
                        last = self.redact(&format!(
                            "reading the body: {}",
                            transport_error(&e, self.timeout)
                        ));
                        self.sleep_for(attempt)
                    }
                },
                Ok(resp) => {
                    let status = resp.status();
                    let hinted = retry_after(resp.headers(), Utc::now()).map(|d| d.min(MAX_HINT));
                    let text = match read_capped(resp, 4096).await {
                        Ok(Capped::Whole(b)) => String::from_utf8_lossy(&b).into_owned(),
                        _ => String::new(),
                    };
                    // Redact before cutting, so no part of a token survives.
                    let text = self.redact(&text);
                    let snippet: String = text.trim().chars().take(200).collect();
                    last = format!("status {status}: {snippet}");
                    if status.as_u16() == 429 || status.as_u16() == 503 {
                        hint = hint.max(hinted);
                        match hinted {
                            Some(d) if d > self.retry.max => break,
                            Some(d) => d,
                            None => self.sleep_for(attempt),
                        }
                    } else if status.is_server_error() {
                        self.sleep_for(attempt)
                    } else {
                        return Err(FetchError::Http(last, None));
                    }
                }
                Err(e) => {
                    last = self.redact(&transport_error(&e, self.timeout));
                    self.sleep_for(attempt)
                }
            };
            if attempt < self.retry.retries {
                tracing::debug!(attempt, wait_s = wait.as_secs_f64(), error = %last, "request failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
        Err(FetchError::Http(
            format!("{last} (after {} tries)", self.retry.retries + 1),
            hint,
        ))
    }
}

/// Why a request got no HTTP answer, as found in an error's source chain.
#[derive(Debug, Clone, PartialEq)]
enum Cause {
    /// The host name did not resolve.
    Dns,
    /// Nothing listens on that port (or a firewall said no).
    Refused,
    /// The peer closed or reset the connection.
    Closed,
    /// No answer within the timeout.
    Timeout,
    /// The TLS handshake or session failed, with rustls' reason.
    Tls(String),
    /// Something else, with the innermost error's text.
    Other(String),
}

/// Walk `e` and its sources (an `io::Error` is looked into too: std's
/// `source` skips the error it wraps) for the first cause an operator can
/// act on.
fn cause_of(e: &(dyn std::error::Error + 'static)) -> Cause {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(err) = next {
        innermost = err.to_string();
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Cause::Tls(tls.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Cause::Tls(tls.to_string());
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Cause::Refused,
                std::io::ErrorKind::TimedOut => return Cause::Timeout,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => return Cause::Closed,
                _ => {}
            }
        }
        let text = innermost.to_ascii_lowercase();
        if text.starts_with("dns error")
            || text.contains("failed to lookup address")
            || text.contains("name or service not known")
        {
            return Cause::Dns;
        }
        if text.contains("timed out") {
            return Cause::Timeout;
        }
        if text.contains("connection closed") || text.contains("incomplete message") {
            return Cause::Closed;
        }
        next = err.source().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|i| i as &(dyn std::error::Error + 'static))
        });
    }
    Cause::Other(innermost)
}

/// A request error in words an operator can act on: the host and port (never
/// the URL: its query may carry a token) and the cause (DNS, refused, closed,
/// TLS, timeout).
fn transport_error(e: &reqwest::Error, timeout: Duration) -> String {
    let host = e
        .url()
        .and_then(|u| {
            let h = u.host_str()?;
            Some(match u.port_or_known_default() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "the server".into());
    if e.is_redirect() {
        let why = std::error::Error::source(e).map_or_else(|| "refused".into(), |s| s.to_string());
        return format!("{host}: redirect not followed ({why})");
    }
    // Not `e` itself: its text holds the whole URL.
    let cause = match std::error::Error::source(e) {
        _ if e.is_timeout() => Cause::Timeout,
        Some(inner) => cause_of(inner),
        None if e.is_connect() => Cause::Other("cannot connect".into()),
        None => Cause::Other("no answer".into()),
    };
    match cause {
        Cause::Dns => format!("cannot resolve {host} (DNS lookup failed)"),
        Cause::Refused => format!("cannot connect to {host}: connection refused"),
        Cause::Closed => format!("{host} closed the connection"),
        Cause::Timeout => {
            // Connecting has its own, shorter limit (see `Http::new`).
            let limit = if e.is_connect() {
                timeout.min(CONNECT_TIMEOUT)
            } else {
                timeout
            };
            format!(
                "{host} did not answer within {} s (timed out)",
                limit.as_secs_f64()
            )
        }
        Cause::Tls(m) => format!("TLS with {host} failed: {m}"),
        Cause::Other(m) => format!("request to {host} failed: {m}"),
    }
}

/// Fetches one configured price source.
#[derive(Debug)]
pub struct Fetcher {
    http: Http,
    cfg: Price,
}

impl Fetcher {
    /// A fetcher for `cfg` (a fetched source). Fails on an unreadable token.
    pub fn new(cfg: &Price, retry_initial: Duration) -> Result<Self, FetchError> {
        let token = Secret::load("price", cfg.token_env.as_deref(), cfg.token_file.as_deref())
            .map_err(FetchError::Local)?;
        let auth = match cfg.source {
            PriceSource::Tibber | PriceSource::Json => Auth::Bearer,
            _ => Auth::None,
        };
        let retry = RetryPolicy {
            retries: cfg.retries,
            initial: retry_initial,
            max: Duration::from_secs_f64(cfg.retry_max_secs),
        };
        Ok(Self {
            http: Http::new(
                Duration::from_secs_f64(cfg.timeout_secs),
                retry,
                token,
                auth,
            )?,
            cfg: cfg.clone(),
        })
    }

    fn base(&self, default: &str) -> String {
        base_url(self.cfg.base_url.as_deref(), default)
    }

    /// Fetch and normalise the prices for `[from, to)` (sources that publish
    /// fixed windows, like Tibber, return theirs). Every error text is
    /// scrubbed of the token; parsing runs off the async thread.
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
        res.map_err(|e| self.http.redact_error(e))
    }

    async fn get(&self, url: String) -> Result<String, FetchError> {
        self.http.fetch_text(&Req::Get(url)).await
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
                let token = url_encode(self.http.token().map(Secret::expose).unwrap_or(""));
                let f = |t: DateTime<Utc>| t.format("%Y%m%d%H%M").to_string();
                let url = format!(
                    "{}/api?securityToken={token}&documentType=A44&in_Domain={area}&out_Domain={area}&periodStart={}&periodEnd={}",
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
                let text = self.http.fetch_text(&Req::PostJson(url, body)).await?;
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
                            tracing::warn!(page, error = %self.http.redact(&e.to_string()), "Octopus: a later page failed; using the pages read");
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

/// `s` with every spelling of `token` that [`Http::redact`] lists replaced by
/// `[REDACTED]`.
fn redact_token(s: &str, token: &str) -> String {
    let bytes = s.as_bytes();
    let mut spans = spelled_spans(bytes, token.as_bytes());
    for core in base64_cores(token.as_bytes()) {
        spans.extend(spelled_spans(bytes, core.as_bytes()));
    }
    if spans.is_empty() {
        return s.to_string();
    }
    spans.sort_unstable();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for (a, b) in spans {
        if b <= at {
            continue;
        }
        if a >= at {
            out.extend_from_slice(&bytes[at..a]);
            out.extend_from_slice(b"[REDACTED]");
        }
        at = b;
    }
    out.extend_from_slice(&bytes[at..]);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The byte spans of `s` that spell `pat`: each byte of `pat` as itself in
/// any ASCII case, or percent-encoded (hex in either case), or a space as `+`.
fn spelled_spans(s: &[u8], pat: &[u8]) -> Vec<(usize, usize)> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut spans = Vec::new();
    if pat.is_empty() {
        return spans;
    }
    let mut i = 0;
    while i < s.len() {
        let mut j = i;
        let matched = pat.iter().all(|&want| {
            let Some(&c) = s.get(j) else { return false };
            if c.eq_ignore_ascii_case(&want) || (want == b' ' && c == b'+') {
                j += 1;
                return true;
            }
            if c == b'%' {
                if let (Some(h), Some(l)) = (
                    s.get(j + 1).copied().and_then(hex),
                    s.get(j + 2).copied().and_then(hex),
                ) {
                    if (h << 4 | l).eq_ignore_ascii_case(&want) {
                        j += 3;
                        return true;
                    }
                }
            }
            false
        });
        if matched {
            spans.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    spans
}

/// The parts of the base64 form of `token` that are the same wherever the
/// token falls in a longer encoded text (three byte offsets, two alphabets),
/// for tokens long enough that these parts cannot be mistaken for anything
/// else.
fn base64_cores(token: &[u8]) -> Vec<String> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const MIN_CORE: usize = 8;
    let mut cores: Vec<String> = Vec::new();
    for offset in 0..3usize {
        let mut data = vec![0u8; offset];
        data.extend_from_slice(token);
        let mut enc = String::with_capacity(data.len() * 4 / 3 + 4);
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (k, &b)| n | u32::from(b) << (16 - 8 * k));
            for k in 0..=chunk.len() {
                enc.push(STD[(n >> (18 - 6 * k) & 63) as usize] as char);
            }
        }
        // Characters that mix in the offset's bytes, or the bits after the
        // token, depend on what surrounds it: keep only the rest.
        let first = (8 * offset).div_ceil(6);
        let last = 8 * data.len() / 6;
        if last >= first + MIN_CORE {
            let core = enc[first..last].to_string();
            let url_safe = core.replace('+', "-").replace('/', "_");
            for c in [core, url_safe] {
                if !cores.contains(&c) {
                    cores.push(c);
                }
            }
        }
    }
    cores
}

/// Percent-encode everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

/// What the feed tells the sampler.
#[derive(Debug, Clone)]
pub enum Update {
    /// A new schedule to put in force, fetched at that time.
    Tariff(Tariff, DateTime<Utc>),
    /// The outcome of a fetch by the named feed (`price`, `carbon`), for
    /// health and error counting.
    Outcome(&'static str, bool),
    /// New grid carbon intensity to put in force.
    Carbon(roimon_core::Carbon),
    /// Fetched slots the named feed dropped for lying outside the time a
    /// schedule may cover.
    Dropped(&'static str, u64),
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
    tx: std::sync::mpsc::Sender<Update>,
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
        let _ = tx.send(Update::Tariff(tariff(&cfg, &k.schedule), k.fetched_at));
    }
    let mut failures: u32 = 0;
    let mut jitter = Jitter::new();
    let fetcher = loop {
        match Fetcher::new(&cfg, retry_initial) {
            Ok(f) => break std::sync::Arc::new(f),
            Err(e) => {
                failures = failures.saturating_add(1);
                let _ = tx.send(Update::Outcome("price", false));
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
            let _ = tx.send(Update::Dropped("price", dropped_total - before));
        }
        let wait = match fetched {
            Ok(new) => {
                failures = 0;
                let n = new.slots.len();
                let merged = absorb_kept(&store, kept.take(), new, label, &id, now).await;
                let until = merged.schedule.end();
                tracing::info!(source = label, slots = n, known_until = ?until, "price schedule fetched");
                let _ = tx.send(Update::Tariff(tariff(&cfg, &merged.schedule), now));
                let _ = tx.send(Update::Outcome("price", true));
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
                let _ = tx.send(Update::Outcome("price", false));
                let wait = policy
                    .backoff(failures - 1, &mut jitter)
                    .max(e.retry_after().unwrap_or_default());
                tracing::warn!(source = label, error = %e, failures, next_try_s = wait.as_secs(), "price fetch failed; the last good schedule (or the fallback) stays in force");
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
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            retries: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let mut j = Jitter(42);
        for attempt in 0..8 {
            let d = p.backoff(attempt, &mut j).as_secs_f64();
            let full = (2f64.powi(attempt as i32)).min(10.0);
            assert!(
                d >= full / 2.0 && d <= full,
                "attempt {attempt}: {d} vs {full}"
            );
        }
        let a: Vec<f64> = (0..5).map(|_| p.backoff(3, &mut j).as_secs_f64()).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "no jitter: {a:?}");
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = reqwest::header::HeaderMap::new();
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Sun, 29 Nov 2026 12:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

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

    #[test]
    fn tokens_are_redacted_raw_and_url_encoded() {
        let http = Http::new(
            Duration::from_secs(1),
            RetryPolicy {
                retries: 0,
                initial: Duration::from_secs(1),
                max: Duration::from_secs(1),
            },
            Some(Secret("a b/c".into())),
            Auth::None,
        )
        .unwrap();
        assert_eq!(
            http.redact("x a b/c y a%20b%2Fc z"),
            "x [REDACTED] y [REDACTED] z"
        );
    }

    #[test]
    fn secrets_do_not_show() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
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

    fn http_with(token: &str, timeout: Duration) -> Http {
        Http::new(
            timeout,
            RetryPolicy {
                retries: 0,
                initial: Duration::from_millis(10),
                max: Duration::from_millis(10),
            },
            Some(Secret(token.into())),
            Auth::None,
        )
        .unwrap()
    }

    #[test]
    fn tokens_are_redacted_in_any_case_encoding_and_base64() {
        // An ENTSO-E token is a UUID; servers echo it in other cases.
        let t = "3f2a9c1e-5b7d-4e8f-a0b1-c2d3e4f5a6b7";
        let http = http_with(t, Duration::from_secs(1));
        let upper = t.to_ascii_uppercase();
        let pct_upper: String = t.bytes().map(|b| format!("%{b:02X}")).collect();
        let pct_lower = pct_upper.to_ascii_lowercase();
        let mixed = t.replace('-', "%2d").to_ascii_uppercase();
        for variant in [t.to_string(), upper, pct_upper, pct_lower, mixed] {
            let got = http.redact(&format!("token={variant}&x=1"));
            assert_eq!(got, "token=[REDACTED]&x=1", "{variant}");
        }
        // Base64, alone and inside a `Basic` credential at every offset.
        for prefix in ["", "u:", "us:", "use:"] {
            let b64 = base64(format!("{prefix}{t}").as_bytes());
            let got = http.redact(&format!("Authorization: Basic {b64}"));
            assert!(!got.contains(&b64[8..b64.len() - 8]), "{prefix}: {got}");
            assert!(got.contains("[REDACTED]"), "{prefix}: {got}");
        }
        // A token with characters base64 and URLs treat specially.
        let odd = "k+y/?é~ ab=";
        let http = http_with(odd, Duration::from_secs(1));
        assert_eq!(http.redact("a k+y%2F%3F%C3%A9~+AB%3D b"), "a [REDACTED] b");
        assert_eq!(http.redact("a K%2By/?é%7E%20aB= b"), "a [REDACTED] b");
        // Other text is left alone.
        assert_eq!(
            http.redact("nothing here: 3f2a-9c1e"),
            "nothing here: 3f2a-9c1e"
        );
    }

    /// Standard base64 with padding, for the tests.
    fn base64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in data.chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (k, &b)| n | u32::from(b) << (16 - 8 * k));
            for k in 0..4 {
                out.push(if k <= c.len() {
                    A[(n >> (18 - 6 * k) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        out
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_host_and_the_cause_not_the_url() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let http = http_with("tok-123456", Duration::from_secs(2));
        let url = format!("http://127.0.0.1:{port}/api?securityToken=tok-123456&area=NL");
        let started = std::time::Instant::now();
        let e = http.fetch_text(&Req::Get(url)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let m = e.to_string();
        assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
        assert!(m.contains("connection refused"), "{m}");
        assert!(
            !m.contains("/api") && !m.contains("securityToken") && !m.contains("tok-"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout_naming_the_host() {
        // Connections complete in the kernel's backlog; nothing is ever read
        // or answered.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let http = http_with("tok-123456", Duration::from_millis(300));
        let url = format!("http://127.0.0.1:{port}/v1/marketdata?token=tok-123456");
        let started = std::time::Instant::now();
        let e = http.fetch_text(&Req::Get(url)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let m = e.to_string();
        assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
        assert!(m.contains("timed out"), "{m}");
        assert!(!m.contains("marketdata") && !m.contains("tok-"), "{m}");
        drop(l);
    }

    #[tokio::test]
    async fn a_plain_http_server_on_an_https_url_is_a_tls_failure() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok((mut c, _)) = l.accept() {
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let http = http_with("tok-123456", Duration::from_secs(2));
        let e = http
            .fetch_text(&Req::Get(format!(
                "https://127.0.0.1:{port}/x?t=tok-123456"
            )))
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains(&format!("TLS with 127.0.0.1:{port} failed")),
            "{m}"
        );
        assert!(!m.contains("tok-"), "{m}");
        server.join().unwrap();
    }

    #[test]
    fn causes_are_found_down_the_source_chain() {
        #[derive(Debug)]
        struct Wrap(
            &'static str,
            Option<Box<dyn std::error::Error + Send + Sync>>,
        );
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let io = |k| Some(Box::new(std::io::Error::from(k)) as _);
        let dns = Wrap(
            "client error (Connect)",
            Some(Box::new(Wrap(
                "dns error",
                Some(Box::new(std::io::Error::other(
                    "failed to lookup address information",
                ))),
            ))),
        );
        assert_eq!(cause_of(&dns), Cause::Dns);
        let refused = Wrap(
            "tcp connect error",
            io(std::io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(cause_of(&refused), Cause::Refused);
        let reset = Wrap("x", io(std::io::ErrorKind::ConnectionReset));
        assert_eq!(cause_of(&reset), Cause::Closed);
        // rustls inside an io::Error, whose `source` skips it.
        let tls = Wrap(
            "x",
            Some(Box::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::General("bad cert".into()),
            ))),
        );
        assert!(matches!(cause_of(&tls), Cause::Tls(m) if m.contains("bad cert")));
        assert_eq!(
            cause_of(&Wrap("outer", Some(Box::new(Wrap("inner", None))))),
            Cause::Other("inner".into())
        );
    }
}
