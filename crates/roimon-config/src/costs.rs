//! `[costs]`: non-energy costs (purchase, depreciation, fixed monthly) and how
//! they are shared between owners.

use roimon_core::ShareKey;
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
