//! The HTTP accept loop, hardened so that hostile or broken clients cannot
//! blind the daemon: a cap on open connections (the oldest idle one is closed
//! to admit a new one), header-read and keep-alive idle timeouts, a 16 KiB
//! buffer per connection, a file-descriptor limit raised at start with a
//! reserve kept for state files, and the 5 s drain on shutdown. With a web
//! configuration file the same loop speaks TLS (the handshake counts against
//! the header deadline) and asks for basic auth before the router sees a
//! request.

use crate::web_config::WebConfig;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use roimon_config as config;
use roimon_export_prometheus::{HttpFigures, WebFigures};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Read/write buffer per connection: a request header larger than this is
/// answered 431 and the connection closed (hyper's default is ~400 KiB).
pub const MAX_BUF: usize = 16 * 1024;

/// File descriptors kept free of HTTP connections: checkpoint and price
/// files, the state directory, NVML device nodes, outgoing price fetches,
/// the runtime's own descriptors.
pub const FD_RESERVE: u64 = 128;

/// What one listener tolerates.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to send a complete request header.
    pub header_read_timeout: Duration,
    /// Keep-alive idle time between requests.
    pub idle_timeout: Duration,
}

impl From<&config::Server> for Limits {
    fn from(s: &config::Server) -> Self {
        Self {
            max_connections: s.max_connections as usize,
            header_read_timeout: Duration::from_secs_f64(s.header_read_timeout_secs),
            idle_timeout: Duration::from_secs_f64(s.idle_timeout_secs),
        }
    }
}

/// Connection counters, exposed on `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    open: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    header_timeout: AtomicU64,
    idle_timeout: AtomicU64,
    tls_handshake: AtomicU64,
    /// The web configuration, when one is in use (its counters are exported
    /// with these).
    web: OnceLock<Arc<WebConfig>>,
}

impl Stats {
    /// These counters, for the exporter to name.
    pub fn figures(&self) -> HttpFigures {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HttpFigures {
            open: g(&self.open),
            refused: g(&self.refused),
            evicted: g(&self.evicted),
            header_timeout: g(&self.header_timeout),
            idle_timeout: g(&self.idle_timeout),
            tls_handshake: g(&self.tls_handshake),
        }
    }

    /// The web configuration's counters, when one is in use.
    pub fn web_figures(&self) -> Option<WebFigures> {
        self.web.get().map(|w| w.figures())
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; the soft limit in force
/// afterwards (`None`: unlimited). Under systemd, `LimitNOFILE=` sets both
/// and the seccomp filter forbids `setrlimit`, which is fine: nothing to raise.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum {
        let want = rustix::process::Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, want) {
            tracing::warn!(soft = ?before.current, hard = ?before.maximum, error = %e, "cannot raise the file-descriptor limit");
        }
    }
    let after = getrlimit(Resource::Nofile);
    tracing::info!(
        soft = after.current.map_or("unlimited".into(), |v| v.to_string()),
        hard = after.maximum.map_or("unlimited".into(), |v| v.to_string()),
        "file-descriptor limit"
    );
    after.current
}

/// The connection cap in force: the configured one, lowered so that
/// [`FD_RESERVE`] descriptors stay free under a soft limit of `fd_limit`.
pub fn effective_max(configured: usize, fd_limit: Option<u64>) -> usize {
    match fd_limit {
        None => configured,
        Some(l) => {
            let room = usize::try_from(l.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
            configured.min(room).max(1)
        }
    }
}

/// A warning for a listener other clients than this machine's can reach:
/// roimon has neither TLS nor authentication.
pub fn exposure_warning(addr: SocketAddr) -> Option<String> {
    // `::ffff:127.0.0.1` is loopback too.
    let loopback = match addr.ip() {
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        ip => ip.is_loopback(),
    };
    (!loopback).then(|| {
        format!(
            "listening on {addr}, reachable from other machines, without TLS or authentication: \
             anyone who can connect reads costs and prices; bind to 127.0.0.1 behind a TLS proxy, \
             or restrict access with a firewall"
        )
    })
}

/// How long a new connection waits at twice the cap for evicted ones to
/// close before it is refused.
const QUEUE_FOR: Duration = Duration::from_millis(500);

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted; no request yet.
    Fresh,
    /// A request is being handled or its response handed over.
    Busy,
    /// Between requests on a keep-alive connection.
    Idle,
}

#[derive(Debug)]
struct SlotState {
    phase: Phase,
    since: Instant,
    /// First byte of the next request header (not while busy).
    first_byte: Option<Instant>,
    /// Asked to close to make room.
    evicting: bool,
}

/// One open connection, as the accept loop and its own task see it.
#[derive(Debug)]
struct Slot {
    state: Mutex<SlotState>,
    /// A deadline moved earlier, or the slot is asked to close.
    changed: Notify,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn saw_bytes(&self) {
        let mut s = self.lock();
        if s.phase != Phase::Busy && s.first_byte.is_none() {
            s.first_byte = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    fn set_phase(&self, phase: Phase) {
        let mut s = self.lock();
        s.phase = phase;
        s.since = Instant::now();
        s.first_byte = None;
    }

    /// When the connection must be closed unless it progresses, and the
    /// counter that says why.
    fn deadline(&self, l: &Limits) -> (Instant, Reason) {
        let s = self.lock();
        match (s.phase, s.first_byte) {
            (Phase::Busy, _) => (s.since + l.idle_timeout, Reason::Idle),
            (_, Some(t)) => (t + l.header_read_timeout, Reason::Header),
            (Phase::Fresh, None) => (s.since + l.header_read_timeout, Reason::Header),
            (Phase::Idle, None) => (s.since + l.idle_timeout, Reason::Idle),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Reason {
    Header,
    Idle,
}

/// Marks a request in flight until the response body has been handed over
/// (the body holds it).
#[derive(Debug)]
struct InFlight(Arc<Slot>);

impl InFlight {
    fn hold(&self) {}
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set_phase(Phase::Idle);
        self.0.changed.notify_one();
    }
}

/// The open connections.
#[derive(Debug, Default)]
struct Registry {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    empty: Notify,
}

enum Admit {
    Yes,
    Evict(Arc<Slot>),
    Refuse,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections asked to close that have not closed yet.
    fn closing(&self) -> usize {
        self.lock().values().filter(|s| s.lock().evicting).count()
    }

    /// Whether a new connection may come in. At capacity, the connection
    /// waiting longest for a request (never a busy one) is asked to close;
    /// slots being closed still count, so at most `max` more are open while
    /// they go (they close at their task's next poll).
    fn admit(&self, max: usize) -> Admit {
        let slots = self.lock();
        if slots.len() < max {
            return Admit::Yes;
        }
        let victim = slots
            .values()
            .filter_map(|slot| {
                let s = slot.lock();
                (s.phase != Phase::Busy && !s.evicting).then_some((s.since, slot))
            })
            .min_by_key(|(since, _)| *since)
            .map(|(_, slot)| slot.clone());
        match victim {
            Some(v) if slots.len() < 2 * max => {
                v.lock().evicting = true;
                Admit::Evict(v)
            }
            _ => Admit::Refuse,
        }
    }
}

/// Removes a slot when its connection task ends, however it ends.
struct Registered {
    id: u64,
    registry: Arc<Registry>,
    stats: Arc<Stats>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut slots = self.registry.lock();
        slots.remove(&self.id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        if slots.is_empty() {
            self.registry.empty.notify_waiters();
        }
    }
}

/// A connection's byte stream: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A stream that tells its slot when a request header starts to arrive.
struct Watched {
    inner: Box<dyn Io>,
    slot: Arc<Slot>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.slot.saw_bytes();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n";

/// Serve `app` on `listener`, counting connections in `stats`, until
/// `shutdown` resolves, then stop accepting, close idle connections, let
/// busy ones finish their response and return once none is left (the caller
/// bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    stats: Arc<Stats>,
    limits: Limits,
    web: Option<Arc<WebConfig>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let fd_limit = raise_fd_limit();
    let max = effective_max(limits.max_connections, fd_limit);
    if max < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            max_connections = max,
            fd_reserve = FD_RESERVE,
            "server.max_connections lowered to fit the file-descriptor limit"
        );
    }
    let addr = listener.local_addr()?;
    match &web {
        None => {
            if let Some(w) = exposure_warning(addr) {
                tracing::warn!(listen = %addr, "{w}");
            }
        }
        Some(w) => {
            let a = w.current();
            if !a.tls_enabled() {
                if let Some(warning) = exposure_warning(addr) {
                    if a.auth_enabled() {
                        tracing::warn!(listen = %addr, "basic auth without TLS on a listener other machines reach: passwords cross the network in the clear; add tls_server_config to the web configuration file");
                    } else {
                        tracing::warn!(listen = %addr, "{warning}");
                    }
                }
            }
            let _ = stats.web.set(w.clone());
            tracing::info!(file = %w.path().display(), "web configuration: {}", w.summary());
            w.watch();
        }
    }
    tracing::info!(
        max_connections = max,
        header_read_timeout_secs = limits.header_read_timeout.as_secs_f64(),
        idle_timeout_secs = limits.idle_timeout.as_secs_f64(),
        "HTTP connection limits"
    );
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next_id: u64 = 0;
    let mut accept_failing = false;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                if accept_failing {
                    tracing::info!("accepting HTTP connections again");
                    accept_failing = false;
                }
                s
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the
                // pending connections wait in the backlog.
                if !accept_failing {
                    tracing::warn!(error = %e, "cannot accept HTTP connections");
                    accept_failing = true;
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
        };
        // At twice the cap (evicted connections not yet closed) the new one
        // waits a little for them to go (queued, up to QUEUE_FOR) before it
        // is refused: on a starved CPU closing takes a while, and a scrape
        // must not be refused for that.
        let queued_since = Instant::now();
        let admitted = loop {
            match registry.admit(max) {
                Admit::Refuse if registry.closing() > 0 && queued_since.elapsed() < QUEUE_FOR => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                other => break other,
            }
        };
        match admitted {
            Admit::Yes => {}
            Admit::Evict(v) => {
                stats.evicted.fetch_add(1, Ordering::Relaxed);
                v.changed.notify_one();
            }
            Admit::Refuse => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                let _ = stream.try_write(REFUSAL);
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                phase: Phase::Fresh,
                since: Instant::now(),
                first_byte: None,
                evicting: false,
            }),
            changed: Notify::new(),
        });
        next_id += 1;
        registry.lock().insert(next_id, slot.clone());
        stats.open.fetch_add(1, Ordering::Relaxed);
        let registered = Registered {
            id: next_id,
            registry: registry.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(connection(
            stream,
            slot,
            app.clone(),
            limits,
            web.clone(),
            stop_rx.clone(),
            registered,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    loop {
        let empty = registry.empty.notified();
        if registry.lock().is_empty() {
            break;
        }
        empty.await;
    }
    Ok(())
}

/// Serve one connection until the client closes it, a deadline passes, the
/// accept loop needs its slot, or the daemon stops.
async fn connection(
    stream: TcpStream,
    slot: Arc<Slot>,
    app: axum::Router,
    limits: Limits,
    web: Option<Arc<WebConfig>>,
    mut stop: watch::Receiver<bool>,
    registered: Registered,
) {
    // TLS as configured when the connection came; users and headers as
    // configured when each request comes (a reload reaches keep-alive
    // connections too).
    let inner: Box<dyn Io> = match web.as_ref().and_then(|w| w.current().tls.clone()) {
        None => Box::new(stream),
        Some(acceptor) => {
            // The handshake must be done, and the first request header sent,
            // before the header deadline (counted from the accept): a client
            // that trickles its handshake holds a slot no longer than one
            // that trickles its header.
            let handshake = acceptor.accept(stream);
            tokio::pin!(handshake);
            loop {
                let (deadline, _) = slot.deadline(&limits);
                tokio::select! {
                    r = &mut handshake => match r {
                        Ok(tls) => break Box::new(tls),
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            registered.stats.tls_handshake.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    },
                    () = tokio::time::sleep_until(deadline) => {
                        registered.stats.tls_handshake.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    () = slot.changed.notified() => {
                        if slot.lock().evicting {
                            return;
                        }
                    }
                    r = stop.changed() => {
                        if r.is_err() || *stop.borrow() {
                            return;
                        }
                    }
                }
            }
        }
    };
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            slot.set_phase(Phase::Busy);
            let held = InFlight(slot.clone());
            let mut app = app.clone();
            let web = web.clone();
            async move {
                let active = web.as_ref().map(|w| w.current());
                let refused = match (&web, &active) {
                    (Some(w), Some(a)) => {
                        w.admit(
                            a,
                            req.uri().path(),
                            req.headers().get(hyper::header::AUTHORIZATION),
                        )
                        .await
                    }
                    _ => None,
                };
                let mut resp = match refused {
                    Some(r) => r,
                    None => tower_service::Service::call(&mut app, req).await?,
                };
                if let Some(a) = &active {
                    for (k, v) in a.headers() {
                        resp.headers_mut().insert(k.clone(), v.clone());
                    }
                }
                Ok::<_, std::convert::Infallible>(resp.map(move |body| {
                    body.map_frame(move |f| {
                        held.hold();
                        f
                    })
                }))
            }
        })
    };
    let io = TokioIo::new(Watched {
        inner,
        slot: slot.clone(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_buf_size(MAX_BUF)
        .keep_alive(true)
        .header_read_timeout(None::<Duration>);
    let mut conn = std::pin::pin!(builder.serve_connection(io, service));
    let mut draining = false;
    loop {
        if *stop.borrow() && !draining {
            if slot.lock().phase == Phase::Busy {
                conn.as_mut().graceful_shutdown();
                draining = true;
            } else {
                break;
            }
        }
        let (deadline, reason) = slot.deadline(&limits);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
                break;
            }
            () = tokio::time::sleep_until(deadline) => {
                if slot.deadline(&limits).0 <= Instant::now() {
                    let stats = &registered.stats;
                    match reason {
                        Reason::Header => &stats.header_timeout,
                        Reason::Idle => &stats.idle_timeout,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            () = slot.changed.notified() => {
                let s = slot.lock();
                if s.evicting && !draining {
                    if s.phase == Phase::Busy {
                        drop(s);
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                    } else {
                        break;
                    }
                }
            }
            r = stop.changed(), if !draining => {
                if r.is_err() {
                    break;
                }
            }
        }
    }
    // `registered` drops after `conn` (parameters outlive locals): the socket
    // is closed before the slot is freed.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve_of_descriptors() {
        assert_eq!(effective_max(512, None), 512);
        assert_eq!(effective_max(512, Some(1_048_576)), 512);
        assert_eq!(effective_max(512, Some(256)), 256 - FD_RESERVE as usize);
        assert_eq!(effective_max(512, Some(10)), 1);
    }

    #[test]
    fn only_non_loopback_listeners_warn() {
        for a in [
            "127.0.0.1:9464",
            "[::1]:9464",
            "127.0.0.2:1",
            "[::ffff:127.0.0.1]:9464",
        ] {
            assert_eq!(exposure_warning(a.parse().unwrap()), None, "{a}");
        }
        for a in ["0.0.0.0:9464", "[::]:9464", "192.0.2.7:9464"] {
            let w = exposure_warning(a.parse().unwrap()).expect(a);
            assert!(w.contains("without TLS or authentication"), "{w}");
        }
    }

    fn slot(phase: Phase, age_ms: u64) -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                phase,
                since: Instant::now() - Duration::from_millis(age_ms),
                first_byte: None,
                evicting: false,
            }),
            changed: Notify::new(),
        })
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let r = Registry::default();
        assert!(matches!(r.admit(2), Admit::Yes));
        let busy = slot(Phase::Busy, 900);
        let old = slot(Phase::Fresh, 500);
        let young = slot(Phase::Idle, 100);
        r.lock().insert(1, busy);
        r.lock().insert(2, young.clone());
        r.lock().insert(3, old.clone());
        // Never a busy connection, however old; the oldest of the others.
        match r.admit(3) {
            Admit::Evict(v) => assert!(Arc::ptr_eq(&v, &old)),
            _ => panic!("expected an eviction"),
        }
        // One already being closed is not picked twice.
        match r.admit(3) {
            Admit::Evict(v) => assert!(Arc::ptr_eq(&v, &young)),
            _ => panic!("expected an eviction"),
        }
        // Every other connection busy or closing: refused.
        assert!(matches!(r.admit(3), Admit::Refuse));
    }

    #[test]
    fn slots_being_closed_cap_the_overshoot() {
        let r = Registry::default();
        for id in 0..4 {
            r.lock().insert(id, slot(Phase::Idle, id));
        }
        // Four open, cap two: twice the cap while evictions finish, no more.
        assert!(matches!(r.admit(2), Admit::Refuse));
        assert!(matches!(r.admit(3), Admit::Evict(_)));
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let l = Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
        };
        let s = slot(Phase::Fresh, 0);
        let since = s.lock().since;
        assert_eq!(s.deadline(&l).0, since + l.header_read_timeout);
        s.set_phase(Phase::Idle);
        let since = s.lock().since;
        assert_eq!(s.deadline(&l).0, since + l.idle_timeout);
        s.saw_bytes();
        let first = s.lock().first_byte.unwrap();
        assert_eq!(s.deadline(&l).0, first + l.header_read_timeout);
        s.set_phase(Phase::Busy);
        s.saw_bytes();
        assert_eq!(s.lock().first_byte, None, "bytes of a body are no header");
    }

    #[test]
    fn refusal_is_a_complete_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
