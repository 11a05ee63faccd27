//! systemd's notification protocol (`sd_notify`), without libsystemd: one
//! datagram per message to `$NOTIFY_SOCKET` (a path, or `@name` for the
//! abstract namespace). `READY=1` after the first publish and `WATCHDOG=1`
//! from the sampling loop let `Type=notify` and `WatchdogSec=` restart a
//! daemon whose loop has stopped.

use std::os::unix::net::UnixDatagram;

/// A connected notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    /// `$WATCHDOG_USEC`: the watchdog period, when systemd set one.
    watchdog: Option<std::time::Duration>,
}

impl Notifier {
    /// The notifier of `$NOTIFY_SOCKET`, or `None` when not run by systemd
    /// with `Type=notify` (or the socket cannot be reached: logged).
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_string_lossy().into_owned();
        match Self::connect(&path) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(socket = %path, error = %e, "cannot reach NOTIFY_SOCKET; systemd notifications are off");
                None
            }
        }
    }

    fn connect(path: &str) -> std::io::Result<Notifier> {
        let sock = UnixDatagram::unbound()?;
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.connect_addr(&addr)?;
        } else {
            sock.connect(path)?;
        }
        sock.set_nonblocking(true)?;
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|us| *us > 0)
            .map(std::time::Duration::from_micros);
        Ok(Notifier { sock, watchdog })
    }

    /// The watchdog period systemd expects pings within, if any.
    pub fn watchdog_period(&self) -> Option<std::time::Duration> {
        self.watchdog
    }

    /// Send one message (`KEY=value` lines). Failures are not fatal: the
    /// watchdog, if any, will notice.
    pub fn send(&self, msg: &str) {
        if let Err(e) = self.sock.send(msg.as_bytes()) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }
}
