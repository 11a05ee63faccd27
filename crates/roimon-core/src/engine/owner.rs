//! Who money belongs to: owners, the rows keyed by (GPU, owner at accrual),
//! and how a GPU's figures are spread over the owners of what runs on it.

use super::{Engine, Row};
use crate::cost::Component;
use serde::{Deserialize, Serialize};

pub use crate::owner::{Owner, UNALLOCATED};

/// One owner's part of a GPU: who, the fraction (the parts of a GPU sum to
/// 1), and how the owner was found (recorded in [`Row::attributed_by`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerShare {
    /// The owner.
    pub owner: Owner,
    /// Fraction of the GPU's energy, money and emissions, 0..1.
    pub share: f64,
    /// How the owner was found, e.g. `rule:<name>`, `gpu_owner`, `idle`.
    pub rule: String,
}

/// [`Row::attributed_by`] of a GPU attributed by the UUID table.
pub const BY_GPU_OWNER: &str = "gpu_owner";

/// Whose money a row holds: a GPU (or `none`) and the owner it had when the
/// money accrued. An owner change starts a new row; the old one stays.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RowKey {
    /// GPU UUID (`none` on a node without GPUs).
    pub gpu_uuid: String,
    /// Team at accrual.
    pub team: String,
    /// Workload at accrual.
    pub workload: String,
}

impl RowKey {
    /// The row of `uuid` under `owner`.
    pub fn new(uuid: &str, owner: &Owner) -> Self {
        Self {
            gpu_uuid: uuid.to_string(),
            team: owner.team.clone(),
            workload: owner.workload.clone(),
        }
    }

    /// The owner part.
    pub fn owner(&self) -> Owner {
        Owner {
            team: self.team.clone(),
            workload: self.workload.clone(),
        }
    }
}

impl Engine {
    /// The owner the configuration gives `uuid` now.
    pub fn owner_of(&self, uuid: &str) -> Owner {
        self.cfg
            .owners
            .get(uuid)
            .cloned()
            .unwrap_or_else(Owner::unallocated)
    }

    /// Put in force who owns `uuid` from now on, by what runs on it:
    /// `shares` over owners (same owners merged, non-positive or
    /// non-finite shares dropped, the rest scaled to sum to 1). Kept until
    /// replaced, so a GPU whose collector misses a tick keeps its owners
    /// for the host and fixed-cost shares. An empty list returns the GPU
    /// to its owner of record.
    pub fn set_attribution(&mut self, uuid: &str, shares: Vec<OwnerShare>) {
        let mut merged: Vec<OwnerShare> = Vec::with_capacity(shares.len());
        for s in shares {
            if !(s.share.is_finite() && s.share > 0.0) {
                continue;
            }
            match merged.iter_mut().find(|m| m.owner == s.owner) {
                Some(m) => {
                    m.share += s.share;
                    if m.rule != s.rule && !m.rule.contains(&s.rule) {
                        // The same owner found two ways: keep both names.
                        m.rule = format!("{},{}", m.rule, s.rule);
                    }
                }
                None => merged.push(s),
            }
        }
        let sum: f64 = merged.iter().map(|m| m.share).sum();
        if merged.is_empty() || sum.is_nan() || sum <= 0.0 {
            self.attribution.remove(uuid);
            return;
        }
        for m in &mut merged {
            m.share /= sum;
        }
        self.attribution.insert(uuid.to_string(), merged);
    }

    /// Who owns `uuid` now and in what parts: by what runs on it where set,
    /// else its owner of record.
    pub fn owners_now(&self, uuid: &str) -> Vec<OwnerShare> {
        if let Some(v) = self.attribution.get(uuid) {
            return v.clone();
        }
        let owner = self.owner_of(uuid);
        let rule = if self.cfg.owners.contains_key(uuid) {
            BY_GPU_OWNER
        } else {
            UNALLOCATED
        };
        vec![OwnerShare {
            owner,
            share: 1.0,
            rule: rule.to_string(),
        }]
    }

    /// The row of `uuid` under `owner` (created at zero).
    fn row_of(&mut self, uuid: &str, share: &OwnerShare) -> &mut Row {
        let key = RowKey::new(uuid, &share.owner);
        let row = self.counters.rows.entry(key).or_default();
        // Every component exists from the row's start (at 0), so a
        // series never appears mid-way with a value.
        for c in Component::ALL {
            row.cost.entry(c).or_default();
        }
        row.credit.entry(Component::Energy).or_default();
        if row.attributed_by != share.rule {
            row.attributed_by.clone_from(&share.rule);
        }
        row
    }

    /// Spread `amount` of `uuid` over its owners now: `f` adds each part to
    /// its row. The parts sum to `amount` (the last takes the remainder).
    pub(super) fn spread<T>(&mut self, uuid: &str, amount: f64, f: impl Fn(&mut Row, f64) -> T) {
        // Borrowed out of the map for the loop (no copy on the hot path).
        let taken = self.attribution.get_mut(uuid).map(std::mem::take);
        let owners = match taken {
            Some(v) => v,
            None => self.owners_now(uuid),
        };
        let n = owners.len();
        let mut left = amount;
        for (i, o) in owners.iter().enumerate() {
            let part = if i + 1 == n {
                left
            } else {
                (amount * o.share).min(left)
            }
            .max(0.0);
            left -= part;
            f(self.row_of(uuid, o), part);
        }
        if let Some(v) = self.attribution.get_mut(uuid) {
            *v = owners;
        }
    }

    /// Every row `uuid` books to now exists (at zero).
    pub(super) fn touch_rows(&mut self, uuid: &str) {
        for o in self.owners_now(uuid) {
            self.row_of(uuid, &o);
        }
    }
}
