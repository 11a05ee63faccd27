//! What exporters read: a [`Snapshot`] detached from the engine (GPUs,
//! price and carbon in force, counters, rates, windows, health), and the copy
//! of the counters the daemon publishes.

use super::{CollectorHealth, Counters, Engine, Owner};
use crate::cost::Component;
use crate::price::{Basis, Tariff};
use crate::reading::{GpuReading, HostReading};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The carbon intensity in force, as exporters see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarbonView {
    /// Grams CO2e per kWh in force.
    pub grams_per_kwh: f64,
    /// What it rests on.
    pub basis: Basis,
    /// Source label.
    pub source: String,
    /// Seconds since the data was fetched (0 for configured).
    pub age_seconds: f64,
}

/// A GPU as the exporters see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuView {
    /// Last reading.
    pub reading: GpuReading,
    /// Owner.
    pub owner: Owner,
    /// Whether it answered in the last tick.
    pub present: bool,
}

/// The current price as exporters see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceView {
    /// Price per kWh in force.
    pub price_per_kwh: f64,
    /// Currency.
    pub currency: String,
    /// Source label.
    pub source: String,
    /// Whether the fallback is in force.
    pub fallback: bool,
    /// What the price rests on (source, fallback, last_known).
    pub basis: Basis,
    /// Seconds since the schedule in force was fetched; 0 for prices that
    /// come from the configuration (static, time-of-use).
    pub age_seconds: f64,
    /// End of the last slot the schedule knows, for fetched schedules.
    pub known_until: Option<DateTime<Utc>>,
}

/// Everything exporters need, detached from the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// When it was taken (last tick).
    pub at: Option<DateTime<Utc>>,
    /// GPUs by UUID.
    pub gpus: BTreeMap<String, GpuView>,
    /// Last host reading.
    pub host: Option<HostReading>,
    /// Power usage effectiveness in use.
    pub pue: f64,
    /// Price in force.
    pub price: PriceView,
    /// Totals (attributed rows included).
    pub counters: Counters,
    /// Cost per second in the last interval, by component.
    pub cost_rate_per_sec: BTreeMap<Component, f64>,
    /// Cost per second in the last interval by GPU UUID (`none` on a node
    /// without GPUs): the GPU's own energy and its share of the host's
    /// energy and of the fixed costs. They add up to the node's rate.
    pub gpu_cost_rate_per_sec: BTreeMap<String, f64>,
    /// Facility power in the last interval, W.
    pub facility_power_watts: f64,
    /// Collector health.
    pub collectors: BTreeMap<String, CollectorHealth>,
    /// Grid carbon intensity in force, when carbon is configured.
    pub carbon: Option<CarbonView>,
    /// Configured owner UUIDs that match no GPU NVML has reported (typos,
    /// case changes, placeholders: their GPUs' cost goes to `unallocated`).
    /// Empty until a GPU has been seen.
    pub unmatched_owners: Vec<String>,
    /// Rolling windows: value, cost, ROI, weighted efficiency, unit
    /// economics, per owner.
    pub windows: Vec<crate::window::WindowView>,
    /// The node's benefit indicator scores in force.
    pub scores: BTreeMap<String, f64>,
    /// Value targets: whether their last scrape succeeded.
    pub targets: BTreeMap<String, bool>,
    /// Monthly budgets with their month-to-date spend and forecast (set by
    /// the daemon from its ledger; empty without `[[budget]]`).
    pub budgets: Vec<BudgetView>,
    /// Seconds of ledger history the budgets' run rate (and so their
    /// forecast) rests on (set by the daemon with `budgets`).
    pub budget_basis_seconds: Option<f64>,
}

/// A monthly budget of an owner (a team, or one workload of it) against
/// what the ledger says it spent this month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetView {
    /// Team.
    pub team: String,
    /// Workload (empty: the whole team).
    pub workload: String,
    /// Currency.
    pub currency: String,
    /// The budget for the month.
    pub monthly: f64,
    /// Net cost (cost − credit) booked this month so far.
    pub spent: f64,
    /// Month-end spend if the recent run rate holds.
    pub forecast: f64,
}

impl Engine {
    /// A copy of the counters for publishing: without `extensions` (the
    /// value sources' state, e.g. a push dedup window of megabytes, which
    /// no exporter reads and which would otherwise be copied every tick).
    pub fn counters_to_publish(&mut self) -> Counters {
        let ext = std::mem::take(&mut self.counters.extensions);
        let copy = self.counters.clone();
        self.counters.extensions = ext;
        copy
    }

    /// A detached view of everything, for exporters.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(self.counters.clone())
    }

    /// The windows' figures from the live counters. An owner without any
    /// value source of its own (no value row: nothing scraped or pushed
    /// for it) has no ROI and no baseline: its return is not measured, not
    /// −100 % (as a node without any value source has none).
    fn window_views(
        &self,
        now: DateTime<Utc>,
        scores: &BTreeMap<String, f64>,
        owner_scores: &BTreeMap<Owner, BTreeMap<String, f64>>,
    ) -> Vec<crate::window::WindowView> {
        let mut views = self.counters.windows.views(
            now,
            &self.counters.totals(),
            !self.counters.value.is_empty(),
            &self.roi_weights,
            scores,
            owner_scores,
        );
        let valued: std::collections::BTreeSet<(&str, &str)> = self
            .counters
            .value
            .keys()
            .map(|k| (k.team.as_str(), k.workload.as_str()))
            .collect();
        for o in views.iter_mut().flat_map(|w| w.owners.iter_mut()) {
            if !valued.contains(&(o.team.as_str(), o.workload.as_str())) {
                o.roi = None;
                o.baseline_roi = None;
                o.baseline_span_secs = None;
            }
        }
        views
    }

    /// A snapshot carrying `counters` instead of the live ones (the daemon
    /// publishes the last checkpointed counters).
    pub fn snapshot_with(&self, counters: Counters) -> Snapshot {
        let owner_scores = self.owner_scores();
        let scores = self.scores_of(&owner_scores);
        let at = self.last.map(|t| t.wall);
        let now = at.unwrap_or_else(|| self.counters.last_wall.unwrap_or_default());
        let (price, basis) = self.cfg.tariff.price_basis_at(now);
        let known_until = match &self.cfg.tariff {
            Tariff::Slots { slots, .. } => slots.last().map(|s| s.end),
            _ => None,
        };
        let age_seconds = self.price_fetched_at.map_or(0.0, |f| {
            ((now - f).num_milliseconds() as f64 / 1000.0).max(0.0)
        });
        let gpus = self
            .gpus
            .iter()
            .map(|(u, st)| {
                (
                    u.clone(),
                    GpuView {
                        reading: st.latest.clone(),
                        owner: self.owner_of(u),
                        present: st.present,
                    },
                )
            })
            .collect();
        Snapshot {
            at,
            gpus,
            host: self.host.clone(),
            pue: self.cfg.pue,
            price: PriceView {
                price_per_kwh: price.0,
                currency: self.cfg.currency.clone(),
                source: self.cfg.price_source.clone(),
                fallback: basis != Basis::Source,
                basis,
                age_seconds,
                known_until,
            },
            counters,
            cost_rate_per_sec: self.rates.clone(),
            gpu_cost_rate_per_sec: self.gpu_rates.clone(),
            facility_power_watts: self.facility_power,
            collectors: self.collectors.clone(),
            // Gauges: from the live counters and the live boundaries (a
            // published counter may be a checkpoint behind them).
            windows: self.window_views(now, &scores, &owner_scores),
            scores,
            targets: self.targets.clone(),
            budgets: Vec::new(),
            budget_basis_seconds: None,
            unmatched_owners: if self.gpus.is_empty() {
                Vec::new()
            } else {
                let mut v: Vec<String> = self
                    .cfg
                    .owners
                    .keys()
                    .filter(|u| !self.gpus.contains_key(*u))
                    .cloned()
                    .collect();
                v.sort();
                v
            },
            carbon: self.carbon.as_ref().map(|c| {
                let (g, basis) = c.intensity.price_basis_at(now);
                CarbonView {
                    grams_per_kwh: g.0,
                    basis,
                    source: c.source.clone(),
                    age_seconds: c.fetched_at.map_or(0.0, |f| {
                        ((now - f).num_milliseconds() as f64 / 1000.0).max(0.0)
                    }),
                }
            }),
        }
    }
}
