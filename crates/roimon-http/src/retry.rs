//! When to try a request again and how long to wait first: one backoff policy
//! (exponential, with jitter) shared by every caller, `Retry-After`, and a
//! small [`RetryLogic`] per destination saying what a status means.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// Longest `Retry-After` believed (a day); longer is taken as a day.
pub const MAX_HINT: Duration = Duration::from_secs(86_400);

/// A small xorshift generator for retry jitter (no cryptographic use).
#[derive(Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and the process id, so nodes started together
    /// do not draw the same numbers.
    pub fn new() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter((t ^ u64::from(std::process::id()).rotate_left(32)) | 1)
    }

    /// Seeded with `seed` (tests).
    pub fn seeded(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

/// Retry timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub retries: u32,
    /// First backoff.
    pub initial: Duration,
    /// Longest wait (also the longest `Retry-After` waited for within one
    /// call; a longer one ends the call and is handed to the caller).
    pub max: Duration,
}

impl RetryPolicy {
    /// Backoff before retry `attempt` (0-based): exponential, with "equal
    /// jitter" (half fixed, half random) so many nodes do not retry in step.
    pub fn backoff(&self, attempt: u32, jitter: &mut Jitter) -> Duration {
        let exp = self.initial.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
        let d = exp.min(self.max.as_secs_f64());
        Duration::from_secs_f64(d / 2.0 + d / 2.0 * jitter.next_unit())
    }

    /// One backoff with fresh jitter.
    pub fn backoff_once(&self, attempt: u32) -> Duration {
        self.backoff(attempt, &mut Jitter::new())
    }
}

/// `d` spread by ±10 % so that thousands of nodes started together do not
/// refresh in step.
pub fn spread(d: Duration) -> Duration {
    Duration::from_secs_f64(d.as_secs_f64() * (0.9 + 0.2 * Jitter::new().next_unit()))
}

/// `Retry-After`: delta seconds or an HTTP date, at most [`MAX_HINT`].
pub fn retry_after(h: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_HINT))
}

/// What an answer that is not a success means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after the server's `Retry-After` if it sent one, else after
    /// the backoff.
    Retry,
    /// Give up: trying again cannot help (a bad token, a bad request).
    DontRetry,
}

/// Per destination: whether a status is worth another try. Only consulted
/// for requests that may be sent twice (see `Request::idempotent`).
pub trait RetryLogic: Send + Sync {
    /// The decision for a response with this (non-2xx) status.
    fn status(&self, code: u16) -> Decision;
}

/// 429 and every 5xx are retried; other statuses are not.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRetryLogic;

impl RetryLogic for DefaultRetryLogic {
    fn status(&self, code: u16) -> Decision {
        if code == 429 || (500..600).contains(&code) {
            Decision::Retry
        } else {
            Decision::DontRetry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            retries: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let mut j = Jitter::seeded(42);
        for attempt in 0..8 {
            let d = p.backoff(attempt, &mut j).as_secs_f64();
            let full = (2f64.powi(attempt as i32)).min(10.0);
            assert!(
                d >= full / 2.0 && d <= full,
                "attempt {attempt}: {d} vs {full}"
            );
        }
        let a: Vec<f64> = (0..5).map(|_| p.backoff(3, &mut j).as_secs_f64()).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "no jitter: {a:?}");
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = reqwest::header::HeaderMap::new();
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Sun, 29 Nov 2026 12:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
        h.insert(reqwest::header::RETRY_AFTER, "9999999".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(MAX_HINT));
    }

    #[test]
    fn the_default_logic_retries_429_and_5xx_only() {
        let l = DefaultRetryLogic;
        for c in [429, 500, 502, 503, 504] {
            assert_eq!(l.status(c), Decision::Retry, "{c}");
        }
        for c in [400, 401, 403, 404, 413] {
            assert_eq!(l.status(c), Decision::DontRetry, "{c}");
        }
    }
}
