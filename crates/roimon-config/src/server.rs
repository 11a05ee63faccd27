//! `[server]`: the HTTP listener and its connection limits.

use serde::Deserialize;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address of the one HTTP listener.
    pub listen: String,
    /// Connections served at once; beyond it the oldest idle connection is
    /// closed to admit the new one, or the new one is refused when every
    /// connection is busy. Also capped by the file-descriptor limit.
    pub max_connections: u32,
    /// Seconds a client has to send a complete request header, counted from
    /// the connection (first request) or from its first byte (later ones).
    pub header_read_timeout_secs: f64,
    /// Seconds a keep-alive connection may wait idle between requests (and
    /// the longest a response may take to hand over).
    pub idle_timeout_secs: f64,
    /// TLS and basic auth: a web configuration file in the Prometheus
    /// exporter-toolkit format (`--web.config.file` wins).
    pub web_config_file: Option<std::path::PathBuf>,
    /// Serve `/healthz` without basic auth (TLS still applies), for probes
    /// that cannot send credentials.
    pub healthz_without_auth: bool,
}
impl Default for Server {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            max_connections: 512,
            header_read_timeout_secs: 10.0,
            idle_timeout_secs: 90.0,
            web_config_file: None,
            healthz_without_auth: false,
        }
    }
}
