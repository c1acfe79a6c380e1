//! Binding the listening sockets: bind specs, binding with retries,
//! inheritance. The socket type, [`Listener`], is the worker kit's.
//!
//! The master binds every `-b` once, before the first fork; workers inherit
//! the descriptors. Specs: `HOST:PORT`, `[v6]:PORT`, `unix:PATH`, `fd://N`,
//! and the sockets a master inherits (systemd's `LISTEN_FDS`, which, as in
//! Gunicorn, replaces `-b`, and an old master's `RUNICORN_FD` on USR2: see
//! `inherit`). The master never closes a listener
//! while it runs, so no connection waiting in the accept queue is lost.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runicorn_worker::Listener;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::error::MasterError;

/// How many times a bind is tried before giving up (Gunicorn: 5).
pub const BIND_ATTEMPTS: u32 = 5;
/// The pause between bind attempts.
pub const BIND_RETRY_DELAY: Duration = Duration::from_millis(500);

/// A parsed `-b` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSpec {
    /// `HOST:PORT` or `[v6]:PORT` (a host name resolves to every address).
    Tcp(String),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `fd://N`: an already-bound socket inherited from the parent.
    Fd(RawFd),
}

impl BindSpec {
    /// Parses one `-b` value.
    pub fn parse(spec: &str) -> Result<BindSpec, MasterError> {
        let bad = |reason: &str| MasterError::BadBind {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = spec.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("the unix socket path is empty"));
            }
            return Ok(BindSpec::Unix(PathBuf::from(path)));
        }
        if let Some(number) = spec.strip_prefix("fd://") {
            return number
                .parse::<RawFd>()
                .ok()
                .filter(|fd| *fd >= 0)
                .map(BindSpec::Fd)
                .ok_or_else(|| bad("fd:// must be followed by a file descriptor number"));
        }
        let (host, port) = match spec.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty() && (!host.contains(':') || host.starts_with('[')) =>
            {
                (host, port)
            }
            // Gunicorn: a bare host means port 8000.
            None if !spec.is_empty() => (spec, "8000"),
            _ => return Err(bad("expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N")),
        };
        if port.parse::<u16>().is_err() {
            return Err(bad("the port must be a number from 0 to 65535"));
        }
        Ok(BindSpec::Tcp(format!("{host}:{port}")))
    }
}

/// How to bind.
#[derive(Debug, Clone, Copy)]
pub struct BindOptions {
    /// The listen queue length.
    pub backlog: i32,
    /// Set `SO_REUSEPORT` on TCP sockets.
    pub reuse_port: bool,
    /// Attempts before giving up when the address is in use.
    pub attempts: u32,
    /// The pause between attempts.
    pub retry_delay: Duration,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            backlog: 2048,
            reuse_port: false,
            attempts: BIND_ATTEMPTS,
            retry_delay: BIND_RETRY_DELAY,
        }
    }
}

/// Binds every spec; on failure the error names the address and the fix.
pub fn bind_all(specs: &[String], options: BindOptions) -> Result<Vec<Listener>, MasterError> {
    let mut listeners = Vec::new();
    for spec in specs {
        listeners.extend(bind(&BindSpec::parse(spec)?, options)?);
    }
    Ok(listeners)
}

/// Binds one spec (a host name may give several listeners).
pub fn bind(spec: &BindSpec, options: BindOptions) -> Result<Vec<Listener>, MasterError> {
    match spec {
        BindSpec::Fd(fd) => Ok(vec![adopt(*fd, &format!("fd://{fd}"))?]),
        BindSpec::Unix(path) => Ok(vec![with_retries(
            &format!("unix:{}", path.display()),
            options,
            || bind_unix(path, options.backlog),
        )?]),
        BindSpec::Tcp(address) => {
            let addrs: Vec<SocketAddr> = address
                .to_socket_addrs()
                .map_err(|err| MasterError::BadBind {
                    spec: address.clone(),
                    reason: format!("cannot resolve the host ({err})"),
                })?
                .collect();
            let mut listeners = Vec::new();
            for addr in addrs {
                let shown = addr.to_string();
                listeners.push(with_retries(&shown, options, || bind_tcp(addr, options))?);
            }
            Ok(listeners)
        }
    }
}

fn with_retries(
    shown: &str,
    options: BindOptions,
    mut attempt: impl FnMut() -> io::Result<Listener>,
) -> Result<Listener, MasterError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt() {
            Ok(listener) => return Ok(listener),
            Err(err)
                if err.kind() == io::ErrorKind::AddrInUse && tries < options.attempts.max(1) =>
            {
                tracing::error!("Connection in use: {shown}");
                tracing::info!(
                    "Retrying in {:.1} seconds.",
                    options.retry_delay.as_secs_f64()
                );
                std::thread::sleep(options.retry_delay);
            }
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                return Err(MasterError::AddressInUse {
                    address: shown.to_owned(),
                })
            }
            Err(source) => {
                return Err(MasterError::Bind {
                    address: shown.to_owned(),
                    source,
                })
            }
        }
    }
}

fn bind_tcp(addr: SocketAddr, options: BindOptions) -> io::Result<Listener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
    socket.set_reuse_address(true)?;
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(options.backlog)?;
    Ok(Listener::Tcp(socket.into()))
}

fn bind_unix(path: &Path, backlog: i32) -> io::Result<Listener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} exists and is not a socket; remove it or choose another path",
                path.display()
            )))
        }
        Err(_) => {}
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    Ok(Listener::Unix(UnixListener::from(OwnedFd::from(socket))))
}

/// `fd://N`: an inherited descriptor, checked as every inherited one is
/// (open, a listening stream socket, TCP or unix).
fn adopt(fd: RawFd, shown: &str) -> Result<Listener, MasterError> {
    crate::inherit::adopt_listener(fd).map_err(|reason| MasterError::BadBind {
        spec: shown.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            BindSpec::parse("127.0.0.1:0").unwrap(),
            BindSpec::Tcp("127.0.0.1:0".into())
        );
        assert_eq!(
            BindSpec::parse("[::1]:8000").unwrap(),
            BindSpec::Tcp("[::1]:8000".into())
        );
        assert_eq!(
            BindSpec::parse("localhost").unwrap(),
            BindSpec::Tcp("localhost:8000".into())
        );
        assert_eq!(
            BindSpec::parse("unix:/tmp/a.sock").unwrap(),
            BindSpec::Unix("/tmp/a.sock".into())
        );
        assert_eq!(BindSpec::parse("fd://3").unwrap(), BindSpec::Fd(3));
        for bad in [
            "",
            "unix:",
            "fd://x",
            "1.2.3.4:http",
            "::1:80",
            "host:99999",
        ] {
            assert!(BindSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_and_unix_bind_and_describe() {
        let tcp = bind_all(&["127.0.0.1:0".into()], BindOptions::default()).unwrap();
        assert!(tcp[0].describe().starts_with("http://127.0.0.1:"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let spec = format!("unix:{}", path.display());
        let first = bind_all(std::slice::from_ref(&spec), BindOptions::default()).unwrap();
        assert_eq!(first[0].describe(), spec);
        assert_eq!(first[0].server_addr(), path.display().to_string());
        let port = tcp[0].local_addr().unwrap().port();
        assert_eq!(tcp[0].server_addr(), format!("127.0.0.1:{port}"));
        assert!(first[0].try_clone().is_ok());
        drop(first);
        // An existing socket file is replaced.
        bind_all(std::slice::from_ref(&spec), BindOptions::default()).unwrap();
        // A regular file is refused.
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let err = bind_all(
            &[format!("unix:{}", file.display())],
            BindOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
    }

    #[test]
    fn address_in_use_is_reported_after_retries() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let spec = taken.local_addr().unwrap().to_string();
        let options = BindOptions {
            attempts: 2,
            retry_delay: Duration::from_millis(10),
            ..Default::default()
        };
        let err = bind_all(std::slice::from_ref(&spec), options).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("Connection in use: {spec}")),
            "{err}"
        );
    }
}
