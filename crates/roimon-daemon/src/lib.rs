//! The daemon's running parts below the listener: the sampler that owns the
//! engine and ticks it, the supervision of its collectors, its inbox (the
//! closed set of events the feeds and the push endpoint send it), booking of
//! pushed batches, persistence (checkpoint and ledger), publication of
//! snapshots to readers (`Published` and its hold rule), the InfluxDB stream
//! thread and sd_notify. No HTTP server and no feed lives here: producers
//! depend on this crate's inbox, never the other way round.

pub mod booking;
pub mod checkpoint;
pub mod inbox;
pub mod influx_stream;
pub mod published;
pub mod sampler;
pub mod sdnotify;
pub mod simulated;
