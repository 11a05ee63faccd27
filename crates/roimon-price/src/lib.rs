//! Electricity price and grid-carbon sources, as pure functions: each
//! publisher's response body in, a normalised schedule of `[start, end)` UTC
//! slots out. No HTTP and no clock here: the daemon fetches, this crate reads.

pub mod parse;
pub mod schedule;

pub use schedule::{
    Adjustments, CARBON_UNIT, MAX_SLOTS, MIN_SLOT_SECS, Parsed, PriceError, PriceSlot, RawSlot,
    Schedule, Unit, normalise, normalise_carbon,
};
