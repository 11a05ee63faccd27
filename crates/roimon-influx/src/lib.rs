//! roimon's InfluxDB v2 stream, without the network: line protocol
//! ([`Point`]), the points written for each sample and each closed ledger
//! hour ([`schema`]), the bounded crash-safe disk buffer every point passes
//! through ([`Buffer`]), and what a write answer means for the points sent
//! ([`answer`]). The sending loop lives in the daemon; this crate does no
//! network I/O and needs no runtime.

pub mod answer;
pub mod buffer;
pub mod line;
pub mod schema;

pub use answer::{Verdict, bad_lines, verdict};
pub use buffer::{Batch, Buffer, BufferConfig, Recovery};
pub use line::{Field, Point, encode_lines};
pub use schema::{HourRow, sample_points};
