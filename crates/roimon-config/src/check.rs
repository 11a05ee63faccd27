//! How the file is checked after it parsed: every section (and every item of
//! an array of tables) checks itself through one trait, [`Check`], told where
//! it sits by a [`Ctx`]; the order sections are checked in and the few checks
//! that span sections live here and nowhere else.

use crate::Config;

/// What is wrong, and where: (dotted key, message).
pub type Failure = (String, String);

/// Where a section, or an item of one, sits in the file: its dotted key path
/// (`price`, `price.schedule[1]`, empty for the top of the file). Errors name
/// keys through it, so a section never spells its own path.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    path: String,
}

impl Ctx {
    /// The top of the file.
    pub fn root() -> Self {
        Self::default()
    }

    /// The table `name` under this one: `price` → `price.mapping`.
    pub fn at(&self, name: &str) -> Self {
        Self {
            path: self.key(name),
        }
    }

    /// Item `i` of the array of tables this is: `price.schedule` →
    /// `price.schedule[1]`.
    pub fn item(&self, i: usize) -> Self {
        Self {
            path: format!("{}[{i}]", self.path),
        }
    }

    /// The dotted path of this place.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The dotted key of `name` here: `price` and `vat` → `price.vat`.
    pub fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// An error naming the key `name` here.
    pub fn fail(&self, name: &str, message: impl Into<String>) -> Result<(), Failure> {
        Err((self.key(name), message.into()))
    }
}

/// A part of the file that checks its own values once it has parsed.
pub trait Check {
    /// `Ok`, or the first thing wrong: the dotted key (built from `ctx`,
    /// where this part sits) and a message.
    fn check(&self, ctx: &Ctx) -> Result<(), Failure>;
}

/// An optional section is checked when it is present.
impl<T: Check> Check for Option<T> {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        self.as_ref().map_or(Ok(()), |t| t.check(ctx))
    }
}

/// The whole file: each section in turn (the first error found is the one
/// reported), with the check of names that spans sections between them.
impl Check for Config {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        let sections: [(&str, &dyn Check); 13] = [
            ("sampling", &self.sampling),
            ("facility", &self.facility),
            ("host", &self.host),
            ("price", &self.price),
            ("carbon", &self.carbon),
            ("costs", &self.costs),
            ("server", &self.server),
            ("state", &self.state),
            ("gpu", &self.gpu),
            ("attribution", &self.attribution),
            ("log", &self.log),
            ("value", &self.value),
            ("push", &self.push),
        ];
        for (name, section) in sections {
            section.check(&ctx.at(name))?;
        }
        // After the sections that refuse an empty rule team or KPI name,
        // before `[[budget]]`: a budget team of control characters (`"\t"`)
        // is reported as holding one, not as empty.
        check_names(self)?;
        let sections: [(&str, &dyn Check); 7] = [
            ("roi", &self.roi),
            ("node", &self.node),
            ("ledger", &self.ledger),
            ("report", &self.report),
            ("budget", &self.budget),
            ("influxdb", &self.influxdb),
            ("plan", &self.plan),
        ];
        for (name, section) in sections {
            section.check(&ctx.at(name))?;
        }
        Ok(())
    }
}

/// Every owner and KPI name the configuration gives is a name like a
/// pushed one: at most [`crate::MAX_NAME_BYTES`], no control characters.
pub fn check_names(cfg: &Config) -> Result<(), Failure> {
    let mut names: Vec<(String, &str)> = Vec::new();
    for (i, o) in cfg.gpu.owners.iter().enumerate() {
        names.push((format!("gpu.owners[{i}].team"), &o.team));
        names.push((format!("gpu.owners[{i}].workload"), &o.workload));
    }
    for (i, r) in cfg.attribution.rules.iter().enumerate() {
        names.push((format!("attribution.rules[{i}].team"), &r.team));
        names.push((format!("attribution.rules[{i}].workload"), &r.workload));
    }
    for (i, t) in cfg.value.scrape.iter().enumerate() {
        if let Some(team) = &t.team {
            names.push((format!("value.scrape[{i}].team"), team));
        }
        if let Some(w) = &t.workload {
            names.push((format!("value.scrape[{i}].workload"), w));
        }
    }
    for (i, k) in cfg.value.kpis.iter().enumerate() {
        names.push((format!("value.kpis[{i}].name"), &k.name));
        names.push((format!("value.kpis[{i}].team"), &k.team));
        names.push((format!("value.kpis[{i}].workload"), &k.workload));
    }
    for (i, b) in cfg.budget.iter().enumerate() {
        names.push((format!("budget[{i}].team"), &b.team));
        if let Some(w) = &b.workload {
            names.push((format!("budget[{i}].workload"), w));
        }
    }
    for k in cfg.roi.benefit_weights.keys() {
        names.push((format!("roi.benefit_weights.{k}"), k));
    }
    match names.into_iter().find_map(|(key, v)| {
        roimon_value::check_name("the name", v, crate::MAX_NAME_BYTES)
            .err()
            .map(|e| (key, e))
    }) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The keys every fetched source shares, at `ctx`: `[refresh, timeout,
/// retry_initial, retry_max]` seconds, `base_url`, and token_env/token_file
/// exclusivity.
pub(crate) fn check_fetch_keys(
    ctx: &Ctx,
    secs: [f64; 4],
    base_url: Option<&str>,
    both_tokens: bool,
) -> Result<(), Failure> {
    // Upper bounds keep typos from becoming endless waits (or overflows).
    let keys = [
        ("refresh_secs", 86_400.0),
        ("timeout_secs", 3_600.0),
        ("retry_initial_secs", 3_600.0),
        ("retry_max_secs", 86_400.0),
    ];
    for ((k, max), v) in keys.iter().zip(secs) {
        if !(v.is_finite() && v >= 0.01 && v <= *max) {
            return ctx.fail(
                k,
                format!("must be between 0.01 and {max} seconds, got {v}"),
            );
        }
    }
    if let Some(u) = base_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return ctx.fail(
                "base_url",
                format!("must start with http:// or https://, got {u:?}"),
            );
        }
    }
    if both_tokens {
        return ctx.fail("token_file", "give token_env or token_file, not both");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_builds_the_dotted_keys_errors_name() {
        let root = Ctx::root();
        assert_eq!(root.key("budget"), "budget");
        let rule = root.at("price").at("schedule").item(1);
        assert_eq!(rule.path(), "price.schedule[1]");
        assert_eq!(rule.key("to_hour"), "price.schedule[1].to_hour");
        assert_eq!(
            root.at("budget").item(0).fail("team", "x"),
            Err(("budget[0].team".to_string(), "x".to_string()))
        );
    }

    #[test]
    fn names_are_checked_after_empty_rule_teams_and_before_budgets() {
        let e = crate::Config::parse("[[budget]]\nteam = \"\\t\"\nmonthly = 1.0\n", "b.toml")
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("budget[0].team"), "{e}");
        assert!(e.message.contains("control character"), "{e}");
        let e = crate::Config::parse(
            "[[attribution.rules]]\nnamespace = \"a\"\nteam = \"\\t\"\n",
            "r.toml",
        )
        .unwrap_err();
        assert_eq!(
            (e.key.as_deref(), e.message.as_str()),
            (Some("attribution.rules[0].team"), "must not be empty"),
            "{e}"
        );
    }
}
