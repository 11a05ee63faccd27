//! The accounting engine: takes timestamped readings, turns them into energy,
//! money and attribution counters, and hands out snapshots. Time comes in as a
//! value; the engine never reads a clock.

use crate::cost::{Component, FixedCosts, ShareKey};
use crate::energy::EnergyMeter;
use crate::price::Tariff;
use crate::reading::HostReading;
use crate::units::Seconds;
use chrono::{DateTime, Utc};
use ingest::GpuState;
use std::collections::{BTreeMap, HashMap};

mod counters;
mod health;
mod ingest;
mod owner;
mod snapshot;
mod validate;
mod value;

pub use counters::{
    ABSURD, Counters, FUTURE_LIMIT_DAYS, InvalidCounters, Kpi, KpiKey, ModelCounts, ModelDelta,
    Row, ValueKey, ValueRow,
};
pub use health::CollectorHealth;
pub use ingest::Report;
pub use owner::{BY_GPU_OWNER, Owner, OwnerShare, RowKey, UNALLOCATED};
pub use snapshot::{BudgetView, CarbonView, GpuView, PriceView, Snapshot};

/// The `gpu_uuid` that carries costs when the node has no GPU at all.
pub const NO_GPU: &str = "none";

/// A moment, as both wall time (for prices and ledgers) and monotonic seconds
/// (for intervals and integration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// Wall-clock time, UTC.
    pub wall: DateTime<Utc>,
    /// Monotonic seconds since an arbitrary origin.
    pub mono: f64,
}

/// Everything the engine needs to know, already validated.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// ISO currency code of all money.
    pub currency: String,
    /// Power usage effectiveness (≥ 1).
    pub pue: f64,
    /// The price schedule.
    pub tariff: Tariff,
    /// The `source` label of the price.
    pub price_source: String,
    /// Fixed costs of the node.
    pub fixed: FixedCosts,
    /// How the host's share is spread over GPUs.
    pub share_key: ShareKey,
    /// GPU UUID → owner.
    pub owners: HashMap<String, Owner>,
    /// Intervals longer than this are gaps (unaccounted, not filled in).
    pub max_gap: Seconds,
}

/// Grid carbon intensity and an optional carbon price.
#[derive(Debug, Clone, PartialEq)]
pub struct Carbon {
    /// Intensity over time, grams CO2e per kWh, in the tariff's form (a
    /// "price" of grams per kWh): split across slots exactly like money.
    pub intensity: Tariff,
    /// Currency per tonne CO2e; 0 = emissions are not priced.
    pub price_per_tonne: f64,
    /// The `source` label.
    pub source: String,
    /// When the intensity data was fetched (None for a configured figure).
    pub fetched_at: Option<DateTime<Utc>>,
}

/// The accounting engine.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    counters: Counters,
    gpus: BTreeMap<String, GpuState>,
    host_meter: EnergyMeter,
    host: Option<HostReading>,
    last: Option<Tick>,
    rates: BTreeMap<Component, f64>,
    /// Cost per second in the last interval, by the GPU it was booked to
    /// (they add up to the sum of `rates`).
    gpu_rates: BTreeMap<String, f64>,
    facility_power: f64,
    collectors: BTreeMap<String, CollectorHealth>,
    price_fetched_at: Option<DateTime<Utc>>,
    carbon: Option<Carbon>,
    downtime: Option<f64>,
    roi_weights: crate::window::RoiWeights,
    /// Value targets: whether their last scrape succeeded.
    targets: BTreeMap<String, bool>,
    /// Configured (static) benefit indicator scores.
    static_kpis: Vec<Kpi>,
    /// Owners of GPUs by what runs on them (see [`Engine::set_attribution`]);
    /// a GPU not here goes to its owner of record.
    attribution: HashMap<String, Vec<OwnerShare>>,
}

/// The default rolling windows.
pub const DEFAULT_WINDOWS: [(&str, i64); 5] = [
    ("5m", 300),
    ("1h", 3600),
    ("24h", 86_400),
    ("7d", 604_800),
    ("30d", 2_592_000),
];

impl Engine {
    /// A fresh engine, optionally resuming checkpointed counters.
    pub fn new(cfg: EngineConfig, resumed: Option<Counters>) -> Self {
        let mut counters = resumed.unwrap_or_default();
        counters.currency = cfg.currency.clone();
        Self {
            cfg,
            counters,
            gpus: BTreeMap::new(),
            host_meter: EnergyMeter::default(),
            host: None,
            last: None,
            rates: BTreeMap::new(),
            gpu_rates: BTreeMap::new(),
            facility_power: 0.0,
            collectors: BTreeMap::new(),
            price_fetched_at: None,
            carbon: None,
            downtime: None,
            roi_weights: Default::default(),
            targets: BTreeMap::new(),
            static_kpis: Vec::new(),
            attribution: HashMap::new(),
        }
        .with_default_windows()
    }

    fn with_default_windows(mut self) -> Self {
        if self.counters.windows.by_label.is_empty() {
            let spec: Vec<(String, i64)> = DEFAULT_WINDOWS
                .iter()
                .map(|(l, s)| (l.to_string(), *s))
                .collect();
            self.counters.windows.configure(&spec);
        }
        self
    }

    /// Configure the ROI model: windows (label, seconds), weights and the
    /// static benefit indicator scores.
    pub fn set_roi(
        &mut self,
        windows: &[(String, i64)],
        weights: crate::window::RoiWeights,
        static_kpis: Vec<Kpi>,
    ) {
        self.counters.windows.configure(windows);
        self.roi_weights = weights;
        self.static_kpis = static_kpis;
    }

    /// Put grid carbon intensity (and its price) in force from the next tick.
    pub fn set_carbon(&mut self, carbon: Option<Carbon>) {
        self.carbon = carbon;
    }

    /// Put a new price schedule in force from the next tick on; `fetched_at`
    /// is when its data was obtained (None for configured prices).
    /// Energy already booked keeps the price it was booked at.
    pub fn set_tariff(&mut self, tariff: Tariff, fetched_at: Option<DateTime<Utc>>) {
        self.cfg.tariff = tariff;
        self.price_fetched_at = fetched_at;
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The counters, for checkpointing.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Seconds of downtime the first tick after a restart booked (fixed
    /// costs accrue while roimon is stopped), taken once.
    pub fn take_downtime(&mut self) -> Option<f64> {
        self.downtime.take()
    }
}

#[cfg(test)]
mod tests;
