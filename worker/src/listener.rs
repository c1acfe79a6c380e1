//! The listening sockets a worker inherits from the master, and the one
//! accept rule every class shares. The master binds them (`master/src/listener.rs`)
//! before the first fork; a worker only accepts on them.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// One listening socket, TCP or unix.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener (v4 or v6).
    Tcp(TcpListener),
    /// A unix stream listener.
    Unix(UnixListener),
}

impl Listener {
    /// The descriptor, for poll sets and `from_raw_fd` in other runtimes.
    pub fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(listener) => listener.as_raw_fd(),
            Listener::Unix(listener) => listener.as_raw_fd(),
        }
    }

    /// Switches `accept` between blocking and non-blocking.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(listener) => listener.set_nonblocking(nonblocking),
            Listener::Unix(listener) => listener.set_nonblocking(nonblocking),
        }
    }

    /// A second handle on the same socket.
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(listener) => Listener::Tcp(listener.try_clone()?),
            Listener::Unix(listener) => Listener::Unix(listener.try_clone()?),
        })
    }

    /// As Gunicorn logs it: `http://127.0.0.1:8000`, `http://[::1]:8000`,
    /// `unix:/run/app.sock`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(_) => "http://?".to_owned(),
            },
            Listener::Unix(_) => match self.unix_path() {
                Some(path) => format!("unix:{}", path.display()),
                None => "unix:?".to_owned(),
            },
        }
    }

    /// The address an app is told a connection arrived on (Gunicorn's
    /// `getsockname()` of the listener, for `SERVER_NAME`/`SERVER_PORT`):
    /// `127.0.0.1:8000`, `[::1]:8000`, or the unix socket's path; `""`
    /// when the socket cannot say.
    pub fn server_addr(&self) -> String {
        match self {
            Listener::Tcp(listener) => listener
                .local_addr()
                .map(|addr| addr.to_string())
                .unwrap_or_default(),
            Listener::Unix(_) => self
                .unix_path()
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
        }
    }

    /// The TCP address, if this is a TCP listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// The socket file, if this is a unix listener bound to a path.
    pub fn unix_path(&self) -> Option<PathBuf> {
        match self {
            Listener::Tcp(_) => None,
            Listener::Unix(listener) => listener
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(Path::to_path_buf)),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(listener) => listener.as_fd(),
            Listener::Unix(listener) => listener.as_fd(),
        }
    }
}

/// A listener that could not be made non-blocking: a worker that cannot
/// poll its listeners cannot boot.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot make listener {listener} non-blocking: {source}; check the descriptor limit (ulimit -n)"
)]
pub struct NonblockingError {
    /// The listener, as logged at boot.
    pub listener: String,
    /// What the OS said.
    pub source: io::Error,
}

/// Makes every listener's `accept` non-blocking, for a poll loop.
pub fn set_nonblocking(listeners: &[Listener]) -> Result<(), NonblockingError> {
    for listener in listeners {
        listener
            .set_nonblocking(true)
            .map_err(|source| NonblockingError {
                listener: listener.describe(),
                source,
            })?;
    }
    Ok(())
}

/// Whether an accept error only means "accept again later": nothing to
/// accept (another worker won the race, or a signal interrupted the call),
/// or the client gave up before accept. Every worker class's accept loop
/// applies this one rule; anything else (EMFILE, ENOBUFS) needs a pause.
pub fn is_transient_accept_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    ) || err.raw_os_error() == Some(libc::EPROTO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_race_or_a_gone_client_is_a_transient_accept_error() {
        for kind in [
            io::ErrorKind::WouldBlock,
            io::ErrorKind::Interrupted,
            io::ErrorKind::ConnectionAborted,
        ] {
            assert!(
                is_transient_accept_error(&io::Error::from(kind)),
                "{kind:?}"
            );
        }
        assert!(is_transient_accept_error(&io::Error::from_raw_os_error(
            libc::EPROTO
        )));
        assert!(!is_transient_accept_error(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
    }
}
