//! `[influxdb]`: the InfluxDB v2 stream (absent: no stream): where to write
//! (url, org, bucket, token), how often, in what batches, and the bounded
//! disk buffer that carries the data through outages and restarts.

use crate::{Check, Ctx, Failure};
use serde::Deserialize;
use std::path::PathBuf;

/// `[influxdb]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxDb {
    /// Server base URL, e.g. `http://127.0.0.1:8086` (`/api/v2/write` is added).
    pub url: String,
    /// Organisation (name or ID).
    pub org: String,
    /// Bucket (name or ID).
    pub bucket: String,
    /// `Authorization: Token <t>` from this environment variable …
    #[serde(default)]
    pub token_env: Option<String>,
    /// … or from this file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Seconds between samples written.
    #[serde(default = "d_interval")]
    pub interval_secs: f64,
    /// Most points per request.
    #[serde(default = "d_batch")]
    pub batch_points: u64,
    /// Compress request bodies with gzip.
    #[serde(default = "d_true")]
    pub gzip: bool,
    /// Bound of the disk buffer, bytes (the oldest data is dropped, counted,
    /// past it).
    #[serde(default = "d_buffer")]
    pub buffer_max_bytes: u64,
    /// Where the buffer's segment files live (default `<state dir>/influxdb`).
    #[serde(default)]
    pub buffer_dir: Option<PathBuf>,
    /// Limit for one write request, seconds.
    #[serde(default = "d_timeout")]
    pub timeout_secs: f64,
    /// The `node` tag (default: the host name).
    #[serde(default)]
    pub node: Option<String>,
}

fn d_interval() -> f64 {
    10.0
}
fn d_batch() -> u64 {
    5000
}
fn d_true() -> bool {
    true
}
fn d_buffer() -> u64 {
    256 << 20
}
fn d_timeout() -> f64 {
    10.0
}

impl Check for InfluxDb {
    fn check(&self, ctx: &Ctx) -> Result<(), Failure> {
        let i = self;
        if !(i.url.starts_with("http://") || i.url.starts_with("https://")) {
            return ctx.fail(
                "url",
                format!("must start with http:// or https://, got {:?}", i.url),
            );
        }
        if i.url.contains('?') || i.url.contains('#') {
            return ctx.fail(
                "url",
                "must be the server's base URL, without query or fragment (org and bucket are keys of their own)",
            );
        }
        for (k, v) in [("org", &i.org), ("bucket", &i.bucket)] {
            if v.trim().is_empty() {
                return ctx.fail(k, "must not be empty");
            }
        }
        if i.token_env.is_some() && i.token_file.is_some() {
            return ctx.fail("token_file", "give token_env or token_file, not both");
        }
        if !(i.interval_secs.is_finite() && (0.1..=3600.0).contains(&i.interval_secs)) {
            return ctx.fail(
                "interval_secs",
                format!(
                    "must be between 0.1 and 3600 seconds, got {}",
                    i.interval_secs
                ),
            );
        }
        if !(1..=1_000_000).contains(&i.batch_points) {
            return ctx.fail(
                "batch_points",
                format!("must be between 1 and 1000000, got {}", i.batch_points),
            );
        }
        if !((64 << 10)..=(1 << 40)).contains(&i.buffer_max_bytes) {
            return ctx.fail(
                "buffer_max_bytes",
                format!(
                    "must be between 64 KiB and 1 TiB, got {}",
                    i.buffer_max_bytes
                ),
            );
        }
        if !(i.timeout_secs.is_finite() && (0.1..=600.0).contains(&i.timeout_secs)) {
            return ctx.fail(
                "timeout_secs",
                format!(
                    "must be between 0.1 and 600 seconds, got {}",
                    i.timeout_secs
                ),
            );
        }
        if i.buffer_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return ctx.fail("buffer_dir", "must not be empty");
        }
        if i.node.as_ref().is_some_and(|n| n.trim().is_empty()) {
            return ctx.fail("node", "must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn absent_means_off_and_defaults_fill_the_rest() {
        assert!(Config::parse("", "t.toml").unwrap().influxdb.is_none());
        let c = Config::parse(
            "[influxdb]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\ntoken_env = \"INFLUX_TOKEN\"\n",
            "t.toml",
        )
        .unwrap();
        let i = c.influxdb.unwrap();
        assert_eq!(i.interval_secs, 10.0);
        assert_eq!(i.batch_points, 5000);
        assert!(i.gzip);
        assert_eq!(i.buffer_max_bytes, 256 << 20);
        assert_eq!(i.buffer_dir, None);
        assert_eq!(i.token_env.as_deref(), Some("INFLUX_TOKEN"));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let base = "[sampling]\ninterval_secs = 1.0\n\n[influxdb]\nurl = \"http://x:8086\"\norg = \"o\"\nbucket = \"b\"\n";
        let e = Config::parse(&format!("{base}colour = 1\n"), "t.toml").unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(8), Some("influxdb.colour"))
        );
        let e = Config::parse(&format!("{base}batch_points = 0\n"), "t.toml").unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.line, e.key.as_deref()),
            ("t.toml", Some(8), Some("influxdb.batch_points"))
        );
        let e = Config::parse(
            &format!("{base}token_env = \"A\"\ntoken_file = \"/f\"\n"),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("influxdb.token_file"));
        let e = Config::parse(
            "[influxdb]\nurl = \"ftp://x\"\norg = \"o\"\nbucket = \"b\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("influxdb.url")));
        let e =
            Config::parse("[influxdb]\nurl = \"http://x\"\norg = \"o\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("bucket"), "{e}");
    }
}
