//! The pod list feed: fetches a Kubernetes `PodList` for this node (the
//! kubelet's `/pods`, or the API server filtered by node) through the shared
//! HTTP client, so attribution rules can match pod labels without a
//! Kubernetes client. A failure keeps the last list, is logged once per
//! streak and counted (`collector="pods"`); its text never carries the
//! token nor a query value of `pods_url`.

use crate::{Feed, FetchError, Log, Policy, Retry};
use crate::{blocking, get_text, redact_error, secrets};
use roimon_attribution::parse_pod_list;
use roimon_config::Attribution;
use roimon_daemon::inbox::Event;
use roimon_http::{Client, ClientConfig, Request, RetryPolicy, Secret, TlsConfig};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// Largest pod list accepted (a node's pods with their status: a few MB).
const BODY_LIMIT: usize = 16 << 20;

fn client(cfg: &Attribution) -> Result<Client, FetchError> {
    Client::new(ClientConfig {
        timeout: Duration::from_secs_f64(cfg.pods_timeout_secs),
        body_limit: BODY_LIMIT,
        retry: RetryPolicy {
            retries: 1,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
        },
        tls: TlsConfig {
            ca_file: cfg.pods_ca_file.clone(),
            ..TlsConfig::default()
        },
        scrub: secrets(None, cfg.pods_url.as_deref()),
        ..ClientConfig::default()
    })
    .map_err(|e| FetchError::Local(e.to_string()))
}

/// One fetch: the token is read afresh (projected service account tokens
/// rotate), and scrubbed, with the query values of `url`, from any error
/// text.
async fn fetch(
    http: &Client,
    url: &str,
    cfg: &Attribution,
) -> Result<roimon_attribution::PodIndex, FetchError> {
    let token = match &cfg.pods_token_file {
        Some(path) => {
            Some(Secret::load("attribution.pods", None, Some(path)).map_err(FetchError::Local)?)
                .flatten()
        }
        None => None,
    };
    let mut req = Request::get(url);
    if let Some(t) = &token {
        req = req.header("Authorization", format!("Bearer {}", t.expose()));
    }
    let result = async {
        let text = get_text(http, &req).await?;
        blocking(move || {
            parse_pod_list(&text).map_err(|e| FetchError::Rejected(roimon_http::outside(&e)))
        })
        .await
    }
    .await;
    result.map_err(|e| redact_error(&secrets(token.as_ref(), [url]), e))
}

/// Fetch the pod list every `pods_refresh_secs` for ever in the feed loop
/// ([`crate::run`]), sending each one and every outcome on `tx`.
pub async fn run(cfg: Attribution, tx: Sender<Event>) {
    let Some(url) = cfg.pods_url.clone() else {
        return;
    };
    crate::run(PodsFeed { cfg, url, pods: 0 }, tx).await;
}

/// The pod list in the feed loop.
struct PodsFeed {
    cfg: Attribution,
    url: String,
    /// Pods in the last list fetched.
    pods: usize,
}

impl Feed for PodsFeed {
    type Client = Client;

    fn policy(&self) -> Policy {
        Policy {
            refresh: Duration::from_secs_f64(self.cfg.pods_refresh_secs),
            // The client retries once within a fetch; then the next refresh.
            retry: Retry::AtRefresh,
            honour_retry_after: false,
            log: Log::OncePerStreak,
        }
    }

    fn open(&mut self) -> Result<Client, FetchError> {
        client(&self.cfg)
    }

    async fn fetch(
        &mut self,
        http: &Client,
        tx: &Sender<Event>,
    ) -> Result<Option<Duration>, FetchError> {
        let index = fetch(http, &self.url, &self.cfg).await?;
        self.pods = index.len();
        let _ = tx.send(Event::Pods(Arc::new(index)));
        Ok(None)
    }

    fn outcome(&self, ok: bool) -> Event {
        Event::Outcome("pods", ok)
    }

    fn log_cannot_start(&self, e: &FetchError, _: Duration) {
        tracing::error!(error = %e, "attribution.pods_url: cannot build the HTTP client; pod labels stay unknown");
    }

    fn log_failure(&self, e: &FetchError, _: u32, _: Duration) {
        tracing::warn!(error = %roimon_http::log_safe(&e.to_string()), "cannot read the pod list (attribution.pods_url); the last one stays in force, retrying (logged again on recovery)");
    }

    fn log_success(&self, recovered: bool) {
        if recovered {
            tracing::info!(pods = self.pods, "pod list readable again");
        } else {
            tracing::debug!(pods = self.pods, "pod list fetched");
        }
    }
}
