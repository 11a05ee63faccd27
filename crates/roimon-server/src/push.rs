//! `POST /api/v2/write`: value and benefit scores pushed in as InfluxDB v2
//! line protocol (so Telegraf and the InfluxDB client libraries work as
//! they are). The handler checks the token, the size (gzip bodies decoded
//! within the cap) and every line; a batch with one bad line writes nothing
//! (400 naming the line). A good batch goes to the sampler, which drops the
//! points it has already counted (a client's retry), books the rest, and
//! checkpoints before the 204, so an acknowledged point survives a crash and
//! a retried one counts once.

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roimon_daemon::inbox::Event;
pub use roimon_daemon::inbox::{Job, Refusal};
use roimon_export_prometheus::PushFigures;
use roimon_http::Secret;
use roimon_value::{Precision, PushRules, PushedPoint};
use std::collections::HashMap;
use std::io::Read;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters of the push endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    too_large: AtomicU64,
    unauthorized: AtomicU64,
    busy: AtomicU64,
    unknown_owner: AtomicU64,
    over_cap: AtomicU64,
    forbidden: AtomicU64,
}

impl Stats {
    /// The endpoint's counters, for the exporter to name.
    pub fn figures(&self) -> PushFigures {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PushFigures {
            accepted: l(&self.accepted),
            duplicates: l(&self.duplicates),
            bad_request: l(&self.rejected),
            unknown_owner: l(&self.unknown_owner),
            over_cap: l(&self.over_cap),
            too_large: l(&self.too_large),
            unauthorized: l(&self.unauthorized),
            forbidden: l(&self.forbidden),
            busy: l(&self.busy),
        }
    }
}

/// The endpoint's configuration and its way to the sampler.
#[derive(Debug)]
pub struct Push {
    /// Required token, if configured.
    pub token: Option<Secret>,
    /// Validation rules.
    pub rules: PushRules,
    /// To the sampler.
    pub tx: Mutex<std::sync::mpsc::Sender<Event>>,
    /// Counters.
    pub stats: Stats,
    /// Batches being handled at once (bounded: each may hold megabytes
    /// until the sampler has applied it).
    pub in_flight: tokio::sync::Semaphore,
    /// Refuse pushes (403) that carry no token when the listener is not
    /// loopback and basic auth is off (`push.allow_unauthenticated` unset).
    pub refuse_unauthenticated: bool,
    /// Basic auth of the listener, checked per request (it reloads).
    pub web: Option<Arc<crate::web_config::WebConfig>>,
}

/// Most batches handled at once; more get 429 with `Retry-After`.
pub const MAX_IN_FLIGHT: usize = 4;

/// The door on /api/v2/write as configured: its token, the rules a pushed
/// point must meet, and whether a push without a token is refused (the
/// listener is not on loopback and `push.allow_unauthenticated` is unset).
impl Push {
    /// The door for `cfg`, pushing to `tx`, on a listener bound to `bound`.
    pub fn from_config(
        cfg: &roimon_config::Config,
        currency: &str,
        tx: &std::sync::mpsc::Sender<Event>,
        bound: std::net::SocketAddr,
        web: &Option<Arc<crate::web_config::WebConfig>>,
    ) -> anyhow::Result<Self> {
        let push_token = roimon_http::Secret::load(
            "push",
            cfg.push.token_env.as_deref(),
            cfg.push.token_file.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Push {
            token: push_token,
            rules: roimon_value::PushRules {
                currency: currency.to_string(),
                max_past_secs: cfg.push.max_age_secs as u64,
                max_future_secs: cfg.push.max_future_secs as u64,
                max_body_bytes: cfg.push.max_body_bytes as usize,
                // A batch never holds more points than the dedup window, so a
                // whole retried batch is recognised.
                max_points: cfg.push.dedup_max_points.min(1_000_000),
                max_amount: cfg.push.max_amount,
                max_tag_bytes: roimon_config::MAX_NAME_BYTES,
                kpi_names: roimon_config::kpi_names(cfg),
                owners: roimon_config::known_owners(cfg),
            },
            tx: std::sync::Mutex::new(tx.clone()),
            stats: Default::default(),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            refuse_unauthenticated: !bound.ip().is_loopback() && !cfg.push.allow_unauthenticated,
            web: web.clone(),
        })
    }
}

fn json_error(code: StatusCode, message: &str, line: Option<usize>) -> Response {
    (
        code,
        axum::Json(serde_json::json!({
            "code": match code {
                StatusCode::BAD_REQUEST => "invalid",
                StatusCode::UNAUTHORIZED => "unauthorized",
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::PAYLOAD_TOO_LARGE => "request too large",
                _ => "unavailable",
            },
            "message": message,
            "line": line,
        })),
    )
        .into_response()
}

/// The handler, given the endpoint's configuration once there is one (the
/// router hands it over, so this module knows nothing of the router).
pub async fn write(
    push: Option<&Push>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(p) = push else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "push is not ready", None);
    };
    if p.token.is_none()
        && p.refuse_unauthenticated
        && !p.web.as_ref().is_some_and(|w| w.current().auth_enabled())
    {
        p.stats.forbidden.fetch_add(1, Ordering::Relaxed);
        return json_error(
            StatusCode::FORBIDDEN,
            "pushes are refused on a listener that is not loopback without authentication: set push.token_env (or push.token_file) to a token clients send as `Authorization: Token <token>`, enable basic auth in the web config, or set push.allow_unauthenticated = true",
            None,
        );
    }
    if let Some(token) = &p.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Token ")
                    .or_else(|| v.strip_prefix("Bearer "))
            })
            .map(str::trim);
        if !given.is_some_and(|g| same(g.as_bytes(), token.expose().as_bytes())) {
            p.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
            return json_error(
                StatusCode::UNAUTHORIZED,
                "an `Authorization: Token <token>` header with the configured push token is required",
                None,
            );
        }
    }
    let Ok(_permit) = p.in_flight.try_acquire() else {
        p.stats.busy.fetch_add(1, Ordering::Relaxed);
        let mut r = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many batches in flight; retry shortly",
            None,
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return r;
    };
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let precision = match q.get("precision").map(String::as_str) {
        None => Precision::Ns,
        Some(s) => match Precision::from_str(s) {
            Ok(p) => p,
            Err(_) => {
                p.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("precision must be ns, us, ms or s, got {s:?}"),
                    None,
                );
            }
        },
    };
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    // Decoding and parsing a large batch is CPU work: off the async thread,
    // so /metrics and the feeds are not held up.
    let rules = p.rules.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        decode_and_parse(&body, gzip, precision, now_ns, &rules)
    })
    .await
    .unwrap_or_else(|e| {
        Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
            None,
            false,
        ))
    });
    let points = match parsed {
        Ok(points) => points,
        Err((code, why, line, unknown_owner)) => {
            if code == StatusCode::PAYLOAD_TOO_LARGE {
                p.stats.too_large.fetch_add(1, Ordering::Relaxed);
            } else if unknown_owner {
                p.stats.unknown_owner.fetch_add(1, Ordering::Relaxed);
            } else {
                p.stats.rejected.fetch_add(1, Ordering::Relaxed);
            }
            return json_error(code, &why, line);
        }
    };
    if points.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let sent =
        p.tx.lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Event::Push(Job {
                points,
                now_ns,
                reply,
            }));
    if sent.is_err() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "roimon is stopping", None);
    }
    match tokio::time::timeout(Duration::from_secs(30), answer).await {
        Ok(Ok(Ok((accepted, duplicates)))) => {
            p.stats
                .accepted
                .fetch_add(accepted as u64, Ordering::Relaxed);
            p.stats
                .duplicates
                .fetch_add(duplicates as u64, Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Ok(Err(Refusal::Invalid {
            reason,
            message,
            line,
        }))) => {
            if reason == "unknown_owner" {
                p.stats.unknown_owner.fetch_add(1, Ordering::Relaxed);
            } else if reason == "over_cap" {
                p.stats.over_cap.fetch_add(1, Ordering::Relaxed);
            } else {
                p.stats.rejected.fetch_add(1, Ordering::Relaxed);
            }
            json_error(StatusCode::BAD_REQUEST, &message, line)
        }
        Ok(Ok(Err(Refusal::Unavailable(why)))) => {
            let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, &why, None);
            r.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            r
        }
        _ => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the batch was not applied in time; retry it (a retried point counts once)",
            None,
        ),
    }
}

/// (status, message, line, whether for an unknown owner).
type Rejected = (StatusCode, String, Option<usize>, bool);

/// Compare a presented token with the configured one in time that does not
/// depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Decode (gzip) within the cap and parse every line; any bad line refuses
/// the batch.
fn decode_and_parse(
    body: &[u8],
    gzip: bool,
    precision: Precision,
    now_ns: i64,
    rules: &PushRules,
) -> Result<Vec<PushedPoint>, Rejected> {
    let max = rules.max_body_bytes;
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes (push.max_body_bytes)"),
            None,
            false,
        )
    };
    let decoded;
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("not a gzip body: {e}"),
                    None,
                    false,
                )
            })?;
        decoded = out;
        &decoded[..]
    } else {
        body
    };
    if body.len() > max {
        return Err(too_large());
    }
    roimon_value::parse_batch(body, precision, now_ns, rules).map_err(|e| {
        let code = if matches!(e, roimon_value::PushError::TooLarge { .. }) {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        (
            code,
            format!("{e}; nothing of this batch was written"),
            e.line(),
            matches!(e, roimon_value::PushError::UnknownOwner { .. }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_door_from_the_config_refuses_tokenless_pushes_off_loopback_unless_allowed() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut cfg = roimon_config::Config::builtin();
        let at = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        let door = |cfg: &roimon_config::Config, a: &str| {
            Push::from_config(cfg, "GBP", &tx, at(a), &None).unwrap()
        };
        let local = door(&cfg, "127.0.0.1:9464");
        assert!(!local.refuse_unauthenticated);
        assert!(local.token.is_none());
        assert_eq!(local.rules.currency, "GBP");
        assert_eq!(local.rules.max_body_bytes, cfg.push.max_body_bytes as usize);
        assert!(door(&cfg, "0.0.0.0:9464").refuse_unauthenticated);
        assert!(door(&cfg, "[::]:9464").refuse_unauthenticated);
        cfg.push.allow_unauthenticated = true;
        assert!(!door(&cfg, "0.0.0.0:9464").refuse_unauthenticated);
        // A batch never holds more points than the dedup window.
        cfg.push.dedup_max_points = 7;
        assert_eq!(door(&cfg, "127.0.0.1:1").rules.max_points, 7);
        // A token that cannot be read stops the start, naming the push door.
        cfg.push.token_env = Some("ROIMON_TEST_PUSH_TOKEN_THAT_IS_NOT_SET".into());
        let e = Push::from_config(&cfg, "GBP", &tx, at("127.0.0.1:1"), &None).unwrap_err();
        assert!(e.to_string().contains("push"), "{e}");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cre", b"s3cret"));
        assert!(!same(b"s3creT", b"s3cret"));
        assert!(!same(b"", b"x"));
    }
}
