//! Units as newtypes, so a watt is never added to a joule and money is never a bare float.

use serde::{Deserialize, Serialize};
use std::ops::{Add, AddAssign, Mul, Sub};

/// Joules in one kilowatt-hour.
pub const JOULES_PER_KWH: f64 = 3_600_000.0;

macro_rules! unit {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub f64);
        impl Add for $name { type Output = Self; fn add(self, o: Self) -> Self { Self(self.0 + o.0) } }
        impl Sub for $name { type Output = Self; fn sub(self, o: Self) -> Self { Self(self.0 - o.0) } }
        impl AddAssign for $name { fn add_assign(&mut self, o: Self) { self.0 += o.0 } }
        impl Mul<f64> for $name { type Output = Self; fn mul(self, k: f64) -> Self { Self(self.0 * k) } }
    };
}

unit!(
    /// Instantaneous power in watts.
    Watts
);
unit!(
    /// Energy in joules (the base unit of every energy counter).
    Joules
);
unit!(
    /// Money in the configured currency's major unit (EUR, not cents).
    Money
);
unit!(
    /// Elapsed time in seconds.
    Seconds
);

impl Joules {
    /// The same energy in kilowatt-hours.
    pub fn kwh(self) -> f64 {
        self.0 / JOULES_PER_KWH
    }
    /// From NVML's millijoules.
    pub fn from_millijoules(mj: u64) -> Self {
        Joules(mj as f64 / 1000.0)
    }
}

impl Watts {
    /// From NVML's milliwatts.
    pub fn from_milliwatts(mw: u32) -> Self {
        Watts(f64::from(mw) / 1000.0)
    }
    /// Energy drawn at this power over `dt`.
    pub fn over(self, dt: Seconds) -> Joules {
        Joules(self.0 * dt.0)
    }
}

/// A price per kilowatt-hour in the configured currency's major unit.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PricePerKwh(pub f64);

impl PricePerKwh {
    /// What `energy` costs at this price.
    pub fn cost(self, energy: Joules) -> Money {
        Money(energy.kwh() * self.0)
    }
}

/// A compensated (Neumaier) running sum, so that millions of tiny per-second
/// increments add up to the same total as their exact sum would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    sum: f64,
    #[serde(default)]
    comp: f64,
}

impl Accumulator {
    /// Start from a known total (a resumed checkpoint).
    pub fn from_total(total: f64) -> Self {
        Self {
            sum: total,
            comp: 0.0,
        }
    }
    /// Add a non-negative increment. Negative or non-finite values are refused
    /// (counters never go backwards), and so is one that would carry the
    /// total past the largest finite number; returns whether it was added.
    pub fn add(&mut self, x: f64) -> bool {
        if !x.is_finite() || x < 0.0 {
            return false;
        }
        let t = self.sum + x;
        if !t.is_finite() {
            return false;
        }
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
        true
    }
    /// The current total.
    pub fn total(&self) -> f64 {
        self.sum + self.comp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwh_conversion() {
        assert_eq!(Joules(3_600_000.0).kwh(), 1.0);
        assert_eq!(Joules::from_millijoules(1500).0, 1.5);
        assert_eq!(Watts::from_milliwatts(250_500).0, 250.5);
        assert_eq!(PricePerKwh(0.25).cost(Joules(7_200_000.0)), Money(0.5));
    }

    #[test]
    fn accumulator_refuses_negative_and_nan() {
        let mut a = Accumulator::default();
        assert!(a.add(1.0));
        assert!(!a.add(-0.5));
        assert!(!a.add(f64::NAN));
        assert!(!a.add(f64::INFINITY));
        assert_eq!(a.total(), 1.0);
        // Two near-largest increments would overflow to infinity (and the
        // compensation to NaN): the second is refused, the total stays finite.
        let mut big = Accumulator::default();
        assert!(big.add(1e308));
        assert!(!big.add(1e308));
        assert_eq!(big.total(), 1e308);
    }

    #[test]
    fn accumulator_is_exact_for_many_small_increments() {
        let mut a = Accumulator::from_total(1.0e6);
        for _ in 0..1_000_000 {
            a.add(1.0e-7);
        }
        assert!((a.total() - (1.0e6 + 0.1)).abs() < 1e-9, "{}", a.total());
    }
}
