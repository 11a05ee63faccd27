//! One tick of accounting: each collector's readings become energy (GPU
//! and host, × PUE), priced over the interval they cover, with emissions;
//! fixed costs accrue with time (downtime after a restart included); every
//! figure is booked to a row and to the node total together, so the rows
//! always add up.

use super::{CollectorHealth, Engine, NO_GPU, Tick};
use crate::cost::{Component, shares};
use crate::energy::{EnergyMeter, Method};
use crate::reading::{GpuReading, HostReading, Reading, SampleError};
use crate::units::{Joules, Money};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashSet};

/// One collector's result for a tick.
#[derive(Debug, Clone)]
pub struct Report {
    /// The `collector` label.
    pub collector: &'static str,
    /// What it produced.
    pub outcome: Result<Vec<Reading>, SampleError>,
}

#[derive(Debug, Clone)]
pub(super) struct GpuState {
    pub(super) meter: EnergyMeter,
    pub(super) latest: GpuReading,
    /// Monotonic time up to which a gap has already been counted.
    pub(super) gap_mark: Option<f64>,
    pub(super) present: bool,
}

/// What one tick's collector reports added up to, for the host share,
/// the rates and the facility total.
#[derive(Debug, Default)]
struct TickReadings {
    facility_joules: f64,
    seen: HashSet<String>,
    gpu_energy_this_tick: BTreeMap<String, f64>,
    host_energy: Option<(Joules, DateTime<Utc>, f64)>,
    // Rates over the span each device's energy covers (after a short
    // collector failure one reading covers several ticks): W and money/s.
    power_w: f64,
    energy_rate: BTreeMap<Component, f64>,
    // The same money per second, by the GPU it is booked to.
    gpu_rate: BTreeMap<String, f64>,
}

impl Engine {
    /// Account one tick: every collector's outcome for the interval since the
    /// previous tick.
    pub fn ingest(&mut self, tick: Tick, reports: &[Report]) {
        let prev = self.last;
        let dt = prev.map_or(0.0, |p| (tick.mono - p.mono).max(0.0));
        // The host gauges show this tick's reading or nothing.
        self.host = None;
        let TickReadings {
            mut facility_joules,
            seen,
            gpu_energy_this_tick,
            host_energy,
            mut power_w,
            mut energy_rate,
            mut gpu_rate,
        } = self.ingest_reports(tick, reports);

        self.mark_silent_gpus(tick, &seen);

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
                for (u, s) in sharers.iter().zip(&share) {
                    *gpu_rate.entry(u.clone()).or_default() += (money.0 + carbon) * s / span;
                }
            }
        }

        self.accrue_fixed(prev, dt, tick, &sharers, &share);

        if facility_joules > 0.0 {
            self.counters.facility_energy_joules.add(facility_joules);
        }
        if dt > 0.0 {
            // Energy-driven components at the rate of the span their energy
            // covers; fixed costs at their configured rate.
            let fixed: BTreeMap<Component, f64> = self.cfg.fixed.rates().into_iter().collect();
            let fixed_total: f64 = fixed.values().map(|r| r.max(0.0)).sum();
            for (u, s) in sharers.iter().zip(&share) {
                *gpu_rate.entry(u.clone()).or_default() += fixed_total * s;
            }
            self.gpu_rates = gpu_rate;
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
        // The windows get the totals they measure, built only when a bucket
        // boundary is due.
        if self.counters.windows.due(tick.wall) {
            let totals = self.counters.totals();
            let has_value = !self.counters.value.is_empty();
            self.counters.windows.observe(tick.wall, &totals, has_value);
        }
    }

    /// Each collector's outcome: its health, its errors, and the GPU and
    /// host readings booked, summed up for the rest of the tick.
    fn ingest_reports(&mut self, tick: Tick, reports: &[Report]) -> TickReadings {
        let mut acc = TickReadings::default();
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
                                acc.seen.insert(g.uuid.clone());
                                let (e, money, carbon, span) = self.ingest_gpu(tick, g);
                                if span > 0.0 {
                                    acc.power_w += e.0 * self.cfg.pue / span;
                                    *acc.energy_rate.entry(Component::Energy).or_default() +=
                                        money / span;
                                    *acc.energy_rate.entry(Component::Carbon).or_default() +=
                                        carbon / span;
                                    *acc.gpu_rate.entry(g.uuid.clone()).or_default() +=
                                        (money + carbon) / span;
                                }
                                acc.gpu_energy_this_tick.insert(g.uuid.clone(), e.0);
                                acc.facility_joules += e.0 * self.cfg.pue;
                            }
                            Reading::Host(h) => {
                                acc.host_energy = Some(self.ingest_host(tick, h));
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

        acc
    }

    /// GPUs that did not answer: count their gap once it exceeds max_gap.
    fn mark_silent_gpus(&mut self, tick: Tick, seen: &HashSet<String>) {
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
    }

    /// Fixed costs accrue with time, whether or not any device answered.
    /// After a restart the downtime since the last checkpointed tick is
    /// accrued too: hardware depreciates while roimon is stopped.
    fn accrue_fixed(
        &mut self,
        prev: Option<Tick>,
        dt: f64,
        tick: Tick,
        sharers: &[String],
        share: &[f64],
    ) {
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
                for (u, s) in sharers.iter().zip(share) {
                    self.book(u, c, money * s);
                }
            }
        }
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
        if d.method != Method::None {
            // The seconds this reading's energy covers, shared like the
            // energy: what the planner divides tokens and energy by.
            let secs = tick.mono - d.from_mono;
            if secs > 0.0 {
                self.spread(&g.uuid, secs, |r, s| r.gpu_seconds.add(s));
            }
        }
        if !g.name.is_empty()
            && self.counters.gpu_models.get(&g.uuid).map(String::as_str) != Some(g.name.as_str())
        {
            self.counters
                .gpu_models
                .insert(g.uuid.clone(), g.name.clone());
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

    fn wall_at(tick: Tick, mono: f64) -> DateTime<Utc> {
        let back = tick.mono - mono;
        if back <= 0.0 {
            return tick.wall;
        }
        tick.wall - Duration::nanoseconds((back * 1e9) as i64)
    }
}
