//! Monte Carlo of the fixed plan: every group's scale drawn from a
//! triangular distribution (or the price from the ledger's days), the plan
//! evaluated per draw, percentiles and the probabilities of a loss and of
//! missing `min_roi`. Its own small generator keeps the figures the same
//! for the same seed on every platform and release.

use super::scale::{Group, Layout, fixed_allocation};
use crate::model::{Allocation, Instance};
use std::collections::BTreeMap;

/// Days of prices needed before the price is drawn from them.
pub const MIN_DAYS: usize = 7;

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, passes BigCrush,
/// and is a few lines; enough for a simulation whose only need is to be
/// reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let v = (self.next_u64() >> 11) as f64;
        v * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in {0, …, n − 1} (n > 0), by Lemire's multiply-shift (the
    /// bias is below 2⁻³² for any n a ledger holds).
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        #[allow(clippy::cast_possible_truncation)]
        let i = ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as usize;
        i
    }
}

/// The inverse CDF of the triangular distribution on [low, high] with mode
/// `mode` at the quantile `u` ∈ [0, 1]; `low` when the range is empty.
pub fn triangular(u: f64, low: f64, mode: f64, high: f64) -> f64 {
    let width = high - low;
    if width <= 0.0 {
        return low;
    }
    let f_mode = (mode - low) / width;
    if u < f_mode {
        low + (u * width * (mode - low)).sqrt()
    } else {
        high - ((1.0 - u) * width * (high - mode)).sqrt()
    }
}

/// The nearest-rank percentile of sorted values: the value at rank
/// ⌈p/100 · n⌉ (at least 1). Always one of the values, so a run where every
/// draw is equal reports that value exactly.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// What a Monte Carlo run draws.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Draws (≥ 1).
    pub draws: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// Each group's scale is triangular on [1 − swing, 1 + swing], mode 1.
    pub swing: f64,
    /// Measured P10/P90 by coefficient name: a coefficient found here is
    /// triangular on [P10/base, P90/base] instead (`--swing measured`).
    pub spread: Option<&'a BTreeMap<String, (f64, f64)>>,
    /// The ledger's daily mean prices paid, when the price is measured;
    /// with at least [`MIN_DAYS`] of them the price is drawn from them
    /// (with replacement) instead of the triangle.
    pub daily_prices: Option<&'a [f64]>,
}

/// The result of a Monte Carlo run.
#[derive(Debug, Clone, PartialEq)]
pub struct MonteCarlo {
    /// Draws made.
    pub draws: usize,
    /// Seed used.
    pub seed: u64,
    /// Nearest-rank percentiles of the fixed plan's profit.
    pub profit_p5: f64,
    /// Median profit.
    pub profit_p50: f64,
    /// 95th percentile profit.
    pub profit_p95: f64,
    /// 5th percentile ROI.
    pub roi_p5: f64,
    /// Median ROI.
    pub roi_p50: f64,
    /// 95th percentile ROI.
    pub roi_p95: f64,
    /// Share of draws with profit < 0.
    pub p_profit_below_0: f64,
    /// Share of draws with ROI < `min_roi`; None without `min_roi`.
    pub p_roi_below_min: Option<f64>,
    /// `"days"` when the price was drawn from the ledger's days, else
    /// `"triangular"`.
    pub price_source: &'static str,
    /// Every draw's profit, sorted (for the histogram).
    pub profits: Vec<f64>,
}

/// Runs the Monte Carlo of plan `a` on `inst`. Per draw, one quantile per
/// group (in [`Group::ALL`] order) moves every coefficient of the group
/// together through its own triangle; then one day index when the price
/// comes from days.
pub fn run(inst: &Instance, a: &Allocation, o: &Options<'_>) -> MonteCarlo {
    let layout = Layout::of(inst);
    let ranges = layout.ranges(inst, o.swing, o.spread);
    let groups = layout.group_indices();
    let days = o
        .daily_prices
        .filter(|d| d.len() >= MIN_DAYS && inst.price_per_kwh > 0.0);
    let price_entry = layout
        .entries
        .iter()
        .position(|e| e.group == Group::PricePerKwh);

    let mut rng = SplitMix64::new(o.seed);
    let mut factors = layout.ones();
    let mut scaled = inst.clone();
    let mut alloc = Allocation::default();
    let mut profits = Vec::with_capacity(o.draws);
    let mut rois = Vec::with_capacity(o.draws);
    let mut u = [0.0; 7];
    for _ in 0..o.draws {
        for q in &mut u {
            *q = rng.next_f64();
        }
        for ((f, r), &g) in factors.iter_mut().zip(&ranges).zip(&groups) {
            *f = triangular(u[g], r.low, 1.0, r.high);
        }
        if let (Some(days), Some(pi)) = (days, price_entry) {
            factors[pi] = days[rng.below(days.len())] / inst.price_per_kwh;
        }
        layout.apply(inst, &factors, &mut scaled);
        fixed_allocation(inst, &scaled, a, &mut alloc);
        let t = scaled.evaluate(&alloc);
        profits.push(t.profit);
        rois.push(t.roi);
    }
    #[allow(clippy::cast_precision_loss)]
    let n = o.draws.max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    let share = |v: &[f64], limit: f64| v.iter().filter(|x| **x < limit).count() as f64 / n;
    let p_profit_below_0 = share(&profits, 0.0);
    let p_roi_below_min = inst.min_roi.map(|m| share(&rois, m));
    profits.sort_by(f64::total_cmp);
    rois.sort_by(f64::total_cmp);
    MonteCarlo {
        draws: o.draws,
        seed: o.seed,
        profit_p5: percentile(&profits, 5.0),
        profit_p50: percentile(&profits, 50.0),
        profit_p95: percentile(&profits, 95.0),
        roi_p5: percentile(&rois, 5.0),
        roi_p50: percentile(&rois, 50.0),
        roi_p95: percentile(&rois, 95.0),
        p_profit_below_0,
        p_roi_below_min,
        price_source: if days.is_some() { "days" } else { "triangular" },
        profits,
    }
}
