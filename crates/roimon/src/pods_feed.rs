//! The pod list feed: fetches a Kubernetes `PodList` for this node (the
//! kubelet's `/pods`, or the API server filtered by node) through the shared
//! HTTP client, so attribution rules can match pod labels without a
//! Kubernetes client. A failure keeps the last list, is logged once per
//! streak and counted (`collector="pods"`); its text never carries the
//! token nor a query value of `pods_url`.

use crate::attribution::parse_pod_list;
use crate::config::Attribution;
use crate::feeds::{FetchError, blocking, get_text, redact_error, secrets};
use crate::inbox::Event;
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
) -> Result<crate::attribution::PodIndex, FetchError> {
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

/// Fetch the pod list every `pods_refresh_secs` for ever, sending each one
/// and every outcome on `tx`.
pub async fn run(cfg: Attribution, tx: Sender<Event>) {
    let Some(url) = cfg.pods_url.clone() else {
        return;
    };
    let http = match client(&cfg) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "attribution.pods_url: cannot build the HTTP client; pod labels stay unknown");
            let _ = tx.send(Event::Outcome("pods", false));
            return;
        }
    };
    let mut failing = false;
    loop {
        match fetch(&http, &url, &cfg).await {
            Ok(index) => {
                if failing {
                    tracing::info!(pods = index.len(), "pod list readable again");
                    failing = false;
                } else {
                    tracing::debug!(pods = index.len(), "pod list fetched");
                }
                if tx.send(Event::Pods(Arc::new(index))).is_err() {
                    return;
                }
                let _ = tx.send(Event::Outcome("pods", true));
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %roimon_http::log_safe(&e.to_string()), "cannot read the pod list (attribution.pods_url); the last one stays in force, retrying (logged again on recovery)");
                    failing = true;
                }
                if tx.send(Event::Outcome("pods", false)).is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs_f64(cfg.pods_refresh_secs)).await;
    }
}
