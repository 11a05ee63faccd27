//! TLS and basic authentication for the HTTP listener, read from a web
//! configuration file in the Prometheus exporter-toolkit format
//! (`--web.config.file`), so a site reuses its node_exporter file: rustls
//! (ring) for TLS and client certificates, bcrypt users whose results are
//! cached so that a password flood cannot burn the CPU, and a reload when the
//! file or a certificate changes (a broken new file keeps the old one).

use crate::config::{ConfigError, read_file};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use base64::Engine as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// How often the file and the certificate files it names are looked at
/// (metadata only; re-read when one changed).
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// bcrypt checks run at once (each takes one core for ~70 ms at cost 10).
const BCRYPT_AT_ONCE: usize = 1;

/// Requests waiting for a bcrypt check beyond which a new uncached password
/// gets 429 at once: a flood of different wrong passwords is served at the
/// speed of one core, never more.
const BCRYPT_QUEUE: usize = 32;

/// Verdicts kept (good and bad passwords alike), oldest out first.
const CACHE_ENTRIES: usize = 4096;

/// The realm sent with 401.
const REALM: &str = "Basic realm=\"roimon\"";

// ---------------------------------------------------------------------------
// The file, as the exporter toolkit defines it.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    tls_server_config: Option<TlsDoc>,
    http_server_config: Option<HttpDoc>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RateLimitDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsDoc {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpDoc {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitDoc {
    interval: Option<String>,
    burst: Option<u32>,
}

/// Response headers the toolkit lets a file set, with their allowed values
/// (none: any value).
const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn parse_doc(src: &str, file: &str) -> Result<FileDoc, ConfigError> {
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

// ---------------------------------------------------------------------------
// What a loaded file means.

/// One basic-auth user.
struct User {
    /// SHA-256 of the name, compared in constant time.
    name_digest: [u8; 32],
    /// The bcrypt hash.
    hash: String,
}

/// A token bucket (`rate_limit`), as Go's `rate.Limiter`.
#[derive(Debug)]
struct Bucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A loaded, valid web configuration.
pub struct Active {
    /// TLS, when the file configures it.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    users: Vec<User>,
    headers: Vec<(HeaderName, HeaderValue)>,
    limiter: Option<Mutex<Bucket>>,
    /// Files whose change triggers a reload (besides the file itself).
    files: Vec<PathBuf>,
    /// For the log line.
    summary: String,
}

impl std::fmt::Debug for Active {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Active")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Active {
    /// Whether the listener speaks TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether requests need a user and password.
    pub fn auth_enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Response headers the file adds to every response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }
}

/// Read and check a web configuration file (and the certificates it names).
pub fn load(path: &Path) -> Result<Active, ConfigError> {
    let file = path.display().to_string();
    let src = read_file(path)?;
    let doc = parse_doc(&src, &file)?;
    let fail = |key: &str, message: String| ConfigError {
        file: file.clone(),
        line: locate_yaml(&src, key),
        key: Some(key.into()),
        message,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();

    let mut headers = Vec::new();
    let http = doc.http_server_config.unwrap_or_default();
    for (k, v) in http.headers.unwrap_or_default() {
        let key = format!("http_server_config.headers.{k}");
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == k) else {
            return Err(fail(
                &key,
                format!(
                    "HTTP header {k:?} can not be configured (allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)"
                ),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&v.as_str()) {
            return Err(fail(&key, format!("must be one of {allowed:?}, got {v:?}")));
        }
        if v.is_empty() {
            continue;
        }
        let value =
            HeaderValue::from_str(&v).map_err(|_| fail(&key, "not a valid header value".into()))?;
        headers.push((HeaderName::from_static(header_name(&k)), value));
    }
    // http2: roimon serves HTTP/1.1; the key is accepted and has no effect.
    let _ = http.http2;

    let mut users = Vec::new();
    for (name, hash) in doc.basic_auth_users.unwrap_or_default() {
        let key = format!("basic_auth_users.{name}");
        let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
            fail(
                &key,
                "not a bcrypt hash (like $2y$10$…; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                    .into(),
            )
        })?;
        if !(4..=31).contains(&parts.get_cost()) {
            return Err(fail(&key, "bcrypt cost must be 4..=31".into()));
        }
        users.push(User {
            name_digest: sha256(&[name.as_bytes()]),
            hash,
        });
    }

    let limiter = match doc.rate_limit {
        None => None,
        Some(r) => {
            let interval = match r.interval.as_deref() {
                None | Some("") => Duration::ZERO,
                Some(s) => parse_go_duration(s).ok_or_else(|| {
                    fail(
                        "rate_limit.interval",
                        format!("not a duration like 100ms or 1s: {s:?}"),
                    )
                })?,
            };
            (!interval.is_zero()).then(|| {
                let burst = f64::from(r.burst.unwrap_or(0));
                Mutex::new(Bucket {
                    per_sec: 1.0 / interval.as_secs_f64(),
                    burst,
                    tokens: burst,
                    at: Instant::now(),
                })
            })
        }
    };

    let tls = match doc.tls_server_config {
        Some(t) if tls_enabled(&t) => {
            let cfg = build_tls(t, dir, &mut files).map_err(|(k, m)| fail(&k, m))?;
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
        }
        _ => None,
    };
    let summary = format!(
        "TLS {}, basic auth {}",
        if tls.is_some() { "on" } else { "off" },
        if users.is_empty() {
            "off".to_string()
        } else {
            format!("on ({} users)", users.len())
        }
    );
    Ok(Active {
        tls,
        users,
        headers,
        limiter,
        files,
        summary,
    })
}

/// The line of a dotted key in a YAML file, by indentation (good enough for
/// the flat files this format allows).
fn locate_yaml(src: &str, key: &str) -> Option<usize> {
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

fn header_name(k: &str) -> &'static str {
    match k {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn tls_enabled(t: &TlsDoc) -> bool {
    [
        &t.cert,
        &t.key,
        &t.client_ca,
        &t.cert_file,
        &t.key_file,
        &t.client_ca_file,
        &t.client_auth_type,
    ]
    .iter()
    .any(|s| nonempty(s).is_some())
}

type KeyErr = (String, String);

fn tls_key(k: &str) -> String {
    format!("tls_server_config.{k}")
}

/// A PEM input: inline text or a file (relative to the web config's directory).
fn pem_input(
    inline: &Option<String>,
    file: &Option<String>,
    inline_key: &str,
    file_key: &str,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<(String, Vec<u8>)>, KeyErr> {
    match (nonempty(inline), nonempty(file)) {
        (Some(_), Some(_)) => Err((
            tls_key(file_key),
            format!("give {inline_key} or {file_key}, not both"),
        )),
        (Some(text), None) => Ok(Some((tls_key(inline_key), text.as_bytes().to_vec()))),
        (None, Some(f)) => {
            let p = dir.join(f);
            files.push(p.clone());
            let bytes = std::fs::read(&p).map_err(|e| {
                (
                    tls_key(file_key),
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            Ok(Some((tls_key(file_key), bytes)))
        }
        (None, None) => Ok(None),
    }
}

fn tls_version(v: &Option<String>, key: &str, default: u8) -> Result<u8, KeyErr> {
    match nonempty(v) {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(old @ ("TLS10" | "TLS11")) => Err((
            tls_key(key),
            format!(
                "{old} is not supported: roimon's TLS (rustls) speaks TLS 1.2 and 1.3 only; use TLS12 or TLS13"
            ),
        )),
        Some(other) => Err((
            tls_key(key),
            format!("unknown TLS version {other:?} (TLS12 or TLS13)"),
        )),
    }
}

/// Go's TLS 1.2 cipher suite names rustls (ring) offers.
fn tls12_suite(name: &str) -> Option<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// Names Go accepts that rustls does not implement (CBC, RSA key exchange).
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
];

/// TLS 1.3 suites: Go accepts their names and ignores them (not configurable).
const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

fn build_tls(
    t: TlsDoc,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<rustls::ServerConfig, KeyErr> {
    let cert =
        pem_input(&t.cert, &t.cert_file, "cert", "cert_file", dir, files)?.ok_or_else(|| {
            (
                tls_key("cert_file"),
                "missing one of cert or cert_file".to_string(),
            )
        })?;
    let key = pem_input(&t.key, &t.key_file, "key", "key_file", dir, files)?.ok_or_else(|| {
        (
            tls_key("key_file"),
            "missing one of key or key_file".to_string(),
        )
    })?;
    let ca = pem_input(
        &t.client_ca,
        &t.client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
        files,
    )?;

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert.1)
        .collect::<Result<_, _>>()
        .map_err(|e| (cert.0.clone(), format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err((cert.0, "holds no PEM certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key.1)
        .map_err(|e| (key.0.clone(), format!("not a PEM private key: {e}")))?;

    let min = tls_version(&t.min_version, "min_version", 12)?;
    let max = tls_version(&t.max_version, "max_version", 13)?;
    if min > max {
        return Err((
            tls_key("min_version"),
            "min_version is above max_version".into(),
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        let mut tls12 = Vec::new();
        for n in names {
            if let Some(s) = tls12_suite(n) {
                tls12.push(s);
            } else if TLS13_SUITES.contains(&n.as_str()) {
                // Not configurable for TLS 1.3, as in Go.
            } else if GO_ONLY_SUITES.contains(&n.as_str()) {
                return Err((
                    tls_key("cipher_suites"),
                    format!(
                        "{n} is not offered by roimon's TLS (rustls has no CBC or RSA key exchange suites); remove it"
                    ),
                ));
            } else {
                return Err((
                    tls_key("cipher_suites"),
                    format!("unknown cipher suite {n:?}"),
                ));
            }
        }
        if min <= 12 && tls12.is_empty() {
            return Err((
                tls_key("cipher_suites"),
                "leaves no TLS 1.2 cipher suite while TLS 1.2 is allowed".into(),
            ));
        }
        let tls13: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        provider.cipher_suites = tls13.into_iter().chain(tls12).collect();
    }
    if let Some(names) = t.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
        use rustls::crypto::ring::kx_group;
        let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
        for n in names {
            groups.push(match n.as_str() {
                "X25519" => kx_group::X25519,
                "CurveP256" => kx_group::SECP256R1,
                "CurveP384" => kx_group::SECP384R1,
                "CurveP521" | "X25519MLKEM768" => {
                    return Err((
                        tls_key("curve_preferences"),
                        format!("{n} is not offered by roimon's TLS (rustls with ring: X25519, CurveP256, CurveP384); remove it"),
                    ));
                }
                other => {
                    return Err((tls_key("curve_preferences"), format!("unknown curve {other:?}")));
                }
            });
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);

    let roots = match &ca {
        None => None,
        Some((k, pem)) => {
            let mut store = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| (k.clone(), format!("not a PEM certificate: {e}")))?;
                store
                    .add(c)
                    .map_err(|e| (k.clone(), format!("not a usable CA certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err((k.clone(), "holds no PEM certificate".into()));
            }
            Some(Arc::new(store))
        }
    };
    let mode = nonempty(&t.client_auth_type).unwrap_or("NoClientCert");
    let sans = t.client_allowed_sans.filter(|s| !s.is_empty());
    let algs = provider.signature_verification_algorithms;
    let webpki = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, KeyErr> {
        let Some(roots) = roots.clone() else {
            return Err((
                tls_key("client_ca_file"),
                format!("client_auth_type {mode} needs client_ca_file or client_ca"),
            ));
        };
        let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        let b = if optional {
            b.allow_unauthenticated()
        } else {
            b
        };
        b.build().map_err(|e| {
            (
                tls_key("client_ca_file"),
                format!("cannot verify clients with it: {e}"),
            )
        })
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match mode {
        "NoClientCert" => None,
        "RequestClientCert" => Some(Arc::new(AnyCert {
            mandatory: false,
            algs,
        })),
        "RequireAnyClientCert" | "RequireClientCert" => Some(Arc::new(AnyCert {
            mandatory: true,
            algs,
        })),
        "VerifyClientCertIfGiven" => Some(webpki(true)?),
        "RequireAndVerifyClientCert" => Some(webpki(false)?),
        other => {
            return Err((
                tls_key("client_auth_type"),
                format!(
                    "unknown client_auth_type {other:?} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                ),
            ));
        }
    };
    if ca.is_some() && verifier.is_none() {
        return Err((
            tls_key("client_auth_type"),
            "client CAs are configured without a client auth policy: set client_auth_type (RequireAndVerifyClientCert to authenticate clients)".into(),
        ));
    }
    let verifier = match (verifier, sans) {
        (v, None) => v,
        (Some(inner), Some(allowed)) if inner.client_auth_mandatory() => {
            Some(Arc::new(SanCheck { inner, allowed }) as Arc<dyn ClientCertVerifier>)
        }
        _ => {
            return Err((
                tls_key("client_allowed_sans"),
                "requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert"
                    .into(),
            ));
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| (tls_key("min_version"), e.to_string()))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, private).map_err(|e| {
        (
            key.0.clone(),
            format!("certificate and key do not go together: {e}"),
        )
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    Ok(cfg)
}

/// RequestClientCert / RequireAnyClientCert: a certificate is asked for (or
/// required) but not verified against a CA; the client still proves it
/// holds the key.
#[derive(Debug)]
struct AnyCert {
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// `client_allowed_sans`: the client certificate must carry one of these
/// subject alternative names (DNS, e-mail, IP or URI), exactly.
#[derive(Debug)]
struct SanCheck {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for SanCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))?;
        if sans.iter().any(|s| self.allowed.contains(s)) {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subject alternative names of a certificate, written as Go's x509
/// package writes them; `None` when the certificate does not parse.
fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];
    let (0x30, cert, _) = der(cert)? else {
        return None;
    };
    let (0x30, mut tbs, _) = der(cert)? else {
        return None;
    };
    let mut out = Vec::new();
    while !tbs.is_empty() {
        let (tag, body, rest) = der(tbs)?;
        tbs = rest;
        if tag != 0xa3 {
            continue;
        }
        let (0x30, mut exts, _) = der(body)? else {
            return None;
        };
        while !exts.is_empty() {
            let (0x30, ext, rest) = der(exts)? else {
                return None;
            };
            exts = rest;
            let (0x06, oid, mut ext) = der(ext)? else {
                return None;
            };
            if oid != SAN_OID {
                continue;
            }
            let (mut tag, mut value, mut after) = der(ext)?;
            if tag == 0x01 {
                // critical
                ext = after;
                (tag, value, after) = der(ext)?;
            }
            let _ = after;
            if tag != 0x04 {
                return None;
            }
            let (0x30, mut names, _) = der(value)? else {
                return None;
            };
            while !names.is_empty() {
                let (tag, v, rest) = der(names)?;
                names = rest;
                match tag {
                    0x81 | 0x82 | 0x86 => out.push(String::from_utf8_lossy(v).into_owned()),
                    0x87 => match v.len() {
                        4 => out.push(std::net::Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string()),
                        16 => {
                            let b: [u8; 16] = v.try_into().ok()?;
                            let ip = std::net::Ipv6Addr::from(b);
                            out.push(
                                ip.to_ipv4_mapped()
                                    .map_or(ip.to_string(), |v4| v4.to_string()),
                            );
                        }
                        _ => return None,
                    },
                    _ => {}
                }
            }
        }
    }
    Some(out)
}

/// A Go duration (`time.ParseDuration`): `1s`, `100ms`, `1m30s`, `1.5h`.
fn parse_go_duration(s: &str) -> Option<Duration> {
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

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let d = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

// ---------------------------------------------------------------------------
// The live configuration: checked for changes, reloaded, and asked per request.

/// A file's identity and version, as seen by `stat`.
type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

fn stamp(p: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| {
        (
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        )
    })
}

/// Counters of the web configuration and authentication, on `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    reload_errors: AtomicU64,
    /// Unix seconds × 1000 of the last good (re)load.
    last_success_ms: AtomicU64,
    auth_missing: AtomicU64,
    auth_wrong: AtomicU64,
    auth_busy: AtomicU64,
    rate_limited: AtomicU64,
}

impl Stats {
    fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# HELP roimon_web_config_reload_errors_total Reloads of the web configuration file (--web.config.file) or its certificates that failed; the configuration in force before stays.\n\
             # TYPE roimon_web_config_reload_errors_total counter\n\
             roimon_web_config_reload_errors_total {}\n\
             # HELP roimon_web_config_last_reload_success_timestamp_seconds When the web configuration in force was loaded.\n\
             # TYPE roimon_web_config_last_reload_success_timestamp_seconds gauge\n\
             roimon_web_config_last_reload_success_timestamp_seconds {}\n\
             # HELP roimon_http_requests_refused_total HTTP requests refused by the web configuration: no credentials (401), wrong user or password (401), too many password checks waiting (429), rate_limit (429).\n\
             # TYPE roimon_http_requests_refused_total counter\n\
             roimon_http_requests_refused_total{{reason=\"no_credentials\"}} {}\n\
             roimon_http_requests_refused_total{{reason=\"wrong_credentials\"}} {}\n\
             roimon_http_requests_refused_total{{reason=\"auth_busy\"}} {}\n\
             roimon_http_requests_refused_total{{reason=\"rate_limit\"}} {}\n",
            g(&self.reload_errors),
            g(&self.last_success_ms) as f64 / 1000.0,
            g(&self.auth_missing),
            g(&self.auth_wrong),
            g(&self.auth_busy),
            g(&self.rate_limited),
        )
    }
}

/// Bounded memory of bcrypt verdicts, oldest out first.
#[derive(Debug, Default)]
struct Cache {
    map: HashMap<[u8; 32], bool>,
    order: VecDeque<[u8; 32]>,
}

impl Cache {
    fn get(&self, k: &[u8; 32]) -> Option<bool> {
        self.map.get(k).copied()
    }
    fn put(&mut self, k: [u8; 32], v: bool) {
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
            while self.order.len() > CACHE_ENTRIES {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
    fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

/// Paths that do not need basic auth.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exempt {
    /// `/healthz` (`server.healthz_without_auth`).
    pub healthz: bool,
    /// `/api/v2/write`, which then authenticates by its own push token.
    pub push: bool,
}

impl Exempt {
    /// Whether `path` is served without basic auth.
    pub fn covers(&self, path: &str) -> bool {
        (self.healthz && path == "/healthz") || (self.push && path == "/api/v2/write")
    }
}

/// The web configuration in force, and how it changes.
pub struct WebConfig {
    path: PathBuf,
    active: RwLock<Arc<Active>>,
    /// Stamps of the files the configuration in force was read from, and of
    /// the last version tried (a broken file is not retried until it changes).
    seen: Mutex<Vec<(PathBuf, Stamp)>>,
    /// Per-process salt of the verdict cache's keys.
    salt: [u8; 32],
    cache: Mutex<Cache>,
    bcrypt: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    /// Counters.
    pub stats: Stats,
    /// Paths exempt from basic auth.
    pub exempt: RwLock<Exempt>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl WebConfig {
    /// Load the file; an error names the file and what is wrong.
    pub fn open(path: &Path) -> Result<Arc<WebConfig>, ConfigError> {
        let active = load(path)?;
        let seen = Self::stamps(path, &active.files);
        let mut salt = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt).map_err(
            |_| ConfigError {
                file: path.display().to_string(),
                line: None,
                key: None,
                message: "no random numbers for the password cache's salt".into(),
            },
        )?;
        let stats = Stats::default();
        stats.last_success_ms.store(now_ms(), Ordering::Relaxed);
        Ok(Arc::new(WebConfig {
            path: path.to_path_buf(),
            active: RwLock::new(Arc::new(active)),
            seen: Mutex::new(seen),
            salt,
            cache: Mutex::new(Cache::default()),
            bcrypt: tokio::sync::Semaphore::new(BCRYPT_AT_ONCE),
            waiting: AtomicUsize::new(0),
            stats,
            exempt: RwLock::new(Exempt::default()),
        }))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A line for the log: what is on.
    pub fn summary(&self) -> String {
        self.current().summary.clone()
    }

    fn stamps(path: &Path, files: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
        std::iter::once(path.to_path_buf())
            .chain(files.iter().cloned())
            .map(|p| {
                let s = stamp(&p);
                (p, s)
            })
            .collect()
    }

    /// Re-read the file if it or a certificate file it names changed. A
    /// broken new version keeps the one in force, is logged and counted.
    /// Blocking (reads files): call it off the async threads.
    pub fn reload_if_changed(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let changed = seen.iter().any(|(p, s)| stamp(p) != *s);
        if !changed {
            return;
        }
        let paths: Vec<PathBuf> = seen.iter().skip(1).map(|(p, _)| p.clone()).collect();
        match load(&self.path) {
            Ok(new) => {
                let old = self.current();
                if new.tls_enabled() != old.tls_enabled() {
                    *seen = Self::stamps(&self.path, &paths);
                    self.stats.reload_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        file = %self.path.display(),
                        "web configuration changed between TLS and plain HTTP: that needs a restart; the configuration in force stays"
                    );
                    return;
                }
                *seen = Self::stamps(&self.path, &new.files);
                tracing::info!(file = %self.path.display(), "web configuration reloaded: {}", new.summary);
                *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
                self.stats
                    .last_success_ms
                    .store(now_ms(), Ordering::Relaxed);
            }
            Err(e) => {
                // Remember this version so it is not retried (and logged)
                // every check; the next change is.
                *seen = Self::stamps(&self.path, &paths);
                self.stats.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "web configuration not reloaded; the configuration in force stays");
            }
        }
    }

    /// Check for changes every [`RELOAD_CHECK`], for the life of the runtime.
    pub fn watch(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let w = me.clone();
                let _ = tokio::task::spawn_blocking(move || w.reload_if_changed()).await;
            }
        });
    }

    /// Prometheus text lines.
    pub fn render(&self) -> String {
        self.stats.render()
    }

    /// Whether a request may go on: `None`, or the response that refuses it
    /// (429 over `rate_limit` or too many password checks waiting, 401 with
    /// `WWW-Authenticate` without valid credentials).
    pub async fn admit(
        &self,
        active: &Active,
        path: &str,
        authorization: Option<&HeaderValue>,
    ) -> Option<Response<Body>> {
        if let Some(l) = &active.limiter {
            if !l
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(Instant::now())
            {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Some(refusal(StatusCode::TOO_MANY_REQUESTS));
            }
        }
        if active.users.is_empty() {
            return None;
        }
        let exempt = *self.exempt.read().unwrap_or_else(|e| e.into_inner());
        if exempt.covers(path) {
            return None;
        }
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            self.stats.auth_missing.fetch_add(1, Ordering::Relaxed);
            return Some(refusal(StatusCode::UNAUTHORIZED));
        };
        match self.verify(&active.users, &user, &pass).await {
            Ok(true) => None,
            Ok(false) => {
                self.stats.auth_wrong.fetch_add(1, Ordering::Relaxed);
                Some(refusal(StatusCode::UNAUTHORIZED))
            }
            Err(Busy) => {
                self.stats.auth_busy.fetch_add(1, Ordering::Relaxed);
                Some(refusal(StatusCode::TOO_MANY_REQUESTS))
            }
        }
    }

    /// Whether `user` and `pass` match a configured user. The name is
    /// compared in constant time against every user; an unknown name is
    /// checked against a real hash, so its timing tells nothing. Verdicts are
    /// cached by (user, hash, password) digested with a per-process salt.
    async fn verify(&self, users: &[User], user: &str, pass: &[u8]) -> Result<bool, Busy> {
        let d = sha256(&[user.as_bytes()]);
        let mut which = 0u64;
        let mut found = subtle::Choice::from(0);
        for (i, u) in users.iter().enumerate() {
            let eq = u.name_digest.ct_eq(&d);
            which = u64::conditional_select(&which, &(i as u64), eq);
            found |= eq;
        }
        let found = bool::from(found);
        let hash = &users[which as usize].hash;
        let key = sha256(&[&self.salt, user.as_bytes(), hash.as_bytes(), pass]);
        if let Some(ok) = self.cached(&key) {
            return Ok(ok && found);
        }
        // Not cached: one bcrypt at a time; a bounded queue waits for it.
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= BCRYPT_QUEUE {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let permit = self.bcrypt.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| Busy)?;
        // The same password may have been checked while this one waited.
        if let Some(ok) = self.cached(&key) {
            return Ok(ok && found);
        }
        let (h, p) = (hash.clone(), pass.to_vec());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(p, &h).unwrap_or(false))
            .await
            .unwrap_or(false);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, ok);
        Ok(ok && found)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<bool> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
    }
}

/// Too many password checks waiting.
#[derive(Debug)]
struct Busy;

fn refusal(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::from(format!(
        "{}\n",
        code.canonical_reason().unwrap_or("refused")
    )));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if code == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    } else {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(v: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let v = v.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn err(text: &str) -> ConfigError {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "web.yml", text);
        load(&p).expect_err(text)
    }

    #[test]
    fn unknown_keys_are_errors_naming_file_line_and_key() {
        let e = err("basic_auth_users: {}\ntls_server_config:\n  certfile: x.pem\n");
        assert!(e.file.ends_with("web.yml"), "{e}");
        assert_eq!(e.key.as_deref(), Some("tls_server_config.certfile"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
        let e = err("tls_config:\n  cert_file: x\n");
        assert_eq!(e.key.as_deref(), Some("tls_config"), "{e}");
    }

    #[test]
    fn an_empty_file_or_users_only_means_plain_http() {
        let d = tempfile::tempdir().unwrap();
        let a = load(&write(d.path(), "a.yml", "")).unwrap();
        assert!(!a.tls_enabled() && !a.auth_enabled());
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = load(&write(
            d.path(),
            "b.yml",
            &format!("basic_auth_users:\n  alice: {hash}\n"),
        ))
        .unwrap();
        assert!(!a.tls_enabled() && a.auth_enabled());
    }

    #[test]
    fn bad_values_are_named() {
        let e = err("basic_auth_users:\n  alice: plaintext\n");
        assert_eq!(e.key.as_deref(), Some("basic_auth_users.alice"), "{e}");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(
            !e.to_string().contains("plaintext"),
            "the secret is not repeated: {e}"
        );
        let e = err("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n");
        assert!(
            e.message.contains("missing one of cert or cert_file"),
            "{e}"
        );
        let e = err("tls_server_config:\n  cert_file: nothere.pem\n  key_file: nothere.key\n");
        assert_eq!(e.key.as_deref(), Some("tls_server_config.cert_file"), "{e}");
        assert!(
            e.message.contains("nothere.pem"),
            "relative to the file's dir: {e}"
        );
        let e = err("http_server_config:\n  headers:\n    X-Powered-By: roimon\n");
        assert!(e.message.contains("can not be configured"), "{e}");
        let e = err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
        assert!(e.message.contains("deny"), "{e}");
        let e = err("rate_limit:\n  interval: soon\n");
        assert_eq!(e.key.as_deref(), Some("rate_limit.interval"), "{e}");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("1d"), None);
    }

    #[test]
    fn exemptions_are_exact_paths() {
        let e = Exempt {
            healthz: true,
            push: false,
        };
        assert!(e.covers("/healthz"));
        assert!(!e.covers("/healthz/x") && !e.covers("/readyz") && !e.covers("/api/v2/write"));
        let e = Exempt {
            healthz: false,
            push: true,
        };
        assert!(e.covers("/api/v2/write") && !e.covers("/healthz"));
    }

    #[test]
    fn basic_credentials_parse() {
        let v = HeaderValue::from_static("Basic YWxpY2U6cDpx"); // alice:p:q
        assert_eq!(
            basic_credentials(&v),
            Some(("alice".into(), b"p:q".to_vec()))
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer x")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic !!")),
            None
        );
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest() {
        let mut c = Cache::default();
        for i in 0..(CACHE_ENTRIES + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_be_bytes());
            c.put(k, i % 2 == 0);
        }
        assert_eq!(c.map.len(), CACHE_ENTRIES);
        assert_eq!(c.get(&[0u8; 32]), None);
    }

    #[tokio::test]
    async fn beyond_the_queue_new_passwords_get_busy_at_once() {
        let d = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("right", 4).unwrap();
        let p = write(
            d.path(),
            "w.yml",
            &format!("basic_auth_users:\n  alice: {hash}\n"),
        );
        let w = WebConfig::open(&p).unwrap();
        // The one bcrypt slot is taken: every new password has to wait.
        let held = w.bcrypt.acquire().await.unwrap();
        let extra = 5;
        let tasks: Vec<_> = (0..BCRYPT_QUEUE + extra)
            .map(|i| {
                let w = w.clone();
                tokio::spawn(async move {
                    let a = w.current();
                    w.verify(&a.users, "alice", format!("guess{i}").as_bytes())
                        .await
                        .is_err()
                })
            })
            .collect();
        for _ in 0..10_000 {
            if w.waiting.load(Ordering::Acquire) == BCRYPT_QUEUE
                && tasks.iter().filter(|t| t.is_finished()).count() == extra
            {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            w.waiting.load(Ordering::Acquire),
            BCRYPT_QUEUE,
            "the queue is bounded"
        );
        drop(held);
        let mut busy = 0;
        for t in tasks {
            busy += usize::from(t.await.unwrap());
        }
        assert_eq!(busy, extra, "only those beyond the queue are refused");
        assert_eq!(w.cache.lock().unwrap().map.len(), BCRYPT_QUEUE);
    }

    #[test]
    fn the_rate_limit_is_a_token_bucket() {
        let t0 = Instant::now();
        let mut b = Bucket {
            per_sec: 1.0,
            burst: 2.0,
            tokens: 2.0,
            at: t0,
        };
        assert!(b.allow(t0) && b.allow(t0));
        assert!(!b.allow(t0), "the burst is spent");
        assert!(!b.allow(t0 + Duration::from_millis(500)));
        assert!(b.allow(t0 + Duration::from_millis(1000)));
        assert!(b.allow(t0 + Duration::from_secs(60)) && b.allow(t0 + Duration::from_secs(60)));
        assert!(
            !b.allow(t0 + Duration::from_secs(60)),
            "never more than the burst"
        );
    }

    #[tokio::test]
    async fn a_repeated_wrong_password_costs_one_bcrypt() {
        let d = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("right", 4).unwrap();
        let p = write(
            d.path(),
            "w.yml",
            &format!("basic_auth_users:\n  alice: {hash}\n"),
        );
        let w = WebConfig::open(&p).unwrap();
        let a = w.current();
        assert!(w.verify(&a.users, "alice", b"right").await.unwrap());
        assert!(!w.verify(&a.users, "alice", b"wrong").await.unwrap());
        assert!(
            !w.verify(&a.users, "bob", b"right").await.unwrap(),
            "unknown user"
        );
        assert_eq!(w.cache.lock().unwrap().map.len(), 3);
        for _ in 0..50 {
            assert!(!w.verify(&a.users, "alice", b"wrong").await.unwrap());
        }
        assert_eq!(
            w.cache.lock().unwrap().map.len(),
            3,
            "answered from the cache"
        );
        // The same hash under another name does not let the other name in.
        assert!(!w.verify(&a.users, "mallory", b"right").await.unwrap());
    }
}
