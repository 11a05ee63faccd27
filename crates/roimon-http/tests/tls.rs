//! TLS options against a loopback HTTPS server (rustls, one thread) whose
//! certificate comes from a test CA committed in `tests/data` (see its
//! README): a CA file makes it trusted, without one it is refused, the
//! insecure opt-in accepts it, a client certificate is presented when the
//! server asks for one, and unreadable TLS files are errors naming the key.

use roimon_http::{Client, ClientConfig, Error, Request, RetryPolicy, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn certs(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(data(name))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// An HTTPS server on loopback answering each connection with `200 hello`
/// (or, when `client_ca` is given, only to clients with a certificate it
/// signed). Returns its `https://127.0.0.1:PORT` URL.
fn server(client_ca: bool) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_ca {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs("ca.pem") {
            roots.add(c).unwrap();
        }
        let v =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(v)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::from_pem_file(data("server.key")).unwrap();
    let cfg = Arc::new(builder.with_single_cert(certs("server.pem"), key).unwrap());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for tcp in l.incoming().map_while(Result::ok) {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                );
                let _ = s.flush();
                s.conn.send_close_notify();
                let _ = s.flush();
            });
        }
    });
    url
}

fn client(tls: TlsConfig) -> Result<Client, Error> {
    Client::new(ClientConfig {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            retries: 0,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(10),
        },
        tls,
        ..ClientConfig::default()
    })
}

fn with_ca() -> TlsConfig {
    TlsConfig {
        ca_file: Some(data("ca.pem")),
        ..TlsConfig::default()
    }
}

#[tokio::test]
async fn a_ca_file_makes_the_server_trusted() {
    let url = server(false);
    let r = client(with_ca())
        .unwrap()
        .send(&Request::get(format!("{url}/x")))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"hello");
}

#[tokio::test]
async fn without_the_ca_the_server_is_refused_as_a_tls_failure() {
    let url = server(false);
    let e = client(TlsConfig::default())
        .unwrap()
        .send(&Request::get(format!("{url}/x?token=tok-1")))
        .await
        .unwrap_err();
    let Error::GaveUp { last, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(matches!(**last, Error::Tls { .. }), "{e:?}");
    let host = url.trim_start_matches("https://");
    assert!(
        e.to_string().contains(&format!("TLS with {host} failed")),
        "{e}"
    );
    assert!(!e.to_string().contains("tok-1"), "{e}");
}

#[tokio::test]
async fn the_insecure_opt_in_accepts_an_unknown_certificate() {
    let url = server(false);
    let r = client(TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    })
    .unwrap()
    .send(&Request::get(format!("{url}/x")))
    .await
    .unwrap();
    assert_eq!(&r.body[..], b"hello");
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_asked_for() {
    let url = server(true);
    let with_cert = TlsConfig {
        client_cert: Some(data("client.pem")),
        client_key: Some(data("client.key")),
        ..with_ca()
    };
    let r = client(with_cert)
        .unwrap()
        .send(&Request::get(format!("{url}/x")))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"hello");
    // Without one the server ends the handshake.
    let e = client(with_ca())
        .unwrap()
        .send(&Request::get(format!("{url}/x")))
        .await
        .unwrap_err();
    assert!(e.status().is_none(), "{e:?}");
}

#[test]
fn unreadable_tls_files_are_errors_naming_the_key() {
    let missing = data("nope.pem");
    let e = client(TlsConfig {
        ca_file: Some(missing.clone()),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("tls.ca_file: cannot read {}", missing.display())),
        "{e}"
    );
    // A key is not a certificate.
    let e = client(TlsConfig {
        ca_file: Some(data("client.key")),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    // A certificate without its key, and a key that is not one.
    let e = client(TlsConfig {
        client_cert: Some(data("client.pem")),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("go together"), "{e}");
    let e = client(TlsConfig {
        client_cert: Some(data("client.pem")),
        client_key: Some(data("ca.pem")),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().starts_with("tls.client_cert:"), "{e}");
}

#[tokio::test]
async fn a_plain_http_server_on_an_https_url_is_a_tls_failure() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let e = client(TlsConfig::default())
        .unwrap()
        .send(&Request::get(format!(
            "https://127.0.0.1:{port}/x?t=tok-123456"
        )))
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains(&format!("TLS with 127.0.0.1:{port} failed")),
        "{m}"
    );
    assert!(!m.contains("tok-"), "{m}");
    server.join().unwrap();
}
