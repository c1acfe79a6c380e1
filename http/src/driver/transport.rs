//! The byte stream the blocking driver runs over: `Read + Write` plus the
//! timeouts and half-close that `Read + Write` lack ([`Transport`],
//! implemented here for std's TCP and unix streams; worker crates wrap
//! other streams, may's, in a newtype). [`Wire`] is a transport with the
//! read timeout last set on it, and the two moves every blocking loop
//! makes: one read into the connection state, one write of its output.
//! [`SystemClock`] is the time the blocking driver feeds the state.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime};

use crate::proto::conn::{Clock, ConnState};

/// A blocking client stream with read timeouts.
pub trait Transport: Read + Write {
    /// Bound each following read: a read that waits longer fails with
    /// `WouldBlock` or `TimedOut`. `None` waits forever.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Bound each following write. The default does nothing.
    fn set_write_timeout(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    /// Close the sending half (for a lingering close). The default does nothing.
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// A request's head was parsed and it is about to be served: nothing of
    /// its answer has been written yet. (A worker's transport lists its
    /// client as owed an answer, for when the worker is killed first.) The
    /// default does nothing.
    fn request_begins(&mut self) {}

    /// The answer to the current request is about to be written (called
    /// before every write once it started): an error means it must not be,
    /// someone answered the client already (a worker being killed), and the
    /// connection fails. The default allows it.
    fn answer_begins(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Read what has arrived, without waiting: `WouldBlock` when nothing
    /// has. A driver in [`ServeMode::UntilIdle`] reads request heads this
    /// way, to hand a connection whose client is slow back to its poller
    /// instead of holding the thread. The default is `Unsupported`: the
    /// driver then waits for the bytes as a blocking read does.
    ///
    /// [`ServeMode::UntilIdle`]: crate::ServeMode::UntilIdle
    fn read_now(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Write what the socket takes now, without waiting (`WouldBlock` when
    /// it takes nothing): how a poller answers 408 to a connection whose
    /// head deadline passed while parked. The default is `Unsupported`
    /// (the connection is then closed without the answer).
    fn write_now(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Whether bytes already received are waiting inside the transport
    /// (plaintext a TLS layer decrypted and holds): the next read returns
    /// them at once, so the connection is readable whatever its socket
    /// says. The default, for a plain socket, is false.
    fn has_buffered_input(&mut self) -> bool {
        false
    }

    /// The connection closes now (it is dropped next): a transport with a
    /// closing message of its own sends it (TLS's `close_notify`, without
    /// which a client cannot tell the end from a cut). The default does
    /// nothing.
    fn closing(&mut self) {}
}

/// The system's clocks: the blocking driver's time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A transport and the read timeout last set on it (a socket option set
/// only when it changes, so keep-alive costs no system call per request).
#[derive(Debug)]
pub(crate) struct Wire<S: ?Sized> {
    read_timeout: Option<Duration>,
    pub(crate) stream: S,
}

impl<S: Transport> Wire<S> {
    pub(crate) fn new(stream: S) -> Wire<S> {
        Wire {
            read_timeout: None,
            stream,
        }
    }
}

impl<S: Transport + ?Sized> Wire<S> {
    /// One read into `state`'s buffer, waiting at most `timeout`; the
    /// result is for the state to judge.
    pub(crate) fn read(
        &mut self,
        state: &mut ConnState,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        if self.read_timeout != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        self.stream.read(state.read_buf()?)
    }

    /// One read into `state`'s buffer of what has arrived, without waiting
    /// (see [`Transport::read_now`]).
    pub(crate) fn read_now(&mut self, state: &mut ConnState) -> io::Result<usize> {
        self.stream.read_now(state.read_buf()?)
    }

    /// Write out all of `state`'s output and tell it how that went.
    pub(crate) fn write(&mut self, state: &mut ConnState) -> io::Result<()> {
        let output = state.output();
        if output.is_empty() {
            return Ok(());
        }
        let allowed = if state.response_started() {
            self.stream.answer_begins()
        } else {
            Ok(())
        };
        let result = allowed
            .and_then(|()| self.stream.write_all(output))
            .and_then(|()| self.stream.flush());
        match result {
            Ok(()) => state.written(),
            Err(_) => state.write_failed(),
        }
        result
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Transport for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        (**self).shutdown_write()
    }

    fn request_begins(&mut self) {
        (**self).request_begins();
    }

    fn answer_begins(&mut self) -> io::Result<()> {
        (**self).answer_begins()
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_now(buf)
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        (**self).write_now(buf)
    }

    fn has_buffered_input(&mut self) -> bool {
        (**self).has_buffered_input()
    }

    fn closing(&mut self) {
        (**self).closing();
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        (**self).shutdown_write()
    }

    fn request_begins(&mut self) {
        (**self).request_begins();
    }

    fn answer_begins(&mut self) -> io::Result<()> {
        (**self).answer_begins()
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_now(buf)
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        (**self).write_now(buf)
    }

    fn has_buffered_input(&mut self) -> bool {
        (**self).has_buffered_input()
    }

    fn closing(&mut self) {
        (**self).closing();
    }
}
