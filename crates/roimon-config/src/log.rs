//! `[log]`: log format and level, and the check that a level filter logs
//! something.

use crate::{Check, Ctx, Failure};
use serde::Deserialize;

/// `[log] format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// text | json
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` wins.
    pub level: String,
}
impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Whether `filter` is a usable log filter: comma-separated directives, each
/// a level (`info`) or `target=level`. `EnvFilter` alone accepts a bare word
/// such as `verbose` as a target name, which silently logs nothing.
pub fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    if filter.trim().is_empty() {
        return Err("must not be empty (e.g. \"info\")".into());
    }
    for d in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = d.rsplit_once('=').map_or(d, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{d:?} does not end in a level ({}): nothing would be logged",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .map_err(|e| format!("not a valid filter: {e}"))
}

impl Check for Log {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if let Err(m) = check_log_level(&self.level) {
            return ctx.fail("level", format!("{:?}: {m}", self.level));
        }
        Ok(())
    }
}
