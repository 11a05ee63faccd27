//! `[node]`, `[ledger]`, `[report]` and `[[budget]]`: the node's name in
//! the ledger, how long closed hours are kept, the time zone of report
//! days and months (and of budget months), and monthly budgets per team or
//! workload.

use crate::{Check, Ctx, Failure};
use serde::Deserialize;

/// `[node]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Node {
    /// The `node` column of the ledger and tag of the InfluxDB stream
    /// (default: `$NODE_NAME`, else the host name).
    pub name: Option<String>,
}

impl Node {
    /// The configured name, else `$NODE_NAME` (set by the Helm chart from
    /// the Kubernetes node: a pod's host name changes with every rollout),
    /// else the host name, else `localhost`.
    pub fn name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if let Some(n) = std::env::var("NODE_NAME")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
        {
            return n;
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }
}

/// `[ledger]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerCfg {
    /// Closed hours older than this many days are summed into the purged
    /// totals and removed (0: keep for ever).
    pub retention_days: u32,
}

impl Default for LedgerCfg {
    fn default() -> Self {
        Self {
            retention_days: roimon_ledger::DEFAULT_RETENTION_DAYS,
        }
    }
}

/// `[report]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportCfg {
    /// IANA zone of report days and months and of budget months.
    pub timezone: String,
}

impl Default for ReportCfg {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
        }
    }
}

impl ReportCfg {
    /// The zone (validated at load).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

/// `[[budget]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetCfg {
    /// Team.
    pub team: String,
    /// One workload of the team (absent: the whole team).
    #[serde(default)]
    pub workload: Option<String>,
    /// Money per calendar month, in `price.currency`.
    pub monthly: f64,
}

impl Check for Node {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return ctx.fail("name", "must not be empty");
        }
        Ok(())
    }
}

impl Check for LedgerCfg {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.retention_days > 36_500 {
            return ctx.fail(
                "retention_days",
                format!(
                    "must be at most 36500 days (0 keeps every hour), got {}",
                    self.retention_days
                ),
            );
        }
        Ok(())
    }
}

impl Check for ReportCfg {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return ctx.fail(
                "timezone",
                format!("unknown IANA time zone {:?}", self.timezone),
            );
        }
        Ok(())
    }
}

impl Check for BudgetCfg {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.team.trim().is_empty() {
            return ctx.fail("team", "must not be empty");
        }
        if self
            .workload
            .as_deref()
            .is_some_and(|w| w.trim().is_empty())
        {
            return ctx.fail(
                "workload",
                "must not be empty (leave it out for a team-wide budget)",
            );
        }
        if !(self.monthly.is_finite() && self.monthly >= 0.0) {
            return ctx.fail(
                "monthly",
                format!("must be a non-negative amount, got {}", self.monthly),
            );
        }
        Ok(())
    }
}

/// `[[budget]]` as a whole: each budget, and one per team or workload.
impl Check for Vec<BudgetCfg> {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        let mut seen: Vec<(&str, Option<&str>)> = Vec::new();
        for (i, b) in self.iter().enumerate() {
            let at = ctx.item(i);
            b.check(&at)?;
            let id = (b.team.as_str(), b.workload.as_deref());
            if seen.contains(&id) {
                return at.fail(
                    "team",
                    format!(
                        "a budget for team {:?}{} is already configured",
                        b.team,
                        b.workload
                            .as_deref()
                            .map(|w| format!(", workload {w:?}"))
                            .unwrap_or_default()
                    ),
                );
            }
            seen.push(id);
        }
        Ok(())
    }
}
