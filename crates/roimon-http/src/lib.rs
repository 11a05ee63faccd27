//! roimon's one outbound HTTP client, shared by the price and carbon feeds
//! and every later caller (inference scrapers, the InfluxDB writer, BMC
//! readers): timeouts, bounded bodies, retries with jitter only where a
//! request may be sent twice, `Retry-After`, same-origin redirects, auth
//! modes, TLS options, and typed errors whose text never carries a secret.
//!
//! ```no_run
//! # async fn f() -> Result<(), roimon_http::Error> {
//! use roimon_http::{Auth, Client, ClientConfig, Request, Secret};
//! let client = Client::new(ClientConfig {
//!     auth: Auth::Bearer(Secret::new("t0ken")),
//!     ..ClientConfig::default()
//! })?;
//! let resp = client.send(&Request::get("https://example.invalid/x")).await?;
//! println!("{} bytes", resp.body.len());
//! # Ok(()) }
//! ```

mod client;
mod error;
mod outside;
mod retry;
mod secret;

pub use client::{
    Auth, BODY_LIMIT, Body, CONNECT_TIMEOUT, Client, ClientConfig, Method, Request, Response,
    TlsConfig,
};
pub use error::{ConnectCause, Error};
pub use outside::{LOG_SAFE_MAX_CHARS, OUTSIDE_MAX_CHARS, log_safe, outside};
pub use retry::{
    Decision, DefaultRetryLogic, Jitter, MAX_HINT, RetryLogic, RetryPolicy, retry_after, spread,
};
pub use secret::{Secret, redact, redact_url, url_encode, url_secrets};
