//! `[costs]`: non-energy costs (purchase, depreciation, fixed monthly) and how
//! they are shared between owners.

use crate::{Check, Ctx, Failure};
use roimon_core::{FixedCosts, ShareKey};
use serde::Deserialize;

/// `[costs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Costs {
    /// equal | energy
    pub share_key: ShareKey,
    /// Purchase price of the node (currency).
    pub purchase: f64,
    /// Residual value at the end of depreciation.
    pub residual: f64,
    /// Straight-line depreciation period, years.
    pub depreciation_years: f64,
    /// Maintenance per year.
    pub maintenance_per_year: f64,
    /// Staff cost per month attributed to this node.
    pub staff_per_month: f64,
}
impl Default for Costs {
    fn default() -> Self {
        Self {
            share_key: ShareKey::Equal,
            purchase: 0.0,
            residual: 0.0,
            depreciation_years: 4.0,
            maintenance_per_year: 0.0,
            staff_per_month: 0.0,
        }
    }
}

impl Check for Costs {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        for (name, v) in [
            ("purchase", self.purchase),
            ("residual", self.residual),
            ("maintenance_per_year", self.maintenance_per_year),
            ("staff_per_month", self.staff_per_month),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return ctx.fail(name, format!("must be a non-negative amount, got {v}"));
            }
        }
        if self.residual > self.purchase {
            return ctx.fail(
                "residual",
                format!("must not exceed costs.purchase ({})", self.purchase),
            );
        }
        if !(self.depreciation_years.is_finite() && self.depreciation_years > 0.0) {
            return ctx.fail(
                "depreciation_years",
                format!("must be > 0, got {}", self.depreciation_years),
            );
        }
        // Derived figures must be usable numbers: a huge purchase over a
        // tiny depreciation period overflows to infinity, and an infinite
        // increment is refused by every counter (booking silently stops).
        let fixed = FixedCosts::new(
            self.purchase,
            self.residual,
            self.depreciation_years,
            self.maintenance_per_year,
            self.staff_per_month,
        );
        for (name, v) in [
            ("purchase", fixed.capex_per_sec),
            ("maintenance_per_year", fixed.maintenance_per_sec),
            ("staff_per_month", fixed.staff_per_sec),
        ] {
            // 1e6 per second is 3e13 a year: far beyond any node.
            if !(v.is_finite() && v <= 1e6) {
                return ctx.fail(
                    name,
                    format!("gives {v} per second, beyond any node (at most 1e6 per second)"),
                );
            }
        }
        Ok(())
    }
}
