//! TLS and basic auth from `--web.config.file` (Prometheus exporter-toolkit
//! format), through the real binary and real clients: curl negotiating TLS
//! 1.2 and 1.3, a TLS 1.3-only server refusing a 1.2 client, client
//! certificates accepted and refused, wrong passwords and unknown users 401,
//! `/healthz` exempt when configured, the push token, reloads (a broken file
//! keeps the old one), and a real Prometheus scraping over TLS with basic auth.
//! Certificates are made at test time with the `openssl` command.

mod common;

use common::{BIN, Daemon, http_get, value};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CURL: &str = "/usr/bin/curl";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl not found: install it with `apt-get install openssl`");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME.pem`, `NAME.key`).
fn make_ca(dir: &Path, name: &str) {
    std::fs::write(
        dir.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\n[dn]\n[v3_ca]\nbasicConstraints = critical,CA:TRUE\n\
         keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-config",
            "ca.cnf",
            "-extensions",
            "v3_ca",
        ],
    );
}

/// A leaf certificate signed by `ca`, with the given extensions.
fn make_leaf(dir: &Path, name: &str, ca: &str, usage: &str, san: &str) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!(
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = {usage}\nsubjectAltName = {san}\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// Certificates for a test: a CA with a server and two clients, and a
/// foreign CA with a client of its own.
fn pki(dir: &Path) {
    make_ca(dir, "ca");
    make_leaf(
        dir,
        "server",
        "ca",
        "serverAuth",
        "IP:127.0.0.1,DNS:localhost",
    );
    make_leaf(
        dir,
        "client",
        "ca",
        "clientAuth",
        "DNS:client.example,IP:10.0.0.7,URI:spiffe://example.org/scraper,email:ops@example.com",
    );
    make_leaf(dir, "other", "ca", "clientAuth", "DNS:other.example");
    make_ca(dir, "foreign");
    make_leaf(
        dir,
        "stranger",
        "foreign",
        "clientAuth",
        "DNS:client.example",
    );
}

/// A bcrypt hash as htpasswd writes it (`$2y$`); cost 4 keeps tests quick.
fn htpasswd(password: &str) -> String {
    bcrypt::hash(password, 4)
        .unwrap()
        .replacen("$2b$", "$2y$", 1)
}

fn roimon_config(dir: &Path, server_extra: &str, push_token: bool) -> PathBuf {
    let p = dir.join("roimon.toml");
    std::fs::write(
        &p,
        format!(
            "[sampling]\ninterval_secs = 0.2\n[gpu]\nsource = \"none\"\n[host]\npower = \"model\"\n\
             rapl_root = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_secs = 3.0\n\
             {server_extra}\n[state]\ndir = \"{}\"\ncheckpoint_interval_secs = 0.2\n{}",
            dir.join("no-rapl").display(),
            dir.join("state").display(),
            if push_token {
                "[push]\ntoken_env = \"TLS_TEST_PUSH_TOKEN\"\nallowed_owners = [\"t/w\"]\n"
            } else {
                "[push]\nallowed_owners = [\"t/w\"]\n"
            },
        ),
    )
    .unwrap();
    p
}

/// What curl saw: the status (None: no HTTP answer), the body, its verbose log
/// and its exit code.
struct Curl {
    status: Option<u16>,
    body: String,
    log: String,
    exit: i32,
}

impl std::fmt::Debug for Curl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body: String = self.body.chars().take(300).collect();
        let log: Vec<&str> = self
            .log
            .lines()
            .filter(|l| !l.starts_with(['{', '}']))
            .collect();
        write!(
            f,
            "status {:?}, exit {}, body {body:?}\n{}",
            self.status,
            self.exit,
            log.join("\n")
        )
    }
}

impl Curl {
    fn tls_version(&self) -> Option<&str> {
        self.log
            .lines()
            .find_map(|l| l.split("SSL connection using ").nth(1))
            .and_then(|r| r.split_whitespace().next())
    }
    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("< {}:", name.to_ascii_lowercase());
        self.log
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    }
}

fn curl(args: &[&str]) -> Curl {
    let out = Command::new(CURL)
        .args(["-sS", "-v", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Curl {
        status: code.trim().parse().ok().filter(|c| *c != 0),
        body: body.to_string(),
        log: String::from_utf8_lossy(&out.stderr).to_string(),
        exit: out.status.code().unwrap_or(-1),
    }
}

fn https(d: &Daemon, path: &str) -> String {
    format!("https://{}{path}", d.addr)
}

/// curl over TLS, trusting the test CA, with extra arguments.
fn get(d: &Daemon, dir: &Path, path: &str, extra: &[&str]) -> Curl {
    let ca = dir.join("ca.pem");
    let url = https(d, path);
    let mut args = vec!["--cacert", ca.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

#[test]
fn tls_12_and_13_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    std::fs::write(
        d.join("web.yml"),
        format!(
            "# as for node_exporter\ntls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  alice: {}\n  bob: {}\n",
            htpasswd("wonderland"),
            htpasswd("builder"),
        ),
    )
    .unwrap();
    let cfg = roimon_config(d, "healthz_without_auth = true", true);
    let web = d.join("web.yml");
    let daemon = Daemon::start_env(
        &cfg,
        &["--web.config.file", web.to_str().unwrap()],
        &[("TLS_TEST_PUSH_TOKEN", "s3cret")],
    );
    let alice = ["-u", "alice:wonderland"];

    let r = get(
        &daemon,
        d,
        "/metrics",
        &[&["--tlsv1.2", "--tls-max", "1.2"][..], &alice].concat(),
    );
    assert_eq!(r.status, Some(200), "{r:?}");
    assert_eq!(r.tls_version(), Some("TLSv1.2"), "{}", r.log);
    assert!(r.body.contains("roimon_build_info"), "{}", r.body);
    assert_eq!(
        r.header("X-Frame-Options").as_deref(),
        Some("deny"),
        "{}",
        r.log
    );

    let r = get(
        &daemon,
        d,
        "/metrics",
        &[&["--tlsv1.3"][..], &alice].concat(),
    );
    assert_eq!(r.status, Some(200), "{r:?}");
    assert_eq!(r.tls_version(), Some("TLSv1.3"), "{}", r.log);
    let r = get(&daemon, d, "/api/v1/summary", &["-u", "bob:builder"]);
    assert_eq!(r.status, Some(200), "{r:?}");

    // Without credentials, with a wrong password, as an unknown user: 401.
    for creds in [
        &[][..],
        &["-u", "alice:rabbit"],
        &["-u", "mallory:wonderland"],
        &["-u", "alice:"],
    ] {
        let r = get(&daemon, d, "/metrics", creds);
        assert_eq!(r.status, Some(401), "{creds:?}: {r:?}");
        assert_eq!(
            r.header("WWW-Authenticate").as_deref(),
            Some("Basic realm=\"roimon\""),
            "{}",
            r.log
        );
        assert!(!r.body.contains("roimon_"), "{}", r.body);
        assert_eq!(
            r.header("X-Frame-Options").as_deref(),
            Some("deny"),
            "headers on refusals too"
        );
    }
    // The same wrong password again, many times: still 401 (from the cache).
    for _ in 0..20 {
        assert_eq!(
            get(&daemon, d, "/", &["-u", "alice:rabbit"]).status,
            Some(401)
        );
    }

    // /healthz is exempt (configured); /readyz is not.
    let r = get(&daemon, d, "/healthz", &[]);
    assert_eq!(r.status, Some(200), "{r:?}");
    assert_eq!(get(&daemon, d, "/readyz", &[]).status, Some(401));
    // Every other path is behind it, the ledger report included.
    for path in [
        "/api/v1/report?from=2026-01-01&to=2026-01-02",
        "/api/v1/summary",
        "/",
    ] {
        assert_eq!(get(&daemon, d, path, &[]).status, Some(401), "{path}");
    }

    // The push endpoint authenticates by its token, not by basic auth.
    let line = "roimon_value,team=t,workload=w amount=1";
    let r = get(
        &daemon,
        d,
        "/api/v2/write",
        &["-H", "Authorization: Token s3cret", "--data-binary", line],
    );
    assert_eq!(r.status, Some(204), "{r:?}");
    let r = get(
        &daemon,
        d,
        "/api/v2/write",
        &[&["--data-binary", line][..], &alice].concat(),
    );
    assert_eq!(r.status, Some(401), "basic auth is no push token: {r:?}");
    assert_eq!(
        r.header("WWW-Authenticate"),
        None,
        "the push handler's own 401: {r:?}"
    );

    // Plain HTTP on the TLS port gets no answer.
    let addr = daemon.addr.clone();
    let (code, _) =
        std::panic::catch_unwind(move || http_get(&addr, "/healthz")).unwrap_or((0, String::new()));
    assert_ne!(code, 200);

    let m = get(&daemon, d, "/metrics", &alice).body;
    assert!(
        value(
            &m,
            "roimon_http_requests_refused_total{reason=\"wrong_credentials\"}"
        )
        .unwrap()
            >= 22.0,
        "{m}"
    );
    assert!(
        value(
            &m,
            "roimon_http_requests_refused_total{reason=\"no_credentials\"}"
        )
        .unwrap()
            >= 2.0,
        "{m}"
    );
    assert!(
        value(
            &m,
            "roimon_http_connections_dropped_total{reason=\"tls_handshake\"}"
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
    assert_eq!(
        value(&m, "roimon_web_config_reload_errors_total"),
        Some(0.0)
    );
    assert!(
        value(
            &m,
            "roimon_web_config_last_reload_success_timestamp_seconds"
        )
        .unwrap()
            > 1.7e9
    );
}

#[test]
fn min_version_tls13_refuses_a_tls12_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS13\n",
    )
    .unwrap();
    // The key in the roimon config, this time, rather than the flag.
    let cfg = roimon_config(
        d,
        &format!("web_config_file = \"{}\"", d.join("web.yml").display()),
        false,
    );
    let daemon = Daemon::start(&cfg, &[]);
    let r = get(&daemon, d, "/metrics", &["--tlsv1.2", "--tls-max", "1.2"]);
    assert_eq!(r.status, None, "a TLS 1.2-only client is refused: {r:?}");
    assert_ne!(r.exit, 0);
    let r = get(&daemon, d, "/metrics", &["--tlsv1.3"]);
    assert_eq!(r.status, Some(200), "{r:?}");
    assert_eq!(r.tls_version(), Some("TLSv1.3"));

    // A handshake that never completes is closed at the header deadline
    // (3 s here), like a request header that never completes.
    let mut s = TcpStream::connect(&daemon.addr).unwrap();
    // A TLS record header announcing 512 bytes that never come.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the stalled handshake was not closed within 10 s: {other:?}"),
    }
    let m = get(&daemon, d, "/metrics", &[]).body;
    assert!(
        value(
            &m,
            "roimon_http_connections_dropped_total{reason=\"tls_handshake\"}"
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
}

#[test]
fn client_certificates_accepted_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    let web = d.join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    )
    .unwrap();
    let cfg = roimon_config(d, "", false);
    let with = |name: &str| -> Vec<String> {
        vec![
            "--cert".into(),
            d.join(format!("{name}.pem")).display().to_string(),
            "--key".into(),
            d.join(format!("{name}.key")).display().to_string(),
        ]
    };
    let run = |daemon: &Daemon, extra: &[String]| {
        let a: Vec<&str> = extra.iter().map(String::as_str).collect();
        get(daemon, d, "/metrics", &a)
    };
    {
        let daemon = Daemon::start(&cfg, &["--web.config.file", web.to_str().unwrap()]);
        for v in ["--tlsv1.3", "--tls-max"] {
            let mut a = with("client");
            if v == "--tls-max" {
                a.extend(["--tlsv1.2".into(), "--tls-max".into(), "1.2".into()]);
            }
            let r = run(&daemon, &a);
            assert_eq!(
                r.status,
                Some(200),
                "a client certificate signed by the CA: {r:?}"
            );
        }
        let r = run(&daemon, &[]);
        assert_eq!(r.status, None, "no client certificate: {r:?}");
        let r = run(&daemon, &with("stranger"));
        assert_eq!(r.status, None, "a certificate from another CA: {r:?}");
        let r = run(&daemon, &with("server"));
        assert_eq!(r.status, None, "a certificate not for client auth: {r:?}");
    }
    // The other policies, as Go's crypto/tls has them.
    for (policy, none, stranger, client) in [
        ("VerifyClientCertIfGiven", true, false, true),
        ("RequireAnyClientCert", false, true, true),
        ("RequestClientCert", true, true, true),
    ] {
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
                 client_auth_type: {policy}\n{}",
                if policy == "VerifyClientCertIfGiven" {
                    "  client_ca_file: ca.pem\n"
                } else {
                    ""
                }
            ),
        )
        .unwrap();
        let daemon = Daemon::start(&cfg, &["--web.config.file", web.to_str().unwrap()]);
        for (who, args, admitted) in [
            ("no certificate", vec![], none),
            ("another CA's certificate", with("stranger"), stranger),
            ("the CA's client certificate", with("client"), client),
        ] {
            let r = run(&daemon, &args);
            let want = if admitted { Some(200) } else { None };
            assert_eq!(r.status, want, "{policy}, {who}: {r:?}");
        }
    }
    // client_allowed_sans: the client's certificate carries each kind of SAN
    // (DNS, IP, URI, e-mail); the other one's only other.example.
    for san in [
        "client.example",
        "10.0.0.7",
        "spiffe://example.org/scraper",
        "ops@example.com",
    ] {
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
                 client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  \
                 client_allowed_sans: [\"{san}\"]\n"
            ),
        )
        .unwrap();
        let daemon = Daemon::start(&cfg, &["--web.config.file", web.to_str().unwrap()]);
        let r = run(&daemon, &with("client"));
        assert_eq!(r.status, Some(200), "{san}: {r:?}");
        let r = run(&daemon, &with("other"));
        assert_eq!(r.status, None, "{san} is not other's SAN: {r:?}");
    }
}

#[test]
fn reload_takes_a_new_password_and_keeps_the_old_file_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    let web = d.join("web.yml");
    let file = |pw: &str| {
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n\
             basic_auth_users:\n  alice: {}\n",
            htpasswd(pw)
        )
    };
    std::fs::write(&web, file("one")).unwrap();
    let cfg = roimon_config(d, "", false);
    let daemon = Daemon::start(&cfg, &["--web.config.file", web.to_str().unwrap()]);
    assert_eq!(
        get(&daemon, d, "/metrics", &["-u", "alice:one"]).status,
        Some(200)
    );
    assert_eq!(
        get(&daemon, d, "/metrics", &["-u", "alice:two"]).status,
        Some(401)
    );
    // No push token configured: the write endpoint is behind basic auth.
    let line = ["--data-binary", "roimon_value,team=t,workload=w amount=1"];
    let r = get(&daemon, d, "/api/v2/write", &line);
    assert_eq!(r.status, Some(401), "{r:?}");
    assert!(
        r.header("WWW-Authenticate").is_some(),
        "basic auth's 401: {r:?}"
    );
    let r = get(
        &daemon,
        d,
        "/api/v2/write",
        &[&line[..], &["-u", "alice:one"]].concat(),
    );
    assert_eq!(r.status, Some(204), "{r:?}");

    std::fs::write(&web, file("two")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(&daemon, d, "/metrics", &["-u", "alice:two"]).status != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the new password was not taken within 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        get(&daemon, d, "/metrics", &["-u", "alice:one"]).status,
        Some(401),
        "the old password is gone"
    );

    // A broken file: logged, counted, the configuration in force stays.
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.pem\n  keyfile: server.key\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = get(&daemon, d, "/metrics", &["-u", "alice:two"]);
        assert_eq!(m.status, Some(200), "the old configuration stays: {m:?}");
        if value(&m.body, "roimon_web_config_reload_errors_total") == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken file was not noticed within 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        get(&daemon, d, "/metrics", &[]).status,
        Some(401),
        "still behind basic auth"
    );

    // The file repaired, then a renewed certificate: served without a
    // restart, on the certificate file's change alone.
    let loaded = |r: &Curl| {
        value(
            &r.body,
            "roimon_web_config_last_reload_success_timestamp_seconds",
        )
    };
    let before = loaded(&get(&daemon, d, "/metrics", &["-u", "alice:two"]));
    std::fs::write(&web, file("two")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while loaded(&get(&daemon, d, "/metrics", &["-u", "alice:two"])) == before {
        assert!(
            Instant::now() < deadline,
            "the repaired file was not taken within 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    make_leaf(d, "renewed", "ca", "serverAuth", "IP:127.0.0.1");
    let r = get(&daemon, d, "/healthz", &["-u", "alice:two"]);
    assert!(r.log.contains("subject: CN=server\n"), "{r:?}");
    std::fs::copy(d.join("renewed.key"), d.join("server.key")).unwrap();
    std::fs::copy(d.join("renewed.pem"), d.join("server.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get(&daemon, d, "/healthz", &["-u", "alice:two"]);
        if r.log.contains("subject: CN=renewed") {
            assert_eq!(r.status, Some(200), "{r:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served within 15 s: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, log) = daemon.stop("TERM");
    assert!(
        log.iter()
            .any(|l| l.contains("web configuration not reloaded") && l.contains("keyfile")),
        "the error is logged naming the key:\n{}",
        log.join("\n")
    );
}

#[test]
fn settings_roimon_cannot_honour_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    let web = d.join("web.yml");
    let cfg = roimon_config(
        d,
        &format!("web_config_file = \"{}\"", web.display()),
        false,
    );
    let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    for (extra, key, says) in [
        (
            "  min_version: TLS11\n",
            "min_version",
            "TLS 1.2 and 1.3 only",
        ),
        (
            "  max_version: TLS14\n",
            "max_version",
            "unknown TLS version",
        ),
        (
            "  min_version: TLS13\n  max_version: TLS12\n",
            "min_version",
            "above max_version",
        ),
        (
            "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n",
            "cipher_suites",
            "no CBC",
        ),
        (
            "  cipher_suites: [TLS_FAST]\n",
            "cipher_suites",
            "unknown cipher suite",
        ),
        (
            "  curve_preferences: [CurveP521]\n",
            "curve_preferences",
            "not offered",
        ),
        (
            "  client_auth_type: Sometimes\n",
            "client_auth_type",
            "unknown client_auth_type",
        ),
        (
            "  client_ca_file: ca.pem\n",
            "client_auth_type",
            "without a client auth policy",
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "client_ca_file",
            "needs client_ca_file",
        ),
        (
            "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n  client_allowed_sans: [a]\n",
            "client_allowed_sans",
            "requires client_auth_type",
        ),
        ("  cert: inline\n", "cert_file", "not both"),
        (
            "  prefer_server_cipher_suite: true\n",
            "prefer_server_cipher_suite",
            "unknown field",
        ),
    ] {
        std::fs::write(&web, format!("{tls}{extra}")).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {err}");
        assert!(
            err.contains("web.yml")
                && err.contains(&format!("tls_server_config.{key}`"))
                && err.contains(says),
            "{extra}: {err}"
        );
    }
    // What Go accepts and rustls offers is taken.
    std::fs::write(
        &web,
        format!(
            "{tls}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]\n  \
             curve_preferences: [CurveP384, X25519]\n  prefer_server_cipher_suites: false\n\
             http_server_config:\n  http2: false\nrate_limit:\n  interval: 10ms\n  burst: 100\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&cfg, &[]);
    let r = get(&daemon, d, "/metrics", &["--tlsv1.2", "--tls-max", "1.2"]);
    assert_eq!(r.status, Some(200), "{r:?}");
    assert!(
        r.log.contains("ECDHE-ECDSA-AES256-GCM-SHA384"),
        "the only TLS 1.2 suite: {r:?}"
    );
}

#[test]
fn broken_files_are_refused_at_start_and_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let web = d.join("web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS10\n").unwrap();
    let cfg = roimon_config(
        d,
        &format!("web_config_file = \"{}\"", web.display()),
        false,
    );
    let out = Command::new(BIN)
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("web.yml") && err.contains("cert_file") && err.contains("server.pem"),
        "{err}"
    );
    // With the certificates there, the TLS version is the problem.
    pki(d);
    let out = Command::new(BIN)
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("web.yml") && err.contains("min_version") && err.contains("TLS 1.2 and 1.3"),
        "{err}"
    );
    // A key that is not the certificate's.
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: client.key\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("key_file") && err.contains("do not go together"),
        "{err}"
    );
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the child when dropped.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    pki(d);
    std::fs::write(
        d.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {}\n",
            htpasswd("scrape-me")
        ),
    )
    .unwrap();
    let cfg = roimon_config(d, "", false);
    let web = d.join("web.yml");
    let daemon = Daemon::start(&cfg, &["--web.config.file", web.to_str().unwrap()]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: roimon\n    \
             scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: prometheus\n      \
             password: scrape-me\n    static_configs:\n      - targets: ['{}']\n",
            d.join("ca.pem").display(),
            daemon.addr
        ),
    )
    .unwrap();
    let prom_addr = format!("127.0.0.1:{port}");
    let _prom = Reaper(
        Command::new("/usr/bin/prometheus")
            .arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("tsdb").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "prometheus not found: install it with `apt-get install prometheus` (.ci/run does)",
            ),
    );
    let query = |q: &str| -> Option<serde_json::Value> {
        let (status, body) =
            std::panic::catch_unwind(|| http_get(&prom_addr, &format!("/api/v1/query?query={q}")))
                .ok()?;
        (status == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let up = query("up%7Bjob%3D%22roimon%22%7D");
        let is_up = up
            .as_ref()
            .is_some_and(|v| v["data"]["result"][0]["value"][1] == "1");
        if is_up {
            let info = query("roimon_build_info%7Bjob%3D%22roimon%22%7D").unwrap();
            assert_eq!(info["data"]["result"][0]["value"][1], "1", "{info}");
            break;
        }
        if Instant::now() > deadline {
            let targets =
                std::panic::catch_unwind(|| http_get(&prom_addr, "/api/v1/targets")).map(|r| r.1);
            panic!("roimon not up in Prometheus within 40 s: up = {up:?}; targets: {targets:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // Prometheus' scrapes were authenticated, not refused.
    let m = get(&daemon, d, "/metrics", &["-u", "prometheus:scrape-me"]).body;
    assert_eq!(
        value(
            &m,
            "roimon_http_requests_refused_total{reason=\"wrong_credentials\"}"
        ),
        Some(0.0),
        "{m}"
    );
}
