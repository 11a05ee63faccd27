//! `[server]`: the HTTP listener and its connection limits.

use crate::{Check, Ctx, Failure};
use serde::Deserialize;
use std::net::SocketAddr;

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

impl Check for Server {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return ctx.fail(
                "listen",
                format!("not an address like 127.0.0.1:9464: {:?}", self.listen),
            );
        }
        if !(1..=65536).contains(&self.max_connections) {
            return ctx.fail(
                "max_connections",
                format!("must be between 1 and 65536, got {}", self.max_connections),
            );
        }
        for (name, v, max) in [
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                300.0,
            ),
            ("idle_timeout_secs", self.idle_timeout_secs, 3600.0),
        ] {
            if !(v.is_finite() && (0.1..=max).contains(&v)) {
                return ctx.fail(
                    name,
                    format!("must be between 0.1 and {max} seconds, got {v}"),
                );
            }
        }
        Ok(())
    }
}
