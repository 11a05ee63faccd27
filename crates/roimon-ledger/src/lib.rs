//! roimon's finance ledger: one SQLite database in the state dir
//! (`ledger.sqlite3`) that holds the counters' checkpoint and, written in
//! the same transaction, one row per (UTC hour, node, GPU, team, workload)
//! with energy, cost by component, credit, emissions, value, tokens and how
//! the hour was priced. Closed hours are immutable; reports, reconciliation
//! (Σ ledger == counters) and budget gauges read it. The schema is
//! described in `docs/ledger.md`.

pub mod book;
pub mod budget;
pub mod figures;
pub mod measure;
pub mod report;
mod schema;
pub mod store;

pub use book::{BookState, HourBook, HourRows, Kind, hour_of, hour_of_end};
pub use budget::Budget;
pub use figures::{FIELDS, Figures, Key, VALUE_GPU};
pub use report::{Dim, Format, Query, Report};
pub use store::{
    DEFAULT_RETENTION_DAYS, Error, FILE, HourRow, Ledger, Meta, REPAIR_HINT, SeenOp, Stored,
    Verification, book_problem,
};

/// The schema version this build writes (`PRAGMA user_version`).
pub fn schema_version() -> i64 {
    schema::migrations().len() as i64
}
