//! What every outside source's fetch shares: the error a fetch ends in (its
//! text safe to log), the HTTP client of a feed and its scrubbed secrets, the
//! body as text, and blocking work run off the async thread.

use roimon_http::{Auth, Client, ClientConfig, Request, RetryPolicy, Secret};
use roimon_price::PriceError;
use std::fmt;
use std::time::Duration;

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

/// The configured base URL or the publisher's default, without a trailing `/`.
pub fn base_url(configured: Option<&str>, default: &str) -> String {
    configured
        .unwrap_or(default)
        .trim_end_matches('/')
        .to_string()
}
