//! The sampler's inbox: the closed set of events the outside sources (the
//! price, carbon, pod list and value feeds) and the push endpoint send to the
//! sampler, which owns the engine and applies them between ticks. It lives
//! next to its one consumer, so a producer needs only this module, not
//! another producer.

use chrono::{DateTime, Utc};
use roimon_core::{ModelDelta, Tariff};
use roimon_value::PushedPoint;

/// What a feed or the push endpoint tells the sampler.
#[derive(Debug)]
pub enum Event {
    /// A new schedule to put in force, fetched at that time.
    Tariff(Tariff, DateTime<Utc>),
    /// The outcome of a fetch by the named feed (`price`, `carbon`, `pods`),
    /// for health and error counting.
    Outcome(&'static str, bool),
    /// New grid carbon intensity to put in force.
    Carbon(roimon_core::Carbon),
    /// Fetched slots the named feed dropped for lying outside the time a
    /// schedule may cover.
    Dropped(&'static str, u64),
    /// What a value target's scrape produced.
    Value(ValueUpdate),
    /// Whether a value target's scrape succeeded.
    Target(String, bool),
    /// Why the named feed's last fetch failed (log-safe words), for the
    /// status page; sent with the failed [`Event::Outcome`].
    Failed(&'static str, String),
    /// Why a value target's last scrape failed (log-safe words), for the
    /// status page; sent with the failed [`Event::Target`].
    TargetFailed(String, String),
    /// A pushed batch to apply (deduplicated, booked, checkpointed); the
    /// reply says how many points counted and how many were duplicates.
    Push(Job),
    /// A new pod list (pods by UID) for attribution rules on pod labels.
    Pods(std::sync::Arc<roimon_attribution::PodIndex>),
}

/// Who owns a target's value.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnerSpec {
    /// One owner.
    Owner(roimon_core::Owner),
    /// The owners of these GPUs, in equal shares.
    Gpus(Vec<String>),
}

/// What one scrape produced, for the sampler to book.
#[derive(Debug, Clone)]
pub struct ValueUpdate {
    /// The target's label.
    pub target: String,
    /// Its owners.
    pub owners: OwnerSpec,
    /// Money produced since the last scrape.
    pub money: f64,
    /// Tokens and requests per model since the last scrape.
    pub models: Vec<ModelDelta>,
    /// The target's counter state after this scrape (JSON), kept with the
    /// counters.
    pub state: String,
    /// Figures refused by this scrape, by reason (`reason` label).
    pub rejected: Vec<(&'static str, u64)>,
}

/// A batch for the sampler to apply.
#[derive(Debug)]
pub struct Job {
    /// The points, validated.
    pub points: Vec<PushedPoint>,
    /// Now, ns since the epoch.
    pub now_ns: i64,
    /// (points counted, duplicates dropped), or why it was not booked.
    pub reply: tokio::sync::oneshot::Sender<Result<(usize, usize), Refusal>>,
}

/// Why the sampler did not book a batch (nothing of it was booked).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The batch would go over a cap (owners, KPIs per owner) or make a
    /// figure non-finite: 400, for good.
    Invalid {
        reason: &'static str,
        message: String,
        line: Option<usize>,
    },
    /// Booked in memory but not on disk: 503, retry (it counts once).
    Unavailable(String),
}

/// The key under which a value target's counter state is kept in the
/// checkpoint.
pub fn value_state_key(target: &str) -> String {
    format!("value.target.{target}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_target_keeps_its_state_under_the_key_older_checkpoints_use() {
        // Checkpoints written by every earlier version hold the state under
        // this key; another key would restart each target from a baseline.
        assert_eq!(super::value_state_key("vllm-0"), "value.target.vllm-0");
    }
}
