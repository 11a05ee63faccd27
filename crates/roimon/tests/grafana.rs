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
/// A dashboard may use only these; renaming a metric means changing the
/// exporter, this list, the docs and the dashboards together.
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

/// PromQL aggregation operators: identifiers that are never metric names.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// PromQL keywords followed by a parenthesised label list.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Other PromQL keywords and literals.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "atan2", "bool", "offset", "inf", "nan",
];

/// Metric names a PromQL expression selects: identifiers outside strings,
/// label matchers and ranges that are not functions, aggregations, keywords
/// or label lists. Not a full parser (promtool checks the syntax); enough to
/// find every metric name.
fn metric_names(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    // Index after the string starting at `i` (a quote).
    let skip_string = |mut i: usize| {
        let q = b[i];
        i += 1;
        while i < b.len() && b[i] != q {
            if b[i] == b'\\' && q != b'`' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    // Index after the bracket closing the one at `i`, skipping strings.
    let skip_group = |mut i: usize, open: u8, close: u8| {
        let mut depth = 0;
        while i < b.len() {
            match b[i] {
                b'"' | b'\'' | b'`' => {
                    i = skip_string(i);
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let next_non_space = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        b.get(i).copied().map(|c| (i, c))
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(i),
            b'{' => {
                let end = skip_group(i, b'{', b'}');
                assert!(
                    !expr[i..end.min(b.len())].contains("__name__"),
                    "{expr:?}: write the metric name before the braces, not as __name__, \
                     so the metric-name check sees it"
                );
                i = end;
            }
            b'[' => i = skip_group(i, b'[', b']'),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                // number or duration: 3.6e6, 1e+3, 0x1f, 5m, 1h30m
                i += 1;
                while i < b.len() {
                    let d = b[i];
                    let exp_sign = (d == b'+' || d == b'-') && matches!(b[i - 1], b'e' | b'E');
                    if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || exp_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let ident = &expr[start..i];
                let lower = ident.to_ascii_lowercase();
                let next = next_non_space(i);
                if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                    if let Some((j, b'(')) = next {
                        i = skip_group(j, b'(', b')');
                    }
                } else if AGGREGATIONS.contains(&lower.as_str())
                    || KEYWORDS.contains(&lower.as_str())
                    || matches!(next, Some((_, b'(')))
                {
                    // aggregation, keyword or function call
                } else {
                    names.push(ident.to_string());
                }
            }
            _ => i += 1,
        }
    }
    names
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
fn dashboards_use_only_known_metrics() {
    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for (path, d) in dashboards() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for q in promql_of(&name, &d) {
            let names = metric_names(&q.text);
            assert!(
                !names.is_empty(),
                "{}: {:?} selects no metric",
                q.origin,
                q.text
            );
            for m in names {
                if !KNOWN_METRICS.contains(&m.as_str()) {
                    unknown.push(format!("{}: {m} in {:?}", q.origin, q.text));
                }
                used.insert(m);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "dashboards use metrics roimon does not export (see KNOWN_METRICS):\n{}",
        unknown.join("\n")
    );
    assert!(used.contains("roimon_gpu_power_watts") && used.contains("roimon_cost_total"));
}

#[test]
fn known_metrics_are_in_the_exporter_source() {
    // KNOWN_METRICS against the code: every name appears as a string literal
    // somewhere in crates/*/src, so the list cannot drift from what is served.
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for krate in fs::read_dir(repo_root().join("crates"))
        .expect("crates/")
        .flatten()
    {
        rust_files(&krate.path().join("src"), &mut files);
    }
    let source: String = files.iter().map(|f| read(f)).collect();
    let missing: Vec<_> = KNOWN_METRICS
        .iter()
        .filter(|m| !source.contains(&format!("\"{m}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "in KNOWN_METRICS but not a string literal in crates/*/src: {missing:?}"
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
           and count without (gpu) (sum(roimon_gpu_power_watts)) # roimon_commented_out"#,
    );
    assert_eq!(
        names,
        [
            "roimon_cost_total",
            "roimon_gpu_info",
            "roimon_gpu_power_watts"
        ]
    );
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
