//! The client against a scripted loopback server: statuses kept, headers and
//! bytes returned, gzip bodies sent, each auth mode's wire form, body limits,
//! retries only where a request may be sent twice, `Retry-After`, redirects
//! kept on their origin, and errors that name the host but never the URL or
//! a secret.

mod mock;

use mock::{Mock, Step};
use roimon_http::{
    Auth, Body, Client, ClientConfig, ConnectCause, Error, Request, RetryPolicy, Secret,
};
use std::io::Read;
use std::time::{Duration, Instant};

fn client(retries: u32, auth: Auth) -> Client {
    Client::new(ClientConfig {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            retries,
            initial: Duration::from_millis(10),
            max: Duration::from_secs(5),
        },
        auth,
        ..ClientConfig::default()
    })
    .unwrap()
}

fn secret(s: &str) -> Secret {
    Secret::new(s)
}

#[tokio::test]
async fn a_failed_status_is_kept_with_a_redacted_excerpt() {
    let m = Mock::start(vec![Step::Echo(401, 0)]);
    let c = client(
        3,
        Auth::Query {
            name: "securityToken".into(),
            value: secret("sekrit-42/x"),
        },
    );
    let e = c
        .send(&Request::get(format!("{}/api?area=NL", m.url)))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(matches!(e, Error::Status { code: 401, .. }), "{e:?}");
    assert_eq!(m.count(), 1, "a 401 is not retried");
    let text = e.to_string();
    assert!(text.starts_with("status 401 Unauthorized: "), "{text}");
    assert!(text.contains("[REDACTED]"), "{text}");
    assert!(!text.contains("sekrit"), "{text}");
    // The query parameter goes first, percent-encoded, before the caller's.
    let line = m.seen.lock().unwrap()[0].line.clone();
    assert!(
        line.starts_with("GET /api?securityToken=sekrit-42%2Fx&area=NL "),
        "{line}"
    );
}

#[tokio::test]
async fn the_query_values_of_a_configured_url_never_reach_an_error() {
    // A server that echoes the path, query included, in a 500 (retried,
    // then given up) and in a 400.
    let m = Mock::start(vec![Step::Echo(500, 0), Step::Echo(400, 0)]);
    let url = format!("{}/prices?apikey=SECRETVALUE&format=json", m.url);
    let c = Client::new(ClientConfig {
        retry: RetryPolicy {
            retries: 1,
            initial: Duration::from_millis(10),
            max: Duration::from_secs(1),
        },
        scrub: roimon_http::url_secrets(&url),
        ..ClientConfig::default()
    })
    .unwrap();
    let e = c.send(&Request::get(url.clone())).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(
        m.seen.lock().unwrap()[0]
            .line
            .contains("apikey=SECRETVALUE")
    );
    let text = e.to_string();
    assert!(text.contains("apikey=[REDACTED]"), "{text}");
    assert!(!text.contains("SECRETVALUE"), "{text}");
    // Without it, the echo is the caller's to scrub: the excerpt is the
    // server's text.
    let plain = client(0, Auth::None);
    let e = plain.send(&Request::get(url)).await.unwrap_err();
    assert!(e.to_string().contains("SECRETVALUE"), "{e}");
}

#[tokio::test]
async fn headers_and_bytes_come_back() {
    let m = Mock::start(vec![Step::Headers(
        200,
        vec![
            ("X-Influxdb-Version".into(), "2.7".into()),
            ("Content-Type".into(), "application/octet-stream".into()),
        ],
        "\u{1}\u{2}abc".into(),
    )]);
    let r = client(0, Auth::None)
        .send(&Request::get(format!("{}/ping", m.url)).header("X-Req", "yes"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-influxdb-version"], "2.7");
    assert_eq!(&r.body[..], b"\x01\x02abc");
    let seen = m.seen.lock().unwrap()[0].clone();
    assert!(seen.headers.iter().any(|h| h == "x-req: yes"), "{seen:?}");
    assert!(
        seen.headers
            .iter()
            .any(|h| h.starts_with("user-agent: roimon/")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_gzip_body_is_sent_compressed_and_a_plain_one_as_is() {
    let m = Mock::start(vec![Step::Ok("{}".into())]);
    let c = client(0, Auth::None);
    let lines = "cpu,host=a value=1 1700000000\n".repeat(100);
    let body = Body::new("text/plain; charset=utf-8", lines.clone()).gzip();
    c.send(&Request::post(format!("{}/api/v2/write", m.url), body))
        .await
        .unwrap();
    c.send(&Request::post(
        format!("{}/gql", m.url),
        Body::json("{\"q\":1}"),
    ))
    .await
    .unwrap();
    let seen = m.seen.lock().unwrap().clone();
    assert!(seen[0].line.starts_with("POST /api/v2/write "));
    assert!(
        seen[0]
            .headers
            .iter()
            .any(|h| h == "content-encoding: gzip")
    );
    assert!(
        seen[0]
            .headers
            .iter()
            .any(|h| h == "content-type: text/plain; charset=utf-8")
    );
    assert!(seen[0].raw.len() < lines.len() / 4, "{}", seen[0].raw.len());
    let mut back = String::new();
    flate2::read::GzDecoder::new(&seen[0].raw[..])
        .read_to_string(&mut back)
        .unwrap();
    assert_eq!(back, lines);
    assert_eq!(seen[1].body, "{\"q\":1}");
    assert!(
        seen[1]
            .headers
            .iter()
            .any(|h| h == "content-type: application/json")
    );
    assert!(
        !seen[1]
            .headers
            .iter()
            .any(|h| h.starts_with("content-encoding"))
    );
}

#[tokio::test]
async fn each_auth_mode_has_its_wire_form() {
    let cases: Vec<(Auth, &str)> = vec![
        (Auth::Bearer(secret("t1")), "authorization: Bearer t1"),
        (Auth::Token(secret("t2")), "authorization: Token t2"),
        (
            Auth::Basic {
                user: "user".into(),
                password: secret("pass"),
            },
            // base64("user:pass")
            "authorization: Basic dXNlcjpwYXNz",
        ),
        (
            Auth::Header {
                name: "auth-token".into(),
                value: secret("t3"),
            },
            "auth-token: t3",
        ),
    ];
    for (auth, want) in cases {
        let m = Mock::start(vec![Step::Ok("ok".into())]);
        client(0, auth)
            .send(&Request::get(format!("{}/x?a=1", m.url)))
            .await
            .unwrap();
        let seen = m.seen.lock().unwrap()[0].clone();
        assert!(seen.headers.iter().any(|h| h == want), "{want}: {seen:?}");
        assert_eq!(seen.line, "GET /x?a=1 HTTP/1.1");
    }
    let m = Mock::start(vec![Step::Ok("ok".into())]);
    let q = Auth::Query {
        name: "token".into(),
        value: secret("a b"),
    };
    client(0, q)
        .send(&Request::get(format!("{}/x", m.url)))
        .await
        .unwrap();
    let seen = m.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.line, "GET /x?token=a%20b HTTP/1.1");
    assert!(
        !seen.headers.iter().any(|h| h.starts_with("authorization")),
        "{seen:?}"
    );
    // No auth: no credential.
    let m = Mock::start(vec![Step::Ok("ok".into())]);
    client(0, Auth::None)
        .send(&Request::get(format!("{}/x", m.url)))
        .await
        .unwrap();
    let seen = m.seen.lock().unwrap()[0].clone();
    assert!(!seen.headers.iter().any(|h| h.starts_with("authorization")));
}

#[tokio::test]
async fn bodies_past_the_limit_are_refused_per_request() {
    let m = Mock::start(vec![Step::Ok("x".repeat(100))]);
    let c = Client::new(ClientConfig {
        body_limit: 1 << 20,
        retry: RetryPolicy {
            retries: 2,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(10),
        },
        ..ClientConfig::default()
    })
    .unwrap();
    let url = format!("{}/x", m.url);
    assert_eq!(c.send(&Request::get(&url)).await.unwrap().body.len(), 100);
    let e = c
        .send(&Request::get(&url).body_limit(99))
        .await
        .unwrap_err();
    assert_eq!(e, Error::TooLarge { limit: 99 });
    assert_eq!(e.to_string(), "response body larger than 99 bytes");
    assert_eq!(m.count(), 2, "a body over the limit is not fetched again");
    // A chunked body (no Content-Length) is cut as soon as it passes.
    m.set(vec![Step::Chunked(3 << 20)]);
    let e = c.send(&Request::get(&url)).await.unwrap_err();
    assert_eq!(e, Error::TooLarge { limit: 1 << 20 });
}

#[tokio::test]
async fn only_idempotent_requests_are_retried() {
    let m = Mock::start(vec![Step::Status(503, "busy".into(), None)]);
    let c = client(2, Auth::None);
    let url = format!("{}/x", m.url);
    let e = c.send(&Request::get(&url)).await.unwrap_err();
    assert_eq!(m.count(), 3, "GET: first try and two retries");
    assert!(matches!(e, Error::GaveUp { tries: 3, .. }), "{e:?}");
    assert_eq!(e.status(), Some(503));
    assert_eq!(
        e.to_string(),
        "status 503 Service Unavailable: busy (after 3 tries)"
    );

    let e = c
        .send(&Request::post(&url, Body::json("{}")))
        .await
        .unwrap_err();
    assert_eq!(m.count(), 4, "POST: tried once");
    assert!(matches!(e, Error::Status { code: 503, .. }), "{e:?}");

    c.send(&Request::post(&url, Body::json("{}")).idempotent(true))
        .await
        .unwrap_err();
    assert_eq!(m.count(), 7, "POST marked idempotent: retried");

    // A 4xx other than 429 is not retried, whatever the method.
    m.set(vec![Step::Status(404, String::new(), None)]);
    let e = c.send(&Request::get(&url)).await.unwrap_err();
    assert_eq!((m.count(), e.status()), (8, Some(404)));
}

#[tokio::test]
async fn a_post_that_never_left_is_retried() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(2, Auth::None);
    let started = Instant::now();
    let e = c
        .send(&Request::post(
            format!("http://127.0.0.1:{port}/w"),
            Body::json("{}"),
        ))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, Error::GaveUp { tries: 3, .. }), "{e:?}");
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_long_one_is_handed_back() {
    let m = Mock::start(vec![
        Step::Status(429, String::new(), Some("1".into())),
        Step::Ok("done".into()),
    ]);
    let c = client(1, Auth::None);
    let url = format!("{}/x", m.url);
    let r = c.send(&Request::get(&url)).await.unwrap();
    assert_eq!(r.text().unwrap(), "done");
    let seen = m.seen.lock().unwrap().clone();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert!(gap < Duration::from_secs(4), "{gap:?}");

    // Longer than the policy's max (5 s): no wait, the hint comes back.
    m.set(vec![Step::Status(503, String::new(), Some("120".into()))]);
    let started = Instant::now();
    let e = c.send(&Request::get(&url)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(m.count(), 3, "one try only");
}

#[tokio::test]
async fn redirects_are_followed_on_the_same_origin_only() {
    let m = Mock::start(vec![]);
    m.set(vec![
        Step::Redirect(format!("{}/moved", m.url)),
        Step::Ok("here".into()),
    ]);
    let c = client(0, Auth::Bearer(secret("tok-1")));
    let r = c.send(&Request::get(format!("{}/x", m.url))).await.unwrap();
    assert_eq!(&r.body[..], b"here");
    let seen = m.seen.lock().unwrap().clone();
    assert!(seen[1].line.starts_with("GET /moved "));

    let elsewhere = Mock::start(vec![Step::Ok("stolen".into())]);
    let m = Mock::start(vec![Step::Redirect(format!("{}/steal", elsewhere.url))]);
    let e = c
        .send(&Request::get(format!("{}/x", m.url)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Redirect { .. }), "{e:?}");
    assert!(e.to_string().contains("redirect"), "{e}");
    assert_eq!(elsewhere.count(), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_refused_connection_names_the_host_and_the_cause_not_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(0, Auth::None);
    let url = format!("http://127.0.0.1:{port}/api?securityToken=tok-123456&area=NL");
    let e = c.send(&Request::get(url)).await.unwrap_err();
    let Error::GaveUp { last, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(
        matches!(
            **last,
            Error::Connect {
                cause: ConnectCause::Refused,
                ..
            }
        ),
        "{e:?}"
    );
    let m = e.to_string();
    assert!(
        m.contains(&format!(
            "cannot connect to 127.0.0.1:{port}: connection refused"
        )),
        "{m}"
    );
    assert!(
        !m.contains("/api") && !m.contains("securityToken") && !m.contains("tok-"),
        "{m}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_naming_the_host() {
    // Connections complete in the kernel's backlog; nothing is ever answered.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = Client::new(ClientConfig {
        timeout: Duration::from_millis(300),
        retry: RetryPolicy {
            retries: 0,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(10),
        },
        ..ClientConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let e = c
        .send(&Request::get(format!(
            "http://127.0.0.1:{port}/v1/marketdata?token=tok-123456"
        )))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let m = e.to_string();
    assert!(
        m.contains(&format!("127.0.0.1:{port} did not answer within 0.3 s")),
        "{m}"
    );
    assert!(!m.contains("marketdata") && !m.contains("tok-"), "{m}");
    drop(l);
}

#[tokio::test]
async fn a_bad_url_is_a_local_error_without_the_url() {
    let e = client(0, Auth::None)
        .send(&Request::get("not a url?token=tok-9"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Local(_)), "{e:?}");
    assert!(!e.to_string().contains("tok-9"), "{e}");
}
