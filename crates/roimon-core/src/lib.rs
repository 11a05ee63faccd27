//! roimon's pure core: what a reading is, how energy is accounted, how it is
//! priced and attributed, and the snapshots exporters read. No tokio, HTTP,
//! NVML or clock: time comes in as a value (see ARCHITECTURE.md).

pub mod cost;
pub mod energy;
pub mod engine;
mod owner;
pub mod price;
pub mod reading;
pub mod roi;
pub mod units;
pub mod window;

pub use cost::{Component, FixedCosts, ShareKey};
pub use engine::{
    BY_GPU_OWNER, BudgetView, Carbon, CarbonView, Counters, Engine, EngineConfig, InvalidCounters,
    Kpi, ModelCounts, ModelDelta, Owner, OwnerShare, Report, Row, RowKey, Snapshot, Tick, ValueKey,
    ValueRow,
};
pub use price::{Basis, Slot, Tariff, TimeOfUse, TouRule};
pub use reading::{
    Claim, Collector, GpuProcess, GpuProcesses, GpuReading, HostPowerSource, HostReading,
    MigInstance, Reading, SampleError,
};
pub use units::{Joules, Money, PricePerKwh, Seconds, Watts};
