//! The client itself: built once from a [`ClientConfig`] (timeouts, body
//! limit, retries, TLS, auth), it sends [`Request`]s with the discipline
//! every outbound call shares and answers with a [`Response`] or a typed
//! [`Error`] whose text is safe to log.

use crate::error::Error;
use crate::retry::{Decision, DefaultRetryLogic, Jitter, RetryLogic, RetryPolicy, retry_after};
use crate::secret::{Secret, base64, redact, url_encode};
use bytes::Bytes;
use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

pub use reqwest::Method;

/// Longest wait for a connection to open by default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body accepted by default.
pub const BODY_LIMIT: usize = 32 << 20;
/// Redirects followed at most (same origin only).
const MAX_REDIRECTS: usize = 5;
/// How much of an error body is read, and how many characters kept.
const EXCERPT_READ: usize = 4096;

/// How a credential travels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credential.
    #[default]
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer(Secret),
    /// `Authorization: Token <secret>` (InfluxDB).
    Token(Secret),
    /// `Authorization: Basic base64(<user>:<password>)`.
    Basic {
        /// The user name (not secret).
        user: String,
        /// The password.
        password: Secret,
    },
    /// `<name>: <secret>` (e.g. `auth-token` for Electricity Maps).
    Header {
        /// Header name.
        name: String,
        /// Its value.
        value: Secret,
    },
    /// `?<name>=<secret>`, percent-encoded and put first in the query
    /// (e.g. `securityToken` for ENTSO-E).
    Query {
        /// Query parameter name.
        name: String,
        /// Its value.
        value: Secret,
    },
}

impl Auth {
    /// The secret this mode sends, if any.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Auth::None => None,
            Auth::Bearer(s) | Auth::Token(s) => Some(s),
            Auth::Basic { password, .. } => Some(password),
            Auth::Header { value, .. } | Auth::Query { value, .. } => Some(value),
        }
    }
}

/// TLS options. By default the system's roots are trusted and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// A PEM file of CA certificates trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate (chain) to present; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, SEC1 or RSA) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate. An explicit opt-in for lab gear with
    /// self-signed certificates: it gives up knowing who answers.
    pub insecure_skip_verify: bool,
}

/// How a [`Client`] behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Limit for a whole try, connecting and reading the body included.
    pub timeout: Duration,
    /// Limit for opening a connection (the smaller of this and `timeout`).
    pub connect_timeout: Duration,
    /// Largest response body accepted (a request may set a smaller or larger one).
    pub body_limit: usize,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// TLS options.
    pub tls: TlsConfig,
    /// The credential sent with every request.
    pub auth: Auth,
    /// More texts scrubbed, like the credential, from every error: what a
    /// configured URL carries (see [`crate::url_secrets`]), which a server
    /// may echo back.
    pub scrub: Vec<Secret>,
    /// `User-Agent`.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: CONNECT_TIMEOUT,
            body_limit: BODY_LIMIT,
            retry: RetryPolicy {
                retries: 3,
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            tls: TlsConfig::default(),
            auth: Auth::None,
            scrub: Vec::new(),
            user_agent: concat!("roimon/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The bytes, before compression.
    pub bytes: Bytes,
    /// `Content-Type`.
    pub content_type: String,
    /// Send gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
}

impl Body {
    /// A body of this type.
    pub fn new(content_type: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        Self {
            bytes: bytes.into(),
            content_type: content_type.into(),
            gzip: false,
        }
    }

    /// A JSON body.
    pub fn json(text: impl Into<String>) -> Self {
        Self::new("application/json", text.into())
    }

    /// This body, gzip-compressed on the wire.
    pub fn gzip(mut self) -> Self {
        self.gzip = true;
        self
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The URL (it may hold secrets: it is never shown in an error).
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Body>,
    /// Whether sending it twice does no harm: only then is it retried after
    /// it may have reached the server. GET, HEAD, PUT and DELETE are by
    /// default, POST is not (mark a read-only query with [`Self::idempotent`]).
    pub idempotent: bool,
    /// This request's body limit, instead of the client's.
    pub body_limit: Option<usize>,
}

impl Request {
    /// A request with this method and URL.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            idempotent: method.is_idempotent(),
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            body_limit: None,
        }
    }

    /// GET `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    /// POST `body` to `url` (not idempotent unless marked).
    pub fn post(url: impl Into<String>, body: Body) -> Self {
        Self::new(Method::POST, url).body(body)
    }

    /// With this body.
    pub fn body(mut self, body: Body) -> Self {
        self.body = Some(body);
        self
    }

    /// With this header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Marked as safe (or not) to send twice.
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }

    /// With its own body limit.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body (within the limit).
    pub body: Bytes,
}

impl Response {
    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map_err(|_| Error::Local("response body is not UTF-8".into()))
    }
}

/// The one outbound HTTP client.
#[derive(Debug)]
pub struct Client {
    client: reqwest::Client,
    cfg: ClientConfig,
    jitter: Mutex<Jitter>,
}

impl Client {
    /// A client for `cfg`. Fails on TLS files that cannot be read or parsed.
    pub fn new(cfg: ClientConfig) -> Result<Self, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(cfg.connect_timeout))
            .user_agent(cfg.user_agent.clone())
            // Follow redirects only on the same scheme, host and port: a
            // credential in a header would otherwise travel to any host.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let first = attempt.previous().first();
                let same = first.is_some_and(|f| {
                    f.scheme() == attempt.url().scheme()
                        && f.host_str() == attempt.url().host_str()
                        && f.port_or_known_default() == attempt.url().port_or_known_default()
                });
                if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if same {
                    attempt.follow()
                } else {
                    attempt.error("redirect to another origin refused")
                }
            }));
        b = tls(b, &cfg.tls)?;
        let client = b
            .build()
            .map_err(|e| Error::Local(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            cfg,
            jitter: Mutex::new(Jitter::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// `s` with the client's secret and the texts of `scrub` redacted (see
    /// [`crate::redact`]).
    pub fn redact(&self, s: &str) -> String {
        redact(s, self.cfg.auth.secret().into_iter().chain(&self.cfg.scrub))
    }

    /// Send with the default retry logic (429 and 5xx are retried).
    pub async fn send(&self, req: &Request) -> Result<Response, Error> {
        self.send_with(req, &DefaultRetryLogic).await
    }

    /// Send `req`, retrying what `logic` calls retriable: statuses it says
    /// to retry and transport failures, only for idempotent requests (and
    /// for any request that surely never reached the server). A server's
    /// `Retry-After` is waited for; one longer than the policy's `max` ends
    /// the call and is handed back in the error, so the caller does not
    /// come sooner. Every text in the error is redacted.
    pub async fn send_with(
        &self,
        req: &Request,
        logic: &dyn RetryLogic,
    ) -> Result<Response, Error> {
        let retry = self.cfg.retry;
        let mut hint: Option<Duration> = None;
        let mut tries = 0;
        let last = loop {
            tries += 1;
            let e = match self.try_once(req).await {
                Ok(r) => return Ok(r),
                Err(e) => e.map_text(&|s| self.redact(s)),
            };
            let wait = match &e {
                Error::Status {
                    code, retry_after, ..
                } => {
                    if !req.idempotent || logic.status(*code) == Decision::DontRetry {
                        return Err(e);
                    }
                    hint = hint.max(*retry_after);
                    match *retry_after {
                        Some(d) if d > retry.max => break e,
                        Some(d) => d,
                        None => self.backoff(tries - 1),
                    }
                }
                e if e.transient() && (req.idempotent || e.never_sent()) => self.backoff(tries - 1),
                _ => return Err(e),
            };
            if tries > retry.retries {
                break e;
            }
            tracing::debug!(attempt = tries - 1, wait_s = wait.as_secs_f64(), error = %e, "request failed; retrying");
            tokio::time::sleep(wait).await;
        };
        Err(Error::GaveUp {
            tries,
            last: Box::new(last),
            retry_after: hint,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let mut j = self.jitter.lock().unwrap_or_else(|e| e.into_inner());
        self.cfg.retry.backoff(attempt, &mut j)
    }

    async fn try_once(&self, req: &Request) -> Result<Response, Error> {
        let mut url = reqwest::Url::parse(&req.url)
            .map_err(|e| Error::Local(format!("not a valid URL: {e}")))?;
        if let Auth::Query { name, value } = &self.cfg.auth {
            let first = format!("{}={}", url_encode(name), url_encode(value.expose()));
            let q = match url.query() {
                Some(rest) if !rest.is_empty() => format!("{first}&{rest}"),
                _ => first,
            };
            url.set_query(Some(&q));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Error::Local(format!("invalid header name {k:?}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| Error::Local(format!("invalid value for header {k}")))?;
            headers.append(name, value);
        }
        if let Some((name, value)) = self.auth_header()? {
            headers.insert(name, value);
        }
        let mut b = self.client.request(req.method.clone(), url);
        if let Some(body) = &req.body {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_str(&body.content_type)
                    .map_err(|_| Error::Local("invalid content type".into()))?,
            );
            if body.gzip {
                headers.insert(
                    reqwest::header::CONTENT_ENCODING,
                    HeaderValue::from_static("gzip"),
                );
                b = b.body(gzip(&body.bytes)?);
            } else {
                b = b.body(body.bytes.clone());
            }
        }
        let (timeout, connect) = (self.cfg.timeout, self.cfg.connect_timeout);
        let resp = b
            .headers(headers)
            .send()
            .await
            .map_err(|e| Error::from_reqwest(&e, timeout, connect))?;
        let status = resp.status().as_u16();
        let resp_headers = resp.headers().clone();
        if resp.status().is_success() {
            let limit = req.body_limit.unwrap_or(self.cfg.body_limit);
            return match read_capped(resp, limit).await {
                Ok(Some(body)) => Ok(Response {
                    status,
                    headers: resp_headers,
                    body,
                }),
                Ok(None) => Err(Error::TooLarge { limit }),
                Err(e) => Err(Error::Body(Box::new(Error::from_reqwest(
                    &e, timeout, connect,
                )))),
            };
        }
        let hinted = retry_after(&resp_headers, Utc::now());
        let text = match read_capped(resp, EXCERPT_READ).await {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        // Redact before cutting, so no part of a secret survives.
        let text = self.redact(&text);
        Err(Error::Status {
            code: status,
            // Escaped and cut: the server's words are logged as data.
            excerpt: crate::outside(text.trim()),
            retry_after: hinted,
        })
    }

    fn auth_header(&self) -> Result<Option<(HeaderName, HeaderValue)>, Error> {
        let (name, value) = match &self.cfg.auth {
            Auth::None | Auth::Query { .. } => return Ok(None),
            Auth::Bearer(s) => (
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", s.expose()),
            ),
            Auth::Token(s) => (
                reqwest::header::AUTHORIZATION,
                format!("Token {}", s.expose()),
            ),
            Auth::Basic { user, password } => (
                reqwest::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64(format!("{user}:{}", password.expose()).as_bytes())
                ),
            ),
            Auth::Header { name, value } => (
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Error::Local(format!("invalid auth header name {name:?}")))?,
                value.expose().to_string(),
            ),
        };
        let mut v = HeaderValue::from_str(&value)
            .map_err(|_| Error::Local("the credential is not a valid header value".into()))?;
        // Kept out of the HTTP stack's own debug output.
        v.set_sensitive(true);
        Ok(Some((name, v)))
    }
}

/// Apply the TLS options to a builder.
fn tls(mut b: reqwest::ClientBuilder, t: &TlsConfig) -> Result<reqwest::ClientBuilder, Error> {
    let read = |key: &str, p: &PathBuf| {
        std::fs::read(p)
            .map_err(|e| Error::Local(format!("tls.{key}: cannot read {}: {e}", p.display())))
    };
    if let Some(ca) = &t.ca_file {
        let certs = reqwest::Certificate::from_pem_bundle(&read("ca_file", ca)?)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::Local(format!(
                    "tls.ca_file: {} holds no PEM certificate",
                    ca.display()
                ))
            })?;
        b = b.tls_certs_merge(certs);
    }
    match (&t.client_cert, &t.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = read("client_key", key)?;
            pem.push(b'\n');
            pem.extend(read("client_cert", cert)?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|_| {
                Error::Local(format!(
                    "tls.client_cert: {} and {} are not a PEM certificate and its private key",
                    cert.display(),
                    key.display()
                ))
            })?;
            b = b.identity(id);
        }
        (None, None) => {}
        _ => {
            return Err(Error::Local(
                "tls.client_cert and tls.client_key go together".into(),
            ));
        }
    }
    if t.insecure_skip_verify {
        tracing::warn!(
            "TLS certificate verification is off (insecure_skip_verify): any server can answer"
        );
        b = b.tls_danger_accept_invalid_certs(true);
    }
    Ok(b)
}

/// `data` gzip-compressed.
fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)
        .and_then(|()| enc.finish())
        .map_err(|e| Error::Local(format!("compressing the body: {e}")))
}

/// Read a body chunk by chunk, giving up (`None`) as soon as it passes
/// `limit` (chunked bodies have no Content-Length to check first).
async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Option<Bytes>, reqwest::Error> {
    if resp.content_length().is_some_and(|l| l > limit as u64) {
        return Ok(None);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out.into()))
}
