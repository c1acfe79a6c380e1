//! StatsD, as Gunicorn sends it (`gunicorn/instrument/statsd.py`, with
//! `runicorn.` for `gunicorn.`): `--statsd-host` (`HOST:PORT` over UDP, or
//! `unix://PATH` for a datagram socket), `--statsd-prefix` before every
//! name, `--dogstatsd-tags` appended as `|#TAGS` to every metric.
//!
//! Each worker sends, per request, `runicorn.request.duration` (a timer, in
//! ms), `runicorn.requests` and `runicorn.request.status.<code>` (counters);
//! the master sends the `runicorn.workers` gauge, and every process
//! `runicorn.log.critical|error|warning` for each such log line. Datagrams
//! are sent without blocking and dropped when the socket is full or the
//! server is gone (Gunicorn's workers drop them alike): StatsD must never
//! slow a request. Formatting uses a stack buffer, no allocation.
//!
//! The client is made once by the master ([`install`], at start and on
//! HUP) and inherited by the workers it forks: one socket, shared, as a
//! log file is.

use std::io::{self, Cursor, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest datagram sent; a longer metric (a huge prefix or tag list)
/// is dropped.
const DATAGRAM: usize = 512;

/// Where the datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A UDP `host:port` (resolved when the client is made).
    Udp(String),
    /// A unix datagram socket.
    Unix(PathBuf),
}

impl Target {
    /// Parses `--statsd-host`: `unix://PATH` (or `unix:PATH`), else
    /// `HOST:PORT` (`[V6]:PORT`); `HOST` alone takes StatsD's port 8125, as
    /// Gunicorn. `Err` says what is allowed.
    pub fn parse(text: &str) -> Result<Target, String> {
        let allowed = || "HOST:PORT (UDP) or unix://PATH".to_owned();
        let text = text.trim();
        if let Some(path) = text
            .strip_prefix("unix://")
            .or_else(|| text.strip_prefix("unix:"))
        {
            if path.is_empty() || path.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(allowed());
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        if text.is_empty() || text.contains(char::is_whitespace) || text.contains('/') {
            return Err(allowed());
        }
        let bracketed_v6 = text.starts_with('[');
        let has_port = if bracketed_v6 {
            text.contains("]:")
        } else {
            text.contains(':')
        };
        let hostport = if has_port {
            text.to_owned()
        } else {
            format!("{text}:8125")
        };
        let (host, port) = hostport.rsplit_once(':').ok_or_else(allowed)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(allowed());
        }
        Ok(Target::Udp(hostport))
    }
}

#[derive(Debug)]
enum Socket {
    /// Connected to the server's address.
    Udp(UdpSocket),
    /// Unbound; each datagram is sent to the path (so a restarted agent's
    /// new socket is found).
    Unix(UnixDatagram, PathBuf),
}

/// A StatsD client.
#[derive(Debug)]
pub struct Statsd {
    socket: Socket,
    /// `--statsd-prefix`, ending with one `.` when not empty.
    prefix: String,
    /// `--dogstatsd-tags` (empty: none).
    tags: String,
}

impl Statsd {
    /// A client sending to `target`, non-blocking.
    pub fn connect(target: &Target, prefix: &str, tags: &str) -> io::Result<Statsd> {
        let socket = match target {
            Target::Udp(hostport) => {
                let addr: SocketAddr = hostport.to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "the name has no address")
                })?;
                let local: SocketAddr = if addr.is_ipv6() {
                    "[::]:0".parse().map_err(io::Error::other)?
                } else {
                    "0.0.0.0:0".parse().map_err(io::Error::other)?
                };
                let socket = UdpSocket::bind(local)?;
                socket.connect(addr)?;
                socket.set_nonblocking(true)?;
                Socket::Udp(socket)
            }
            Target::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                Socket::Unix(socket, path.clone())
            }
        };
        let trimmed = prefix.trim_end_matches('.');
        Ok(Statsd {
            socket,
            prefix: if trimmed.is_empty() {
                String::new()
            } else {
                format!("{trimmed}.")
            },
            tags: tags.to_owned(),
        })
    }

    /// Counts `value` for `name` (Gunicorn's `increment`: `|c|@1.0`).
    pub fn increment(&self, name: &str, value: u64) {
        self.send(format_args!("{name}:{value}|c|@1.0"));
    }

    /// Sets the gauge `name` (`|g`).
    pub fn gauge(&self, name: &str, value: u64) {
        self.send(format_args!("{name}:{value}|g"));
    }

    /// Records a duration for the timer `name`, in milliseconds (`|ms`).
    pub fn timer(&self, name: &str, duration: Duration) {
        let millis = duration.as_secs_f64() * 1000.0;
        self.send(format_args!("{name}:{millis:.3}|ms"));
    }

    /// What a worker sends for each request, as Gunicorn's `access`: its
    /// duration, the request, its status.
    pub fn request(&self, status: u16, duration: Duration) {
        self.timer("runicorn.request.duration", duration);
        self.increment("runicorn.requests", 1);
        self.send(format_args!("runicorn.request.status.{status}:1|c|@1.0"));
    }

    /// Sends `prefix` + `metric` + `|#tags`, without blocking; drops it on
    /// any error (a full socket, no server).
    fn send(&self, metric: std::fmt::Arguments<'_>) {
        let mut buffer = [0u8; DATAGRAM];
        let mut cursor = Cursor::new(&mut buffer[..]);
        let written = cursor
            .write_all(self.prefix.as_bytes())
            .and_then(|()| cursor.write_fmt(metric))
            .and_then(|()| {
                if self.tags.is_empty() {
                    Ok(())
                } else {
                    cursor
                        .write_all(b"|#")
                        .and_then(|()| cursor.write_all(self.tags.as_bytes()))
                }
            });
        if written.is_err() {
            return;
        }
        let len = cursor.position() as usize;
        let datagram = &buffer[..len];
        let _ = match &self.socket {
            Socket::Udp(socket) => socket.send(datagram),
            Socket::Unix(socket, path) => socket.send_to(datagram, path),
        };
    }
}

/// This process's client: the master's, inherited by its workers.
static CURRENT: Mutex<Option<Arc<Statsd>>> = Mutex::new(None);

/// Makes the client of `--statsd-host` (none when it is unset) and makes it
/// this process's, replacing the previous one (a HUP). An `Err` is one line
/// for the log; the previous client is then dropped too.
pub fn install(host: Option<&str>, prefix: &str, tags: &str) -> Result<(), String> {
    let client = match host {
        None => None,
        Some(host) => {
            let target = Target::parse(host).map_err(|allowed| {
                format!("--statsd-host {host}: not an address; give {allowed}")
            })?;
            match Statsd::connect(&target, prefix, tags) {
                Ok(client) => Some(Arc::new(client)),
                Err(err) => {
                    *CURRENT.lock().unwrap_or_else(|poison| poison.into_inner()) = None;
                    return Err(format!(
                        "--statsd-host {host}: {err}; no StatsD metrics are sent (check the address)"
                    ));
                }
            }
        }
    };
    *CURRENT.lock().unwrap_or_else(|poison| poison.into_inner()) = client;
    Ok(())
}

/// This process's client, if StatsD is on.
pub fn current() -> Option<Arc<Statsd>> {
    CURRENT
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_gunicorn_takes_them() {
        assert_eq!(
            Target::parse("127.0.0.1:9125"),
            Ok(Target::Udp("127.0.0.1:9125".into()))
        );
        assert_eq!(
            Target::parse("localhost"),
            Ok(Target::Udp("localhost:8125".into()))
        );
        assert_eq!(
            Target::parse("[::1]:9125"),
            Ok(Target::Udp("[::1]:9125".into()))
        );
        assert_eq!(
            Target::parse("unix:///run/statsd.sock"),
            Ok(Target::Unix("/run/statsd.sock".into()))
        );
        for bad in ["", "unix://", "unix:8125", "host:port", "a b:1", "/path"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metrics_carry_the_prefix_and_the_tags() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let target = Target::Udp(server.local_addr().unwrap().to_string());
        let client = Statsd::connect(&target, "app...", "env:prod,blue").unwrap();
        client.request(404, Duration::from_micros(1500));
        client.gauge("runicorn.workers", 3);
        let mut received = Vec::new();
        let mut buffer = [0u8; 600];
        for _ in 0..4 {
            let len = server.recv(&mut buffer).unwrap();
            received.push(String::from_utf8_lossy(&buffer[..len]).into_owned());
        }
        assert_eq!(
            received,
            [
                "app.runicorn.request.duration:1.500|ms|#env:prod,blue",
                "app.runicorn.requests:1|c|@1.0|#env:prod,blue",
                "app.runicorn.request.status.404:1|c|@1.0|#env:prod,blue",
                "app.runicorn.workers:3|g|#env:prod,blue",
            ]
        );
    }

    #[test]
    fn a_metric_too_long_is_dropped_and_no_server_is_no_error() {
        let target = Target::Unix(PathBuf::from("/nonexistent/statsd.sock"));
        let client = Statsd::connect(&target, &"p".repeat(DATAGRAM), "").unwrap();
        client.increment("runicorn.requests", 1);
        let client = Statsd::connect(&target, "", "").unwrap();
        client.increment("runicorn.requests", 1);
    }
}
