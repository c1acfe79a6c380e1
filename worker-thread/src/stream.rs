//! A client connection of either kind (TCP or unix), as the blocking driver
//! and the poller both need it: `Read + Write` with timeouts and half-close
//! for the driver, a descriptor for epoll.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};
use runicorn_http::Transport;

/// One accepted client socket (blocking mode; every wait is bounded by the
/// driver's timeouts, and the poller only hands it over when readable; a
/// head is read without waiting, [`Transport::read_now`], so a slow client
/// goes back to the poller).
#[derive(Debug)]
pub(crate) enum Stream {
    /// A TCP client.
    Tcp(TcpStream),
    /// A unix-socket client.
    Unix(UnixStream),
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(stream) => stream.as_fd(),
            Stream::Unix(stream) => stream.as_fd(),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(stream) => stream.as_raw_fd(),
            Stream::Unix(stream) => stream.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write_vectored(bufs),
            Stream::Unix(stream) => stream.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Stream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => Transport::set_read_timeout(stream, timeout),
            Stream::Unix(stream) => Transport::set_read_timeout(stream, timeout),
        }
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => Transport::set_write_timeout(stream, timeout),
            Stream::Unix(stream) => Transport::set_write_timeout(stream, timeout),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.shutdown_write(),
            Stream::Unix(stream) => stream.shutdown_write(),
        }
    }

    /// `recv` with `MSG_DONTWAIT`: the socket stays blocking for the reads
    /// and writes with timeouts inside a request.
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match recv(self.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Err(Errno::EINTR) => {}
                result => return result.map_err(io::Error::from),
            }
        }
    }

    /// `send` with `MSG_DONTWAIT` (and no SIGPIPE).
    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            match send(self.as_raw_fd(), buf, flags) {
                Err(Errno::EINTR) => {}
                result => return result.map_err(io::Error::from),
            }
        }
    }
}
