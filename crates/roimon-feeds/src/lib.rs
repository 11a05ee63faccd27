//! One loop for every outside source the daemon fetches on its own (prices,
//! carbon intensity, the pod list, each value target): build the client
//! (retried until it can be built), fetch, and wait, with a panic in a fetch
//! counted as one failure and the loop going on, exponential backoff with
//! jitter after failures, and the outcome sent to the sampler's inbox.
//! Where the feeds differ (how soon to retry, whether `Retry-After` is
//! honoured, how often a failure is logged) it is the feed's [`Policy`].
//!
//! The feeds: electricity prices (`price`, with the schedule kept in the
//! state dir, `schedule`), grid carbon intensity (`carbon`), the pod list
//! for attribution (`pods`) and each value target (`value`). A new outside
//! source is a [`Feed`] here; what it sends is an event of the daemon's
//! inbox.

pub mod carbon;
pub mod fetch;
pub mod pods;
pub mod price;
pub mod schedule;
pub mod value;

pub use fetch::{FetchError, base_url, blocking, get_text, http_client, redact_error, secrets};

use roimon_daemon::inbox::Event;
use roimon_http::{Jitter, RetryPolicy, spread};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::Sender;
use std::task::Poll;
use std::time::Duration;

/// How a feed is paced and heard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The wait after a good fetch, spread by ±10 % so that nodes started
    /// together do not fetch in step (a fetch may ask for a shorter one).
    pub refresh: Duration,
    /// The wait after a failed fetch, or a client that could not be built.
    pub retry: Retry,
    /// Whether a server's `Retry-After` lengthens the wait after a failure.
    pub honour_retry_after: bool,
    /// Whether every failure is logged (each line counting the failures and
    /// naming the next try), or only the first of a streak and the recovery.
    pub log: Log,
}

/// The wait after a failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Exponential backoff with jitter: from `initial`, doubling with each
    /// failure in a row up to `max`; each wait is half to all of that.
    Backoff {
        /// The first wait.
        initial: Duration,
        /// The longest wait.
        max: Duration,
    },
    /// At the next refresh, as after a good fetch: the source is read on an
    /// interval and the next one is the retry.
    AtRefresh,
}

/// How often failures are logged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Log {
    /// Every failure (a schedule's publisher: each try and its backoff shown).
    EveryFailure,
    /// The first failure of a streak, and the recovery.
    OncePerStreak,
}

/// An outside source, fetched for ever by [`run`].
pub trait Feed: Send + 'static {
    /// What a fetch goes through (an HTTP client with the feed's secrets).
    type Client: Send + Sync;

    /// How this feed is paced and heard.
    fn policy(&self) -> Policy;

    /// Build the client; a failure (an unreadable token, a bad CA file) is
    /// retried like a failed fetch.
    fn open(&mut self) -> Result<Self::Client, FetchError>;

    /// One fetch: what it produced goes to `tx`; the outcome does not (the
    /// loop sends it, see [`Feed::outcome`]). `Ok` may ask for the next
    /// fetch sooner than the policy's refresh.
    fn fetch(
        &mut self,
        client: &Self::Client,
        tx: &Sender<Event>,
    ) -> impl Future<Output = Result<Option<Duration>, FetchError>> + Send;

    /// The event that reports a fetch's outcome, for health and error counts.
    fn outcome(&self, ok: bool) -> Event;

    /// The event that says why a fetch failed (or the client could not be
    /// built), sent after the failed outcome: the outcome's source with the
    /// error's log-safe text.
    fn failure(&self, e: &FetchError) -> Option<Event> {
        let why = roimon_http::log_safe(&e.to_string());
        match self.outcome(false) {
            Event::Outcome(name, _) => Some(Event::Failed(name, why)),
            Event::Target(name, _) => Some(Event::TargetFailed(name, why)),
            _ => None,
        }
    }

    /// Log that the client cannot be built; the next try is after `wait`.
    fn log_cannot_start(&self, e: &FetchError, wait: Duration);

    /// Log a failed fetch, the `failures`-th in a row; the next is after `wait`.
    fn log_failure(&self, e: &FetchError, failures: u32, wait: Duration);

    /// Log a good fetch; `recovered` when it ends a failure streak. Feeds
    /// that log each fetch's result as they fetch leave it at nothing.
    fn log_success(&self, recovered: bool) {
        let _ = recovered;
    }
}

/// Fetch `feed` until the runtime stops or the inbox is closed.
pub async fn run<F: Feed>(mut feed: F, tx: Sender<Event>) {
    let policy = feed.policy();
    let mut jitter = Jitter::new();
    let mut failures: u32 = 0;
    let client = loop {
        match feed.open() {
            Ok(c) => break c,
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = policy.after_failure(failures, None, &mut jitter);
                if policy.log == Log::EveryFailure || failures == 1 {
                    feed.log_cannot_start(&e, wait);
                }
                if tx.send(feed.outcome(false)).is_err() {
                    return;
                }
                if let Some(why) = feed.failure(&e) {
                    let _ = tx.send(why);
                }
                tokio::time::sleep(wait).await;
            }
        }
    };
    let mut failing = false;
    failures = 0;
    loop {
        let fetched = caught(feed.fetch(&client, &tx)).await.unwrap_or_else(|e| {
            Err(FetchError::Rejected(format!(
                "internal error in the fetch: {e}"
            )))
        });
        let wait = match fetched {
            Ok(sooner) => {
                feed.log_success(failing);
                failing = false;
                failures = 0;
                if tx.send(feed.outcome(true)).is_err() {
                    return;
                }
                spread(sooner.map_or(policy.refresh, |s| s.min(policy.refresh)))
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = policy.after_failure(failures, e.retry_after(), &mut jitter);
                if policy.log == Log::EveryFailure || !failing {
                    feed.log_failure(&e, failures, wait);
                }
                failing = true;
                if tx.send(feed.outcome(false)).is_err() {
                    return;
                }
                if let Some(why) = feed.failure(&e) {
                    let _ = tx.send(why);
                }
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

impl Policy {
    /// The wait after the `failures`-th failure in a row, which the server
    /// may have asked to be at least `hint`.
    fn after_failure(
        &self,
        failures: u32,
        hint: Option<Duration>,
        jitter: &mut Jitter,
    ) -> Duration {
        let wait = match self.retry {
            Retry::Backoff { initial, max } => RetryPolicy {
                retries: 0,
                initial,
                max,
            }
            .backoff(failures.saturating_sub(1), jitter),
            Retry::AtRefresh => spread(self.refresh),
        };
        match hint {
            Some(h) if self.honour_retry_after => wait.max(h),
            _ => wait,
        }
    }
}

/// Run `fut` to its end, a panic inside it caught and returned as its text.
async fn caught<T>(fut: impl Future<Output = T>) -> Result<T, String> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into()))),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feed whose client fails to build twice, whose first fetch panics,
    /// whose second succeeds and whose later ones fail.
    struct Flaky {
        opens: u32,
        fetches: u32,
    }

    impl Feed for Flaky {
        type Client = ();

        fn policy(&self) -> Policy {
            Policy {
                refresh: Duration::from_millis(1),
                retry: Retry::Backoff {
                    initial: Duration::from_millis(1),
                    max: Duration::from_millis(2),
                },
                honour_retry_after: true,
                log: Log::OncePerStreak,
            }
        }

        fn open(&mut self) -> Result<(), FetchError> {
            self.opens += 1;
            if self.opens < 3 {
                Err(FetchError::Local("no token".into()))
            } else {
                Ok(())
            }
        }

        async fn fetch(
            &mut self,
            _: &(),
            tx: &Sender<Event>,
        ) -> Result<Option<Duration>, FetchError> {
            self.fetches += 1;
            match self.fetches {
                1 => panic!("a bug in a parser"),
                2 => {
                    let _ = tx.send(Event::Dropped("test", 1));
                    Ok(None)
                }
                _ => Err(FetchError::Http("down".into(), None)),
            }
        }

        fn outcome(&self, ok: bool) -> Event {
            Event::Outcome("test", ok)
        }

        fn log_cannot_start(&self, _: &FetchError, _: Duration) {}

        fn log_failure(&self, _: &FetchError, _: u32, _: Duration) {}
    }

    #[tokio::test]
    async fn a_client_is_retried_a_panic_is_one_failure_and_a_closed_inbox_ends_the_loop() {
        let (tx, rx) = std::sync::mpsc::channel();
        let task = tokio::spawn(run(
            Flaky {
                opens: 0,
                fetches: 0,
            },
            tx,
        ));
        let mut seen = Vec::new();
        let mut why = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < 6 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            for e in rx.try_iter() {
                match e {
                    Event::Failed(name, text) => why.push(format!("{name}: {text}")),
                    e => seen.push(format!("{e:?}")),
                }
            }
        }
        // Each failure says why, after its outcome.
        assert_eq!(
            why[..4],
            [
                "test: no token",
                "test: no token",
                "test: rejected: internal error in the fetch: a bug in a parser",
                "test: HTTP: down",
            ]
        );
        let fail = "Outcome(\"test\", false)";
        assert_eq!(
            seen[..6],
            [
                // The client, twice.
                fail,
                fail,
                // The panicking fetch.
                fail,
                // The good one: what it sent, then its outcome.
                "Dropped(\"test\", 1)",
                "Outcome(\"test\", true)",
                fail,
            ]
        );
        drop(rx);
        let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
        assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
    }

    #[test]
    fn retry_after_lengthens_the_wait_only_where_honoured() {
        let mut policy = Policy {
            refresh: Duration::from_secs(60),
            retry: Retry::Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(8),
            },
            honour_retry_after: true,
            log: Log::EveryFailure,
        };
        let mut j = Jitter::seeded(7);
        let hint = Some(Duration::from_secs(30));
        // Backoff alone: half to all of 1, 2, 4, 8, 8 s.
        for (n, most) in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)] {
            let w = policy.after_failure(n, None, &mut j);
            let most = Duration::from_secs(most);
            assert!(w >= most / 2 && w <= most, "{n}: {w:?}");
        }
        assert!(policy.after_failure(1, hint, &mut j) >= Duration::from_secs(30));
        policy.honour_retry_after = false;
        assert!(policy.after_failure(1, hint, &mut j) <= Duration::from_secs(1));
        // At the refresh: the refresh, spread by 10 %.
        policy.retry = Retry::AtRefresh;
        let w = policy.after_failure(5, None, &mut j);
        assert!(
            w >= Duration::from_secs(54) && w <= Duration::from_secs(66),
            "{w:?}"
        );
    }
}
