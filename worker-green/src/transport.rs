//! may's sockets as the http driver's [`Transport`]: their reads, writes
//! and timeouts yield the coroutine instead of blocking the thread.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use runicorn_http::Transport;

use crate::tracker::ConnState;

/// An accepted may socket.
#[derive(Debug)]
pub(crate) enum Socket {
    /// TCP.
    Tcp(may::net::TcpStream),
    /// Unix domain.
    Unix(may::os::unix::net::UnixStream),
}

/// A connection's socket, with its entry in the busy tracker.
#[derive(Debug)]
pub(crate) struct GreenStream<'c> {
    socket: Socket,
    state: &'c ConnState,
}

impl<'c> GreenStream<'c> {
    /// Wraps `socket`; `state` learns when reads wait between requests.
    pub(crate) fn new(socket: Socket, state: &'c ConnState) -> Self {
        GreenStream { socket, state }
    }
}

impl Read for GreenStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let socket = &mut self.socket;
        self.state.idle_read(|| match socket {
            Socket::Tcp(stream) => stream.read(buf),
            Socket::Unix(stream) => stream.read(buf),
        })
    }
}

impl Write for GreenStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.socket {
            Socket::Tcp(stream) => stream.write(buf),
            Socket::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.socket {
            Socket::Tcp(stream) => stream.flush(),
            Socket::Unix(stream) => stream.flush(),
        }
    }
}

impl Transport for GreenStream<'_> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.socket {
            Socket::Tcp(stream) => stream.set_read_timeout(timeout),
            Socket::Unix(stream) => stream.set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.socket {
            Socket::Tcp(stream) => stream.set_write_timeout(timeout),
            Socket::Unix(stream) => stream.set_write_timeout(timeout),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match &self.socket {
            Socket::Tcp(stream) => stream.shutdown(Shutdown::Write),
            Socket::Unix(stream) => stream.shutdown(Shutdown::Write),
        }
    }
}
