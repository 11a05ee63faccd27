//! `[push]`: value and benefit scores pushed in as InfluxDB line protocol on
//! `POST /api/v2/write`: the token, the body cap, how far from now a point
//! may lie, and the duplicate window that makes a client's retry count once.

use serde::Deserialize;
use std::path::PathBuf;

/// `[push]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Push {
    /// `Authorization: Token <t>` is required when set: from the environment …
    pub token_env: Option<String>,
    /// … or a file.
    pub token_file: Option<PathBuf>,
    /// Largest request body (after gzip decoding), bytes.
    pub max_body_bytes: u64,
    /// Points older than this are refused (counted), seconds.
    pub max_age_secs: f64,
    /// Points further ahead than this are refused (counted), seconds.
    pub max_future_secs: f64,
    /// Identical points within this span count once (a client's retry).
    pub dedup_window_secs: f64,
    /// At most this many points are remembered for deduplication.
    pub dedup_max_points: usize,
}

impl Default for Push {
    fn default() -> Self {
        Self {
            token_env: None,
            token_file: None,
            max_body_bytes: 8 << 20,
            max_age_secs: 86_400.0,
            max_future_secs: 300.0,
            dedup_window_secs: 86_400.0,
            dedup_max_points: 100_000,
        }
    }
}

/// Semantic checks of `[push]`.
pub fn check_push(p: &Push) -> Option<(String, String)> {
    if p.token_env.is_some() && p.token_file.is_some() {
        return Some((
            "push.token_file".into(),
            "give token_env or token_file, not both".into(),
        ));
    }
    if !(1024..=(256 << 20)).contains(&p.max_body_bytes) {
        return Some((
            "push.max_body_bytes".into(),
            format!(
                "must be between 1 KiB and 256 MiB, got {}",
                p.max_body_bytes
            ),
        ));
    }
    for (k, v, max) in [
        ("max_age_secs", p.max_age_secs, 31_622_400.0),
        ("max_future_secs", p.max_future_secs, 86_400.0),
        ("dedup_window_secs", p.dedup_window_secs, 31_622_400.0),
    ] {
        if !(v.is_finite() && (0.0..=max).contains(&v)) {
            return Some((
                format!("push.{k}"),
                format!("must be between 0 and {max} seconds, got {v}"),
            ));
        }
    }
    if p.dedup_window_secs < p.max_age_secs {
        return Some((
            "push.dedup_window_secs".into(),
            format!(
                "must be at least push.max_age_secs ({}): a retry of a point still accepted must still be recognised, got {}",
                p.max_age_secs, p.dedup_window_secs
            ),
        ));
    }
    if !(1..=10_000_000).contains(&p.dedup_max_points) {
        return Some((
            "push.dedup_max_points".into(),
            format!("must be between 1 and 10000000, got {}", p.dedup_max_points),
        ));
    }
    None
}
