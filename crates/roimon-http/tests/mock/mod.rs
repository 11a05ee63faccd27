//! A scripted HTTP/1.1 server on loopback for the client tests and the
//! daemon's price-feed tests (included there by path): each
//! request gets the next step of a script (the last step repeats), and every
//! request is recorded. Raw std TCP, so it can also stall mid-body.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to answer.
#[derive(Debug, Clone)]
pub enum Step {
    /// 200 with this body.
    Ok(String),
    /// This status and body, with an optional `Retry-After` value.
    Status(u16, String, Option<String>),
    /// 200 whose body stops after a few bytes and stalls for this long.
    StallBody(Duration),
    /// Hold the request this long before answering with the next step's answer.
    Delay(Duration, Box<Step>),
    /// This status, with the request line and headers echoed in the body
    /// after this many bytes of padding (a careless server that repeats the
    /// token back, wherever it falls in the body).
    Echo(u16, usize),
    /// 200 with a chunked body of this many bytes (no Content-Length).
    Chunked(usize),
    /// 302 to this location.
    Redirect(String),
    /// This status, these extra headers and this body.
    Headers(u16, Vec<(String, String)>, String),
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Request line, e.g. `GET /v1/marketdata?start=… HTTP/1.1`.
    pub line: String,
    /// Header lines.
    pub headers: Vec<String>,
    /// Body.
    pub body: String,
    /// Body, as sent.
    pub raw: Vec<u8>,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// The server.
#[derive(Debug, Clone)]
pub struct Mock {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    script: Arc<Mutex<Vec<Step>>>,
    /// Requests seen, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    /// Start serving `script` on an ephemeral loopback port.
    pub fn start(script: Vec<Step>) -> Mock {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let m = Mock {
            url,
            script: Arc::new(Mutex::new(script)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let (script, seen) = (m.script.clone(), m.seen.clone());
        std::thread::spawn(move || {
            for stream in l.incoming().map_while(Result::ok) {
                let (script, seen) = (script.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &script, &seen));
            }
        });
        m
    }

    /// Replace the script (the next request gets its first step).
    pub fn set(&self, script: Vec<Step>) {
        *self.script.lock().unwrap() = script;
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn serve(stream: TcpStream, script: &Mutex<Vec<Step>>, seen: &Mutex<Vec<Seen>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            break;
        }
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        headers.push(h);
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let step = {
        let mut s = script.lock().unwrap();
        if s.len() > 1 {
            s.remove(0)
        } else {
            s[0].clone()
        }
    };
    seen.lock().unwrap().push(Seen {
        line: line.trim_end().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
        raw: body.clone(),
        at: std::time::Instant::now(),
    });
    let step = match step {
        Step::Echo(code, pad) => {
            let s = seen.lock().unwrap();
            let last = s.last().unwrap();
            Step::Status(
                code,
                format!(
                    "{}{} {}",
                    "x".repeat(pad),
                    last.line,
                    last.headers.join(" ")
                ),
                None,
            )
        }
        other => other,
    };
    answer(stream, step);
}

fn answer(mut stream: TcpStream, step: Step) {
    match step {
        Step::Ok(body) => respond(&mut stream, 200, &body, None),
        Step::Status(code, body, ra) => respond(&mut stream, code, &body, ra.as_deref()),
        Step::StallBody(d) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n{{\"data\": ["
            );
            let _ = stream.flush();
            std::thread::sleep(d);
        }
        Step::Echo(code, _) => respond(&mut stream, code, "", None),
        Step::Chunked(n) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            let chunk = vec![b' '; 1 << 20];
            let mut sent = 0;
            while sent < n {
                let len = chunk.len().min(n - sent);
                if write!(stream, "{len:x}\r\n").is_err()
                    || stream.write_all(&chunk[..len]).is_err()
                    || stream.write_all(b"\r\n").is_err()
                {
                    return;
                }
                sent += len;
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        }
        Step::Redirect(to) => {
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Step::Headers(code, headers, body) => {
            let extra: String = headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}\r\n"))
                .collect();
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Step::Delay(d, next) => {
            std::thread::sleep(d);
            answer(stream, *next);
        }
    }
}

fn respond(stream: &mut TcpStream, code: u16, body: &str, retry_after: Option<&str>) {
    let ra = retry_after.map_or(String::new(), |v| format!("Retry-After: {v}\r\n"));
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{ra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}
