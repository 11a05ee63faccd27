//! The web configuration file as the exporter toolkit defines it: its keys
//! (unknown ones are errors naming file, line and key), the response headers
//! it may set, and Go's duration syntax.

use roimon_config::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDoc {
    pub(super) tls_server_config: Option<TlsDoc>,
    pub(super) http_server_config: Option<HttpDoc>,
    pub(super) basic_auth_users: Option<BTreeMap<String, String>>,
    pub(super) rate_limit: Option<RateLimitDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsDoc {
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) client_ca: Option<String>,
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) client_auth_type: Option<String>,
    pub(super) client_ca_file: Option<String>,
    pub(super) client_allowed_sans: Option<Vec<String>>,
    pub(super) min_version: Option<String>,
    pub(super) max_version: Option<String>,
    pub(super) cipher_suites: Option<Vec<String>>,
    pub(super) curve_preferences: Option<Vec<String>>,
    pub(super) prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpDoc {
    pub(super) http2: Option<bool>,
    pub(super) headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitDoc {
    pub(super) interval: Option<String>,
    pub(super) burst: Option<u32>,
}

/// Response headers the toolkit lets a file set, with their allowed values
/// (none: any value).
pub(super) const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

pub(super) fn parse_doc(src: &str, file: &str) -> Result<FileDoc, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(src);
    let doc: Option<FileDoc> = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let line = inner.location().map(|l| l.line());
        let mut message = inner.to_string();
        if let Some(at) = message.find(" at line ") {
            message.truncate(at);
        }
        // serde_yaml prefixes the path; it is in `key` already.
        if let Some(rest) = message.strip_prefix(&format!("{path}: ")) {
            message = rest.to_string();
        }
        let mut key = (path != ".").then_some(path.clone());
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
            .filter(|f| path != *f && !path.ends_with(&format!(".{f}")))
        {
            key = Some(match key {
                Some(k) => format!("{k}.{field}"),
                None => field.to_string(),
            });
        }
        ConfigError {
            file: file.into(),
            line,
            key,
            message,
        }
    })?;
    // An empty file is an empty configuration (as in the toolkit).
    Ok(doc.unwrap_or_default())
}

/// The line of a dotted key in a YAML file, by indentation (good enough for
/// the flat files this format allows).
pub(super) fn locate_yaml(src: &str, key: &str) -> Option<usize> {
    let mut want = key.split('.').peekable();
    let mut depth_indent: Vec<usize> = Vec::new();
    let mut found = None;
    for (n, raw) in src.lines().enumerate() {
        let Some(part) = want.peek() else { break };
        let indent = raw.len() - raw.trim_start().len();
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if depth_indent.last().is_some_and(|d| indent <= *d) {
            // Left the section we were in: the key is not there.
            return found;
        }
        let k = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(['"', '\'']);
        if k == *part {
            found = Some(n + 1);
            depth_indent.push(indent);
            want.next();
        }
    }
    found
}

pub(super) fn header_name(k: &str) -> &'static str {
    match k {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

/// A Go duration (`time.ParseDuration`): `1s`, `100ms`, `1m30s`, `1.5h`.
pub(super) fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0.0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * scale;
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}
