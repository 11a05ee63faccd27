//! Secrets stay out of stderr at every log level, not only at the `info` the
//! other tests pin: `roimon prices` and the daemon run at `debug`, `trace`
//! and with the HTTP stack's own targets (reqwest, hyper, rustls) at `trace`,
//! against a server that echoes the token back and redirects to a URL that
//! carries it. Likewise a key in the query of a configured URL (a `json`
//! price URL's `?apikey=`), which a server echoes with the request path.

mod common;

use common::mock::{Mock, Step};
use common::{BIN, Daemon, value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A token with characters that change under URL encoding, so that both the
/// raw and the encoded form are checked.
const TOKEN: &str = "sekrit+t0k/6f1e=2d";
const TOKEN_URL_ENCODED: &str = "sekrit%2Bt0k%2F6f1e%3D2d";
/// Every log level the daemon can be asked for through `RUST_LOG` that shows
/// more than `info`.
const LEVELS: &[&str] = &[
    "debug",
    "trace,reqwest=trace,hyper=trace,hyper_util=trace,rustls=trace,h2=trace,tower=trace",
];
const PRICE_ERRORS: &str = "roimon_collector_errors_total{collector=\"price\"}";

fn config(dir: &Path, base_url: &str) -> PathBuf {
    let cfg = format!(
        "[sampling]\ninterval_secs = 0.2\n[gpu]\nsource = \"none\"\n[host]\npower = \"model\"\n\
         rapl_root = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[state]\ndir = \"{}\"\n\
         [price]\nsource = \"entsoe\"\narea = \"10YNL----------L\"\ntoken_env = \"ROIMON_TEST_ENTSOE_TOKEN\"\n\
         currency = \"EUR\"\nprice_per_kwh = 0.3\nbase_url = \"{base_url}\"\ntimeout_secs = 1.0\n\
         retries = 0\nretry_initial_secs = 0.05\n",
        dir.join("no-rapl").display(),
        dir.join("state").display()
    );
    let path = dir.join("roimon.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// The server: the token echoed in a 401, a same-origin redirect whose
/// location carries the token, then the token echoed across the cut of
/// error texts in a 500 (repeated).
fn mock() -> Mock {
    let m = Mock::start(vec![]);
    m.set(vec![
        Step::Echo(401, 0),
        Step::Redirect(format!("{}/api?securityToken={TOKEN_URL_ENCODED}", m.url)),
        Step::Echo(500, 190),
    ]);
    m
}

fn assert_no_token(what: &str, text: &str) {
    for needle in [TOKEN, TOKEN_URL_ENCODED, "sekrit"] {
        assert!(
            !text.contains(needle),
            "{what}: {needle:?} reached stderr:\n{text}"
        );
    }
}

#[test]
fn prices_command_never_prints_the_token_at_debug_or_trace() {
    for level in LEVELS {
        let tmp = tempfile::tempdir().unwrap();
        let mock = mock();
        let config = config(tmp.path(), &mock.url);
        let out = Command::new(BIN)
            .args(["prices", "--config"])
            .arg(&config)
            .env("ROIMON_TEST_ENTSOE_TOKEN", TOKEN)
            .env("RUST_LOG", level)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "RUST_LOG={level}: {err}");
        let seen = mock.seen.lock().unwrap().clone();
        assert!(
            seen[0].line.contains(TOKEN_URL_ENCODED),
            "the token was sent: {}",
            seen[0].line
        );
        assert!(err.contains("[REDACTED]"), "RUST_LOG={level}: {err}");
        assert_no_token(&format!("roimon prices, RUST_LOG={level}"), &err);
    }
}

#[test]
fn daemon_never_logs_the_token_at_debug_or_trace() {
    for level in LEVELS {
        let tmp = tempfile::tempdir().unwrap();
        let mock = mock();
        let config = config(tmp.path(), &mock.url);
        let d = Daemon::start_env(
            &config,
            &[],
            &[("ROIMON_TEST_ENTSOE_TOKEN", TOKEN), ("RUST_LOG", level)],
        );
        // Past the 401, the redirect and at least one echoed 500.
        d.wait_metrics("three failed price fetches", |m| {
            value(m, PRICE_ERRORS).unwrap_or(0.0) >= 3.0
        });
        let (status, log) = d.stop("TERM");
        assert_eq!(status.code(), Some(0));
        let seen = mock.seen.lock().unwrap().clone();
        assert!(seen.len() >= 3, "{seen:?}");
        assert!(
            seen.iter().all(|s| s.line.contains(TOKEN_URL_ENCODED)),
            "every request carried the token: {seen:?}"
        );
        let log = log.join("\n");
        // The level took effect: there are debug lines, and the failures
        // were logged (redacted).
        assert!(
            log.contains("\"level\":\"DEBUG\""),
            "RUST_LOG={level}:\n{log}"
        );
        if level.starts_with("trace") {
            assert!(
                log.contains("\"level\":\"TRACE\""),
                "RUST_LOG={level}:\n{log}"
            );
        }
        assert!(log.contains("price fetch failed"), "{log}");
        assert_no_token(&format!("daemon, RUST_LOG={level}"), &log);
    }
}

/// The key a `json` price URL carries in its query.
const API_KEY: &str = "SECRETVALUE";

#[test]
fn daemon_never_logs_the_query_of_a_price_url_a_server_echoes() {
    for level in ["info", LEVELS[1]] {
        let tmp = tempfile::tempdir().unwrap();
        // A 500 echoing the request line (retried: a debug line), then
        // 404s echoing it, as a server that repeats the path it did not find.
        let mock = Mock::start(vec![Step::Echo(500, 0), Step::Echo(404, 0)]);
        let cfg = format!(
            "[sampling]\ninterval_secs = 0.2\n[gpu]\nsource = \"none\"\n[host]\npower = \"model\"\n\
             rapl_root = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[state]\ndir = \"{}\"\n\
             [price]\nsource = \"json\"\ncurrency = \"EUR\"\nprice_per_kwh = 0.3\n\
             url = \"{}/prices?apikey={API_KEY}&start={{start}}\"\ntimeout_secs = 1.0\nretries = 1\n\
             retry_initial_secs = 0.05\n[price.mapping]\nstart = \"start\"\nprice = \"price\"\nunit = \"EUR/kWh\"\n",
            tmp.path().join("no-rapl").display(),
            tmp.path().join("state").display(),
            mock.url
        );
        let config = tmp.path().join("roimon.toml");
        std::fs::write(&config, cfg).unwrap();
        let d = Daemon::start_env(&config, &[], &[("RUST_LOG", level)]);
        d.wait_metrics("two failed price fetches", |m| {
            value(m, PRICE_ERRORS).unwrap_or(0.0) >= 2.0
        });
        let (status, log) = d.stop("TERM");
        assert_eq!(status.code(), Some(0));
        let seen = mock.seen.lock().unwrap().clone();
        assert!(
            seen.iter()
                .all(|s| s.line.contains(&format!("/prices?apikey={API_KEY}&start="))),
            "every request carried the key: {seen:?}"
        );
        let log = log.join("\n");
        // The failures were logged, with the echoed path, its query redacted.
        assert!(log.contains("price fetch failed"), "{log}");
        assert!(log.contains("/prices?apikey=[REDACTED]"), "{log}");
        assert!(
            !log.contains(API_KEY) && !log.to_ascii_lowercase().contains("secretvalue"),
            "RUST_LOG={level}: the key reached the log:\n{log}"
        );
    }
}
