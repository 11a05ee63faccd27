//! The accounting engine: takes timestamped readings, turns them into energy,
//! money and attribution counters, and hands out snapshots. Time comes in as a
//! value; the engine never reads a clock.

use crate::cost::{Component, FixedCosts, ShareKey, shares};
use crate::energy::EnergyMeter;
use crate::price::Tariff;
use crate::reading::{GpuReading, HostReading, Reading, SampleError};
use crate::units::{Accumulator, Joules, Money, Seconds};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};

mod counters;
mod health;
mod owner;
mod snapshot;
mod validate;

pub use counters::{
    ABSURD, Counters, FUTURE_LIMIT_DAYS, InvalidCounters, Kpi, KpiKey, ModelCounts, ModelDelta,
    Row, ValueKey, ValueRow,
};
pub use health::CollectorHealth;
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

/// One collector's result for a tick.
#[derive(Debug, Clone)]
pub struct Report {
    /// The `collector` label.
    pub collector: &'static str,
    /// What it produced.
    pub outcome: Result<Vec<Reading>, SampleError>,
}

#[derive(Debug, Clone)]
struct GpuState {
    meter: EnergyMeter,
    latest: GpuReading,
    /// Monotonic time up to which a gap has already been counted.
    gap_mark: Option<f64>,
    present: bool,
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

    /// Book value produced for `owners` (weights summing to 1) from
    /// `source`: money and per-model token and request deltas. Negative or
    /// non-finite amounts are refused (value counters never go back), and
    /// so is a booking that would take any counter it touches beyond a
    /// finite number: then nothing of it is booked and `false` returned.
    pub fn book_value(
        &mut self,
        owners: &[(Owner, f64)],
        source: &str,
        money: f64,
        models: &[ModelDelta],
    ) -> bool {
        let money = if money.is_finite() && money > 0.0 {
            money
        } else {
            0.0
        };
        if !self.value_fits(owners, source, money, models) {
            return false;
        }
        for (o, w) in owners {
            let key = ValueKey {
                team: o.team.clone(),
                workload: o.workload.clone(),
                source: source.to_string(),
            };
            let row = self.counters.value.entry(key).or_default();
            row.value.add(money * w);
            for m in models {
                let c = row.models.entry(m.model.clone()).or_default();
                c.input_tokens.add(m.input_tokens * w);
                c.cached_input_tokens.add(m.cached_input_tokens * w);
                c.output_tokens.add(m.output_tokens * w);
                c.requests.add(m.requests * w);
            }
        }
        if !owners.is_empty() {
            self.counters.value_total.add(money);
        }
        true
    }

    /// Whether every addition of a value booking keeps its counter finite
    /// (a figure that is not a finite number is simply not booked, as
    /// before; one that is finite but would overflow refuses the booking).
    fn value_fits(
        &self,
        owners: &[(Owner, f64)],
        source: &str,
        money: f64,
        models: &[ModelDelta],
    ) -> bool {
        let fits = |a: Option<&Accumulator>, x: f64| {
            !x.is_finite() || x <= 0.0 || a.map_or(x.is_finite(), |a| a.can_add(x))
        };
        if !owners.is_empty() && !fits(Some(&self.counters.value_total), money) {
            return false;
        }
        for (o, w) in owners {
            if !w.is_finite() {
                return false;
            }
            let row = self.counters.value.get(&ValueKey {
                team: o.team.clone(),
                workload: o.workload.clone(),
                source: source.to_string(),
            });
            if !fits(row.map(|r| &r.value), money * w) {
                return false;
            }
            for m in models {
                let c = row.and_then(|r| r.models.get(&m.model));
                for (a, x) in [
                    (c.map(|c| &c.input_tokens), m.input_tokens),
                    (c.map(|c| &c.cached_input_tokens), m.cached_input_tokens),
                    (c.map(|c| &c.output_tokens), m.output_tokens),
                    (c.map(|c| &c.requests), m.requests),
                ] {
                    if !fits(a, x * w) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Opaque state kept with the counters (see `Counters::extensions`).
    pub fn extension(&self, key: &str) -> Option<&str> {
        self.counters.extensions.get(key).map(String::as_str)
    }

    /// Replace opaque state kept with the counters.
    pub fn set_extension(&mut self, key: &str, value: String) {
        self.counters.extensions.insert(key.to_string(), value);
    }

    /// Declare a value target, so its health is shown before its first
    /// scrape (down until it answers).
    pub fn register_target(&mut self, name: &str) {
        self.targets.entry(name.to_string()).or_insert(false);
        self.counters
            .target_errors
            .entry(name.to_string())
            .or_default();
    }

    /// Count `n` figures of value target `name` refused for `reason` (0
    /// declares the pair, so it is exported before the first refusal).
    pub fn note_value_rejected(&mut self, name: &str, reason: &str, n: u64) {
        *self
            .counters
            .value_rejected
            .entry(name.to_string())
            .or_default()
            .entry(reason.to_string())
            .or_default() += n;
    }

    /// Record a scrape of value target `name`.
    pub fn note_target(&mut self, name: &str, ok: bool) {
        self.targets.insert(name.to_string(), ok);
        let errors = self
            .counters
            .target_errors
            .entry(name.to_string())
            .or_default();
        if !ok {
            *errors += 1;
        }
    }

    /// Put a pushed benefit indicator score in force (the newest by its
    /// time stamp wins). O(log n) in the scores kept: a batch of n scores
    /// is n log n, never quadratic. A score that is not a number in [0, 1]
    /// is refused.
    pub fn set_kpi(&mut self, kpi: Kpi) {
        if !(kpi.score.is_finite() && (0.0..=1.0).contains(&kpi.score)) {
            return;
        }
        // The newest by its own time wins: a late retry or a back-filled
        // older score does not replace a newer one.
        match self.counters.kpis.entry(kpi.key()) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let k = e.get();
                if !(k.at.is_some() && k.at > kpi.at) {
                    e.insert(kpi);
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(kpi);
            }
        }
    }

    /// How many pushed indicators `team/workload` has.
    pub fn kpi_count(&self, team: &str, workload: &str) -> usize {
        let from = (team.to_string(), workload.to_string(), String::new());
        self.counters
            .kpis
            .range(from..)
            .take_while(|((t, w, _), _)| t == team && w == workload)
            .count()
    }

    /// Whether `team/workload` has a pushed score for `indicator`.
    pub fn has_kpi(&self, team: &str, workload: &str, indicator: &str) -> bool {
        self.counters.kpis.contains_key(&(
            team.to_string(),
            workload.to_string(),
            indicator.to_string(),
        ))
    }

    /// The node's benefit indicator scores: per indicator, the mean over
    /// owners of each owner's score (pushed wins over configured).
    pub fn scores(&self) -> BTreeMap<String, f64> {
        let mut latest: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for k in self.static_kpis.iter().chain(self.counters.kpis.values()) {
            latest.insert(
                (k.indicator.clone(), k.team.clone(), k.workload.clone()),
                k.score,
            );
        }
        let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for ((ind, _, _), v) in latest {
            let e = sums.entry(ind).or_default();
            e.0 += v;
            e.1 += 1.0;
        }
        sums.into_iter().map(|(k, (s, n))| (k, s / n)).collect()
    }

    /// Put grid carbon intensity (and its price) in force from the next tick.
    pub fn set_carbon(&mut self, carbon: Option<Carbon>) {
        self.carbon = carbon;
    }

    /// Emissions of facility energy `fe` drawn over `[from, to)`, split over
    /// GPU rows by `split` (weights summing to 1); books the carbon cost and
    /// returns it.
    fn emit(
        &mut self,
        split: &[(&str, f64)],
        fe: Joules,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> f64 {
        let Some(c) = &self.carbon else {
            return 0.0;
        };
        let grams = c.intensity.cost(fe, from, to).0;
        let per_tonne = c.price_per_tonne;
        if !(grams.is_finite() && grams > 0.0) {
            return 0.0;
        }
        self.counters.emissions_grams.add(grams);
        let money = grams / 1e6 * per_tonne;
        for (u, w) in split {
            self.spread(u, grams * w, |r, g| r.emissions_grams.add(g));
            self.book(u, Component::Carbon, money * w);
        }
        money
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

    /// Account one tick: every collector's outcome for the interval since the
    /// previous tick.
    pub fn ingest(&mut self, tick: Tick, reports: &[Report]) {
        let prev = self.last;
        let dt = prev.map_or(0.0, |p| (tick.mono - p.mono).max(0.0));
        let mut facility_joules = 0.0;
        let mut seen: HashSet<String> = HashSet::new();
        let mut gpu_energy_this_tick: BTreeMap<String, f64> = BTreeMap::new();
        let mut host_energy: Option<(Joules, DateTime<Utc>, f64)> = None;
        // Rates over the span each device's energy covers (after a short
        // collector failure one reading covers several ticks): W and money/s.
        let mut power_w = 0.0;
        let mut energy_rate: BTreeMap<Component, f64> = BTreeMap::new();
        // The host gauges show this tick's reading or nothing.
        self.host = None;

        for report in reports {
            let health = self
                .collectors
                .entry(report.collector.to_string())
                .or_insert(CollectorHealth {
                    up: false,
                    reported: false,
                    unavailable: false,
                });
            match &report.outcome {
                Ok(readings) => {
                    let faults = readings
                        .iter()
                        .filter(|r| matches!(r, Reading::DeviceFault { .. }))
                        .count();
                    let good = readings.len() - faults;
                    health.up = faults == 0 || good > 0;
                    health.reported = true;
                    health.unavailable = false;
                    if faults > 0 {
                        *self
                            .counters
                            .collector_errors
                            .entry(report.collector.to_string())
                            .or_default() += faults as u64;
                    }
                    for r in readings {
                        match r {
                            Reading::Gpu(g) => {
                                seen.insert(g.uuid.clone());
                                let (e, money, carbon, span) = self.ingest_gpu(tick, g);
                                if span > 0.0 {
                                    power_w += e.0 * self.cfg.pue / span;
                                    *energy_rate.entry(Component::Energy).or_default() +=
                                        money / span;
                                    *energy_rate.entry(Component::Carbon).or_default() +=
                                        carbon / span;
                                }
                                gpu_energy_this_tick.insert(g.uuid.clone(), e.0);
                                facility_joules += e.0 * self.cfg.pue;
                            }
                            Reading::Host(h) => {
                                host_energy = Some(self.ingest_host(tick, h));
                            }
                            Reading::DeviceFault { .. } => {}
                        }
                    }
                }
                Err(SampleError::Unavailable(_)) => {
                    health.up = false;
                    health.unavailable = true;
                }
                Err(SampleError::Failed(_)) => {
                    health.up = false;
                    *self
                        .counters
                        .collector_errors
                        .entry(report.collector.to_string())
                        .or_default() += 1;
                }
            }
        }

        // GPUs that did not answer: count their gap once it exceeds max_gap.
        for (uuid, st) in self.gpus.iter_mut() {
            if seen.contains(uuid) {
                continue;
            }
            st.present = false;
            let since = st.gap_mark.or(st.meter.last_mono());
            if let Some(since) = since {
                if tick.mono - since > self.cfg.max_gap.0 || st.gap_mark.is_some() {
                    let gap = tick.mono - since;
                    if gap > 0.0 {
                        self.counters
                            .unaccounted_seconds
                            .entry(uuid.clone())
                            .or_default()
                            .add(gap);
                    }
                    st.gap_mark = Some(tick.mono);
                    st.meter.reset();
                }
            }
        }

        // Who shares the host's energy and the fixed costs.
        // Before the GPU collector has reported (boot, NVML not up yet), the
        // GPUs the state already knows keep their share; `none` is for nodes
        // that have never shown a GPU.
        let sharers: Vec<String> = if !self.gpus.is_empty() {
            self.gpus.keys().cloned().collect()
        } else if !self.counters.gpu_energy_joules.is_empty() {
            self.counters.gpu_energy_joules.keys().cloned().collect()
        } else {
            vec![NO_GPU.to_string()]
        };
        let weights: Vec<f64> = sharers
            .iter()
            .map(|u| gpu_energy_this_tick.get(u).copied().unwrap_or(0.0))
            .collect();
        let share = shares(self.cfg.share_key, &weights);

        if let Some((e, from, span)) = host_energy {
            let fe = Joules(e.0 * self.cfg.pue);
            facility_joules += fe.0;
            let money = self.cfg.tariff.cost(fe, from, tick.wall);
            if span > 0.0 {
                power_w += fe.0 / span;
                *energy_rate.entry(Component::Energy).or_default() += money.0 / span;
            }
            for (u, s) in sharers.iter().zip(&share) {
                self.spread(u, fe.0 * s, |r, j| r.facility_energy_joules.add(j));
                self.spread(u, e.0 * s, |r, j| r.host_energy_joules.add(j));
                self.book(u, Component::Energy, money.0 * s);
            }
            let split: Vec<(&str, f64)> = sharers
                .iter()
                .map(String::as_str)
                .zip(share.iter().copied())
                .collect();
            let carbon = self.emit(&split, fe, from, tick.wall);
            if span > 0.0 {
                *energy_rate.entry(Component::Carbon).or_default() += carbon / span;
            }
        }

        // Fixed costs accrue with time, whether or not any device answered.
        // After a restart the downtime since the last checkpointed tick is
        // accrued too: hardware depreciates while roimon is stopped.
        let fixed_dt = match (prev, self.counters.last_wall) {
            (Some(_), _) => dt,
            (None, Some(w)) if tick.wall > w => (tick.wall - w).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        if prev.is_none() && fixed_dt > 0.0 {
            self.downtime = Some(fixed_dt);
            // The downtime had no readings: visible as unaccounted time for
            // every device the state knows, not silently skipped.
            let mut devices: Vec<String> =
                self.counters.gpu_energy_joules.keys().cloned().collect();
            if !self.counters.host_energy_joules.is_empty() {
                devices.push("host".into());
            }
            for d in devices {
                self.counters
                    .unaccounted_seconds
                    .entry(d)
                    .or_default()
                    .add(fixed_dt);
            }
        }
        if fixed_dt > 0.0 {
            for (c, rate) in self.cfg.fixed.rates() {
                let money = rate * fixed_dt;
                if money <= 0.0 {
                    continue;
                }
                for (u, s) in sharers.iter().zip(&share) {
                    self.book(u, c, money * s);
                }
            }
        }

        if facility_joules > 0.0 {
            self.counters.facility_energy_joules.add(facility_joules);
        }
        if dt > 0.0 {
            // Energy-driven components at the rate of the span their energy
            // covers; fixed costs at their configured rate.
            let fixed: BTreeMap<Component, f64> = self.cfg.fixed.rates().into_iter().collect();
            self.rates = Component::ALL
                .iter()
                .map(|c| {
                    let r = energy_rate.get(c).copied().unwrap_or(0.0)
                        + fixed.get(c).copied().unwrap_or(0.0).max(0.0);
                    (*c, r)
                })
                .collect();
            self.facility_power = power_w;
            let (_, basis) = self.cfg.tariff.price_basis_at(tick.wall);
            self.counters
                .priced_seconds
                .entry(basis.label().to_string())
                .or_default()
                .add(dt);
        }
        // Every sharer has its row from the first tick (at 0), so the first
        // scrape already shows every attributed series.
        for u in &sharers {
            self.touch_rows(u);
        }
        // A state created while the clock was ahead began no later than now.
        let created = self.counters.created.get_or_insert(tick.wall);
        if *created > tick.wall {
            *created = tick.wall;
        }
        self.counters.last_wall = Some(tick.wall);
        self.last = Some(tick);
        // The windows read the counters they are part of: take them out
        // for the call.
        let mut windows = std::mem::take(&mut self.counters.windows);
        windows.observe(tick.wall, &self.counters);
        self.counters.windows = windows;
    }

    /// Book money to a GPU and to the node total, so the node total is
    /// exactly the sum of what was attributed. Negative money (energy bought at
    /// a negative price) is booked as a credit: counters never go backwards.
    fn book(&mut self, uuid: &str, c: Component, money: f64) {
        if !money.is_finite() || money == 0.0 {
            return;
        }
        if money > 0.0 {
            self.spread(uuid, money, |r, m| r.cost.entry(c).or_default().add(m));
            self.counters.cost.entry(c).or_default().add(money);
        } else {
            self.spread(uuid, -money, |r, m| r.credit.entry(c).or_default().add(m));
            self.counters.credit.entry(c).or_default().add(-money);
        }
    }

    fn wall_at(tick: Tick, mono: f64) -> DateTime<Utc> {
        let back = tick.mono - mono;
        if back <= 0.0 {
            return tick.wall;
        }
        tick.wall - Duration::nanoseconds((back * 1e9) as i64)
    }

    /// Book one GPU's reading; returns the energy added, its energy cost, its
    /// carbon cost and the seconds the energy covers.
    fn ingest_gpu(&mut self, tick: Tick, g: &GpuReading) -> (Joules, f64, f64, f64) {
        let max_gap = self.cfg.max_gap;
        let st = self.gpus.entry(g.uuid.clone()).or_insert_with(|| GpuState {
            meter: EnergyMeter::default(),
            latest: g.clone(),
            gap_mark: None,
            present: true,
        });
        st.latest = g.clone();
        st.present = true;
        let gap_since = st.gap_mark.take();
        let d = st
            .meter
            .update(tick.mono, g.energy_counter, g.power, max_gap);
        let mut unaccounted = d.unaccounted.0;
        if let Some(since) = gap_since {
            unaccounted += (tick.mono - since).max(0.0);
        }
        if unaccounted > 0.0 {
            self.counters
                .unaccounted_seconds
                .entry(g.uuid.clone())
                .or_default()
                .add(unaccounted);
        }
        if d.counter_reset {
            *self
                .counters
                .counter_resets
                .entry(g.uuid.clone())
                .or_default() += 1;
        }
        if d.energy.0 > 0.0 {
            self.counters
                .gpu_energy_joules
                .entry(g.uuid.clone())
                .or_default()
                .add(d.energy.0);
            let facility = Joules(d.energy.0 * self.cfg.pue);
            self.spread(&g.uuid, facility.0, |r, j| r.facility_energy_joules.add(j));
            self.spread(&g.uuid, d.energy.0, |r, j| r.gpu_energy_joules.add(j));
            let money: Money =
                self.cfg
                    .tariff
                    .cost(facility, Self::wall_at(tick, d.from_mono), tick.wall);
            self.book(&g.uuid, Component::Energy, money.0);
            let carbon = self.emit(
                &[(g.uuid.as_str(), 1.0)],
                facility,
                Self::wall_at(tick, d.from_mono),
                tick.wall,
            );
            (d.energy, money.0, carbon, tick.mono - d.from_mono)
        } else {
            self.counters
                .gpu_energy_joules
                .entry(g.uuid.clone())
                .or_default();
            (d.energy, 0.0, 0.0, 0.0)
        }
    }

    /// Book the host's reading; returns its energy, the interval start and
    /// the seconds the energy covers.
    fn ingest_host(&mut self, tick: Tick, h: &HostReading) -> (Joules, DateTime<Utc>, f64) {
        let d = self
            .host_meter
            .update(tick.mono, h.energy_counter, h.power, self.cfg.max_gap);
        self.host = Some(h.clone());
        if d.counter_reset {
            *self
                .counters
                .host_counter_resets
                .entry(h.source)
                .or_default() += 1;
        }
        if d.unaccounted.0 > 0.0 {
            self.counters
                .unaccounted_seconds
                .entry("host".into())
                .or_default()
                .add(d.unaccounted.0);
        }
        let acc = self
            .counters
            .host_energy_joules
            .entry(h.source)
            .or_default();
        acc.add(d.energy.0);
        (
            d.energy,
            Self::wall_at(tick, d.from_mono),
            tick.mono - d.from_mono,
        )
    }
}

#[cfg(test)]
mod tests;
