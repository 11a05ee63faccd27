//! Non-energy costs of owning and running a node, as rates per second, and
//! the key by which shared costs are spread over GPUs.

use serde::{Deserialize, Serialize};

/// Seconds in a (Julian) year: 365.25 days.
pub const SECONDS_PER_YEAR: f64 = 365.25 * 86_400.0;
/// Seconds in an average month: a twelfth of a year.
pub const SECONDS_PER_MONTH: f64 = SECONDS_PER_YEAR / 12.0;

/// The cost components, as in the `component` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// Facility energy × price.
    Energy,
    /// Hardware amortised straight-line.
    Capex,
    /// Maintenance contracts.
    Maintenance,
    /// Staff.
    Staff,
    /// Emissions × carbon price (zero unless a carbon price is configured).
    Carbon,
}

impl Component {
    /// Every component, in label order.
    pub const ALL: [Component; 5] = [
        Self::Energy,
        Self::Capex,
        Self::Maintenance,
        Self::Staff,
        Self::Carbon,
    ];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Energy => "energy",
            Self::Capex => "capex",
            Self::Maintenance => "maintenance",
            Self::Staff => "staff",
            Self::Carbon => "carbon",
        }
    }
}

/// Fixed costs of the node as money per second.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FixedCosts {
    /// Capex per second.
    pub capex_per_sec: f64,
    /// Maintenance per second.
    pub maintenance_per_sec: f64,
    /// Staff per second.
    pub staff_per_sec: f64,
}

impl FixedCosts {
    /// Straight-line amortisation of `(purchase − residual)` over `years`, plus
    /// maintenance per year and staff per month, all accrued per second.
    pub fn new(
        purchase: f64,
        residual: f64,
        years: f64,
        maintenance_per_year: f64,
        staff_per_month: f64,
    ) -> Self {
        let capex_per_sec = if years > 0.0 {
            (purchase - residual).max(0.0) / (years * SECONDS_PER_YEAR)
        } else {
            0.0
        };
        Self {
            capex_per_sec,
            maintenance_per_sec: maintenance_per_year / SECONDS_PER_YEAR,
            staff_per_sec: staff_per_month / SECONDS_PER_MONTH,
        }
    }

    /// The rates as (component, money per second).
    pub fn rates(&self) -> [(Component, f64); 3] {
        [
            (Component::Capex, self.capex_per_sec),
            (Component::Maintenance, self.maintenance_per_sec),
            (Component::Staff, self.staff_per_sec),
        ]
    }
}

/// How the host's energy and the node's fixed costs are spread over GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareKey {
    /// Every GPU the same share.
    #[default]
    Equal,
    /// In proportion to each GPU's energy in the interval (equal when all are zero).
    Energy,
}

/// Shares (summing to 1) of `weights`' owners under `key`.
pub fn shares(key: ShareKey, weights: &[f64]) -> Vec<f64> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let total: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
    match key {
        ShareKey::Energy if total > 0.0 => weights
            .iter()
            .map(|w| {
                if w.is_finite() && *w > 0.0 {
                    w / total
                } else {
                    0.0
                }
            })
            .collect(),
        _ => vec![1.0 / n as f64; n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn straight_line_amortisation() {
        // 300k purchase, 30k residual, 3 years: 90k a year.
        let f = FixedCosts::new(300_000.0, 30_000.0, 3.0, 12_000.0, 1_000.0);
        assert!((f.capex_per_sec * SECONDS_PER_YEAR - 90_000.0).abs() < 1e-6);
        assert!((f.maintenance_per_sec * SECONDS_PER_YEAR - 12_000.0).abs() < 1e-9);
        assert!((f.staff_per_sec * SECONDS_PER_MONTH - 1_000.0).abs() < 1e-9);
    }

    #[test]
    fn shares_sum_to_one() {
        assert_eq!(shares(ShareKey::Equal, &[5.0, 0.0]), vec![0.5, 0.5]);
        assert_eq!(shares(ShareKey::Energy, &[3.0, 1.0]), vec![0.75, 0.25]);
        assert_eq!(shares(ShareKey::Energy, &[0.0, 0.0]), vec![0.5, 0.5]);
        assert!(shares(ShareKey::Energy, &[]).is_empty());
    }

    // Hand figures: a Julian year is 365.25 d * 86 400 s = 31 557 600 s and
    // a month a twelfth of it, 2 629 800 s. The tests below use those literals,
    // never the constants, so a wrong constant fails them.

    #[test]
    fn a_year_is_31_557_600_seconds_and_a_month_2_629_800() {
        assert_eq!(SECONDS_PER_YEAR, 31_557_600.0);
        assert_eq!(SECONDS_PER_MONTH, 2_629_800.0);
    }

    #[test]
    fn yearly_and_monthly_costs_accrue_per_second_from_hand_figures() {
        // Maintenance 31 557 600 a year = 1 per second; staff 5 259 600 a
        // month = 2 per second; capex (100 000 000 + 3 * 31 557 600 - 100 000 000)
        // over 3 years = 94 672 800 / 94 672 800 s = 1 per second.
        let f = FixedCosts::new(194_672_800.0, 100_000_000.0, 3.0, 31_557_600.0, 5_259_600.0);
        assert_eq!(f.capex_per_sec, 1.0);
        assert_eq!(f.maintenance_per_sec, 1.0);
        assert_eq!(f.staff_per_sec, 2.0);
        assert_eq!(
            f.rates(),
            [
                (Component::Capex, 1.0),
                (Component::Maintenance, 1.0),
                (Component::Staff, 2.0)
            ]
        );
    }

    #[test]
    fn no_years_or_a_residual_above_the_purchase_is_no_capex() {
        // Zero years: no amortisation (not 270 000 / 0 = infinity).
        let f = FixedCosts::new(300_000.0, 30_000.0, 0.0, 0.0, 0.0);
        assert_eq!(f.capex_per_sec, 0.0);
        // Negative years: none either (not a negative rate).
        let f = FixedCosts::new(300_000.0, 30_000.0, -1.0, 0.0, 0.0);
        assert_eq!(f.capex_per_sec, 0.0);
        // Residual 400 000 above purchase 300 000: nothing to amortise (not
        // -100 000 over the years).
        let f = FixedCosts::new(300_000.0, 400_000.0, 3.0, 0.0, 0.0);
        assert_eq!(f.capex_per_sec, 0.0);
    }

    #[test]
    fn component_labels() {
        let labels: Vec<&str> = Component::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            labels,
            ["energy", "capex", "maintenance", "staff", "carbon"]
        );
    }

    #[test]
    fn energy_shares_ignore_negative_and_non_finite_weights() {
        // Usable weights 3 and 1 (total 4): 3/4 and 1/4; -2, NaN and
        // infinity get nothing and add nothing to the total.
        assert_eq!(
            shares(ShareKey::Energy, &[3.0, -2.0, 1.0, f64::NAN, f64::INFINITY]),
            vec![0.75, 0.0, 0.25, 0.0, 0.0]
        );
        // Only a negative weight besides zero: total 0, so equal shares of 1/2.
        assert_eq!(shares(ShareKey::Energy, &[-2.0, 0.0]), vec![0.5, 0.5]);
        // Equal key over three: 1/3 each whatever the weights.
        assert_eq!(
            shares(ShareKey::Equal, &[3.0, 1.0, 0.0]),
            vec![1.0 / 3.0; 3]
        );
        assert!(shares(ShareKey::Equal, &[]).is_empty());
    }
}
