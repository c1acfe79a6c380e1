//! The PROXY protocol header on an async connection, before its first
//! request: [`ProxyPolicy::step`] over tokio's readiness. A peek that
//! cannot decide yet reports `WouldBlock` through `try_io`, which clears
//! the socket's readiness, so the next wait is for bytes that arrive after
//! it (tokio's edge-triggered events), with no pause and no spin; the head
//! deadline bounds the whole. Taking the header, and answering a refused
//! one, are the worker kit's (`runicorn_worker::proxy`).

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use runicorn_app::blocking::log_invalid_request;
use runicorn_http::{ProxyPolicy, ProxyStep, MAX_PROXY_HEADER_LENGTH};
use runicorn_worker::proxy::{close_quietly, peer_closed, refuse, take, HeaderRead};
use tokio::io::Interest;

/// A tokio socket whose readiness a header reader waits on.
pub(crate) trait Readiness: AsFd {
    /// Waits until tokio says the socket is readable.
    async fn readable(&self) -> io::Result<()>;
    /// Runs `f` if tokio thinks the socket readable; a `WouldBlock` from it
    /// clears that readiness.
    fn try_read_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

impl Readiness for tokio::net::TcpStream {
    async fn readable(&self) -> io::Result<()> {
        tokio::net::TcpStream::readable(self).await
    }

    fn try_read_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::READABLE, f)
    }
}

impl Readiness for tokio::net::UnixStream {
    async fn readable(&self) -> io::Result<()> {
        tokio::net::UnixStream::readable(self).await
    }

    fn try_read_io<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        self.try_io(Interest::READABLE, f)
    }
}

/// Reads the header `policy` asks for on `stream`, from `peer`, by
/// `deadline`; the bytes after it stay on the socket.
pub(crate) async fn read_header<S: Readiness>(
    stream: &S,
    peer: &str,
    policy: &ProxyPolicy,
    deadline: Option<Instant>,
) -> HeaderRead {
    let mut buf = vec![0u8; MAX_PROXY_HEADER_LENGTH];
    loop {
        let decided = stream.try_read_io(|| {
            let fd = stream.as_fd();
            let (peeked, closed) = match recv(
                fd.as_raw_fd(),
                &mut buf,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) => (0, true),
                Ok(peeked) => (peeked, false),
                Err(Errno::EAGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(err) => return Err(io::Error::from(err)),
            };
            let closed = closed || (peeked > 0 && peer_closed(fd));
            match policy.step(&buf[..peeked], peer, closed) {
                ProxyStep::NeedMore => Err(io::ErrorKind::WouldBlock.into()),
                step => Ok((step, peeked)),
            }
        });
        match decided {
            Ok((ProxyStep::Serve { consume, header }, _)) => {
                if take(stream.as_fd(), consume).is_err() {
                    return HeaderRead::Close;
                }
                return HeaderRead::Serve(header);
            }
            Ok((ProxyStep::Refuse { status, reason }, peeked)) => {
                log_invalid_request(peer, &reason);
                match status {
                    Some(status) => refuse(stream.as_fd(), peeked, status),
                    None => close_quietly(stream.as_fd()),
                }
                return HeaderRead::Close;
            }
            Ok((ProxyStep::NeedMore, _)) => unreachable!("NeedMore is reported as WouldBlock"),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::debug!("cannot read the PROXY header from {peer}: {err}");
                return HeaderRead::Close;
            }
        }
        let waited = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), stream.readable()).await,
            None => Ok(stream.readable().await),
        };
        match waited {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!("cannot read the PROXY header from {peer}: {err}");
                return HeaderRead::Close;
            }
            Err(_) => {
                log_invalid_request(peer, &"no complete PROXY header within the head deadline");
                close_quietly(stream.as_fd());
                return HeaderRead::Close;
            }
        }
    }
}
