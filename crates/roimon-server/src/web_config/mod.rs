//! TLS and basic authentication for the HTTP listener, read from a web
//! configuration file in the Prometheus exporter-toolkit format
//! (`--web.config.file`), so a site reuses its node_exporter file: rustls
//! (ring) for TLS and client certificates, bcrypt users whose results are
//! cached so that a password flood cannot burn the CPU, and a reload when the
//! file or a certificate changes (a broken new file keeps the old one).
//! `file` reads the format, `tls` builds rustls from it, `auth` checks
//! passwords; this module holds the configuration in force and reloads it.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use file::{EXTRA_HEADERS, header_name, locate_yaml, parse_doc, parse_go_duration};
use roimon_config::{ConfigError, read_file};
use roimon_export_prometheus::WebFigures;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often the file and the certificate files it names are looked at
/// (metadata only; re-read when one changed).
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

mod auth;
mod file;
mod tls;

use auth::{Auth, Busy, User, basic_credentials, refusal};
use tls::{build_tls, tls_enabled};

// ---------------------------------------------------------------------------
// What a loaded file means.

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
        users.push(User::new(&name, hash));
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
    fn figures(&self) -> WebFigures {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WebFigures {
            reload_errors: g(&self.reload_errors),
            last_reload_success_unix: g(&self.last_success_ms) as f64 / 1000.0,
            refused_no_credentials: g(&self.auth_missing),
            refused_wrong_credentials: g(&self.auth_wrong),
            refused_auth_busy: g(&self.auth_busy),
            refused_rate_limit: g(&self.rate_limited),
        }
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
    /// Password checks and their cache.
    auth: Auth,
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
        let auth = Auth::new().ok_or_else(|| ConfigError {
            file: path.display().to_string(),
            line: None,
            key: None,
            message: "no random numbers for the password cache's salt".into(),
        })?;
        let stats = Stats::default();
        stats.last_success_ms.store(now_ms(), Ordering::Relaxed);
        Ok(Arc::new(WebConfig {
            path: path.to_path_buf(),
            active: RwLock::new(Arc::new(active)),
            seen: Mutex::new(seen),
            auth,
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
                self.auth.forget();
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

    /// The counters, for the exporter to name.
    pub fn figures(&self) -> WebFigures {
        self.stats.figures()
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
        match self.auth.verify(&active.users, &user, &pass).await {
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
}
