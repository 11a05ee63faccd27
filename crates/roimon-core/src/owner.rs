//! Who money belongs to, as a plain (team, workload) value: the engine keys
//! its rows by it and the rolling windows group by it, so it lives apart
//! from both (neither imports the other for it).

use serde::{Deserialize, Serialize};

/// The owner of anything without a configured owner.
pub const UNALLOCATED: &str = "unallocated";

/// Who a GPU's costs go to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// Team.
    pub team: String,
    /// Workload.
    pub workload: String,
}

impl Owner {
    /// The explicit owner of what nobody owns.
    pub fn unallocated() -> Self {
        Self {
            team: UNALLOCATED.into(),
            workload: UNALLOCATED.into(),
        }
    }
}
