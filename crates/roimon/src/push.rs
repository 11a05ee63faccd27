//! `POST /api/v2/write`: value and benefit scores pushed in as InfluxDB v2
//! line protocol (so Telegraf and the InfluxDB client libraries work as
//! they are). The handler checks the token, the size (gzip bodies decoded
//! within the cap) and every line; a batch with one bad line writes nothing
//! (400 naming the line). A good batch goes to the sampler, which drops the
//! points it has already counted (a client's retry), books the rest, and
//! checkpoints before the 204, so an acknowledged point survives a crash and
//! a retried one counts once.

use crate::http::AppState;
use crate::price_feed::Update;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roimon_http::Secret;
use roimon_value::{Dedup, PointData, Precision, PushRules, PushedPoint};
use std::collections::HashMap;
use std::io::Read;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the push dedup window is kept with the counters.
pub const DEDUP_KEY: &str = "push.dedup";

/// A batch for the sampler to apply.
#[derive(Debug)]
pub struct Job {
    /// The points, validated.
    pub points: Vec<PushedPoint>,
    /// Now, ns since the epoch.
    pub now_ns: i64,
    /// (points counted, duplicates dropped), or why it could not be kept.
    pub reply: tokio::sync::oneshot::Sender<Result<(usize, usize), String>>,
}

/// Counters of the push endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    too_large: AtomicU64,
    unauthorized: AtomicU64,
    busy: AtomicU64,
}

impl Stats {
    /// The endpoint's series, Prometheus text.
    pub fn render(&self) -> String {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# HELP roimon_push_points_total Points received on /api/v2/write: accepted (booked) or duplicate (already counted, e.g. a client's retry).\n\
             # TYPE roimon_push_points_total counter\n\
             roimon_push_points_total{{result=\"accepted\"}} {}\n\
             roimon_push_points_total{{result=\"duplicate\"}} {}\n\
             # HELP roimon_push_rejected_total Requests to /api/v2/write refused: a bad line (400, nothing written), too large (413) or without the token (401).\n\
             # TYPE roimon_push_rejected_total counter\n\
             roimon_push_rejected_total{{reason=\"bad_request\"}} {}\n\
             roimon_push_rejected_total{{reason=\"too_large\"}} {}\n\
             roimon_push_rejected_total{{reason=\"unauthorized\"}} {}\n\
             roimon_push_rejected_total{{reason=\"busy\"}} {}\n",
            l(&self.accepted),
            l(&self.duplicates),
            l(&self.rejected),
            l(&self.too_large),
            l(&self.unauthorized),
            l(&self.busy),
        )
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
    pub tx: Mutex<std::sync::mpsc::Sender<Update>>,
    /// Counters.
    pub stats: Stats,
    /// Batches being handled at once (bounded: each may hold megabytes
    /// until the sampler has applied it).
    pub in_flight: tokio::sync::Semaphore,
}

/// Most batches handled at once; more get 429 with `Retry-After`.
pub const MAX_IN_FLIGHT: usize = 4;

fn json_error(code: StatusCode, message: &str, line: Option<usize>) -> Response {
    (
        code,
        axum::Json(serde_json::json!({
            "code": match code {
                StatusCode::BAD_REQUEST => "invalid",
                StatusCode::UNAUTHORIZED => "unauthorized",
                StatusCode::PAYLOAD_TOO_LARGE => "request too large",
                _ => "unavailable",
            },
            "message": message,
            "line": line,
        })),
    )
        .into_response()
}

/// The handler.
pub async fn write(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(p) = st.push() else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "push is not ready", None);
    };
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
        ))
    });
    let points = match parsed {
        Ok(points) => points,
        Err((code, why, line)) => {
            if code == StatusCode::PAYLOAD_TOO_LARGE {
                p.stats.too_large.fetch_add(1, Ordering::Relaxed);
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
            .send(Update::Push(Job {
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
        Ok(Ok(Err(why))) => json_error(StatusCode::SERVICE_UNAVAILABLE, &why, None),
        _ => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the batch was not applied in time; retry it (a retried point counts once)",
            None,
        ),
    }
}

type Refusal = (StatusCode, String, Option<usize>);

/// Compare a presented token with the configured one in time that does not
/// depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Most distinct (team, workload) owners pushed value may create: every
/// owner is a row, series and window entry for good.
pub const MAX_PUSHED_OWNERS: usize = 1000;

/// Decode (gzip) within the cap and parse every line; any bad line refuses
/// the batch.
fn decode_and_parse(
    body: &[u8],
    gzip: bool,
    precision: Precision,
    now_ns: i64,
    rules: &PushRules,
) -> Result<Vec<PushedPoint>, Refusal> {
    let max = rules.max_body_bytes;
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes (push.max_body_bytes)"),
            None,
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
        )
    })
}

/// Apply a batch in the sampler: drop duplicates (the window is kept with
/// the counters), book value and put scores in force. Returns (counted,
/// duplicates).
pub fn apply(
    engine: &mut roimon_core::Engine,
    dedup: &mut Dedup,
    job_points: Vec<PushedPoint>,
    now_ns: i64,
) -> (usize, usize) {
    let applied = dedup.admit(job_points, now_ns);
    let mut n = 0;
    let mut owners: std::collections::BTreeSet<(String, String)> = engine
        .counters()
        .value
        .keys()
        .filter(|k| k.source == "push")
        .map(|k| (k.team.clone(), k.workload.clone()))
        .collect();
    for p in applied.points {
        let key = (p.team.clone(), p.workload.clone());
        if !owners.contains(&key) {
            if owners.len() >= MAX_PUSHED_OWNERS {
                tracing::warn!(team = %p.team, workload = %p.workload, max = MAX_PUSHED_OWNERS, "pushed point for a new owner refused: too many distinct pushed owners");
                continue;
            }
            owners.insert(key);
        }
        n += 1;
        let owner = roimon_core::Owner {
            team: p.team.clone(),
            workload: if p.workload.is_empty() {
                roimon_core::engine::UNALLOCATED.into()
            } else {
                p.workload.clone()
            },
        };
        match p.data {
            PointData::Value { amount } => {
                engine.book_value(&[(owner, 1.0)], "push", amount, &[]);
            }
            PointData::Kpi { scores } => {
                let at = chrono::DateTime::from_timestamp_nanos(p.at_ns);
                for (indicator, score) in scores {
                    engine.set_kpi(roimon_core::Kpi {
                        team: owner.team.clone(),
                        workload: owner.workload.clone(),
                        indicator,
                        score,
                        at: Some(at),
                    });
                }
            }
        }
    }
    (n, applied.duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cre", b"s3cret"));
        assert!(!same(b"s3creT", b"s3cret"));
        assert!(!same(b"", b"x"));
    }

    #[test]
    fn pushed_owners_are_capped() {
        let mut e = roimon_core::Engine::new(
            roimon_core::EngineConfig {
                currency: "EUR".into(),
                pue: 1.0,
                tariff: roimon_core::Tariff::Static(roimon_core::PricePerKwh(0.2)),
                price_source: "static".into(),
                fixed: Default::default(),
                share_key: Default::default(),
                owners: Default::default(),
                max_gap: roimon_core::Seconds(5.0),
            },
            None,
        );
        let now = 1_800_000_000_000_000_000i64;
        let body: String = (0..MAX_PUSHED_OWNERS + 5)
            .map(|i| format!("roimon_value,team=t{i},workload=w amount=1 {now}\n"))
            .collect();
        let mut rules = PushRules::new("EUR");
        rules.max_points = 10_000;
        let points =
            roimon_value::parse_batch(body.as_bytes(), Precision::Ns, now, &rules).unwrap();
        let mut dedup = Dedup::new(100_000, 86_400_000_000_000);
        let (n, dups) = apply(&mut e, &mut dedup, points, now);
        assert_eq!((n, dups), (MAX_PUSHED_OWNERS, 0));
        assert_eq!(e.counters().value.len(), MAX_PUSHED_OWNERS);
        assert_eq!(e.counters().value_total.total(), MAX_PUSHED_OWNERS as f64);
    }
}
