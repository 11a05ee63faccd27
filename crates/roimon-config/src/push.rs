//! `[push]`: value and benefit scores pushed in as InfluxDB line protocol on
//! `POST /api/v2/write`: the token, the body cap, how far from now a point
//! may lie, and the duplicate window that makes a client's retry count once.

use crate::{Check, Ctx, Failure};
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
    /// Largest `amount` of one `roimon_value` point, in the price currency.
    pub max_amount: f64,
    /// Owners (`team/workload` or `team/*`) a push may name besides those
    /// the configuration already knows (`[[gpu.owners]]`, attribution
    /// rules, `[[value.scrape]]` targets, `[[budget]]` entries).
    pub allowed_owners: Vec<String>,
    /// Accept any owner (still under the cap of distinct pushed owners).
    pub allow_unknown_owners: bool,
    /// Accept KPI names the configuration does not know
    /// (`roi.benefit_weights` keys, `[[value.kpis]]` names).
    pub allow_new_kpis: bool,
    /// Accept pushes without a token or basic auth on a listener that is
    /// not loopback.
    pub allow_unauthenticated: bool,
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
            max_amount: 1e9,
            allowed_owners: Vec::new(),
            allow_unknown_owners: false,
            allow_new_kpis: false,
            allow_unauthenticated: false,
        }
    }
}

/// Longest team, workload or other name, in bytes (pushes, scraped labels
/// and the configuration alike).
pub const MAX_NAME_BYTES: usize = 128;

impl Check for Push {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        let p = self;
        if p.token_env.is_some() && p.token_file.is_some() {
            return ctx.fail("token_file", "give token_env or token_file, not both");
        }
        if !(1024..=(256 << 20)).contains(&p.max_body_bytes) {
            return ctx.fail(
                "max_body_bytes",
                format!(
                    "must be between 1 KiB and 256 MiB, got {}",
                    p.max_body_bytes
                ),
            );
        }
        for (k, v, max) in [
            ("max_age_secs", p.max_age_secs, 31_622_400.0),
            ("max_future_secs", p.max_future_secs, 86_400.0),
            ("dedup_window_secs", p.dedup_window_secs, 31_622_400.0),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return ctx.fail(k, format!("must be between 0 and {max} seconds, got {v}"));
            }
        }
        if p.dedup_window_secs < p.max_age_secs {
            return ctx.fail(
                "dedup_window_secs",
                format!(
                    "must be at least push.max_age_secs ({}): a retry of a point still accepted must still be recognised, got {}",
                    p.max_age_secs, p.dedup_window_secs
                ),
            );
        }
        if !(p.max_amount.is_finite() && p.max_amount > 0.0 && p.max_amount <= 1e15) {
            return ctx.fail(
                "max_amount",
                format!(
                    "must be a number above 0 and at most 1e15, got {}",
                    p.max_amount
                ),
            );
        }
        for (i, o) in p.allowed_owners.iter().enumerate() {
            let key = ctx.at("allowed_owners").item(i);
            let Some((team, workload)) = o.split_once('/') else {
                return Err((
                    key.path().into(),
                    format!("`{o}` is not `team/workload` or `team/*`"),
                ));
            };
            if team.trim().is_empty() || workload.trim().is_empty() || workload.contains('/') {
                return Err((
                    key.path().into(),
                    format!("`{o}` is not `team/workload` or `team/*`"),
                ));
            }
            if let Err(e) = roimon_value::check_name("the owner", o, 2 * MAX_NAME_BYTES + 1) {
                return Err((key.path().into(), e));
            }
        }
        if !(1..=10_000_000).contains(&p.dedup_max_points) {
            return ctx.fail(
                "dedup_max_points",
                format!("must be between 1 and 10000000, got {}", p.dedup_max_points),
            );
        }
        Ok(())
    }
}

/// The owners a push may name by default: those of `[[gpu.owners]]`,
/// attribution rules, `[[value.scrape]]` targets and `[[budget]]` entries
/// (a budget without a workload admits its whole team), plus
/// `push.allowed_owners`. `None` when `push.allow_unknown_owners` is set.
pub fn known_owners(cfg: &super::Config) -> Option<roimon_value::KnownOwners> {
    if cfg.push.allow_unknown_owners {
        return None;
    }
    let mut k = roimon_value::KnownOwners::default();
    for o in &cfg.gpu.owners {
        k.add(&o.team, &o.workload);
    }
    for r in &cfg.attribution.rules {
        k.add(&r.team, &r.workload);
    }
    for t in &cfg.value.scrape {
        if let Some(team) = &t.team {
            k.add(
                team,
                t.workload
                    .as_deref()
                    .unwrap_or(roimon_core::engine::UNALLOCATED),
            );
        }
    }
    for kpi in &cfg.value.kpis {
        k.add(&kpi.team, &kpi.workload);
    }
    for b in &cfg.budget {
        k.add(&b.team, b.workload.as_deref().unwrap_or("*"));
    }
    for o in &cfg.push.allowed_owners {
        if let Some((t, w)) = o.split_once('/') {
            k.add(t.trim(), w.trim());
        }
    }
    Some(k)
}

/// The KPI names a push may carry: `roi.benefit_weights` keys and
/// `[[value.kpis]]` names; `None` when `push.allow_new_kpis` is set.
pub fn kpi_names(cfg: &super::Config) -> Option<std::collections::BTreeSet<String>> {
    if cfg.push.allow_new_kpis {
        return None;
    }
    Some(
        cfg.roi
            .benefit_weights
            .keys()
            .cloned()
            .chain(cfg.value.kpis.iter().map(|k| k.name.clone()))
            .collect(),
    )
}
