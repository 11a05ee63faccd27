//! `[plan]`: the daemon's own planner run. With `file` set, the daemon
//! re-plans that allocation file every `interval_secs` on a background
//! thread, its `"measured"` coefficients read from its own ledger over the
//! last `window_days`, and serves the last plan on `/api/v1/plan`.

use crate::{Check, Ctx, Failure};
use serde::Deserialize;
use std::path::PathBuf;

/// The shortest re-planning interval (s): a plan is a few solves of up to
/// `time_limit_secs` each, not a sampling loop.
pub const MIN_PLAN_INTERVAL_SECS: f64 = 300.0;
/// The longest re-planning interval (s): a day.
pub const MAX_PLAN_INTERVAL_SECS: f64 = 86_400.0;
/// The longest time limit of one solve (s).
pub const MAX_PLAN_TIME_LIMIT_SECS: f64 = 600.0;
/// The longest measuring window (days).
pub const MAX_PLAN_WINDOW_DAYS: u32 = 366;

/// `[plan]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanCfg {
    /// The allocation file (`roimon plan FILE`'s format), read on every
    /// run; absent: the daemon does not plan.
    pub file: Option<PathBuf>,
    /// Seconds between runs.
    pub interval_secs: f64,
    /// Wall-clock limit of each solve, seconds.
    pub time_limit_secs: f64,
    /// The window of the measured coefficients: this many days ending at
    /// the run.
    pub window_days: u32,
    /// Also compute the tornado, the Monte Carlo (and, with a carbon
    /// intensity, the Pareto front) of each plan and serve their pictures.
    pub svg: bool,
}

impl Default for PlanCfg {
    fn default() -> Self {
        Self {
            file: None,
            interval_secs: 3600.0,
            time_limit_secs: 10.0,
            window_days: 7,
            svg: true,
        }
    }
}

impl Check for PlanCfg {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            return ctx.fail("file", "must not be empty (leave it out to plan nothing)");
        }
        let i = self.interval_secs;
        if !(i.is_finite() && (MIN_PLAN_INTERVAL_SECS..=MAX_PLAN_INTERVAL_SECS).contains(&i)) {
            return ctx.fail(
                "interval_secs",
                format!(
                    "must be between {MIN_PLAN_INTERVAL_SECS} and {MAX_PLAN_INTERVAL_SECS} seconds, got {i}"
                ),
            );
        }
        let t = self.time_limit_secs;
        if !(t.is_finite() && t > 0.0 && t <= MAX_PLAN_TIME_LIMIT_SECS) {
            return ctx.fail(
                "time_limit_secs",
                format!("must be in (0, {MAX_PLAN_TIME_LIMIT_SECS}] seconds, got {t}"),
            );
        }
        if !(1..=MAX_PLAN_WINDOW_DAYS).contains(&self.window_days) {
            return ctx.fail(
                "window_days",
                format!(
                    "must be between 1 and {MAX_PLAN_WINDOW_DAYS} days, got {}",
                    self.window_days
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn absent_means_no_planning_and_defaults_fill_the_rest() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c.plan.file, None);
        let c = Config::parse("[plan]\nfile = \"/etc/roimon/plan.toml\"\n", "t.toml").unwrap();
        assert_eq!(
            c.plan.file.as_deref(),
            Some(std::path::Path::new("/etc/roimon/plan.toml"))
        );
        assert_eq!(c.plan.interval_secs, 3600.0);
        assert_eq!(c.plan.time_limit_secs, 10.0);
        assert_eq!(c.plan.window_days, 7);
        assert!(c.plan.svg);
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let base = "[sampling]\ninterval_secs = 1.0\n\n[plan]\nfile = \"/p.toml\"\n";
        for (extra, key) in [
            ("interval_secs = 60.0\n", "plan.interval_secs"),
            ("interval_secs = 86401\n", "plan.interval_secs"),
            ("interval_secs = nan\n", "plan.interval_secs"),
            ("time_limit_secs = 0.0\n", "plan.time_limit_secs"),
            ("time_limit_secs = 601.0\n", "plan.time_limit_secs"),
            ("window_days = 0\n", "plan.window_days"),
            ("window_days = 400\n", "plan.window_days"),
            ("svg = \"yes\"\n", "plan.svg"),
            ("colour = 1\n", "plan.colour"),
        ] {
            let e = Config::parse(&format!("{base}{extra}"), "roimon.toml").unwrap_err();
            assert_eq!(
                (e.file.as_str(), e.line, e.key.as_deref()),
                ("roimon.toml", Some(6), Some(key)),
                "{extra}: {e}"
            );
        }
        let e = Config::parse(&format!("{base}interval_secs = 60.0\n"), "roimon.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "roimon.toml:6: key `plan.interval_secs`: must be between 300 and 86400 seconds, got 60"
        );
        let e = Config::parse("[plan]\nfile = \"\"\n", "roimon.toml").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("plan.file")));
    }
}
