//! `[plan]`: an allocation file the daemon plans every hour on the
//! coefficients it measures, serving the last plan and its analysis at
//! `GET /api/v1/plan` and linking its pictures from the status page.

use crate::{Check, Ctx, Failure};
use serde::Deserialize;
use std::path::PathBuf;

/// `[plan]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanCfg {
    /// The allocation file (`roimon plan FILE`'s format); absent: no plan.
    pub file: Option<PathBuf>,
}

impl Check for PlanCfg {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if let Some(f) = &self.file {
            if f.as_os_str().is_empty() {
                return ctx.fail("file", "must name an allocation file (or leave [plan] out)");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn plan_file_is_optional_and_must_name_a_file() {
        let c = Config::parse("[plan]\nfile = \"/etc/roimon/plan.toml\"\n", "t.toml").unwrap();
        assert_eq!(
            c.plan.file.as_deref(),
            Some(std::path::Path::new("/etc/roimon/plan.toml"))
        );
        assert!(Config::parse("", "t.toml").unwrap().plan.file.is_none());
        let e = Config::parse("[plan]\nfile = \"\"\n", "t.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("plan.file"), "{e}");
        let e = Config::parse("[plan]\nfiles = \"x\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("files"), "{e}");
    }
}
