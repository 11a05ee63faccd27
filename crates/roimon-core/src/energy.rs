//! Energy accounting for one device: counter deltas with reset detection,
//! trapezoid integration of power where there is no counter, and gaps that are
//! counted as unaccounted time instead of being filled in.

use crate::units::{Joules, Seconds, Watts};
use serde::{Deserialize, Serialize};

/// A counter delta implying more than this over its interval is not energy
/// but a bogus reading or a reset read as a wrap (one GPU draws about 1 kW, a
/// RAPL domain less); it is treated like a counter reset.
pub const MAX_PLAUSIBLE_WATTS: f64 = 20_000.0;

/// What one sample added.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EnergyDelta {
    /// Energy attributed to the interval `[from_mono, to_mono)`.
    pub energy: Joules,
    /// Start of the interval this energy covers (monotonic seconds).
    pub from_mono: f64,
    /// Time with no usable reading (a gap), not filled in.
    pub unaccounted: Seconds,
    /// The hardware counter went backwards (driver reload).
    pub counter_reset: bool,
    /// How this interval was measured.
    pub method: Method,
}

/// How an interval's energy was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// First sample, a gap, or nothing usable: no energy.
    #[default]
    None,
    /// Delta of the hardware energy counter.
    Counter,
    /// Trapezoid rule over power samples.
    Trapezoid,
}

/// Per-device state between samples.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnergyMeter {
    last_mono: Option<f64>,
    last_counter: Option<f64>,
    last_power: Option<f64>,
}

impl EnergyMeter {
    /// Feed one sample taken at monotonic time `mono` (seconds). `max_gap`
    /// is the longest interval that is still integrated; longer ones are gaps.
    pub fn update(
        &mut self,
        mono: f64,
        counter: Option<Joules>,
        power: Option<Watts>,
        max_gap: Seconds,
    ) -> EnergyDelta {
        let counter = counter.map(|c| c.0).filter(|c| c.is_finite() && *c >= 0.0);
        // A power beyond any device (e.g. derived from a counter reset read
        // as a wrap) is as bogus as the counter jump: never integrated.
        let power = power
            .map(|p| p.0)
            .filter(|p| p.is_finite() && *p >= 0.0 && *p <= MAX_PLAUSIBLE_WATTS);
        let prev = (self.last_mono, self.last_counter, self.last_power);
        let mut out = EnergyDelta {
            from_mono: mono,
            ..Default::default()
        };
        if let Some(last_mono) = prev.0 {
            let dt = mono - last_mono;
            if dt <= 0.0 {
                // Same or earlier instant: nothing to add; keep the older baseline.
                return out;
            }
            out.from_mono = last_mono;
            if dt > max_gap.0 {
                out.unaccounted = Seconds(dt);
            } else {
                let trapezoid = match (prev.2, power) {
                    (Some(a), Some(b)) => Some((a + b) / 2.0 * dt),
                    _ => None,
                };
                match (prev.1, counter) {
                    (Some(a), Some(b)) if b >= a && (b - a) / dt <= MAX_PLAUSIBLE_WATTS => {
                        out.energy = Joules(b - a);
                        out.method = Method::Counter;
                    }
                    (Some(_), Some(_)) => {
                        // Counter went backwards (the driver reloaded) or jumped
                        // by more than any device draws (a bogus reading): never
                        // booked; price this interval from power instead.
                        out.counter_reset = true;
                        if let Some(e) = trapezoid {
                            out.energy = Joules(e);
                            out.method = Method::Trapezoid;
                        } else {
                            out.unaccounted = Seconds(dt);
                        }
                    }
                    _ => {
                        if let Some(e) = trapezoid {
                            out.energy = Joules(e);
                            out.method = Method::Trapezoid;
                        } else {
                            out.unaccounted = Seconds(dt);
                        }
                    }
                }
            }
        }
        self.last_mono = Some(mono);
        self.last_counter = counter;
        self.last_power = power;
        out
    }

    /// Forget the baseline (the device was lost); the next sample starts afresh.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Monotonic time of the last usable sample.
    pub fn last_mono(&self) -> Option<f64> {
        self.last_mono
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Seconds = Seconds(5.0);

    #[test]
    fn counter_delta() {
        let mut m = EnergyMeter::default();
        let first = m.update(0.0, Some(Joules(1000.0)), Some(Watts(100.0)), GAP);
        assert_eq!(first.energy, Joules(0.0));
        let d = m.update(1.0, Some(Joules(1100.0)), Some(Watts(300.0)), GAP);
        assert_eq!(d.energy, Joules(100.0));
        assert_eq!(d.method, Method::Counter);
        assert_eq!(d.from_mono, 0.0);
    }

    #[test]
    fn an_implausible_jump_is_a_reset_not_energy() {
        let mut m = EnergyMeter::default();
        m.update(0.0, Some(Joules(0.0)), Some(Watts(200.0)), Seconds(5.0));
        // 262 kJ in two seconds (a RAPL reset read as a wrap): not energy.
        // Priced from power instead: (200 + 400) / 2 W over 2 s = 600 J (the
        // left point alone would give 400 J, the right one 800 J).
        let d = m.update(
            2.0,
            Some(Joules(262_000.0)),
            Some(Watts(400.0)),
            Seconds(5.0),
        );
        assert!(d.counter_reset);
        assert_eq!(d.method, Method::Trapezoid);
        assert_eq!(d.energy, Joules(600.0));
        assert_eq!(d.from_mono, 0.0);
        // The next honest delta counts again, measured from the reset value.
        let d = m.update(
            3.0,
            Some(Joules(262_350.0)),
            Some(Watts(100.0)),
            Seconds(5.0),
        );
        assert_eq!(d.energy, Joules(350.0));
        assert_eq!(d.method, Method::Counter);
        assert!(!d.counter_reset);
    }

    #[test]
    fn power_is_integrated_by_trapezoid_across_a_reset_and_changing_power() {
        let mut m = EnergyMeter::default();
        m.update(0.0, None, Some(Watts(100.0)), GAP);
        // (100 + 300) / 2 * 2 s = 400 J.
        let d = m.update(2.0, None, Some(Watts(300.0)), GAP);
        assert_eq!((d.energy, d.method), (Joules(400.0), Method::Trapezoid));
        // (300 + 0) / 2 * 1 s = 150 J.
        let d = m.update(3.0, None, Some(Watts(0.0)), GAP);
        assert_eq!(d.energy, Joules(150.0));
        // The device is lost: the baseline is forgotten, the next sample
        // starts afresh and adds nothing (not 0 W..500 W over 97 s).
        m.reset();
        assert_eq!(m.last_mono(), None);
        let d = m.update(100.0, None, Some(Watts(500.0)), GAP);
        assert_eq!((d.energy, d.method), (Joules(0.0), Method::None));
        assert_eq!(d.unaccounted, Seconds(0.0));
        // (500 + 700) / 2 * 4 s = 2400 J, from the new baseline.
        let d = m.update(104.0, None, Some(Watts(700.0)), GAP);
        assert_eq!(d.energy, Joules(2400.0));
        assert_eq!(d.from_mono, 100.0);
    }

    #[test]
    fn counter_reset_uses_power_not_negative_delta() {
        let mut m = EnergyMeter::default();
        m.update(0.0, Some(Joules(5000.0)), Some(Watts(100.0)), GAP);
        let d = m.update(2.0, Some(Joules(10.0)), Some(Watts(200.0)), GAP);
        assert!(d.counter_reset);
        assert_eq!(d.energy, Joules(300.0));
        let d = m.update(3.0, Some(Joules(160.0)), Some(Watts(150.0)), GAP);
        assert_eq!(d.energy, Joules(150.0));
        assert!(!d.counter_reset);
    }

    #[test]
    fn trapezoid_without_counter() {
        let mut m = EnergyMeter::default();
        m.update(10.0, None, Some(Watts(100.0)), GAP);
        let d = m.update(12.0, None, Some(Watts(200.0)), GAP);
        assert_eq!(d.energy, Joules(300.0));
        assert_eq!(d.method, Method::Trapezoid);
    }

    #[test]
    fn gap_is_unaccounted_not_filled() {
        let mut m = EnergyMeter::default();
        m.update(0.0, Some(Joules(0.0)), Some(Watts(100.0)), GAP);
        let d = m.update(60.0, Some(Joules(6000.0)), Some(Watts(100.0)), GAP);
        assert_eq!(d.energy, Joules(0.0));
        assert_eq!(d.unaccounted, Seconds(60.0));
        let d = m.update(61.0, Some(Joules(6100.0)), Some(Watts(100.0)), GAP);
        assert_eq!(d.energy, Joules(100.0));
    }

    #[test]
    fn nothing_usable_is_unaccounted() {
        let mut m = EnergyMeter::default();
        m.update(0.0, None, None, GAP);
        let d = m.update(1.0, None, None, GAP);
        assert_eq!(d.unaccounted, Seconds(1.0));
        assert_eq!(d.energy, Joules(0.0));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let mut m = EnergyMeter::default();
        m.update(5.0, Some(Joules(0.0)), None, GAP);
        let d = m.update(4.0, Some(Joules(100.0)), None, GAP);
        assert_eq!(d.energy, Joules(0.0));
        let d = m.update(6.0, Some(Joules(100.0)), None, GAP);
        assert_eq!(d.energy, Joules(100.0));
    }

    // Hand figures for the meter's edges and filters: each test pins one
    // comparison or filter so that flipping it changes a booked figure.

    #[test]
    fn an_interval_exactly_max_gap_long_is_integrated_not_a_gap() {
        let mut m = EnergyMeter::default();
        m.update(0.0, Some(Joules(1_000.0)), None, GAP);
        // dt = 5 s = max_gap: still integrated. Counter 1000 J -> 1500 J = 500 J.
        let d = m.update(5.0, Some(Joules(1_500.0)), None, GAP);
        assert_eq!(d.energy, Joules(500.0));
        assert_eq!(d.method, Method::Counter);
        assert_eq!(d.unaccounted, Seconds(0.0));
        // dt = 5.5 s > max_gap: a gap of 5.5 s, no energy.
        let d = m.update(10.5, Some(Joules(2_000.0)), None, GAP);
        assert_eq!(d.energy, Joules(0.0));
        assert_eq!(d.unaccounted, Seconds(5.5));
        assert_eq!(d.method, Method::None);
    }

    #[test]
    fn an_unchanged_counter_is_zero_energy_by_counter_not_a_reset() {
        let mut m = EnergyMeter::default();
        m.update(0.0, Some(Joules(700.0)), Some(Watts(100.0)), GAP);
        // Counter 700 J -> 700 J over 2 s: an idle device, 0 J by counter
        // (the power samples would have said (100 + 300) / 2 * 2 = 400 J).
        let d = m.update(2.0, Some(Joules(700.0)), Some(Watts(300.0)), GAP);
        assert_eq!(d.energy, Joules(0.0));
        assert_eq!(d.method, Method::Counter);
        assert!(!d.counter_reset);
    }

    #[test]
    fn a_delta_of_exactly_max_plausible_watts_is_energy() {
        let mut m = EnergyMeter::default();
        m.update(0.0, Some(Joules(0.0)), Some(Watts(100.0)), GAP);
        // 40 000 J in 2 s = 20 000 W = MAX_PLAUSIBLE_WATTS: still energy.
        let d = m.update(2.0, Some(Joules(40_000.0)), Some(Watts(100.0)), GAP);
        assert_eq!(d.energy, Joules(40_000.0));
        assert_eq!(d.method, Method::Counter);
        assert!(!d.counter_reset);
        // 40 002 J in 2 s = 20 001 W: a reset, priced from power instead:
        // (100 + 100) / 2 W * 2 s = 200 J.
        let d = m.update(4.0, Some(Joules(80_002.0)), Some(Watts(100.0)), GAP);
        assert!(d.counter_reset);
        assert_eq!(d.energy, Joules(200.0));
        assert_eq!(d.method, Method::Trapezoid);
    }

    #[test]
    fn a_counter_reset_with_no_power_is_unaccounted_time() {
        let mut m = EnergyMeter::default();
        m.update(0.0, Some(Joules(9_000.0)), None, GAP);
        // Counter 9000 J -> 50 J over 3 s, no power: nothing to price it
        // from, so 3 s unaccounted and 0 J.
        let d = m.update(3.0, Some(Joules(50.0)), None, GAP);
        assert!(d.counter_reset);
        assert_eq!(d.energy, Joules(0.0));
        assert_eq!(d.unaccounted, Seconds(3.0));
        assert_eq!(d.method, Method::None);
        assert_eq!(d.from_mono, 0.0);
    }

    #[test]
    fn a_negative_or_non_finite_counter_is_no_counter() {
        let mut m = EnergyMeter::default();
        m.update(0.0, Some(Joules(-5.0)), Some(Watts(100.0)), GAP);
        // The -5 J counter is dropped: priced from power,
        // (100 + 200) / 2 W * 2 s = 300 J (not 100 - (-5) = 105 J).
        let d = m.update(2.0, Some(Joules(100.0)), Some(Watts(200.0)), GAP);
        assert_eq!((d.energy, d.method), (Joules(300.0), Method::Trapezoid));
        // An infinite counter is dropped too: (200 + 200) / 2 W * 1 s = 200 J.
        let d = m.update(3.0, Some(Joules(f64::INFINITY)), Some(Watts(200.0)), GAP);
        assert_eq!((d.energy, d.method), (Joules(200.0), Method::Trapezoid));
        assert!(!d.counter_reset);
    }

    #[test]
    fn a_negative_non_finite_or_implausible_power_is_no_power() {
        let mut m = EnergyMeter::default();
        m.update(0.0, None, Some(Watts(100.0)), GAP);
        // -50 W is no power: 1 s with nothing usable, 0 J (not
        // (100 + -50) / 2 * 1 = 25 J).
        let d = m.update(1.0, None, Some(Watts(-50.0)), GAP);
        assert_eq!(d.energy, Joules(0.0));
        assert_eq!(d.unaccounted, Seconds(1.0));
        m.update(2.0, None, Some(Watts(100.0)), GAP);
        // Infinite power: 1 s unaccounted, not infinite energy.
        let d = m.update(3.0, None, Some(Watts(f64::INFINITY)), GAP);
        assert_eq!(d.energy, Joules(0.0));
        assert_eq!(d.unaccounted, Seconds(1.0));
        m.update(4.0, None, Some(Watts(100.0)), GAP);
        // 25 kW is beyond MAX_PLAUSIBLE_WATTS: 1 s unaccounted.
        let d = m.update(5.0, None, Some(Watts(25_000.0)), GAP);
        assert_eq!(d.energy, Joules(0.0));
        assert_eq!(d.unaccounted, Seconds(1.0));
        // Exactly 20 kW is plausible: (20000 + 0) / 2 W * 1 s = 10 000 J.
        m.update(6.0, None, Some(Watts(20_000.0)), GAP);
        let d = m.update(7.0, None, Some(Watts(0.0)), GAP);
        assert_eq!(d.energy, Joules(10_000.0));
    }

    #[test]
    fn last_mono_is_the_last_usable_sample() {
        let mut m = EnergyMeter::default();
        m.update(12.5, None, Some(Watts(100.0)), GAP);
        assert_eq!(m.last_mono(), Some(12.5));
        // An earlier instant keeps the older baseline.
        m.update(11.0, None, Some(Watts(100.0)), GAP);
        assert_eq!(m.last_mono(), Some(12.5));
        m.update(14.0, None, Some(Watts(100.0)), GAP);
        assert_eq!(m.last_mono(), Some(14.0));
    }

    #[test]
    fn a_second_sample_at_the_same_instant_adds_nothing_and_keeps_the_baseline() {
        let mut m = EnergyMeter::default();
        m.update(5.0, Some(Joules(0.0)), Some(Watts(100.0)), GAP);
        // dt = 0: nothing added, no reset, the 0 J baseline is kept.
        let d = m.update(5.0, Some(Joules(100.0)), Some(Watts(100.0)), GAP);
        assert_eq!(d.energy, Joules(0.0));
        assert!(!d.counter_reset);
        assert_eq!(d.unaccounted, Seconds(0.0));
        // From the kept baseline: 0 J -> 250 J over 1 s = 250 J.
        let d = m.update(6.0, Some(Joules(250.0)), Some(Watts(100.0)), GAP);
        assert_eq!(d.energy, Joules(250.0));
        assert_eq!(d.from_mono, 5.0);
    }

    #[test]
    fn a_delta_without_a_usable_interval_starts_at_its_own_sample() {
        let mut m = EnergyMeter::default();
        // The first sample covers no interval: it starts (and ends) at 12.5 s.
        let d = m.update(12.5, Some(Joules(10.0)), None, GAP);
        assert_eq!(d.from_mono, 12.5);
        // A sample from before the baseline (11 s): nothing, starting at 11 s.
        let d = m.update(11.0, Some(Joules(20.0)), None, GAP);
        assert_eq!((d.from_mono, d.energy), (11.0, Joules(0.0)));
        // The next one counts from the baseline at 12.5 s: 10 J -> 30 J = 20 J.
        let d = m.update(13.5, Some(Joules(30.0)), None, GAP);
        assert_eq!((d.from_mono, d.energy), (12.5, Joules(20.0)));
    }
}
