//! Syslog as Gunicorn sends it (`--log-syslog`): Python's `SysLogHandler`
//! framing, RFC 3164 without a header of its own (the daemon stamps time
//! and host), `<PRI>runicorn.PREFIX.error: [pid] message` and a NUL, with
//! `PRI = facility * 8 + severity`; access lines as `...access:` unless
//! `--disable-redirect-access-to-syslog`.
//!
//! The socket is opened by the master before it forks (a datagram socket,
//! UDP or unix, is shared by every process as Gunicorn shares it: one
//! `send` is one whole message); a stream socket (TCP, `unix://PATH#stream`)
//! is connected by each process on its first line, so lines of two
//! processes never mix in one stream. Nothing here waits on the receiver:
//! sends are non-blocking (a stream's connect waits 100 ms at most, and is
//! retried once a second at most), a datagram the kernel cannot take is dropped, a stream
//! keeps at most [`STREAM_BACKLOG`] bytes unsent and drops whole lines past
//! it, and a socket that failed is reopened at most once a second. Never a
//! thread, so the master stays single-threaded.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

/// Gunicorn's facility names and codes (`SYSLOG_FACILITIES`).
pub const FACILITIES: [(&str, u8); 21] = [
    ("auth", 4),
    ("authpriv", 10),
    ("cron", 9),
    ("daemon", 3),
    ("ftp", 11),
    ("kern", 0),
    ("lpr", 6),
    ("mail", 2),
    ("news", 7),
    ("security", 4),
    ("syslog", 5),
    ("user", 1),
    ("uucp", 8),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The most bytes a stream socket keeps unsent before it drops lines.
pub const STREAM_BACKLOG: usize = 64 * 1024;

/// The longest a stream socket's connect may take (once a second at most
/// while the server is down).
const CONNECT_WAIT: Duration = Duration::from_millis(100);

/// How long a failed socket waits before it is opened again.
const RETRY: Duration = Duration::from_secs(1);

/// A facility name as Gunicorn takes it (any case) to its code.
pub fn parse_facility(name: &str) -> Result<u8, String> {
    let lower = name.to_ascii_lowercase();
    FACILITIES
        .iter()
        .find(|(known, _)| *known == lower)
        .map(|(_, code)| *code)
        .ok_or_else(|| {
            let mut names: Vec<&str> = FACILITIES.iter().map(|(known, _)| *known).collect();
            names.dedup();
            format!(
                "unknown syslog facility {name:?}: use one of {}",
                names.join(", ")
            )
        })
}

/// Where syslog lines go (`--log-syslog-to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddress {
    /// `udp://HOST:PORT` (port 514 when left out).
    Udp(String),
    /// `tcp://HOST:PORT` (port 514 when left out).
    Tcp(String),
    /// `unix://PATH`, `unix://PATH#dgram`, `unix://PATH#stream`.
    Unix(PathBuf, UnixKind),
}

/// A unix syslog socket's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixKind {
    /// Datagram first, stream when the socket is one (Python's default).
    Either,
    /// `#dgram`.
    Datagram,
    /// `#stream`.
    Stream,
}

/// Parses `--log-syslog-to` as Gunicorn's `parse_syslog_address` does.
pub fn parse_address(text: &str) -> Result<SyslogAddress, String> {
    let host_port = |rest: &str| -> Result<String, String> {
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("unclosed [ in the syslog address {text:?}"))?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => 514,
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| format!("{port:?} is not a valid port number in {text:?}"))?,
        };
        let host = if host.is_empty() { "localhost" } else { host };
        Ok(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    };
    if let Some(rest) = text.strip_prefix("unix://") {
        let (path, kind) = match rest.split_once('#') {
            Some((path, "dgram")) => (path, UnixKind::Datagram),
            Some((path, "stream")) => (path, UnixKind::Stream),
            Some((_, other)) => {
                return Err(format!(
                    "unknown unix socket type #{other} in {text:?}: use #dgram or #stream"
                ))
            }
            None => (rest, UnixKind::Either),
        };
        if path.is_empty() {
            return Err(format!(
                "{text:?} names no socket path: write unix:///dev/log"
            ));
        }
        return Ok(SyslogAddress::Unix(PathBuf::from(path), kind));
    }
    if let Some(rest) = text.strip_prefix("udp://") {
        return host_port(rest).map(SyslogAddress::Udp);
    }
    if let Some(rest) = text.strip_prefix("tcp://") {
        return host_port(rest).map(SyslogAddress::Tcp);
    }
    Err(format!(
        "invalid syslog address {text:?}: write udp://HOST:PORT, tcp://HOST:PORT or unix://PATH"
    ))
}

/// Which of Gunicorn's two loggers a line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The error log: `PREFIX.error`.
    Error,
    /// The access log: `PREFIX.access`.
    Access,
}

/// Syslog severities of Python's logging levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Severity {
    /// CRITICAL.
    Critical = 2,
    /// ERROR.
    Error = 3,
    /// WARNING.
    Warning = 4,
    /// INFO (and every access line).
    Info = 6,
    /// DEBUG.
    Debug = 7,
}

/// The validated syslog settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Where to send.
    pub address: SyslogAddress,
    /// The facility's code.
    pub facility: u8,
    /// `runicorn.PREFIX` (`--log-syslog-prefix`, else the process name).
    pub tag: String,
    /// Access lines go to syslog too (not `--disable-redirect-access-to-syslog`).
    pub access: bool,
}

impl SyslogConfig {
    /// Builds the config from Gunicorn's four settings; `prefix` is
    /// `--log-syslog-prefix`, or the process name (`proc_name`, else the
    /// app) with `:` made `.`, as Gunicorn does.
    pub fn new(address: &str, facility: &str, prefix: &str, access: bool) -> Result<Self, String> {
        Ok(SyslogConfig {
            address: parse_address(address)?,
            facility: parse_facility(facility)?,
            tag: format!("runicorn.{}", prefix.replace(':', ".")),
            access,
        })
    }

    /// One framed message.
    fn frame(&self, stream: Stream, severity: Severity, body: &str) -> Vec<u8> {
        let name = match stream {
            Stream::Error => "error",
            Stream::Access => "access",
        };
        let priority = u16::from(self.facility) * 8 + severity as u16;
        let mut message = format!("<{priority}>{}.{name}: {body}", self.tag).into_bytes();
        message.push(0);
        message
    }
}

/// A resolved destination.
#[derive(Debug, Clone)]
enum Peer {
    Inet(SocketAddr, Type),
    Unix(PathBuf, UnixKind),
}

/// The open socket of one process.
#[derive(Debug)]
struct Sink {
    config: SyslogConfig,
    peer: Peer,
    socket: Option<Socket>,
    stream: bool,
    /// The process that opened `socket`: a stream socket is per process.
    owner: u32,
    pending: Vec<u8>,
    failed_at: Option<Instant>,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Syslog is on ([`takes`] without the lock).
static ERROR_ON: AtomicBool = AtomicBool::new(false);

/// Syslog is on and takes access lines.
static ACCESS_ON: AtomicBool = AtomicBool::new(false);

/// Starts (or, with `None`, stops) sending to syslog; in the master at
/// start and on HUP, before any fork. Resolves the host and opens a
/// datagram socket now, so an unknown host is an error at start.
pub fn configure(config: Option<SyslogConfig>) -> Result<(), String> {
    let mut current = SINK.lock().unwrap_or_else(|poison| poison.into_inner());
    if current.as_ref().map(|sink| &sink.config) == config.as_ref() {
        // The same settings (a HUP that changed other things): keep the socket.
        return Ok(());
    }
    let sink = match config {
        None => None,
        Some(config) => {
            let peer = match &config.address {
                SyslogAddress::Udp(target) | SyslogAddress::Tcp(target) => {
                    let kind = match config.address {
                        SyslogAddress::Udp(_) => Type::DGRAM,
                        _ => Type::STREAM,
                    };
                    let address = target
                        .to_socket_addrs()
                        .map_err(|err| {
                            format!("cannot resolve the syslog address {target}: {err}")
                        })?
                        .next()
                        .ok_or_else(|| {
                            format!("the syslog address {target} resolves to nothing")
                        })?;
                    Peer::Inet(address, kind)
                }
                SyslogAddress::Unix(path, kind) => Peer::Unix(path.clone(), *kind),
            };
            let mut sink = Sink {
                config,
                peer,
                socket: None,
                stream: false,
                owner: std::process::id(),
                pending: Vec::new(),
                failed_at: None,
            };
            sink.open();
            Some(sink)
        }
    };
    ERROR_ON.store(sink.is_some(), Ordering::Relaxed);
    ACCESS_ON.store(
        sink.as_ref().is_some_and(|sink| sink.config.access),
        Ordering::Relaxed,
    );
    *current = sink;
    Ok(())
}

/// Is syslog on, and does it take access lines?
/// (A load, not a lock: the access log asks once per request.)
pub fn takes(stream: Stream) -> bool {
    match stream {
        Stream::Error => ERROR_ON.load(Ordering::Relaxed),
        Stream::Access => ACCESS_ON.load(Ordering::Relaxed),
    }
}

/// Sends one line (without its newline); never blocks, drops what the
/// socket cannot take now.
pub fn send(stream: Stream, severity: Severity, body: &str) {
    let mut guard = SINK.lock().unwrap_or_else(|poison| poison.into_inner());
    let Some(sink) = guard.as_mut() else {
        return;
    };
    if stream == Stream::Access && !sink.config.access {
        return;
    }
    let message = sink.config.frame(stream, severity, body);
    sink.send(&message);
}

fn would_block(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EAGAIN | libc::EINPROGRESS | libc::ENOBUFS | libc::EALREADY)
    ) || err.kind() == io::ErrorKind::WouldBlock
}

impl Sink {
    /// Opens and connects the socket, non-blocking.
    fn open(&mut self) {
        self.owner = std::process::id();
        self.pending.clear();
        let opened = match &self.peer {
            Peer::Inet(address, kind) => connect(
                Domain::for_address(*address),
                *kind,
                &SockAddr::from(*address),
            )
            .map(|socket| (socket, *kind == Type::STREAM)),
            Peer::Unix(path, kind) => SockAddr::unix(path).and_then(|address| match kind {
                UnixKind::Datagram => {
                    connect(Domain::UNIX, Type::DGRAM, &address).map(|s| (s, false))
                }
                UnixKind::Stream => {
                    connect(Domain::UNIX, Type::STREAM, &address).map(|s| (s, true))
                }
                UnixKind::Either => match connect(Domain::UNIX, Type::DGRAM, &address) {
                    Err(err) if err.raw_os_error() == Some(libc::EPROTOTYPE) => {
                        connect(Domain::UNIX, Type::STREAM, &address).map(|s| (s, true))
                    }
                    other => other.map(|s| (s, false)),
                },
            }),
        };
        match opened {
            Ok((socket, stream)) => {
                self.socket = Some(socket);
                self.stream = stream;
                self.failed_at = None;
            }
            Err(_) => {
                self.socket = None;
                self.failed_at = Some(Instant::now());
            }
        }
    }

    fn send(&mut self, message: &[u8]) {
        if self.stream && self.owner != std::process::id() {
            // The master's stream: this process connects its own.
            self.socket = None;
            self.failed_at = None;
        }
        if self.socket.is_none() {
            if self.failed_at.is_some_and(|at| at.elapsed() < RETRY) {
                return;
            }
            self.open();
        }
        let Some(socket) = &self.socket else {
            return;
        };
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        if !self.stream {
            if let Err(err) = socket.send_with_flags(message, flags) {
                // The daemon behind a unix socket restarted: reconnect later.
                if !would_block(&err) && matches!(self.peer, Peer::Unix(..)) {
                    self.socket = None;
                    self.failed_at = Some(Instant::now());
                }
            }
            return;
        }
        if self.pending.len() + message.len() > STREAM_BACKLOG {
            return;
        }
        self.pending.extend_from_slice(message);
        while !self.pending.is_empty() {
            match socket.send_with_flags(&self.pending, flags) {
                Ok(sent) => {
                    self.pending.drain(..sent);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if would_block(&err) || err.raw_os_error() == Some(libc::ENOTCONN) => {
                    return;
                }
                Err(_) => {
                    self.socket = None;
                    self.pending.clear();
                    self.failed_at = Some(Instant::now());
                    return;
                }
            }
        }
    }
}

/// A non-blocking socket connected to `address`. A stream's connect waits
/// at most [`CONNECT_WAIT`] (loopback or a LAN answers at once), so the
/// first lines are not held until the next one; a datagram's never waits.
fn connect(domain: Domain, kind: Type, address: &SockAddr) -> io::Result<Socket> {
    let socket = Socket::new(domain, kind, None)?;
    if kind == Type::STREAM {
        socket.connect_timeout(address, CONNECT_WAIT)?;
        socket.set_nonblocking(true)?;
        return Ok(socket);
    }
    socket.set_nonblocking(true)?;
    socket.connect(address)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_gunicorn_parses_them() {
        assert_eq!(
            parse_address("udp://localhost:514").unwrap(),
            SyslogAddress::Udp("localhost:514".into())
        );
        assert_eq!(
            parse_address("udp://127.0.0.1").unwrap(),
            SyslogAddress::Udp("127.0.0.1:514".into())
        );
        assert_eq!(
            parse_address("tcp://[::1]:601").unwrap(),
            SyslogAddress::Tcp("[::1]:601".into())
        );
        assert_eq!(
            parse_address("unix:///dev/log").unwrap(),
            SyslogAddress::Unix("/dev/log".into(), UnixKind::Either)
        );
        assert_eq!(
            parse_address("unix:///run/x.sock#stream").unwrap(),
            SyslogAddress::Unix("/run/x.sock".into(), UnixKind::Stream)
        );
        assert!(parse_address("udp://host:port")
            .unwrap_err()
            .contains("port"));
        assert!(parse_address("syslog.example")
            .unwrap_err()
            .contains("udp://"));
        assert!(parse_address("unix://x#raw")
            .unwrap_err()
            .contains("#dgram"));
    }

    #[test]
    fn priority_is_facility_times_eight_plus_severity() {
        let config = SyslogConfig::new("udp://127.0.0.1:9", "local3", "main:app", true).unwrap();
        assert_eq!(
            config.frame(Stream::Error, Severity::Warning, "[7] hi"),
            b"<156>runicorn.main.app.error: [7] hi\0"
        );
        assert_eq!(
            config.frame(Stream::Access, Severity::Info, "x"),
            b"<158>runicorn.main.app.access: x\0"
        );
        assert_eq!(parse_facility("USER").unwrap(), 1);
        assert!(parse_facility("local9").unwrap_err().contains("local7"));
    }
}
