//! The value feed: scrape each inference server's own `/metrics` on its
//! interval through the shared HTTP client, read tokens and requests per
//! model with `roimon-value`, turn the counters into deltas (a server restart
//! counts the new value, never a negative one), price them, and hand them to
//! the sampler, which books them to the target's owners together with the
//! target's counter state, so value and state are checkpointed as one. An
//! unreachable or unreadable target is logged once per failure streak and
//! counted; its value is not invented. Log lines never carry the target's
//! token nor the query values of its URL. What a scrape claims is bounded: a
//! delta above the target's plausible rate, a model beyond `max_models`, an
//! over-long label or the resets of a reset storm are refused, counted
//! (`roimon_value_rejected_total`) and logged once per streak.

use crate::{Feed, FetchError, Log, Policy, Retry};
use roimon_config::{ScrapeTarget, UnitPrices};
use roimon_core::ModelDelta;
use roimon_daemon::inbox::{Event, OwnerSpec, ValueUpdate};
use roimon_http::{Auth, Client, ClientConfig, Request, RetryPolicy, Secret};
use roimon_value::{Bounds, Limits, Prices, Rejection, ServerKind, TargetState};
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::mpsc::Sender;
use std::time::Duration;

fn prices(p: &UnitPrices) -> Prices {
    Prices {
        input_per_million: p.input_per_million_tokens,
        output_per_million: p.output_per_million_tokens,
        cached_input_per_million: p.cached_input_per_million_tokens,
        per_request: p.per_request,
        per_model: Default::default(),
    }
}

/// Scrape `t` for ever within `bounds` in the feed loop ([`crate::run`]),
/// sending what it produced on `tx`; `state` is the target's counter state
/// from the checkpoint (JSON), if any.
pub async fn run(t: ScrapeTarget, bounds: Bounds, state: Option<String>, tx: Sender<Event>) {
    let label = t.label();
    // Logs name the target by the label of its redacted URL (the same as
    // `label` but where that is the URL's host part).
    let shown = ScrapeTarget {
        url: roimon_http::redact_url(&t.url),
        ..t.clone()
    }
    .label();
    let kind = ServerKind::from_str(&t.kind).unwrap_or(ServerKind::Auto);
    let mut price = prices(&t.prices);
    price.per_model = t
        .models
        .iter()
        .map(|(m, p)| (m.clone(), prices(p)))
        .collect();
    let owners = match &t.team {
        Some(team) => OwnerSpec::Owner(roimon_core::Owner {
            team: team.clone(),
            workload: t
                .workload
                .clone()
                .unwrap_or_else(|| roimon_core::engine::UNALLOCATED.into()),
        }),
        None => OwnerSpec::Gpus(t.gpu_uuids.clone()),
    };
    let st: TargetState = state
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let suspect = st.suspect();
    let feed = ValueFeed {
        t,
        bounds,
        label,
        shown,
        kind,
        price,
        owners,
        st,
        refusing: BTreeSet::new(),
        suspect,
    };
    crate::run(feed, tx).await;
}

/// One value target in the feed loop, with its counter state.
struct ValueFeed {
    t: ScrapeTarget,
    bounds: Bounds,
    label: String,
    /// The label of the redacted URL, for logs.
    shown: String,
    kind: ServerKind,
    price: Prices,
    owners: OwnerSpec,
    st: TargetState,
    /// Reasons refused at the last scrape: each streak is logged once.
    refusing: BTreeSet<Rejection>,
    /// The target was in a reset storm at the last scrape.
    suspect: bool,
}

impl Feed for ValueFeed {
    type Client = Client;

    fn policy(&self) -> Policy {
        Policy {
            refresh: Duration::from_secs_f64(self.t.interval_secs),
            // The next interval is the retry: a scrape is not worth hurrying.
            retry: Retry::AtRefresh,
            honour_retry_after: false,
            log: Log::OncePerStreak,
        }
    }

    fn open(&mut self) -> Result<Client, FetchError> {
        let t = &self.t;
        let auth = match Secret::load(
            &format!("value.scrape {}", self.label),
            t.token_env.as_deref(),
            t.token_file.as_deref(),
        )
        .map_err(FetchError::Local)?
        {
            Some(s) => Auth::Bearer(s),
            None => Auth::None,
        };
        Client::new(ClientConfig {
            timeout: Duration::from_secs_f64(t.timeout_secs),
            // The next interval is the retry: a scrape is not worth waiting for.
            retry: RetryPolicy {
                retries: 0,
                initial: Duration::from_secs(1),
                max: Duration::from_secs(1),
            },
            auth,
            // What the URL carries (query values, a password) is scrubbed
            // from every error.
            scrub: roimon_http::url_secrets(&t.url),
            ..ClientConfig::default()
        })
        .map_err(|e| FetchError::Local(e.to_string()))
    }

    async fn fetch(
        &mut self,
        client: &Client,
        tx: &Sender<Event>,
    ) -> Result<Option<Duration>, FetchError> {
        let update = scrape(client, &self.t.url, self.kind, &mut self.st, &self.bounds)
            .await
            .map_err(FetchError::Local)?;
        let (label, bounds) = (&self.label, &self.bounds);
        let now_refusing: BTreeSet<Rejection> = update.rejected.keys().copied().collect();
        for why in now_refusing.difference(&self.refusing) {
            tracing::warn!(
                target_name = %label,
                reason = why.as_str(),
                refused = update.rejected[why],
                max_tokens_per_second = bounds.max_tokens_per_second,
                max_requests_per_second = bounds.max_requests_per_second,
                max_models = bounds.max_models,
                "value target's scrape holds figures that are not booked (implausible or over a bound); counted in roimon_value_rejected_total, said once per streak"
            );
        }
        for why in self.refusing.difference(&now_refusing) {
            tracing::info!(target_name = %label, reason = why.as_str(), "value target's figures are within bounds again");
        }
        self.refusing = now_refusing;
        if update.suspect != self.suspect {
            if update.suspect {
                tracing::warn!(target_name = %label, max_resets_per_hour = bounds.max_resets_per_hour, "value target restarts too often (reset storm): its resets are not booked until an hour passes without one");
            } else {
                tracing::info!(target_name = %label, "value target is stable again: its resets are booked");
            }
            self.suspect = update.suspect;
        }
        let deltas: Vec<(String, roimon_value::Delta)> = update
            .deltas
            .into_iter()
            .filter(|(_, d)| !d.is_zero())
            .collect();
        let money: f64 = deltas.iter().map(|(m, d)| self.price.value(m, d).0).sum();
        // Deltas are finite and bounded, so is their price; a money figure
        // that is not is refused with the deltas it came from.
        let (money, deltas) = if money.is_finite() && money >= 0.0 {
            (money, deltas)
        } else {
            (0.0, Vec::new())
        };
        let models = deltas
            .into_iter()
            .map(|(model, d)| ModelDelta {
                model,
                input_tokens: d.input_tokens,
                cached_input_tokens: d.cached_input_tokens,
                output_tokens: d.output_tokens,
                requests: d.requests,
            })
            .collect();
        let state = serde_json::to_string(&self.st).unwrap_or_default();
        let _ = tx.send(Event::Value(ValueUpdate {
            target: label.clone(),
            owners: self.owners.clone(),
            money,
            models,
            state,
            rejected: update
                .rejected
                .into_iter()
                .map(|(k, n)| (k.as_str(), n))
                .collect(),
        }));
        Ok(None)
    }

    fn outcome(&self, ok: bool) -> Event {
        Event::Target(self.label.clone(), ok)
    }

    fn log_cannot_start(&self, e: &FetchError, _: Duration) {
        tracing::error!(target_name = %self.shown, error = %e, "value target cannot start; its value is not measured");
    }

    fn log_failure(&self, e: &FetchError, _: u32, _: Duration) {
        tracing::warn!(target_name = %self.shown, error = %roimon_http::log_safe(&e.to_string()), "value target failed; its value is not counted until it answers (said once per failure streak)");
    }

    fn log_success(&self, recovered: bool) {
        if recovered {
            tracing::info!(target_name = %self.shown, "value target answers again");
        }
    }
}

/// One scrape: fetch, read, and what it adds up to within `bounds`
/// (nothing on the baseline scrape). The error's text is scrubbed by the
/// client (the URL shown redacted).
async fn scrape(
    client: &Client,
    url: &str,
    kind: ServerKind,
    st: &mut TargetState,
    bounds: &Bounds,
) -> Result<roimon_value::Update, String> {
    let resp = client
        .send(&Request::get(url).body_limit(BODY_LIMIT))
        .await
        .map_err(|e| e.to_string())?;
    // Parsing is CPU work (a big body takes milliseconds): off the async
    // thread that also serves /metrics.
    let body = resp.body;
    let scrape =
        tokio::task::spawn_blocking(move || roimon_value::read_scrape(&body, kind, "", limits()))
            .await
            .map_err(|e| format!("internal error reading the metrics: {e}"))?
            .map_err(|e| {
                let why = roimon_http::outside(&client.redact(&e.to_string()));
                format!(
                    "cannot read {}'s metrics: {why}",
                    roimon_http::redact_url(url)
                )
            })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .ok();
    Ok(st.observe_at(&scrape, now, bounds))
}

/// Largest `/metrics` body read (the largest real capture is ~100 KB).
const BODY_LIMIT: usize = 8 << 20;

/// What one body may hold: a parse stays within a few tens of MB.
fn limits() -> Limits {
    Limits {
        max_body_bytes: BODY_LIMIT,
        max_series: 50_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A server answering each request with `status` and a body that echoes
    /// the request line (query included) after `body`.
    fn echo(status: &'static str, body: &'static str) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut s in l.incoming().map_while(Result::ok) {
                let mut line = String::new();
                let _ = BufReader::new(&s).read_line(&mut line);
                let text = format!("{body}{}", line.trim_end());
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        url
    }

    async fn scrape_error(url: &str) -> String {
        let client = Client::new(ClientConfig {
            retry: RetryPolicy {
                retries: 0,
                initial: Duration::from_millis(10),
                max: Duration::from_millis(10),
            },
            scrub: roimon_http::url_secrets(url),
            ..ClientConfig::default()
        })
        .unwrap();
        scrape(
            &client,
            url,
            ServerKind::Auto,
            &mut TargetState::default(),
            &Bounds::default(),
        )
        .await
        .unwrap_err()
    }

    #[tokio::test]
    async fn a_scrape_error_never_carries_the_query_of_the_target_url() {
        // An error status echoing the path.
        let url = format!(
            "{}/metrics?apikey=SECRETVALUE",
            echo("404 Not Found", "no route ")
        );
        let e = scrape_error(&url).await;
        assert!(e.contains("apikey=[REDACTED]"), "{e}");
        assert!(!e.contains("SECRETVALUE"), "{e}");
        // A body that is not metrics, echoing the path: the URL is named
        // with its query redacted.
        let url = format!("{}/metrics?apikey=SECRETVALUE", echo("200 OK", "{{{ "));
        let e = scrape_error(&url).await;
        assert!(e.contains("/metrics?apikey=REDACTED's metrics"), "{e}");
        assert!(!e.contains("SECRETVALUE"), "{e}");
    }
}
