//! The live price feed: fetch the configured publisher over HTTP (through
//! `roimon-http`: timeouts, retries with exponential backoff and jitter,
//! `Retry-After`), normalise with `roimon-price`, keep the schedule in the
//! state dir so a restart without network still prices, and hand each new
//! schedule to the sampler. Secrets come from `token_env`/`token_file` and
//! never reach a log line, nor do the query values of a configured URL
//! (an `apikey=` in a `json` URL), also when a server echoes them.

use crate::schedule::{Store, Stored, absorb_kept, bound_fetched, kept_range};
use crate::{Feed, FetchError, Log, Policy, Retry, blocking, get_text, http_client};
use crate::{base_url, redact_error, secrets};
use chrono::{DateTime, Datelike, Duration as TimeDelta, NaiveDate, TimeZone, Utc};
use roimon_config::{FallbackPolicy, Price, PriceSource};
use roimon_core::{PricePerKwh, Tariff};
use roimon_daemon::inbox::Event;
use roimon_http::{Auth, Client, Request, RetryPolicy, Secret};
use roimon_price::parse::{
    awattar, csv, energidataservice, entsoe, generic, nordpool, octopus, tibber,
};
use roimon_price::{Adjustments, Parsed, PriceError, Schedule, Unit, normalise};
use std::path::PathBuf;
use std::time::Duration;

/// Most pages followed for a paginated source (Octopus).
const MAX_PAGES: usize = 20;

/// Fetches one configured price source.
#[derive(Debug)]
pub struct Fetcher {
    http: Client,
    /// The token (also when it travels inside a URL the feed builds) and
    /// the query values of the configured URLs: every error text is
    /// scrubbed of them.
    scrub: Vec<Secret>,
    cfg: Price,
}

impl Fetcher {
    /// A fetcher for `cfg` (a fetched source). Fails on an unreadable token.
    pub fn new(cfg: &Price, retry_initial: Duration) -> Result<Self, FetchError> {
        let token = Secret::load("price", cfg.token_env.as_deref(), cfg.token_file.as_deref())
            .map_err(FetchError::Local)?;
        let auth = match (cfg.source, &token) {
            (PriceSource::Tibber | PriceSource::Json, Some(t)) => Auth::Bearer(t.clone()),
            // ENTSO-E reads it from the query, first parameter.
            (PriceSource::Entsoe, Some(t)) => Auth::Query {
                name: "securityToken".into(),
                value: t.clone(),
            },
            _ => Auth::None,
        };
        let retry = RetryPolicy {
            retries: cfg.retries,
            initial: retry_initial,
            max: Duration::from_secs_f64(cfg.retry_max_secs),
        };
        let scrub = secrets(
            token.as_ref(),
            [cfg.url.as_deref(), cfg.base_url.as_deref()]
                .into_iter()
                .flatten(),
        );
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

    fn base(&self, default: &str) -> String {
        base_url(self.cfg.base_url.as_deref(), default)
    }

    /// Fetch and normalise the prices for `[from, to)` (sources that publish
    /// fixed windows, like Tibber, return theirs). Every error text is
    /// scrubbed of the token and the configured URLs' query values; parsing
    /// runs off the async thread.
    pub async fn fetch(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Schedule, FetchError> {
        let res = async {
            let parsed = self.fetch_parsed(from, to).await?;
            let (cur, adj, bound) = (
                self.cfg.currency.clone(),
                adjustments(&self.cfg),
                self.cfg.max_abs_price_per_kwh,
            );
            blocking(move || normalise(parsed, &cur, &adj, bound).map_err(FetchError::from)).await
        }
        .await;
        res.map_err(|e| redact_error(&self.scrub, e))
    }

    async fn get(&self, url: String) -> Result<String, FetchError> {
        get_text(&self.http, &Request::get(url)).await
    }

    async fn fetch_parsed(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Parsed, FetchError> {
        let area = self.cfg.area.clone().unwrap_or_default();
        let cur = self.cfg.currency.clone();
        match self.cfg.source {
            PriceSource::Static | PriceSource::Schedule => Err(FetchError::Local(
                "static and schedule prices are not fetched".into(),
            )),
            PriceSource::Entsoe => {
                let f = |t: DateTime<Utc>| t.format("%Y%m%d%H%M").to_string();
                let url = format!(
                    "{}/api?documentType=A44&in_Domain={area}&out_Domain={area}&periodStart={}&periodEnd={}",
                    self.base("https://web-api.tp.entsoe.eu"),
                    f(from),
                    f(to)
                );
                let body = self.get(url).await?;
                parse_off_thread(move || entsoe::parse(&body)).await
            }
            PriceSource::Nordpool => {
                // One request per delivery day (CET), each may be unpublished.
                let mut all: Option<Parsed> = None;
                let mut no_data = Vec::new();
                for day in cet_days(from, to) {
                    let url = format!(
                        "{}/api/DayAheadPriceIndices?date={day}&market=DayAhead&indexNames={area}&currency={cur}&resolutionInMinutes=15",
                        self.base("https://dataportal-api.nordpoolgroup.com")
                    );
                    let body = self.get(url).await?;
                    let a = area.clone();
                    match parse_off_thread(move || nordpool::parse(&body, &a)).await {
                        Ok(p) => extend(&mut all, p),
                        Err(FetchError::NoData(m)) => no_data.push(format!("{day}: {m}")),
                        Err(e) => return Err(e),
                    }
                }
                all.ok_or_else(|| FetchError::NoData(no_data.join("; ")))
            }
            PriceSource::Awattar => {
                let url = format!(
                    "{}/v1/marketdata?start={}&end={}",
                    self.base("https://api.awattar.de"),
                    from.timestamp_millis(),
                    to.timestamp_millis()
                );
                let body = self.get(url).await?;
                parse_off_thread(move || awattar::parse(&body)).await
            }
            PriceSource::Tibber => {
                let q = "{ viewer { homes { currentSubscription { priceInfo { today { total energy tax startsAt currency } tomorrow { total energy tax startsAt currency } } } } } }";
                let body = serde_json::json!({ "query": q }).to_string();
                let url = format!("{}/v1-beta/gql", self.base("https://api.tibber.com"));
                // A read-only query: safe to send twice.
                let req = Request::post(url, roimon_http::Body::json(body)).idempotent(true);
                let text = get_text(&self.http, &req).await?;
                let home = self.cfg.home;
                parse_off_thread(move || tibber::parse(&text, home)).await
            }
            PriceSource::Octopus => {
                let product = self.cfg.product.clone().unwrap_or_default();
                let region = self.cfg.region.clone().unwrap_or_default();
                let f = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
                let base = self.base("https://api.octopus.energy");
                let mut url = format!(
                    "{base}/v1/products/{product}/electricity-tariffs/E-1R-{product}-{region}/standard-unit-rates/?period_from={}&period_to={}",
                    f(from),
                    f(to)
                );
                let mut all: Option<Parsed> = None;
                for page in 0..MAX_PAGES {
                    let body = match self.get(url.clone()).await {
                        Ok(b) => b,
                        // Pages are newest first: keep what was read.
                        Err(e) if all.is_some() => {
                            tracing::warn!(page, error = %roimon_http::log_safe(&roimon_http::redact(&e.to_string(), &self.scrub)), "Octopus: a later page failed; using the pages read");
                            break;
                        }
                        Err(e) => return Err(e),
                    };
                    let vat = self.cfg.include_vat;
                    let (p, next) =
                        blocking(move || octopus::parse_page(&body, vat).map_err(FetchError::from))
                            .await?;
                    extend(&mut all, p);
                    match next {
                        // Follow `next` through the configured base URL (a
                        // proxy in an air-gapped site), keeping its path and query.
                        Some(n) => url = rebase(&n, &base),
                        None => break,
                    }
                }
                all.ok_or_else(|| FetchError::NoData("no unit rates".into()))
            }
            PriceSource::Energidataservice => {
                // The API reads start and end in Danish local time.
                let f = |t: DateTime<Utc>| {
                    t.with_timezone(&chrono_tz::Europe::Copenhagen)
                        .format("%Y-%m-%dT%H:%M")
                        .to_string()
                };
                let url = format!(
                    "{}/dataset/DayAheadPrices?start={}&end={}&limit=10000&filter=%7B%22PriceArea%22:%5B%22{area}%22%5D%7D",
                    self.base("https://api.energidataservice.dk"),
                    f(from),
                    f(to)
                );
                let body = self.get(url).await?;
                parse_off_thread(move || energidataservice::parse(&body, &area, &cur)).await
            }
            PriceSource::Json => {
                let url = self
                    .cfg
                    .url
                    .clone()
                    .unwrap_or_default()
                    .replace(
                        "{start}",
                        &from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    )
                    .replace(
                        "{end}",
                        &to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    );
                let Some(m) = self.cfg.mapping.clone() else {
                    return Err(FetchError::Local("price.mapping is missing".into()));
                };
                let body = self.get(url).await?;
                parse_off_thread(move || generic::parse(&body, &m)).await
            }
            PriceSource::Csv => {
                let path = self.cfg.path.clone().unwrap_or_default();
                let unit: Unit = self
                    .cfg
                    .unit
                    .clone()
                    .unwrap_or_else(|| format!("{cur}/kWh"))
                    .parse()
                    .map_err(|e: PriceError| FetchError::Local(e.to_string()))?;
                blocking(move || {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| FetchError::Local(format!("{}: {e}", path.display())))?;
                    csv::parse(&text, unit, Some(&cur))
                        .map_err(|e| FetchError::Rejected(format!("{}: {e}", path.display())))
                })
                .await
            }
        }
    }
}

/// The adders and VAT of a price config.
pub fn adjustments(cfg: &Price) -> Adjustments {
    Adjustments {
        adders: cfg
            .adders
            .iter()
            .map(|a| (a.name.clone(), a.per_kwh))
            .collect(),
        vat: cfg.vat,
    }
}

/// What identifies a fetched price series: a kept schedule from another
/// identity (another area, product, home, URL…) is not loaded.
pub fn identity(cfg: &Price) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{:?}|{:?}|{}|{}",
        cfg.source.label(),
        cfg.currency,
        cfg.area.as_deref().unwrap_or(""),
        cfg.product.as_deref().unwrap_or(""),
        cfg.region.as_deref().unwrap_or(""),
        cfg.home,
        cfg.include_vat,
        cfg.url,
        cfg.mapping,
        cfg.path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        cfg.unit.as_deref().unwrap_or(""),
    )
}

async fn parse_off_thread(
    f: impl FnOnce() -> Result<Parsed, PriceError> + Send + 'static,
) -> Result<Parsed, FetchError> {
    blocking(move || f().map_err(FetchError::from)).await
}

/// `next` (an absolute URL from the publisher) moved onto `base`: its path
/// and query kept.
fn rebase(next: &str, base: &str) -> String {
    let rest = next
        .split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
        .unwrap_or(next);
    format!("{base}{rest}")
}

fn extend(all: &mut Option<Parsed>, p: Parsed) {
    match all {
        Some(a) => a.slots.extend(p.slots),
        None => *all = Some(p),
    }
}

/// The delivery days (in CET/CEST, as Nord Pool counts them) that `[from, to)` touches.
fn cet_days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let tz = chrono_tz::Europe::Oslo;
    let first = from.with_timezone(&tz).date_naive();
    // A window ending at midnight UTC ends on the day before in CET/CEST.
    let last = (to - TimeDelta::hours(3)).with_timezone(&tz).date_naive();
    let mut out = Vec::new();
    let mut d = first;
    while d <= last && out.len() < 31 {
        out.push(d);
        d = d.succ_opt().unwrap_or(d);
    }
    out
}

/// The window a refresh asks for: from the start of yesterday (UTC) to the
/// end of the last day ahead, so a restart after downtime refills history.
pub fn window(now: DateTime<Utc>, days_ahead: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = Utc
        .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .single()
        .unwrap_or(now);
    (
        today - TimeDelta::days(1),
        today + TimeDelta::days(i64::from(days_ahead) + 1),
    )
}

/// The tariff for a schedule under the configured fallback policy.
pub fn tariff(cfg: &Price, s: &Schedule) -> Tariff {
    Tariff::Slots {
        slots: s.core_slots(),
        fallback: PricePerKwh(cfg.price_per_kwh),
        last_known: cfg.fallback == FallbackPolicy::LastKnown,
    }
}

/// Run the feed until the runtime stops: load the kept schedule, then fetch
/// and refresh forever in the feed loop ([`crate::run`]). Failures (a missing
/// token included) are logged (redacted), reported, and retried with a
/// growing, jittered delay that honours `Retry-After`; the last good schedule
/// stays in force.
pub async fn run(
    cfg: Price,
    state_dir: PathBuf,
    retry_initial: Duration,
    tx: std::sync::mpsc::Sender<Event>,
) {
    let store = Store::new(&state_dir);
    let label = cfg.source.label();
    let id = identity(&cfg);
    let kept = {
        let (store, id, adj, cur) = (
            store.clone(),
            id.clone(),
            adjustments(&cfg),
            cfg.currency.clone(),
        );
        let now = Utc::now();
        let range = kept_range(now, window(now, cfg.days_ahead).1);
        blocking(move || Ok(store.load(label, &id, &cur, &adj, range)))
            .await
            .unwrap_or(None)
    };
    if let Some(k) = &kept {
        tracing::info!(source = label, slots = k.schedule.slots.len(), fetched_at = %k.fetched_at, "pricing from the kept schedule until the next fetch");
        let _ = tx.send(Event::Tariff(tariff(&cfg, &k.schedule), k.fetched_at));
    }
    let feed = PriceFeed {
        cfg,
        retry_initial,
        store,
        label,
        id,
        kept,
        dropped_total: 0,
    };
    crate::run(feed, tx).await;
}

/// The price feed in the feed loop: the schedule kept so far, merged with
/// each fetch.
struct PriceFeed {
    cfg: Price,
    retry_initial: Duration,
    store: Store,
    label: &'static str,
    id: String,
    kept: Option<Stored>,
    dropped_total: u64,
}

impl Feed for PriceFeed {
    type Client = Fetcher;

    fn policy(&self) -> Policy {
        let refresh = Duration::from_secs_f64(self.cfg.refresh_secs);
        Policy {
            refresh,
            retry: Retry::Backoff {
                initial: self
                    .retry_initial
                    .max(Duration::from_millis(10))
                    .min(refresh),
                max: refresh,
            },
            honour_retry_after: true,
            log: Log::EveryFailure,
        }
    }

    fn open(&mut self) -> Result<Fetcher, FetchError> {
        Fetcher::new(&self.cfg, self.retry_initial)
    }

    async fn fetch(
        &mut self,
        fetcher: &Fetcher,
        tx: &std::sync::mpsc::Sender<Event>,
    ) -> Result<Option<Duration>, FetchError> {
        let now = Utc::now();
        let (from, to) = window(now, self.cfg.days_ahead);
        let fetched = fetcher.fetch(from, to).await;
        let label = self.label;
        let new = bound_fetched(
            fetched,
            (from, to),
            now,
            label,
            "price",
            &mut self.dropped_total,
            tx,
        );
        let new = new?;
        let n = new.slots.len();
        let merged = absorb_kept(&self.store, self.kept.take(), new, label, &self.id, now).await;
        let until = merged.schedule.end();
        tracing::info!(source = label, slots = n, known_until = ?until, "price schedule fetched");
        let _ = tx.send(Event::Tariff(tariff(&self.cfg, &merged.schedule), now));
        self.kept = Some(merged);
        // Tomorrow not yet published (the schedule ends within 12 h): look
        // again every 15 minutes until it is.
        Ok(if until.is_some_and(|u| u >= now + TimeDelta::hours(12)) {
            None
        } else {
            Some(Duration::from_secs(900))
        })
    }

    fn outcome(&self, ok: bool) -> Event {
        Event::Outcome("price", ok)
    }

    fn log_cannot_start(&self, e: &FetchError, wait: Duration) {
        tracing::error!(source = self.label, error = %e, next_try_s = wait.as_secs(), "price feed cannot start; pricing at the kept schedule or the fallback");
    }

    fn log_failure(&self, e: &FetchError, failures: u32, wait: Duration) {
        tracing::warn!(source = self.label, error = %roimon_http::log_safe(&e.to_string()), failures, next_try_s = wait.as_secs(), "price fetch failed; the last good schedule (or the fallback) stays in force");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{AHEAD_SLACK_DAYS, usable};

    #[test]
    fn window_covers_yesterday_to_the_last_day_ahead() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 15, 30, 0).unwrap();
        let (a, b) = window(now, 1);
        assert_eq!(a, Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap());
        assert_eq!(b, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn nord_pool_days_are_cet_days() {
        let from = Utc.with_ymd_and_hms(2025, 10, 25, 22, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2025, 10, 26, 23, 0, 0).unwrap();
        assert_eq!(
            cet_days(from, to),
            vec![NaiveDate::from_ymd_opt(2025, 10, 26).unwrap()]
        );
    }

    #[test]
    fn a_kept_schedule_of_another_series_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let sched = Schedule {
            currency: "EUR".into(),
            slots: vec![roimon_price::PriceSlot {
                start: now,
                end: now + TimeDelta::hours(1),
                market_per_kwh: 0.1,
                price_per_kwh: 0.1,
            }],
            adjustments: Adjustments::default(),
        };
        let kept = store.absorb(None, sched, "entsoe", "entsoe|EUR|NL", now);
        assert_eq!(kept.schedule.slots.len(), 1);
        let range = kept_range(now, window(now, 1).1);
        let adj = Adjustments {
            adders: vec![("tax".into(), 0.1)],
            vat: 0.2,
        };
        // Same series: loaded, with today's adders and VAT re-applied.
        let same = store
            .load("entsoe", "entsoe|EUR|NL", "EUR", &adj, range)
            .unwrap();
        assert!((same.schedule.slots[0].price_per_kwh - 0.24).abs() < 1e-12);
        // Another area, source or currency: not loaded.
        assert!(
            store
                .load("entsoe", "entsoe|EUR|BE", "EUR", &adj, range)
                .is_none()
        );
        assert!(
            store
                .load("nordpool", "entsoe|EUR|NL", "EUR", &adj, range)
                .is_none()
        );
        assert!(
            store
                .load("entsoe", "entsoe|EUR|NL", "SEK", &adj, range)
                .is_none()
        );
    }

    #[test]
    fn next_pages_are_fetched_through_the_configured_base() {
        assert_eq!(
            rebase(
                "https://api.octopus.energy/v1/products/P/x/?page=2&period_from=a",
                "http://proxy:8080"
            ),
            "http://proxy:8080/v1/products/P/x/?page=2&period_from=a"
        );
    }

    fn slot(start: DateTime<Utc>, hours: i64, market: f64) -> roimon_price::PriceSlot {
        roimon_price::PriceSlot {
            start,
            end: start + TimeDelta::hours(hours),
            market_per_kwh: market,
            price_per_kwh: market,
        }
    }

    fn eur(slots: Vec<roimon_price::PriceSlot>) -> Schedule {
        Schedule {
            currency: "EUR".into(),
            slots,
            adjustments: Adjustments::default(),
        }
    }

    #[test]
    fn a_fetch_of_only_far_future_or_ancient_slots_is_a_failure() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let (from, to) = window(now, 1);
        let y9999 = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        let y1970 = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        for far in [y9999, y1970] {
            let s = eur((0..24)
                .map(|h| slot(far + TimeDelta::hours(h), 1, 0.1))
                .collect());
            let (res, dropped) = usable(s, now, from, to);
            assert_eq!(dropped, 24);
            let e = res.unwrap_err();
            assert!(matches!(e, FetchError::Rejected(_)), "{e}");
            assert!(e.to_string().contains("24 outside"), "{e}");
        }
        // Slots inside the kept history but none in the window: no data.
        let old = eur(vec![slot(now - TimeDelta::days(5), 1, 0.1)]);
        assert!(matches!(
            usable(old, now, from, to),
            (Err(FetchError::NoData(_)), 0)
        ));
    }

    #[test]
    fn known_until_comes_from_usable_slots_only() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let (from, to) = window(now, 1);
        let y9999 = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        let y1970 = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        let s = eur(vec![
            slot(y1970, 1, 0.1),
            slot(from, 24, 0.2),
            slot(from + TimeDelta::days(1), 24, 0.3),
            // Straddles the end of what may be kept: clipped, not dropped.
            slot(to, 72, 0.4),
            slot(y9999, 1, 0.5),
        ]);
        let (s, dropped) = usable(s, now, from, to);
        assert_eq!(dropped, 2);
        let s = s.unwrap();
        assert_eq!(s.slots.len(), 3);
        assert_eq!(s.end(), Some(to + TimeDelta::days(AHEAD_SLACK_DAYS)));
        // And a merge into a kept schedule ends there too.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let kept = store.absorb(None, s, "awattar", "a", now);
        assert_eq!(
            kept.schedule.end(),
            Some(to + TimeDelta::days(AHEAD_SLACK_DAYS))
        );
    }

    #[test]
    fn a_kept_schedule_is_pruned_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let range = kept_range(now, window(now, 1).1);
        let y9999 = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        let y1970 = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        // As an older version kept it: a year-9999 slot pinning the end.
        let stored = Stored {
            source: "awattar".into(),
            identity: "a".into(),
            fetched_at: now,
            schedule: eur(vec![
                slot(y1970, 1, 0.1),
                slot(now, 1, 0.2),
                slot(y9999, 1, 0.3),
            ]),
        };
        store.save(&stored).unwrap();
        let adj = Adjustments::default();
        let got = store.load("awattar", "a", "EUR", &adj, range).unwrap();
        assert_eq!(got.schedule.slots, vec![slot(now, 1, 0.2)]);
        // Nothing usable left: not loaded at all.
        let only_far = Stored {
            schedule: eur(vec![slot(y9999, 1, 0.3)]),
            ..stored.clone()
        };
        store.save(&only_far).unwrap();
        assert!(store.load("awattar", "a", "EUR", &adj, range).is_none());
        // Overlapping slots (a hand-edited file): not trusted.
        let overlapping = Stored {
            schedule: eur(vec![
                slot(now, 2, 0.1),
                slot(now + TimeDelta::hours(1), 1, 0.2),
            ]),
            ..stored
        };
        store.save(&overlapping).unwrap();
        assert!(store.load("awattar", "a", "EUR", &adj, range).is_none());
    }
}
