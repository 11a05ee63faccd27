//! The configuration file: its schema (which is also its reference, see the
//! README), the built-in default, and validation whose errors name the file,
//! line and key. Two stages: parse and check user input (every section checks
//! itself through [`Check`]; the order and the checks spanning sections are in
//! `check.rs`), then build the core's validated `EngineConfig`.

use roimon_core::{
    EngineConfig, FixedCosts, Owner, PricePerKwh, Seconds, Tariff, TimeOfUse, TouRule,
};
use serde::Deserialize;
use std::fmt;
use std::path::Path;

mod attribution;
mod carbon;
mod check;
mod costs;
mod facility;
mod gpu;
mod host;
mod influxdb;
mod ledger;
mod log;
mod plan;
mod price;
mod push;
mod roi;
mod sampling;
mod server;
mod state;
mod value;

pub use attribution::*;
pub use carbon::*;
pub use check::{Check, Ctx, Failure, check_names};
pub use costs::*;
pub use facility::*;
pub use gpu::*;
pub use host::*;
pub use influxdb::*;
pub use ledger::*;
pub use log::*;
pub use plan::*;
pub use price::*;
pub use push::*;
pub use roi::*;
pub use sampling::*;
pub use server::*;
pub use state::*;
pub use value::*;

/// The configuration used when no file is given: safe on any machine.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/default.toml");

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Sampling.
    #[serde(default)]
    pub sampling: Sampling,
    /// GPUs.
    #[serde(default)]
    pub gpu: Gpu,
    /// Who GPUs are attributed to: by process or by the UUID table.
    #[serde(default)]
    pub attribution: Attribution,
    /// The host.
    #[serde(default)]
    pub host: Host,
    /// The facility.
    #[serde(default)]
    pub facility: Facility,
    /// Electricity price.
    #[serde(default)]
    pub price: Price,
    /// Grid carbon intensity.
    #[serde(default)]
    pub carbon: CarbonCfg,
    /// Non-energy costs.
    #[serde(default)]
    pub costs: Costs,
    /// HTTP listener.
    #[serde(default)]
    pub server: Server,
    /// State directory.
    #[serde(default)]
    pub state: State,
    /// Logging.
    #[serde(default)]
    pub log: Log,
    /// Value sources.
    #[serde(default)]
    pub value: Value,
    /// Pushed value.
    #[serde(default)]
    pub push: Push,
    /// The ROI model.
    #[serde(default)]
    pub roi: Roi,
    /// This node.
    #[serde(default)]
    pub node: Node,
    /// The finance ledger.
    #[serde(default)]
    pub ledger: LedgerCfg,
    /// Reports (and budget months).
    #[serde(default)]
    pub report: ReportCfg,
    /// Monthly budgets.
    #[serde(default)]
    pub budget: Vec<BudgetCfg>,
    /// The InfluxDB v2 stream (absent: off).
    #[serde(default)]
    pub influxdb: Option<InfluxDb>,
    /// The allocation planned every hour (absent: none).
    #[serde(default)]
    pub plan: PlanCfg,
}

/// A configuration error, naming file, line and key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file (`<built-in>` for the default).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}
impl std::error::Error for ConfigError {}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Find the line of a dotted key path like `price.schedule[1].to_hour` by
/// walking table headers; good enough for the files this schema allows.
pub fn locate(src: &str, path: &str) -> Option<usize> {
    let (table_path, key) = match path.rsplit_once('.') {
        Some((t, k)) => (t.to_string(), k.to_string()),
        None => (String::new(), path.to_string()),
    };
    // Split "price.schedule[1]" into table "price.schedule" and index 1.
    let (table, index) = match table_path
        .strip_suffix(']')
        .and_then(|t| t.rsplit_once('['))
    {
        Some((t, i)) => (t.to_string(), i.parse::<usize>().ok()),
        None => (table_path.clone(), None),
    };
    let mut current = String::new();
    let mut seen_index: Option<usize> = None;
    let mut table_line = None;
    for (n, raw) in src.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            current = h.trim().to_string();
            if current == table {
                seen_index = Some(seen_index.map_or(0, |i| i + 1));
                if index == seen_index {
                    table_line = Some(n + 1);
                }
            }
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = h.trim().to_string();
            if current == table && index.is_none() {
                table_line = Some(n + 1);
            }
            continue;
        }
        let in_table = current == table && (index.is_none() || index == seen_index);
        if in_table {
            if let Some((k, _)) = line.split_once('=') {
                if k.trim().trim_matches('"') == key {
                    return Some(n + 1);
                }
            }
        }
        if table.is_empty() && current.is_empty() {
            if let Some((k, _)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(n + 1);
                }
            }
        }
    }
    table_line
}

/// Deserialize any TOML document strictly, mapping errors to file, line and key.
pub fn parse_toml<T: serde::de::DeserializeOwned>(src: &str, file: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(src).map_err(|e| ConfigError {
        file: file.into(),
        line: e.span().map(|s| line_of(src, s.start)),
        key: None,
        message: e.message().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let mut key = if path == "." {
            None
        } else {
            Some(path.clone())
        };
        let message = inner.message().trim().to_string();
        // For an unknown field, name the field itself.
        if let Some(rest) = message.strip_prefix("unknown field `") {
            if let Some(field) = rest
                .split('`')
                .next()
                .filter(|f| !path.ends_with(&format!(".{f}")) && path != *f)
            {
                key = Some(match &key {
                    Some(k) => format!("{k}.{field}"),
                    None => field.to_string(),
                });
            }
        }
        let line = inner
            .span()
            .map(|s| line_of(src, s.start))
            .or_else(|| key.as_deref().and_then(|k| locate(src, k)));
        ConfigError {
            file: file.into(),
            line,
            key,
            message,
        }
    })
}

/// Largest configuration (or scenario) file read: a config is a few KB; a
/// mistaken path to a log or a device must not be read into memory.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Read a file for [`parse_toml`]-style parsing, at most
/// [`MAX_CONFIG_BYTES`].
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let fail = |message: String| ConfigError {
        file: path.display().to_string(),
        line: None,
        key: None,
        message,
    };
    let f = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut buf = Vec::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if buf.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "larger than {} KiB: not a configuration file",
            MAX_CONFIG_BYTES >> 10
        )));
    }
    String::from_utf8(buf).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        ConfigError {
            line: Some(line),
            ..fail(format!("not UTF-8: {}", e.utf8_error()))
        }
    })
}

impl Config {
    /// Parse and validate `src`, read from `file`.
    pub fn parse(src: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = parse_toml(src, file)?;
        cfg.check(&Ctx::root())
            .map_err(|(key, message)| ConfigError {
                file: file.into(),
                line: locate(src, &key),
                key: Some(key),
                message,
            })?;
        Ok(cfg)
    }

    /// Read and parse a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = read_file(path)?;
        Self::parse(&src, &path.display().to_string())
    }

    /// The built-in default.
    pub fn builtin() -> Config {
        // The default is checked by a test; failing here is a build defect.
        Self::parse(DEFAULT_CONFIG, "<built-in>").expect("built-in default config is valid")
    }

    /// The core's configuration.
    pub fn engine_config(&self) -> EngineConfig {
        let p = &self.price;
        let tariff = match p.source {
            PriceSource::Static => Tariff::Static(PricePerKwh(p.price_per_kwh)),
            PriceSource::Schedule => Tariff::TimeOfUse(TimeOfUse {
                tz: p.timezone.parse().unwrap_or(chrono_tz::UTC),
                rules: p
                    .schedule
                    .iter()
                    .map(|r| TouRule {
                        name: r.name.clone(),
                        days: r.days.iter().filter_map(|d| parse_weekday(d)).collect(),
                        from_hour: r.from_hour,
                        to_hour: r.to_hour,
                        price: PricePerKwh(r.price_per_kwh),
                    })
                    .collect(),
                default_price: PricePerKwh(p.price_per_kwh),
            }),
            // Fetched sources start on the fallback until a schedule arrives
            // (from the state dir or the network).
            _ => Tariff::Slots {
                slots: Vec::new(),
                fallback: PricePerKwh(p.price_per_kwh),
                last_known: p.fallback == FallbackPolicy::LastKnown,
            },
        };
        let c = &self.costs;
        EngineConfig {
            currency: p.currency.clone(),
            pue: self.facility.pue,
            tariff,
            price_source: p.source.label().into(),
            fixed: FixedCosts::new(
                c.purchase,
                c.residual,
                c.depreciation_years,
                c.maintenance_per_year,
                c.staff_per_month,
            ),
            share_key: c.share_key,
            owners: self
                .gpu
                .owners
                .iter()
                .map(|o| {
                    (
                        o.gpu_uuid.clone(),
                        Owner {
                            team: o.team.clone(),
                            workload: o.workload.clone(),
                        },
                    )
                })
                .collect(),
            max_gap: Seconds(self.sampling.interval_secs * self.sampling.max_gap_intervals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_default_is_valid() {
        let c = Config::builtin();
        assert_eq!(c.gpu.source, GpuSource::Auto);
        assert_eq!(c.sampling.interval_secs, 1.0);
    }

    #[test]
    fn example_config_is_valid() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/roimon.example.toml"
        );
        let c = Config::load(Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.price.source, PriceSource::Schedule);
        assert!(!c.gpu.owners.is_empty());
        let e = c.engine_config();
        assert!(matches!(e.tariff, Tariff::TimeOfUse(_)));
    }

    /// The README's quick start on a machine without GPUs runs this file:
    /// simulated GPUs, a static price, loopback only, state like the default.
    #[test]
    fn simulated_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/simulated.toml");
        let c = Config::load(Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.gpu.source, GpuSource::Simulated);
        assert_eq!(c.price.source, PriceSource::Static);
        let listen: std::net::SocketAddr = c.server.listen.parse().unwrap();
        assert!(listen.ip().is_loopback(), "{listen}");
        assert_eq!(c.state.dir, Config::builtin().state.dir);
    }

    /// The ```toml blocks of one README section.
    fn readme_blocks(heading: &str) -> Vec<&'static str> {
        let readme: &'static str = include_str!("../../../README.md");
        let start = readme
            .find(heading)
            .unwrap_or_else(|| panic!("README has no {heading} section"));
        let section = &readme[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        section
            .split("```toml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .collect()
    }

    #[test]
    fn every_price_source_example_in_the_readme_is_valid() {
        let mut seen = Vec::new();
        for toml in readme_blocks("## Price sources") {
            let c = Config::parse(toml, "README.md").unwrap_or_else(|e| panic!("{e}\n{toml}"));
            assert!(c.price.source.is_fetched(), "{toml}");
            seen.push(c.price.source.label());
        }
        for want in [
            "entsoe",
            "nordpool",
            "awattar",
            "tibber",
            "octopus",
            "energidataservice",
            "json",
            "csv",
        ] {
            assert!(seen.contains(&want), "README lacks an example for {want}");
        }
        let carbon: Vec<&str> = readme_blocks("## Grid carbon")
            .into_iter()
            .map(|toml| {
                Config::parse(toml, "README.md")
                    .unwrap_or_else(|e| panic!("{e}\n{toml}"))
                    .carbon
                    .source
                    .label()
            })
            .collect();
        assert_eq!(carbon, ["electricitymaps", "uk"]);
    }

    #[test]
    fn server_limits_are_bounded() {
        let c = Config::builtin();
        assert_eq!(c.server.max_connections, 512);
        assert_eq!(c.server.header_read_timeout_secs, 10.0);
        assert_eq!(c.server.idle_timeout_secs, 90.0);
        let ok = Config::parse(
            "[server]\nmax_connections = 4\nheader_read_timeout_secs = 0.5\nidle_timeout_secs = 2\n",
            "s.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.server.max_connections, 4);
        for (src, key) in [
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
            (
                "[server]\nmax_connections = 1000000\n",
                "server.max_connections",
            ),
            (
                "[server]\nheader_read_timeout_secs = 0\n",
                "server.header_read_timeout_secs",
            ),
            (
                "[server]\nheader_read_timeout_secs = nan\n",
                "server.header_read_timeout_secs",
            ),
            (
                "[server]\nidle_timeout_secs = 1e9\n",
                "server.idle_timeout_secs",
            ),
        ] {
            let e = Config::parse(src, "s.toml").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{src}: {e}");
        }
    }

    #[test]
    fn live_sources_name_the_key_they_miss() {
        let cases = [
            (
                "[price]\nsource = \"entsoe\"\ntoken_env = \"T\"\n",
                "price.area",
            ),
            (
                "[price]\nsource = \"entsoe\"\narea = \"X\"\n",
                "price.token_env",
            ),
            (
                "[price]\nsource = \"octopus\"\nproduct = \"AGILE-24-10-01\"\nregion = \"Z\"\n",
                "price.region",
            ),
            (
                "[price]\nsource = \"json\"\nurl = \"http://x\"\n",
                "price.mapping",
            ),
            ("[price]\nsource = \"awattar\"\nvat = 19\n", "price.vat"),
            (
                "[price]\nsource = \"awattar\"\nrefresh_secs = 1e20\n",
                "price.refresh_secs",
            ),
            (
                "[price]\nsource = \"awattar\"\nretries = 1000\n",
                "price.retries",
            ),
            (
                "[price]\nsource = \"awattar\"\ndays_ahead = 400\n",
                "price.days_ahead",
            ),
            (
                "[price]\nsource = \"json\"\ncurrency = \"JPY\"\nurl = \"http://x\"\n",
                "price.max_abs_price_per_kwh",
            ),
            (
                "[price]\nsource = \"awattar\"\nbase_url = \"ftp://x\"\n",
                "price.base_url",
            ),
            (
                "[price]\nsource = \"csv\"\npath = \"/x.csv\"\nunit = \"EUR/GJ\"\n",
                "price.unit",
            ),
        ];
        for (src, key) in cases {
            let e = Config::parse(src, "p.toml").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{src}: {e}");
            assert!(e.line.is_some(), "{e}");
        }
    }

    #[test]
    fn carbon_keys_are_checked() {
        let ok = Config::parse(
            "[carbon]\nsource = \"uk\"\npostcode = \"BH1\"\ngrams_per_kwh = 200.0\nprice_per_tonne = 80.0\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(ok.carbon.source, CarbonSource::Uk);
        for (src, key) in [
            ("[carbon]\nsource = \"uk\"\n", "carbon.grams_per_kwh"),
            (
                "[carbon]\nsource = \"static\"\ngrams_per_kwh = 9000.0\n",
                "carbon.grams_per_kwh",
            ),
            (
                "[carbon]\nsource = \"electricitymaps\"\ngrams_per_kwh = 300.0\ntoken_env = \"T\"\n",
                "carbon.zone",
            ),
            (
                "[carbon]\nsource = \"electricitymaps\"\ngrams_per_kwh = 300.0\nzone = \"DE\"\n",
                "carbon.token_env",
            ),
            (
                "[carbon]\nsource = \"static\"\ngrams_per_kwh = 300.0\nprice_per_tonne = -1.0\n",
                "carbon.price_per_tonne",
            ),
        ] {
            let e = Config::parse(src, "c.toml").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{src}: {e}");
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let src = "[sampling]\ninterval_secs = 1.0\n\n[facility]\npue = 1.2\npeu = 1.3\n";
        let e = Config::parse(src, "x.toml").unwrap_err();
        assert_eq!(e.file, "x.toml");
        assert_eq!(e.key.as_deref(), Some("facility.peu"), "{e}");
        assert_eq!(e.line, Some(6), "{e}");
        assert!(
            e.to_string().starts_with("x.toml:6: key `facility.peu`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let src = "[price]\ncurrency = \"EUR\"\nprice_per_kwh = \"cheap\"\n";
        let e = Config::parse(src, "y.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("price.price_per_kwh"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn semantic_error_names_line_and_key() {
        let src = "[facility]\n\npue = 0.5\n";
        let e = Config::parse(src, "z.toml").unwrap_err();
        assert_eq!(
            (e.key.as_deref(), e.line),
            (Some("facility.pue"), Some(3)),
            "{e}"
        );
        let src = "[price]\nsource = \"schedule\"\n[[price.schedule]]\nfrom_hour = 8\nto_hour = 20\nprice_per_kwh = 0.3\n[[price.schedule]]\nfrom_hour = 30\nto_hour = 2\nprice_per_kwh = 0.1\n";
        let e = Config::parse(src, "z.toml").unwrap_err();
        assert_eq!(
            (e.key.as_deref(), e.line),
            (Some("price.schedule[1].from_hour"), Some(8)),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let e = Config::parse("[price\ncurrency = 1\n", "s.toml").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn value_push_and_roi_keys_are_checked() {
        let ok = "[[value.scrape]]\nurl = \"http://127.0.0.1:8000/metrics\"\nteam = \"a\"\ninput_per_million_tokens = 0.5\n[value.scrape.models.m]\noutput_per_million_tokens = 2.0\n[roi]\nwindows = [\"1h\", \"7d\"]\ncost_weights = { energy = 0.5 }\n";
        let c = Config::parse(ok, "v.toml").unwrap();
        assert_eq!(c.value.scrape[0].label(), "127.0.0.1:8000");
        assert_eq!(c.value.scrape[0].models["m"].output_per_million_tokens, 2.0);
        assert_eq!(
            c.roi.window_spec(),
            vec![("1h".to_string(), 3600), ("7d".to_string(), 604_800)]
        );
        for (src, key) in [
            (
                "[[value.scrape]]\nurl = \"ftp://x\"\nteam = \"a\"\n",
                "value.scrape[0].url",
            ),
            (
                "[[value.scrape]]\nurl = \"http://x\"\nkind = \"ollama\"\nteam = \"a\"\n",
                "value.scrape[0].kind",
            ),
            (
                "[[value.scrape]]\nurl = \"http://x\"\n",
                "value.scrape[0].team",
            ),
            (
                "[[value.scrape]]\nurl = \"http://x\"\nteam = \"a\"\ngpu_uuids = [\"GPU-1\"]\n",
                "value.scrape[0].gpu_uuids",
            ),
            (
                "[[value.scrape]]\nurl = \"http://x\"\nteam = \"a\"\nper_request = -1.0\n",
                "value.scrape[0].per_request",
            ),
            (
                "[[value.scrape]]\nurl = \"http://x\"\nteam = \"a\"\n[[value.scrape]]\nurl = \"http://x/m\"\nteam = \"b\"\n",
                "value.scrape[1].name",
            ),
            (
                "[[value.kpis]]\nname = \"precision\"\nvalue = 1.5\nteam = \"a\"\n",
                "value.kpis[0].value",
            ),
            ("[push]\nmax_body_bytes = 10\n", "push.max_body_bytes"),
            ("[roi]\nwindows = [\"5y\"]\n", "roi.windows"),
            ("[roi]\nwindows = [\"60m\", \"1h\"]\n", "roi.windows"),
            (
                "[roi]\ncost_weights = { gpu = 1.0 }\n",
                "roi.cost_weights.gpu",
            ),
            (
                "[roi]\nbenefit_weights = { precision = -1.0 }\n",
                "roi.benefit_weights.precision",
            ),
        ] {
            let e = Config::parse(src, "v.toml").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{src}: {e}");
            // Keys inside inline tables have no line of their own.
            assert!(e.line.is_some() || key.contains("_weights."), "{src}: {e}");
        }
    }

    #[test]
    fn value_bounds_have_defaults_a_value_wide_setting_and_a_per_target_one() {
        let src = "[value]\nmax_models = 8\nmax_tokens_per_second = 5e4\n[[value.scrape]]\nurl = \"http://127.0.0.1:8000/metrics\"\nteam = \"a\"\n[[value.scrape]]\nurl = \"http://127.0.0.1:8001/metrics\"\nteam = \"b\"\nmax_models = 2\nmax_requests_per_second = 10.0\n";
        let c = Config::parse(src, "v.toml").unwrap();
        let (a, b) = (
            c.value.bounds(&c.value.scrape[0]),
            c.value.bounds(&c.value.scrape[1]),
        );
        assert_eq!((a.max_models, a.max_tokens_per_second), (8, 5e4));
        assert_eq!(a.max_requests_per_second, 1e6, "the default");
        assert_eq!((b.max_models, b.max_requests_per_second), (2, 10.0));
        assert_eq!(b.max_tokens_per_second, 5e4, "[value]'s");
        let d = Config::builtin().value;
        let t: ScrapeTarget = toml::from_str("url = \"http://x\"\nteam = \"a\"\n").unwrap();
        let db = d.bounds(&t);
        assert_eq!(
            (
                db.max_tokens_per_second,
                db.max_requests_per_second,
                db.max_models
            ),
            (1e7, 1e6, 64)
        );
        for (src, key) in [
            ("[value]\nmax_models = 0\n", "value.max_models"),
            ("[value]\nmax_models = 5000\n", "value.max_models"),
            (
                "[value]\nmax_tokens_per_second = nan\n",
                "value.max_tokens_per_second",
            ),
            (
                "[value]\nmax_requests_per_second = 0.5\n",
                "value.max_requests_per_second",
            ),
            (
                "[[value.scrape]]\nurl = \"http://x\"\nteam = \"a\"\nmax_tokens_per_second = inf\n",
                "value.scrape[0].max_tokens_per_second",
            ),
        ] {
            let e = Config::parse(src, "v.toml").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{src}: {e}");
            assert!(e.line.is_some(), "{src}: {e}");
        }
    }

    #[test]
    fn attribution_keys_are_checked() {
        let ok = "[attribution]\nmode = \"process\"\nidle = \"idle\"\nproc_root = \"/tmp/p\"\n[[attribution.rules]]\nnamespace = \"a\"\nteam = \"t\"\n";
        let c = Config::parse(ok, "a.toml").unwrap();
        assert_eq!(c.attribution.mode, AttributionMode::Process);
        assert_eq!(c.attribution.idle, IdleOwner::Idle);
        assert_eq!(c.attribution.rules[0].workload, "unallocated");
        assert_eq!(Config::builtin().attribution.mode, AttributionMode::Auto);
        for (src, key, line) in [
            ("[attribution]\nmode = \"pid\"\n", "attribution.mode", 2),
            (
                "[[attribution.rules]]\nteam = \"t\"\n",
                "attribution.rules[0].team",
                2,
            ),
            (
                "[[attribution.rules]]\nunit = \"a\"\nteam = \"t\"\n[[attribution.rules]]\nteam = \"t\"\npod = \"\"\n",
                "attribution.rules[1].pod",
                6,
            ),
            (
                "[[attribution.rules]]\nteam = \"t\"\nlabel = \"x\"\n",
                "attribution.rules[0].label",
                3,
            ),
            (
                "[[attribution.rules]]\nlabels = { app = \"x\" }\nteam = \"t\"\n",
                "attribution.rules[0].labels",
                2,
            ),
            (
                "[attribution]\npods_url = \"ftp://x\"\n",
                "attribution.pods_url",
                2,
            ),
            (
                "[attribution]\nmax_cached_processes = 0\n",
                "attribution.max_cached_processes",
                2,
            ),
        ] {
            let e = Config::parse(src, "a.toml").unwrap_err();
            assert_eq!(
                (e.key.as_deref(), e.line),
                (Some(key), Some(line)),
                "{src}: {e}"
            );
        }
    }

    #[test]
    fn duplicate_owner_is_refused() {
        let src = "[[gpu.owners]]\ngpu_uuid = \"GPU-1\"\nteam = \"a\"\n[[gpu.owners]]\ngpu_uuid = \"GPU-1\"\nteam = \"b\"\n";
        let e = Config::parse(src, "o.toml").unwrap_err();
        assert_eq!(
            (e.key.as_deref(), e.line),
            (Some("gpu.owners[1].gpu_uuid"), Some(5)),
            "{e}"
        );
    }

    /// `Config::load` and `Config::parse` survive any input: arbitrary bytes
    /// and mutated real configs (the built-in default and the annotated
    /// example) never panic, and every error names the file and a line or a
    /// key. 64 cases per strategy: 64 arbitrary files through `load`, 64
    /// arbitrary texts and 64 mutated configs through `parse`.
    mod survives_any_input {
        use super::*;
        use proptest::prelude::*;

        const EXAMPLE: &str = include_str!("../../../config/roimon.example.toml");

        fn assert_places(e: &ConfigError, file: &str) -> Result<(), TestCaseError> {
            prop_assert_eq!(&e.file, file);
            prop_assert!(
                e.line.is_some() || e.key.is_some(),
                "an error with neither line nor key: {}",
                e
            );
            if let Some(l) = e.line {
                prop_assert!(l >= 1, "line {} in {}", l, e);
            }
            prop_assert!(!e.message.trim().is_empty(), "empty message: {}", e);
            Ok(())
        }

        /// Edit a config line by line, the way a hand edit goes wrong.
        #[derive(Debug, Clone)]
        enum Edit {
            DeleteLine(prop::sample::Index),
            DuplicateLine(prop::sample::Index),
            Truncate(prop::sample::Index),
            InsertAt(prop::sample::Index, String),
            ReplaceValue(prop::sample::Index, String),
        }

        fn edit() -> impl Strategy<Value = Edit> {
            let junk = prop_oneof![
                Just("[".to_string()),
                Just("]]".to_string()),
                Just("\"".to_string()),
                Just("= =".to_string()),
                Just("\n[price]\n".to_string()),
                Just("-1e999".to_string()),
                Just("nan".to_string()),
                Just("\u{feff}".to_string()),
                Just("\u{e9}".to_string()),
                "[ -~]{0,12}",
            ];
            let value = prop_oneof![
                Just("-1".to_string()),
                Just("0".to_string()),
                Just("1e308".to_string()),
                Just("nan".to_string()),
                Just("\"\"".to_string()),
                Just("[]".to_string()),
                Just("{}".to_string()),
                Just("true".to_string()),
                Just("\"zz\"".to_string()),
                Just("25".to_string()),
            ];
            prop_oneof![
                any::<prop::sample::Index>().prop_map(Edit::DeleteLine),
                any::<prop::sample::Index>().prop_map(Edit::DuplicateLine),
                any::<prop::sample::Index>().prop_map(Edit::Truncate),
                (any::<prop::sample::Index>(), junk).prop_map(|(i, j)| Edit::InsertAt(i, j)),
                (any::<prop::sample::Index>(), value).prop_map(|(i, v)| Edit::ReplaceValue(i, v)),
            ]
        }

        fn apply(src: &str, edits: &[Edit]) -> String {
            let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
            let mut text_cut: Option<prop::sample::Index> = None;
            for e in edits {
                if lines.is_empty() {
                    break;
                }
                match e {
                    Edit::DeleteLine(i) => {
                        lines.remove(i.index(lines.len()));
                    }
                    Edit::DuplicateLine(i) => {
                        let k = i.index(lines.len());
                        lines.insert(k, lines[k].clone());
                    }
                    Edit::Truncate(i) => text_cut = Some(*i),
                    Edit::InsertAt(i, j) => {
                        let k = i.index(lines.len());
                        let line = &mut lines[k];
                        let at = line
                            .char_indices()
                            .map(|(b, _)| b)
                            .nth(i.index(line.chars().count() + 1))
                            .unwrap_or(line.len());
                        line.insert_str(at, j);
                    }
                    Edit::ReplaceValue(i, v) => {
                        // The value of the i-th `key = value` line.
                        let keyed: Vec<usize> = (0..lines.len())
                            .filter(|&n| {
                                let t = lines[n].trim_start();
                                !t.starts_with('#') && t.contains('=')
                            })
                            .collect();
                        if !keyed.is_empty() {
                            let n = keyed[i.index(keyed.len())];
                            let key = lines[n].split('=').next().unwrap_or_default().to_string();
                            lines[n] = format!("{key}= {v}");
                        }
                    }
                }
            }
            let mut text = lines.join("\n");
            if let Some(i) = text_cut {
                let cut = text
                    .char_indices()
                    .map(|(b, _)| b)
                    .nth(i.index(text.chars().count() + 1))
                    .unwrap_or(text.len());
                text.truncate(cut);
            }
            text
        }

        #[test]
        fn seeds_are_valid_configs() {
            Config::parse(DEFAULT_CONFIG, "default.toml").unwrap();
            Config::parse(EXAMPLE, "roimon.example.toml").unwrap();
            assert_eq!(apply("a = 1\nb = 2", &[]), "a = 1\nb = 2");
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn load_survives_arbitrary_bytes_64_cases(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("fuzz.toml");
                std::fs::write(&path, &bytes).unwrap();
                if let Err(e) = Config::load(&path) {
                    let file = path.display().to_string();
                    if e.message.starts_with("cannot read") {
                        prop_assert_eq!(&e.file, &file);
                    } else {
                        assert_places(&e, &file)?;
                    }
                }
            }

            #[test]
            fn parse_survives_arbitrary_text_64_cases(src in "(?s).{0,600}") {
                if let Err(e) = Config::parse(&src, "fuzz.toml") {
                    assert_places(&e, "fuzz.toml")?;
                }
            }

            #[test]
            fn parse_survives_mutated_real_configs_64_cases(
                example in any::<bool>(),
                edits in prop::collection::vec(edit(), 1..5),
            ) {
                let seed = if example { EXAMPLE } else { DEFAULT_CONFIG };
                let src = apply(seed, &edits);
                if let Err(e) = Config::parse(&src, "edited.toml") {
                    assert_places(&e, "edited.toml")?;
                    if let Some(l) = e.line {
                        prop_assert!(l <= src.lines().count().max(1) + 1, "line {} past the end: {}", l, e);
                    }
                }
            }
        }
    }
}
