//! Grafana dashboards and provisioning: every dashboard under grafana/dashboards
//! parses, selects its Prometheus through the `datasource` variable, uses only
//! metric names roimon exports, and every PromQL expression in it (panels,
//! nested rows, annotations, template variables) passes `promtool check rules`.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every metric name roimon exports. Source: the "Metrics" table of the outside
/// contract (`shared/contract.md`) and the "Metrics reference" of README.md,
/// both of which describe `crates/roimon-export-prometheus/src/lib.rs`.
/// `known_metrics_are_exactly_what_the_exporter_emits` holds it equal to
/// what the exporter writes; dashboards are checked against the exporter's
/// output itself. Renaming a metric means changing the exporter, this list,
/// the docs and the dashboards together.
const KNOWN_METRICS: &[&str] = &[
    "roimon_build_info",
    "roimon_gpu_info",
    "roimon_gpu_power_watts",
    "roimon_gpu_energy_joules_total",
    "roimon_gpu_utilization_ratio",
    "roimon_gpu_memory_used_bytes",
    "roimon_gpu_memory_total_bytes",
    "roimon_gpu_temperature_celsius",
    "roimon_gpu_power_limit_watts",
    "roimon_gpu_energy_resets_total",
    "roimon_host_cpu_utilization_ratio",
    "roimon_host_memory_used_bytes",
    "roimon_host_power_watts",
    "roimon_host_energy_joules_total",
    "roimon_facility_energy_joules_total",
    "roimon_facility_power_watts",
    "roimon_facility_pue",
    "roimon_electricity_price_per_kwh",
    "roimon_electricity_price_age_seconds",
    "roimon_electricity_price_known_until_timestamp_seconds",
    "roimon_grid_carbon_intensity_grams_per_kwh",
    "roimon_grid_carbon_intensity_age_seconds",
    "roimon_emissions_grams_total",
    "roimon_gpu_emissions_grams_total",
    "roimon_cost_total",
    "roimon_gpu_cost_total",
    "roimon_credit_total",
    "roimon_collector_up",
    "roimon_influxdb_up",
    "roimon_influxdb_buffer_bytes",
    "roimon_influxdb_buffer_points",
    "roimon_influxdb_buffer_capacity_bytes",
    "roimon_influxdb_points_written_total",
    "roimon_influxdb_points_dropped_total",
    "roimon_influxdb_retries_total",
    "roimon_influxdb_last_success_timestamp_seconds",
    "roimon_collector_errors_total",
    "roimon_unaccounted_seconds_total",
    "roimon_checkpoint_errors_total",
    "roimon_gpu_up",
    "roimon_gpu_owner_unmatched",
    "roimon_gpu_credit_total",
    "roimon_gpu_facility_energy_joules_total",
    "roimon_host_unaccounted_seconds_total",
    "roimon_host_energy_resets_total",
    "roimon_feed_slots_dropped_total",
    "roimon_checkpoint_consecutive_failures",
    "roimon_value_total",
    "roimon_tokens_total",
    "roimon_requests_total",
    "roimon_window_value",
    "roimon_window_cost",
    "roimon_roi_ratio",
    "roimon_roi_baseline_ratio",
    "roimon_weighted_efficiency",
    "roimon_value_target_up",
    "roimon_value_target_errors_total",
];

/// What Grafana's variables become for the check. Any other `$variable` in a
/// query is an error: add it here (and to the dashboard's templating).
const VARIABLES: &[(&str, &str)] = &[
    ("__rate_interval", "5m"),
    ("__interval", "1m"),
    ("__interval_ms", "60000"),
    ("__range", "1h"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
    ("instance", ".*"),
    ("datasource", "prometheus"),
];

/// Grafana unit ids the dashboards may use. A typo in a unit id is silently
/// shown as a raw number, so the list is closed; add a real Grafana unit id
/// here when a panel needs it. No `currency*` unit: the currency is a label.
const UNITS: &[&str] = &[
    "watt",
    "kwatth",
    "percentunit",
    "celsius",
    "bytes",
    "s",
    "cps",
    "none",
    "short",
    "suffix:/h",
    "suffix:/kWh",
    "suffix:gCO2e/kWh",
    "suffix:kgCO2e/h",
];

/// Where the dashboard provider and docker-compose put the dashboards.
const DASHBOARDS_PATH: &str = "/var/lib/grafana/dashboards/roimon";

/// Panel types that need no query.
const QUERYLESS_PANELS: &[&str] = &["row", "text"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `*.json` under grafana/dashboards, parsed.
fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("grafana/dashboards");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no dashboards in {}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let json: Value = serde_json::from_str(&read(&p))
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p, json)
        })
        .collect()
}

/// A query found in a dashboard, with where it was found.
#[derive(Debug, Clone)]
struct Query {
    origin: String,
    text: String,
}

/// Every panel, including those nested in (collapsed) rows, depth first.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every string under an `expr` key anywhere in the document: panel targets,
/// targets of panels nested in rows, annotations, library panels' models.
fn all_exprs(value: &Value, path: &str, out: &mut Vec<Query>) {
    match value {
        Value::Object(map) => {
            let here = match map.get("title").and_then(Value::as_str) {
                Some(title) => format!("{path} ({title:?})"),
                None => path.to_string(),
            };
            for (key, child) in map {
                if key == "expr" {
                    let text = child
                        .as_str()
                        .unwrap_or_else(|| panic!("{here}: expr is not a string"));
                    assert!(!text.trim().is_empty(), "{here}: empty expr");
                    out.push(Query {
                        origin: here.clone(),
                        text: text.to_string(),
                    });
                } else {
                    all_exprs(child, &format!("{here}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                all_exprs(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The query of a `query` template variable (a string, or since Grafana 10
/// an object with a `query` field).
fn variable_query(var: &Value) -> Option<String> {
    match &var["query"] {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("query").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Replace Grafana variables (`$name`, `${name}`, `${name:format}`,
/// `[[name]]`) with the values of [`VARIABLES`].
fn substitute(text: &str) -> Result<String, String> {
    let lookup = |name: &str| {
        VARIABLES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("unknown Grafana variable ${name} (add it to VARIABLES)"))
    };
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let name = after[..end].split(':').next().unwrap_or_default();
            out.push_str(lookup(name)?);
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix("[[") {
            let end = after
                .find("]]")
                .ok_or_else(|| format!("unclosed [[ in {text:?}"))?;
            let name = after[..end].split(':').next().unwrap_or_default();
            out.push_str(lookup(name)?);
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('$') {
            let len = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
            if len == 0 {
                out.push('$'); // a literal `$`, e.g. a regex anchor
            } else {
                out.push_str(lookup(&after[..len])?);
            }
            rest = &after[len..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Ok(out)
}

/// Metric names a PromQL expression selects, read from its syntax tree
/// (`promql-parser`): the name of every vector and range selector, in the
/// order they appear. A selector that names its metric only through a
/// `__name__` regex, or an expression that does not parse, is an error: the
/// check could not know which metrics it reads.
fn metric_names(expr: &str) -> Result<Vec<String>, String> {
    use promql_parser::label::MatchOp;
    use promql_parser::parser::{Expr, VectorSelector};
    fn selector(vs: &VectorSelector, out: &mut Vec<String>) -> Result<(), String> {
        let mut names: Vec<String> = vs.name.iter().cloned().collect();
        let all = vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten());
        for m in all.filter(|m| m.name == "__name__") {
            match m.op {
                MatchOp::Equal => names.push(m.value.clone()),
                _ => {
                    return Err(format!(
                        "{vs}: __name__ {} {:?} names no single metric",
                        m.op, m.value
                    ));
                }
            }
        }
        names.dedup();
        if names.is_empty() {
            return Err(format!("{vs}: a selector without a metric name"));
        }
        out.extend(names);
        Ok(())
    }
    fn walk(e: &Expr, out: &mut Vec<String>) -> Result<(), String> {
        match e {
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    walk(p, out)?;
                }
                walk(&a.expr, out)
            }
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Binary(b) => {
                walk(&b.lhs, out)?;
                walk(&b.rhs, out)
            }
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Subquery(q) => walk(&q.expr, out),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
            Expr::VectorSelector(vs) => selector(vs, out),
            Expr::MatrixSelector(ms) => selector(&ms.vs, out),
            Expr::Call(c) => c.args.args.iter().try_for_each(|a| walk(a, out)),
            Expr::Extension(_) => Err("an extension node".into()),
        }
    }
    let tree = promql_parser::parser::parse(expr).map_err(|e| format!("{expr:?}: {e}"))?;
    let mut out = Vec::new();
    walk(&tree, &mut out).map_err(|e| format!("{expr:?}: {e}"))?;
    Ok(out)
}

/// The name of every metric family the exporter writes for a snapshot in
/// which every family has a sample: GPUs with every field, host RAPL, a slot
/// schedule with a negative price (credit, known-until), carbon, a failing
/// collector, a checkpoint error, a dropped price slot and an owner UUID
/// that matches no GPU.
fn exported_metrics() -> BTreeSet<String> {
    use chrono::{Duration, TimeZone, Utc};
    use roimon_core::*;
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let slots = Tariff::Slots {
        slots: vec![Slot {
            start: t0 - Duration::hours(1),
            end: t0 + Duration::hours(1),
            price: PricePerKwh(-0.05),
        }],
        fallback: PricePerKwh(0.2),
        last_known: false,
    };
    let cfg = EngineConfig {
        currency: "EUR".into(),
        pue: 1.5,
        tariff: slots,
        price_source: "entsoe".into(),
        fixed: FixedCosts {
            capex_per_sec: 0.01,
            maintenance_per_sec: 0.01,
            staff_per_sec: 0.01,
        },
        share_key: ShareKey::Equal,
        // An owner UUID no GPU has: roimon_gpu_owner_unmatched.
        owners: [("GPU-missing".to_string(), Owner::unallocated())].into(),
        max_gap: Seconds(5.0),
    };
    let mut e = Engine::new(cfg, None);
    e.set_carbon(Some(Carbon {
        intensity: Tariff::Static(PricePerKwh(300.0)),
        price_per_tonne: 80.0,
        source: "static".into(),
        fetched_at: Some(t0),
    }));
    e.register_collector("nvml");
    e.register_collector("host");
    let gpu = |j: f64| {
        Reading::Gpu(GpuReading {
            index: 0,
            uuid: "GPU-a".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            power: Some(Watts(250.0)),
            energy_counter: Some(Joules(j)),
            utilization: Some(0.5),
            memory_used_bytes: Some(1),
            memory_total_bytes: Some(2),
            temperature_celsius: Some(60.0),
            power_limit: Some(Watts(700.0)),
        })
    };
    let host = |j: f64| {
        Reading::Host(HostReading {
            cpu_utilization: Some(0.5),
            memory_used_bytes: Some(1),
            source: HostPowerSource::Rapl,
            power: Some(Watts(100.0)),
            energy_counter: Some(Joules(j)),
        })
    };
    // Value and scores, so the ROI families have samples; the ticks span a
    // whole 1m window, so the baseline has one too.
    e.set_roi(
        &[("1m".into(), 60)],
        roimon_core::window::RoiWeights {
            benefit: [("precision".to_string(), 1.0)].into(),
            cost: Default::default(),
        },
        vec![Kpi {
            team: "t".into(),
            workload: "w".into(),
            indicator: "precision".into(),
            score: 0.9,
            at: None,
        }],
    );
    e.note_target("vllm", false);
    e.book_value(
        &[(Owner::unallocated(), 1.0)],
        "push",
        5.0,
        &[ModelDelta {
            model: "m".into(),
            input_tokens: 1.0,
            cached_input_tokens: 0.0,
            output_tokens: 1.0,
            requests: 1.0,
        }],
    );
    for (t, gj, hj) in [
        (0, 0.0, 0.0),
        (2, 500.0, 200.0),
        (3, 100.0, 300.0),
        (4, 150.0, 350.0),
        (10, 500.0, 600.0),
        (20, 1000.0, 900.0),
        (70, 3000.0, 2000.0),
    ] {
        e.ingest(
            Tick {
                wall: t0 + Duration::seconds(t),
                mono: t as f64,
            },
            &[
                Report {
                    collector: "nvml",
                    outcome: Ok(vec![gpu(gj)]),
                },
                Report {
                    collector: "host",
                    outcome: Err(SampleError::Failed("x".into())),
                },
                Report {
                    collector: "host",
                    outcome: Ok(vec![host(hj)]),
                },
            ],
        );
    }
    e.note_dropped("price", 1);
    e.note_checkpoint_error();
    let p = roimon_export_prometheus::ProcessInfo {
        version: "0".into(),
        checkpoint_failures_in_a_row: 0,
        influx: Some(roimon_export_prometheus::InfluxStats {
            last_success_unix: Some(1.0),
            ..Default::default()
        }),
    };
    roimon_export_prometheus::families(&e.snapshot(), &p)
        .iter()
        .map(|f| f.name().to_string())
        .collect()
}

/// The selector of `label_values(selector, label)`, or None for
/// `label_values(label)`. Panics on other Grafana-only query functions.
fn label_values_selector(query: &str, origin: &str) -> Option<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{origin}: cannot read {query:?}"));
    let (selector, label) = match inner.rsplit_once(',') {
        Some((s, l)) => (Some(s.trim().to_string()), l.trim()),
        None => (None, inner.trim()),
    };
    assert!(
        !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{origin}: {query:?}: {label:?} is not a label name"
    );
    selector
}

/// All PromQL of a dashboard, variables substituted: panel, row and
/// annotation exprs, and template variable queries (label_values selectors
/// and query_result contents, which are PromQL too).
fn promql_of(name: &str, dashboard: &Value) -> Vec<Query> {
    let mut raw = Vec::new();
    all_exprs(&dashboard["panels"], "panels", &mut raw);
    all_exprs(&dashboard["annotations"], "annotations", &mut raw);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let origin = format!("templating ${}", var["name"].as_str().unwrap_or("?"));
        let query = variable_query(var).unwrap_or_else(|| panic!("{name}: {origin}: no query"));
        let trimmed = query.trim();
        let text = if trimmed.starts_with("label_values(") {
            match label_values_selector(trimmed, &origin) {
                Some(selector) => selector,
                None => continue,
            }
        } else if let Some(inner) = trimmed
            .strip_prefix("query_result(")
            .and_then(|q| q.strip_suffix(')'))
        {
            inner.to_string()
        } else if ["label_names(", "metrics("]
            .iter()
            .any(|f| trimmed.starts_with(f))
        {
            panic!("{name}: {origin}: {query:?}: teach this test that Grafana function");
        } else {
            query.clone()
        };
        raw.push(Query { origin, text });
    }
    raw.into_iter()
        .map(|q| {
            let text = substitute(&q.text)
                .unwrap_or_else(|e| panic!("{name}: {}: {:?}: {e}", q.origin, q.text));
            Query {
                origin: format!("{name}: {}", q.origin),
                text,
            }
        })
        .collect()
}

fn datasource_ok(ds: &Value) -> bool {
    let is_var = |s: &str| s == "${datasource}" || s == "$datasource";
    match ds {
        Value::String(s) => is_var(s),
        Value::Object(o) => match o.get("uid").and_then(Value::as_str) {
            // Grafana's built-in annotation source, not an instance's uid.
            Some("-- Grafana --") => o.get("type").is_some_and(|t| t == "grafana"),
            Some(uid) => {
                is_var(uid)
                    && o.get("type")
                        .is_none_or(|t| t == "prometheus" || t == "datasource")
            }
            None => false,
        },
        _ => false,
    }
}

/// Every `datasource` anywhere in the document, with its path.
fn all_datasources<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}/{key}");
                if key == "datasource" {
                    out.push((here.clone(), child));
                }
                all_datasources(child, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                all_datasources(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn dashboards_have_title_uid_panels_and_variables() {
    let mut uids = BTreeSet::new();
    for (path, d) in dashboards() {
        let name = path.display();
        let title = d["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "{name}: no title");
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{name}: uid {uid:?} must be 1..=40 characters"
        );
        assert!(
            uids.insert(uid.to_string()),
            "{name}: uid {uid:?} used twice"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some(),
            "{name}: no schemaVersion"
        );
        assert!(
            d.get("id").is_none_or(Value::is_null),
            "{name}: drop the instance-specific id"
        );

        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let var = |n: &str| vars.iter().find(|v| v["name"] == n).cloned();
        let ds = var("datasource").unwrap_or_else(|| panic!("{name}: no `datasource` variable"));
        assert_eq!(ds["type"], "datasource", "{name}: $datasource type");
        assert_eq!(
            ds["query"], "prometheus",
            "{name}: $datasource must list Prometheus sources"
        );
        let instance = var("instance").unwrap_or_else(|| panic!("{name}: no `instance` variable"));
        assert_eq!(
            variable_query(&instance).as_deref(),
            Some("label_values(roimon_build_info, instance)"),
            "{name}: $instance query"
        );

        let panels = all_panels(&d);
        assert!(!panels.is_empty(), "{name}: no panels");
        let mut ids = BTreeSet::new();
        for p in panels {
            let ptype = p["type"].as_str().unwrap_or_default();
            let ptitle = p["title"].as_str().unwrap_or_default();
            let at = format!("{name}: panel id {} ({ptitle:?})", p["id"]);
            assert!(!ptype.is_empty(), "{at}: no type");
            assert!(
                p["id"].as_u64().is_some_and(|id| ids.insert(id)),
                "{at}: id missing or not unique"
            );
            for k in ["h", "w", "x", "y"] {
                assert!(p["gridPos"][k].as_u64().is_some(), "{at}: gridPos.{k}");
            }
            if QUERYLESS_PANELS.contains(&ptype) {
                continue;
            }
            assert!(!ptitle.is_empty(), "{at}: no title");
            assert!(
                p.get("datasource").is_some_and(datasource_ok),
                "{at}: datasource must be ${{datasource}}, is {}",
                p["datasource"]
            );
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{at}: no targets");
            for t in &targets {
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                    "{at}: target {} has no expr",
                    t["refId"]
                );
            }
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(
                UNITS.contains(&unit),
                "{at}: unit {unit:?} not in UNITS (currencies go in the legend, not the unit)"
            );
        }
    }
}

#[test]
fn every_datasource_is_the_datasource_variable() {
    for (path, d) in dashboards() {
        let mut found = Vec::new();
        all_datasources(&d, "", &mut found);
        assert!(
            !found.is_empty(),
            "{}: no datasource at all",
            path.display()
        );
        for (at, ds) in found {
            assert!(
                datasource_ok(ds),
                "{}: {at} = {ds}: use {{\"type\": \"prometheus\", \"uid\": \"${{datasource}}\"}}, \
                 never a hard-coded datasource uid",
                path.display()
            );
        }
    }
}

#[test]
fn dashboards_use_only_metrics_the_exporter_emits() {
    let exported = exported_metrics();
    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for (path, d) in dashboards() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for q in promql_of(&name, &d) {
            let names = metric_names(&q.text).unwrap_or_else(|e| panic!("{}: {e}", q.origin));
            assert!(
                !names.is_empty(),
                "{}: {:?} selects no metric",
                q.origin,
                q.text
            );
            for m in names {
                if !exported.contains(&m) {
                    unknown.push(format!("{}: {m} in {:?}", q.origin, q.text));
                }
                used.insert(m);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "dashboards use metrics the exporter does not emit:\n{}\nemitted: {exported:?}",
        unknown.join("\n")
    );
    assert!(used.contains("roimon_gpu_power_watts") && used.contains("roimon_cost_total"));
}

#[test]
fn known_metrics_are_exactly_what_the_exporter_emits() {
    // KNOWN_METRICS (the documented list) against the exporter's output for a
    // snapshot in which every family has a sample.
    let exported = exported_metrics();
    let known: BTreeSet<String> = KNOWN_METRICS.iter().map(|m| m.to_string()).collect();
    let documented_only: Vec<_> = known.difference(&exported).collect();
    let undocumented: Vec<_> = exported.difference(&known).collect();
    assert!(
        documented_only.is_empty() && undocumented.is_empty(),
        "KNOWN_METRICS but not emitted: {documented_only:?}; emitted but not in KNOWN_METRICS: {undocumented:?}"
    );
}

#[test]
fn every_promql_expression_passes_promtool() {
    let mut groups = Vec::new();
    let mut all: Vec<(String, Query)> = Vec::new();
    for (path, d) in dashboards() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let uid: String = d["uid"]
            .as_str()
            .unwrap_or("dashboard")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let queries = promql_of(&name, &d);
        assert!(!queries.is_empty(), "{name}: no PromQL found");
        let mut rules = Vec::new();
        for (i, q) in queries.into_iter().enumerate() {
            let record = format!("grafana:{uid}:q{i}");
            rules.push(serde_json::json!({ "record": record, "expr": q.text }));
            all.push((record, q));
        }
        groups.push(serde_json::json!({ "name": name, "rules": rules }));
    }
    // JSON is YAML: promtool reads it as a rules file.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("grafana-rules.yml");
    let doc = serde_json::json!({ "groups": groups });
    fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).expect("write rules");

    let out = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "promtool not found: install it with `apt-get install prometheus` (.ci/run does)"
        ),
        Err(e) => panic!("promtool: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let listing: String = all
        .iter()
        .map(|(record, q)| format!("{record}  [{}]\n    {}\n", q.origin, q.text))
        .collect();
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{stdout}{stderr}\nexpressions:\n{listing}"
    );
    let expected = format!("SUCCESS: {} rules found", all.len());
    assert!(
        stdout.contains(&expected),
        "promtool did not check every expression ({expected}):\n{stdout}{stderr}\n{listing}"
    );
}

#[test]
fn substitute_and_metric_names_work() {
    assert_eq!(
        substitute(r#"rate(x{instance=~"$instance",a=~"b$"}[$__rate_interval]) ${instance:regex} [[__range]]"#)
            .unwrap(),
        r#"rate(x{instance=~".*",a=~"b$"}[5m]) .* 1h"#
    );
    assert!(substitute("up{job=\"$job\"}").is_err());
    let names = metric_names(
        r#"sum by (component, currency) (rate(roimon_cost_total{a="b}c", d=~"x"}[5m] offset 1h)) * 3.6e6
           / on (instance) group_left (team) roimon_gpu_info or vector(0) > bool 1e+3
           and count without (gpu) (sum(roimon_gpu_power_watts)) # roimon_commented_out
           + max_over_time(roimon_cost_total[1h:5m]) + {__name__="roimon_credit_total"}
           + topk(scalar(roimon_facility_pue), roimon_gpu_info)"#,
    )
    .unwrap();
    assert_eq!(
        names,
        [
            "roimon_cost_total",
            "roimon_gpu_info",
            "roimon_gpu_power_watts",
            "roimon_cost_total",
            "roimon_credit_total",
            "roimon_facility_pue",
            "roimon_gpu_info",
        ]
    );
    // A misspelt metric is a name like any other: the emitted set catches it.
    assert_eq!(
        metric_names("rate(roimon_cost_totl[5m])").unwrap(),
        ["roimon_cost_totl"]
    );
    assert!(metric_names(r#"{__name__=~"roimon_.*"}"#).is_err());
    assert!(metric_names("sum(rate(roimon_cost_total[5m])").is_err());
    assert_eq!(
        label_values_selector("label_values(roimon_build_info{a=\"b\"}, instance)", "t").as_deref(),
        Some("roimon_build_info{a=\"b\"}")
    );
    assert_eq!(label_values_selector("label_values(instance)", "t"), None);
}

#[test]
fn provisioning_points_at_the_dashboards() {
    let root = repo_root();
    let provider = read(&root.join("grafana/provisioning/dashboards/roimon.yaml"));
    for needle in ["apiVersion: 1", "providers:", "type: file", DASHBOARDS_PATH] {
        assert!(
            provider.contains(needle),
            "grafana/provisioning/dashboards/roimon.yaml lacks {needle:?}"
        );
    }
    let datasource = read(&root.join("grafana/provisioning/datasources/prometheus.yaml"));
    for needle in [
        "apiVersion: 1",
        "datasources:",
        "type: prometheus",
        "uid: prometheus",
        "url: http://prometheus:9090",
    ] {
        assert!(
            datasource.contains(needle),
            "grafana/provisioning/datasources/prometheus.yaml lacks {needle:?}"
        );
    }
    // docker-compose mounts the dashboards where the provider looks for them.
    let compose = read(&root.join("deploy/docker-compose.yml"));
    let mounts: BTreeMap<&str, String> = [
        (
            "dashboards",
            format!("../grafana/dashboards:{DASHBOARDS_PATH}"),
        ),
        (
            "provisioning",
            "../grafana/provisioning:/etc/grafana/provisioning".to_string(),
        ),
        (
            "prometheus config",
            "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    for (what, mount) in mounts {
        assert!(
            compose.contains(&mount),
            "deploy/docker-compose.yml does not mount the {what} ({mount})"
        );
    }
}

/// A panel for a feature that is not configured must say so, not show a
/// bare "No data": every panel has a description and a no-data text.
#[test]
fn every_panel_has_a_description_and_a_no_data_text() {
    let mut missing = Vec::new();
    for (path, d) in dashboards() {
        for p in all_panels(&d) {
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().unwrap_or("?");
            if p["description"]
                .as_str()
                .is_none_or(|s| s.trim().is_empty())
            {
                missing.push(format!("{}: {title}: no description", path.display()));
            }
            if p["fieldConfig"]["defaults"]["noValue"]
                .as_str()
                .is_none_or(|s| s.trim().len() < 10)
            {
                missing.push(format!("{}: {title}: no no-data text", path.display()));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
