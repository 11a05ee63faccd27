//! Why a request failed, typed (the status is kept) and in words an operator
//! can act on: the host and port, never the URL (its query may carry a
//! token), and never a secret.

use std::fmt;
use std::time::Duration;

/// Why a request failed. Its `Display` is safe to log.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The server answered with a status that is not a success.
    Status {
        /// The status code.
        code: u16,
        /// The start of the body, secrets redacted.
        excerpt: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// No answer within the timeout.
    Timeout {
        /// `host:port`.
        host: String,
        /// The limit that passed.
        after: Duration,
    },
    /// The connection could not be made or was lost.
    Connect {
        /// `host:port`.
        host: String,
        /// What happened.
        cause: ConnectCause,
    },
    /// The host name did not resolve.
    Dns {
        /// `host:port`.
        host: String,
    },
    /// The TLS handshake or session failed.
    Tls {
        /// `host:port`.
        host: String,
        /// rustls' reason.
        reason: String,
    },
    /// The body is larger than the limit.
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A redirect was not followed (another origin, or too many).
    Redirect {
        /// `host:port` of the server that redirected.
        host: String,
        /// Why.
        reason: String,
    },
    /// The answer started but its body could not be read.
    Body(Box<Error>),
    /// Retries were spent; the last failure and the longest `Retry-After`.
    GaveUp {
        /// Tries made.
        tries: u32,
        /// The last failure.
        last: Box<Error>,
        /// The longest `Retry-After` seen: the next call must not come sooner.
        retry_after: Option<Duration>,
    },
    /// A local problem: a bad URL, a TLS file that cannot be read.
    Local(String),
}

/// How a connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectCause {
    /// Nothing listens on that port (or a firewall said no).
    Refused,
    /// The peer closed or reset the connection.
    Closed,
    /// Something else, with the innermost error's text.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status { code, excerpt, .. } => {
                let reason = reqwest::StatusCode::from_u16(*code)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "status {code} {reason}: {excerpt}")
            }
            Error::Timeout { host, after } => write!(
                f,
                "{host} did not answer within {} s (timed out)",
                after.as_secs_f64()
            ),
            Error::Connect { host, cause } => match cause {
                ConnectCause::Refused => {
                    write!(f, "cannot connect to {host}: connection refused")
                }
                ConnectCause::Closed => write!(f, "{host} closed the connection"),
                ConnectCause::Other(m) => write!(f, "request to {host} failed: {m}"),
            },
            Error::Dns { host } => write!(f, "cannot resolve {host} (DNS lookup failed)"),
            Error::Tls { host, reason } => write!(f, "TLS with {host} failed: {reason}"),
            Error::TooLarge { limit } => write!(f, "response body larger than {limit} bytes"),
            Error::Redirect { host, reason } => {
                write!(f, "{host}: redirect not followed ({reason})")
            }
            Error::Body(e) => write!(f, "reading the body: {e}"),
            Error::GaveUp { tries, last, .. } => write!(f, "{last} (after {tries} tries)"),
            Error::Local(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The status code, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { code, .. } => Some(*code),
            Error::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The wait the server asked for, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            Error::GaveUp {
                retry_after, last, ..
            } => (*retry_after).max(last.retry_after()),
            _ => None,
        }
    }

    /// Whether the request surely never reached the server (so even a
    /// request that must not be sent twice may be tried again).
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            Error::Dns { .. }
                | Error::Connect {
                    cause: ConnectCause::Refused,
                    ..
                }
        )
    }

    /// Whether another try of the same request may succeed: transport
    /// failures may; a refused redirect, a body over the limit or a local
    /// problem will not. (Statuses are for the [`crate::RetryLogic`].)
    pub(crate) fn transient(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::Connect { .. }
                | Error::Dns { .. }
                | Error::Tls { .. }
                | Error::Body(_)
        )
    }

    /// A reqwest error in these terms, for a client whose request timeout
    /// is `timeout` and connect timeout `connect`.
    pub(crate) fn from_reqwest(e: &reqwest::Error, timeout: Duration, connect: Duration) -> Error {
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
            let reason =
                std::error::Error::source(e).map_or_else(|| "refused".into(), |s| s.to_string());
            return Error::Redirect { host, reason };
        }
        // Not `e` itself: its text holds the whole URL.
        let cause = match std::error::Error::source(e) {
            _ if e.is_timeout() => Cause::Timeout,
            Some(inner) => cause_of(inner),
            None if e.is_connect() => Cause::Other("cannot connect".into()),
            None => Cause::Other("no answer".into()),
        };
        match cause {
            Cause::Dns => Error::Dns { host },
            Cause::Refused => Error::Connect {
                host,
                cause: ConnectCause::Refused,
            },
            Cause::Closed => Error::Connect {
                host,
                cause: ConnectCause::Closed,
            },
            Cause::Timeout => Error::Timeout {
                host,
                // Connecting has its own, shorter limit.
                after: if e.is_connect() {
                    timeout.min(connect)
                } else {
                    timeout
                },
            },
            Cause::Tls(reason) => Error::Tls { host, reason },
            Cause::Other(m) => Error::Connect {
                host,
                cause: ConnectCause::Other(m),
            },
        }
    }

    /// This error with every text it carries passed through `f`.
    pub fn map_text(self, f: &impl Fn(&str) -> String) -> Error {
        match self {
            Error::Status {
                code,
                excerpt,
                retry_after,
            } => Error::Status {
                code,
                excerpt: f(&excerpt),
                retry_after,
            },
            Error::Connect {
                host,
                cause: ConnectCause::Other(m),
            } => Error::Connect {
                host,
                cause: ConnectCause::Other(f(&m)),
            },
            Error::Tls { host, reason } => Error::Tls {
                host,
                reason: f(&reason),
            },
            Error::Redirect { host, reason } => Error::Redirect {
                host,
                reason: f(&reason),
            },
            Error::Body(e) => Error::Body(Box::new(e.map_text(f))),
            Error::GaveUp {
                tries,
                last,
                retry_after,
            } => Error::GaveUp {
                tries,
                last: Box::new(last.map_text(f)),
                retry_after,
            },
            Error::Local(m) => Error::Local(f(&m)),
            other => other,
        }
    }
}

/// Why a request got no HTTP answer, as found in an error's source chain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cause {
    Dns,
    Refused,
    Closed,
    Timeout,
    Tls(String),
    Other(String),
}

/// Walk `e` and its sources (an `io::Error` is looked into too: std's
/// `source` skips the error it wraps) for the first cause an operator can
/// act on.
pub(crate) fn cause_of(e: &(dyn std::error::Error + 'static)) -> Cause {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_status_and_the_hint_survive_giving_up() {
        let e = Error::GaveUp {
            tries: 3,
            last: Box::new(Error::Status {
                code: 503,
                excerpt: "busy".into(),
                retry_after: Some(Duration::from_secs(5)),
            }),
            retry_after: Some(Duration::from_secs(9)),
        };
        assert_eq!(e.status(), Some(503));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(9)));
        assert_eq!(
            e.to_string(),
            "status 503 Service Unavailable: busy (after 3 tries)"
        );
    }
}
