//! The grid carbon-intensity feed: Electricity Maps or the UK Carbon
//! Intensity API, through the same HTTP client as prices (`roimon-http`:
//! timeouts, retries, `Retry-After`, redacted tokens) and with a kept copy in
//! the state dir. Intensity turns facility energy into emissions, and, with a
//! carbon price, into the `carbon` cost component.

use crate::schedule::{Store, Stored, absorb_kept, bound_fetched, kept_range};
use crate::{Feed, FetchError, Log, Policy, Retry, base_url, blocking, get_text};
use crate::{http_client, redact_error, secrets};
use chrono::{DateTime, Duration as TimeDelta, Utc};
use roimon_config::{CarbonCfg, CarbonSource};
use roimon_core::{Carbon, PricePerKwh, Tariff};
use roimon_daemon::inbox::Event;
use roimon_http::{Auth, Client, Request, RetryPolicy, Secret};
use roimon_price::parse::carbon;
use roimon_price::{Adjustments, CARBON_UNIT, Schedule, normalise_carbon};
use std::path::PathBuf;
use std::time::Duration;

/// The engine's view of a schedule (or of none yet: the fallback).
pub fn engine_carbon(cfg: &CarbonCfg, s: Option<&Schedule>, at: Option<DateTime<Utc>>) -> Carbon {
    let fallback = PricePerKwh(cfg.grams_per_kwh.unwrap_or(0.0));
    let intensity = match (cfg.source, s) {
        (CarbonSource::Static, _) => Tariff::Static(fallback),
        (_, s) => Tariff::Slots {
            slots: s.map(Schedule::core_slots).unwrap_or_default(),
            fallback,
            // Grid intensity changes slowly: carry the last figure forward.
            last_known: true,
        },
    };
    Carbon {
        intensity,
        price_per_tonne: cfg.price_per_tonne,
        source: cfg.source.label().to_string(),
        fetched_at: at,
    }
}

/// Fetches one carbon source.
#[derive(Debug)]
pub struct CarbonFetcher {
    http: Client,
    /// The token and the query values of `base_url`, scrubbed from errors.
    scrub: Vec<Secret>,
    cfg: CarbonCfg,
}

impl CarbonFetcher {
    /// A fetcher for a fetched carbon source.
    pub fn new(cfg: &CarbonCfg) -> Result<Self, FetchError> {
        let token = Secret::load(
            "carbon",
            cfg.token_env.as_deref(),
            cfg.token_file.as_deref(),
        )
        .map_err(FetchError::Local)?;
        let retry = RetryPolicy {
            retries: cfg.retries,
            initial: Duration::from_secs_f64(cfg.retry_initial_secs),
            max: Duration::from_secs_f64(cfg.retry_max_secs),
        };
        let scrub = secrets(token.as_ref(), cfg.base_url.as_deref());
        let auth = token.map_or(Auth::None, |value| Auth::Header {
            name: "auth-token".into(),
            value,
        });
        Ok(Self {
            http: http_client(
                Duration::from_secs_f64(cfg.timeout_secs),
                retry,
                auth,
                scrub.clone(),
            )?,
            scrub,
            cfg: cfg.clone(),
        })
    }

    /// Fetch recent and current intensity around `now`; error texts are
    /// scrubbed of the token and of `base_url`'s query values.
    pub async fn fetch(&self, now: DateTime<Utc>) -> Result<Schedule, FetchError> {
        self.fetch_raw(now)
            .await
            .map_err(|e| redact_error(&self.scrub, e))
    }

    async fn fetch_raw(&self, now: DateTime<Utc>) -> Result<Schedule, FetchError> {
        match self.cfg.source {
            CarbonSource::None | CarbonSource::Static => Err(FetchError::Local(
                "this carbon source is not fetched".into(),
            )),
            CarbonSource::Electricitymaps => {
                let base = base_url(
                    self.cfg.base_url.as_deref(),
                    "https://api.electricitymap.org",
                );
                let zone = self.cfg.zone.clone().unwrap_or_default();
                let history = get_text(
                    &self.http,
                    &Request::get(format!("{base}/v3/carbon-intensity/history?zone={zone}")),
                )
                .await?;
                let latest = get_text(
                    &self.http,
                    &Request::get(format!("{base}/v3/carbon-intensity/latest?zone={zone}")),
                )
                .await?;
                blocking(move || {
                    let mut h = carbon::electricitymaps(&history)?;
                    let l = carbon::electricitymaps(&latest)?;
                    // The latest figure wins over the history's last hour.
                    if let Some(first) = l.slots.iter().map(|s| s.start).min() {
                        h.slots.retain(|s| s.end <= first);
                    }
                    h.slots.extend(l.slots);
                    Ok(normalise_carbon(h)?)
                })
                .await
            }
            CarbonSource::Uk => {
                let base = base_url(
                    self.cfg.base_url.as_deref(),
                    "https://api.carbonintensity.org.uk",
                );
                let from = (now - TimeDelta::hours(1)).format("%Y-%m-%dT%H:%MZ");
                let url = match (&self.cfg.region_id, &self.cfg.postcode) {
                    (Some(id), _) => {
                        format!("{base}/regional/intensity/{from}/fw24h/regionid/{id}")
                    }
                    (None, Some(pc)) => {
                        format!("{base}/regional/intensity/{from}/fw24h/postcode/{pc}")
                    }
                    (None, None) => format!("{base}/intensity/{from}/fw24h"),
                };
                let body = get_text(&self.http, &Request::get(url)).await?;
                blocking(move || Ok(normalise_carbon(carbon::uk(&body)?)?)).await
            }
        }
    }
}

/// The time a carbon fetch is about: the day before and after `now` (the
/// Electricity Maps history is the past 24 hours, the UK forecast the next
/// 24). A fetch with no slot in it is a failure.
fn window(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (now - TimeDelta::days(1), now + TimeDelta::days(1))
}

/// What identifies a carbon series; a kept one from another is not loaded.
pub fn identity(cfg: &CarbonCfg) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}",
        cfg.source.label(),
        cfg.zone,
        cfg.region_id,
        cfg.postcode
    )
}

/// Run the carbon feed until the runtime stops: load the kept intensity,
/// then fetch in the feed loop ([`crate::run`]) like the price feed: failures
/// are counted and retried with jittered backoff (honouring `Retry-After`),
/// and the last intensity stays in force.
pub async fn run(cfg: CarbonCfg, state_dir: PathBuf, tx: std::sync::mpsc::Sender<Event>) {
    let label = cfg.source.label();
    let id = identity(&cfg);
    let store = Store::named(&state_dir, "carbon.json");
    let kept = {
        let (store, id) = (store.clone(), id.clone());
        let now = Utc::now();
        let range = kept_range(now, window(now).1);
        blocking(move || Ok(store.load(label, &id, CARBON_UNIT, &Adjustments::default(), range)))
            .await
            .unwrap_or(None)
    };
    if let Some(k) = &kept {
        let _ = tx.send(Event::Carbon(engine_carbon(
            &cfg,
            Some(&k.schedule),
            Some(k.fetched_at),
        )));
    }
    let feed = CarbonFeed {
        cfg,
        store,
        label,
        id,
        kept,
        dropped_total: 0,
    };
    crate::run(feed, tx).await;
}

/// The carbon feed in the feed loop: the intensity kept so far, merged with
/// each fetch.
struct CarbonFeed {
    cfg: CarbonCfg,
    store: Store,
    label: &'static str,
    id: String,
    kept: Option<Stored>,
    dropped_total: u64,
}

impl Feed for CarbonFeed {
    type Client = CarbonFetcher;

    fn policy(&self) -> Policy {
        let refresh = Duration::from_secs_f64(self.cfg.refresh_secs);
        Policy {
            refresh,
            retry: Retry::Backoff {
                initial: Duration::from_secs_f64(self.cfg.retry_initial_secs).min(refresh),
                max: refresh,
            },
            honour_retry_after: true,
            log: Log::EveryFailure,
        }
    }

    fn open(&mut self) -> Result<CarbonFetcher, FetchError> {
        CarbonFetcher::new(&self.cfg)
    }

    async fn fetch(
        &mut self,
        fetcher: &CarbonFetcher,
        tx: &std::sync::mpsc::Sender<Event>,
    ) -> Result<Option<Duration>, FetchError> {
        let now = Utc::now();
        let (from, to) = window(now);
        let fetched = fetcher.fetch(now).await;
        let label = self.label;
        let new = bound_fetched(
            fetched,
            (from, to),
            now,
            label,
            "carbon",
            &mut self.dropped_total,
            tx,
        );
        let merged = absorb_kept(&self.store, self.kept.take(), new?, label, &self.id, now).await;
        tracing::info!(
            source = label,
            slots = merged.schedule.slots.len(),
            "carbon intensity fetched"
        );
        let _ = tx.send(Event::Carbon(engine_carbon(
            &self.cfg,
            Some(&merged.schedule),
            Some(now),
        )));
        self.kept = Some(merged);
        Ok(None)
    }

    fn outcome(&self, ok: bool) -> Event {
        Event::Outcome("carbon", ok)
    }

    fn log_cannot_start(&self, e: &FetchError, wait: Duration) {
        tracing::error!(source = self.label, error = %e, next_try_s = wait.as_secs(), "carbon feed cannot start; using the kept or fallback intensity");
    }

    fn log_failure(&self, e: &FetchError, failures: u32, wait: Duration) {
        tracing::warn!(source = self.label, error = %roimon_http::log_safe(&e.to_string()), failures, next_try_s = wait.as_secs(), "carbon fetch failed; the last intensity (or the fallback) stays in force");
    }
}
