//! A client connection of either kind (TCP or unix), as the blocking driver
//! and the poller both need it: `Read + Write` with timeouts and half-close
//! for the driver, a descriptor for epoll, and a non-blocking peek so a
//! freshly accepted connection whose request already arrived skips the poller.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use runicorn_http::Transport;

/// One accepted client socket (blocking mode; every wait is bounded by the
/// driver's timeouts, and the poller only hands it over when readable).
#[derive(Debug)]
pub(crate) enum Stream {
    /// A TCP client.
    Tcp(TcpStream),
    /// A unix-socket client.
    Unix(UnixStream),
}

impl Stream {
    /// Whether bytes (or end of stream) can be read now without blocking.
    /// Errors count as readable: the driver's read reports them.
    pub(crate) fn readable_now(&self) -> bool {
        let mut probe = [0u8; 1];
        match recv(
            self.as_fd().as_raw_fd(),
            &mut probe,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(_) => true,
            Err(Errno::EAGAIN | Errno::EINTR) => false,
            Err(_) => true,
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(stream) => stream.as_fd(),
            Stream::Unix(stream) => stream.as_fd(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_sees_bytes_and_end_of_stream_without_consuming() {
        let (client, server) = UnixStream::pair().unwrap();
        let mut server = Stream::Unix(server);
        assert!(!server.readable_now());
        (&client).write_all(b"GET").unwrap();
        assert!(server.readable_now());
        assert!(server.readable_now(), "a peek consumes nothing");
        let mut buf = [0u8; 8];
        assert_eq!(server.read(&mut buf).unwrap(), 3);
        assert!(!server.readable_now());
        drop(client);
        assert!(server.readable_now(), "end of stream is readable");
    }
}
