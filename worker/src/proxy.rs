//! The PROXY protocol header on a connection's raw socket, for the classes
//! whose waits block a thread or yield a coroutine (sync, gthread, green;
//! the async class runs the same [`ProxyPolicy::step`] over tokio's
//! readiness).
//!
//! The header is read first, before TLS and HTTP, with `MSG_PEEK`: the
//! bytes received so far are looked at without being taken, and once
//! [`ProxyPolicy::step`] says how long the header is, exactly that many
//! are taken off the socket, so whatever follows (a TLS handshake, an HTTP
//! request) is still in the kernel for the next layer. A partial header
//! is taken as it comes ([`PendingHeader`]), once its signature is whole
//! (then every byte so far is the header's), so the wait for the rest is
//! an ordinary readiness wait and a gthread connection can be parked for
//! it; only a signature itself split over writes stays unread, and is
//! looked at again every [`PARTIAL_HEADER_PAUSE`] (senders write the
//! header at once, as the specification asks). The head deadline bounds
//! the whole.
//!
//! A malformed header is answered 400, a header from a peer not in
//! `--proxy-allow-from` 403 (Gunicorn's `InvalidProxyLine` and
//! `ForbiddenProxyRequest`), and the connection closed; a peer that closes
//! inside its header or misses the deadline is closed without an answer.
//! Either way the app is never called, and the refusal is logged at debug
//! level like Gunicorn's other invalid requests.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, send, shutdown, MsgFlags, Shutdown};
use runicorn_app::blocking::log_invalid_request;
use runicorn_http::{
    error_response, ConnConfig, ProxyHeader, ProxyPolicy, ProxyStep, MAX_PROXY_HEADER_LENGTH,
    V1_SIGNATURE, V2_SIGNATURE,
};

use crate::Shared;

/// How long a reader pauses before looking again at a partial header.
pub const PARTIAL_HEADER_PAUSE: Duration = Duration::from_millis(10);

/// The deadline for a connection accepted at `accepted` to deliver its
/// header: the head deadline, which runs from accept (`None`: no timeout
/// configured).
pub fn header_deadline(config: &ConnConfig, accepted: Instant) -> Option<Instant> {
    (!config.header_timeout.is_zero()).then(|| accepted + config.header_timeout)
}

/// A connection's socket as a header reader sees it: its descriptor, and
/// how the class waits on it.
pub trait HeaderWait {
    /// The connection's socket.
    fn fd(&self) -> BorrowedFd<'_>;

    /// Waits until the socket has something to peek (or its peer closed),
    /// or `until` passes; false once it passed.
    fn readable(&mut self, until: Option<Instant>) -> bool;

    /// Waits [`PARTIAL_HEADER_PAUSE`] (less if `until` comes first) before a
    /// partial header is looked at again; false once `until` passed.
    fn pause(&mut self, until: Option<Instant>) -> bool;
}

/// Waits that block the calling thread (sync, gthread).
#[derive(Debug)]
pub struct ThreadWait<'fd> {
    /// The connection's socket.
    pub fd: BorrowedFd<'fd>,
}

/// The time left until `until`, as a poll timeout; `None` once it passed.
fn left(until: Option<Instant>) -> Option<PollTimeout> {
    let Some(until) = until else {
        return Some(PollTimeout::NONE);
    };
    let left = until.checked_duration_since(Instant::now())?;
    if left.is_zero() {
        return None;
    }
    let millis = left.as_millis().clamp(1, i32::MAX as u128) as i32;
    Some(PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX))
}

impl HeaderWait for ThreadWait<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd
    }

    fn readable(&mut self, until: Option<Instant>) -> bool {
        loop {
            let Some(timeout) = left(until) else {
                return false;
            };
            let mut fds = [PollFd::new(self.fd, PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => {}
                Ok(_) => return true,
                Err(Errno::EINTR) => {}
                // Let the next peek report the error.
                Err(_) => return true,
            }
        }
    }

    fn pause(&mut self, until: Option<Instant>) -> bool {
        pause_with(until, std::thread::sleep)
    }
}

/// Sleeps with `sleep` for [`PARTIAL_HEADER_PAUSE`] or until `until`.
pub fn pause_with(until: Option<Instant>, sleep: impl FnOnce(Duration)) -> bool {
    let now = Instant::now();
    match until {
        Some(until) if now >= until => false,
        Some(until) => {
            sleep(PARTIAL_HEADER_PAUSE.min(until - now));
            true
        }
        None => {
            sleep(PARTIAL_HEADER_PAUSE);
            true
        }
    }
}

/// What reading the header decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderRead {
    /// Serve the connection; `Some`: with the header read (the client it
    /// names, if any, is the peer: `Connection::set_proxied`), `None`: no
    /// header (under `auto`).
    Serve(Option<ProxyHeader>),
    /// It was refused or failed: drop (close) it.
    Close,
}

/// Whether the peer of `fd` has shut its sending side (its FIN is queued
/// behind the bytes a peek sees).
pub fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    // nix has no POLLRDHUP (Linux's "peer shut its sending side") and its
    // `revents` refuses bits it does not know: asked for that one event
    // alone, any event reported (it, or a hang-up or error, which poll
    // always reports) means the peer sends no more.
    let rdhup = PollFlags::from_bits_retain(libc::POLLRDHUP);
    let mut fds = [PollFd::new(fd, rdhup)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// What one look at a connection's header decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Decided: serve (with the client it named) or close.
    Done(HeaderRead),
    /// More bytes are needed and the socket holds none unread: wait until
    /// it is readable (or park the connection until then).
    Wait,
    /// More bytes are needed behind a signature split over writes, still
    /// unread on the socket (it stays readable): look again after
    /// [`PARTIAL_HEADER_PAUSE`].
    Pause,
}

/// A header being read: its bytes taken off the socket so far. Bytes are
/// taken only once they are certainly the header's (a complete signature
/// followed by an incomplete header), so a connection waiting for the rest
/// has nothing unread and a readiness wait (poll, epoll, may) waits for new
/// bytes; what follows the header is never taken.
#[derive(Debug, Default)]
pub struct PendingHeader {
    held: Vec<u8>,
}

impl PendingHeader {
    /// Looks at what `fd` has received, without waiting, and decides if it
    /// can: takes the header's bytes, answers a refusal, or says how to
    /// wait.
    pub fn attempt(&mut self, fd: BorrowedFd<'_>, peer: &str, policy: &ProxyPolicy) -> Attempt {
        let held = self.held.len();
        let mut buf = vec![0u8; MAX_PROXY_HEADER_LENGTH];
        buf[..held].copy_from_slice(&self.held);
        let (peeked, closed) = loop {
            match recv(
                fd.as_raw_fd(),
                &mut buf[held..],
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) => break (0, true),
                Ok(peeked) => break (peeked, false),
                Err(Errno::EAGAIN) => break (0, false),
                Err(Errno::EINTR) => {}
                Err(err) => {
                    tracing::debug!("cannot read the PROXY header from {peer}: {err}");
                    return Attempt::Done(HeaderRead::Close);
                }
            }
        };
        // A partial header behind which the peer closed is decided now,
        // not at the deadline.
        let closed = closed || (peeked > 0 && peer_closed(fd));
        let seen = &buf[..held + peeked];
        match policy.step(seen, peer, closed) {
            ProxyStep::NeedMore if peeked == 0 => Attempt::Wait,
            ProxyStep::NeedMore
                if seen.starts_with(V1_SIGNATURE) || seen.starts_with(V2_SIGNATURE) =>
            {
                // All of it is the header's: take it, so the socket is
                // empty until more comes.
                if take(fd, peeked).is_err() {
                    return Attempt::Done(HeaderRead::Close);
                }
                self.held.extend_from_slice(&buf[held..held + peeked]);
                Attempt::Wait
            }
            ProxyStep::NeedMore => Attempt::Pause,
            ProxyStep::Serve { consume, header } => {
                if take(fd, consume.saturating_sub(held)).is_err() {
                    return Attempt::Done(HeaderRead::Close);
                }
                self.held.clear();
                Attempt::Done(HeaderRead::Serve(header))
            }
            ProxyStep::Refuse { status, reason } => {
                log_invalid_request(peer, &reason);
                match status {
                    Some(status) => refuse(fd, peeked, status),
                    None => close_quietly(fd),
                }
                Attempt::Done(HeaderRead::Close)
            }
        }
    }
}

/// Closes a connection whose header did not complete by its deadline:
/// logged, what arrived taken, the sending side shut.
pub fn expired(fd: BorrowedFd<'_>, peer: &str) {
    log_invalid_request(peer, &"no complete PROXY header within the head deadline");
    close_quietly(fd);
}

/// Reads the PROXY header `policy` asks for on `socket`, from `peer`
/// (`ip:port` or `""` for a unix socket), by `deadline`; the bytes after
/// the header stay on the socket.
pub fn read_header(
    socket: &mut dyn HeaderWait,
    peer: &str,
    policy: &ProxyPolicy,
    deadline: Option<Instant>,
) -> HeaderRead {
    let mut pending = PendingHeader::default();
    loop {
        let waited = match pending.attempt(socket.fd(), peer, policy) {
            Attempt::Done(read) => return read,
            Attempt::Wait => socket.readable(deadline),
            Attempt::Pause => socket.pause(deadline),
        };
        if !waited {
            expired(socket.fd(), peer);
            return HeaderRead::Close;
        }
    }
}

/// Takes what is queued on `fd` (at most a header's worth) and shuts its
/// sending side: the close that follows is a FIN, not the reset unread
/// input would turn it into.
pub fn close_quietly(fd: BorrowedFd<'_>) {
    let mut sink = vec![0u8; MAX_PROXY_HEADER_LENGTH];
    let _ = recv(fd.as_raw_fd(), &mut sink, MsgFlags::MSG_DONTWAIT);
    let _ = shutdown(fd.as_raw_fd(), Shutdown::Write);
}

/// Reads the header of a connection from `peer` accepted at `accepted`,
/// if `shared` asks for one, waiting on the calling thread.
pub fn on_thread(shared: &Shared, fd: BorrowedFd<'_>, peer: &str, accepted: Instant) -> HeaderRead {
    let policy = shared.proxy();
    if !policy.is_on() {
        return HeaderRead::Serve(None);
    }
    let deadline = header_deadline(&shared.config, accepted);
    read_header(&mut ThreadWait { fd }, peer, policy, deadline)
}

/// Takes exactly `count` bytes (already queued: a peek saw them) off `fd`.
pub fn take(fd: BorrowedFd<'_>, mut count: usize) -> Result<(), Errno> {
    let mut sink = [0u8; 512];
    while count > 0 {
        let want = count.min(sink.len());
        match recv(fd.as_raw_fd(), &mut sink[..want], MsgFlags::MSG_DONTWAIT) {
            Ok(0) => return Err(Errno::ECONNRESET),
            Ok(got) => count -= got,
            Err(Errno::EINTR) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Answers `status` on `fd` and shuts its sending side, having taken the
/// `peeked` bytes first (unread input would turn the close into a reset
/// that can destroy the answer). Best effort: a fresh socket's send buffer
/// takes the few bytes at once.
pub fn refuse(fd: BorrowedFd<'_>, peeked: usize, status: u16) {
    let _ = take(fd, peeked);
    let answer = error_response(status);
    let _ = send(
        fd.as_raw_fd(),
        &answer,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    );
    let _ = shutdown(fd.as_raw_fd(), Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use runicorn_http::ProxyMode;

    use super::*;

    fn policy(mode: ProxyMode) -> ProxyPolicy {
        ProxyPolicy::new(mode, &["127.0.0.1"]).unwrap()
    }

    /// The client a header read named.
    fn named(read: &HeaderRead) -> Option<String> {
        match read {
            HeaderRead::Serve(Some(header)) => header.source.map(|source| source.to_string()),
            other => panic!("{other:?}"),
        }
    }

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn the_header_is_taken_and_what_follows_is_left() {
        let (mut client, server) = UnixStream::pair().unwrap();
        client
            .write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 7 80\r\nGET / HTTP/1.1\r\n\r\n")
            .unwrap();
        let fd = server.as_fd();
        let got = read_header(&mut ThreadWait { fd }, "", &policy(ProxyMode::V1), soon());
        assert_eq!(named(&got), Some("192.0.2.1:7".to_owned()));
        let mut rest = [0u8; 64];
        let read = (&server).read(&mut rest).unwrap();
        assert_eq!(&rest[..read], b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_header_split_over_writes_is_waited_for() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            for piece in [&b"PROX"[..], b"Y TCP6 ::1 ", b"::2 9 80\r", b"\nrest"] {
                std::thread::sleep(Duration::from_millis(30));
                client.write_all(piece).unwrap();
            }
            client
        });
        let fd = server.as_fd();
        let got = read_header(&mut ThreadWait { fd }, "", &policy(ProxyMode::Auto), soon());
        assert_eq!(named(&got), Some("[::1]:9".to_owned()));
        drop(writer.join().unwrap());
        let mut rest = String::new();
        (&server).read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "rest");
    }

    #[test]
    fn a_partial_header_is_taken_once_its_signature_is_whole() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let fd = server.as_fd();
        let policy = policy(ProxyMode::Auto);
        let mut pending = PendingHeader::default();
        // A signature still split stays unread: a pause, not a wait.
        client.write_all(b"PROX").unwrap();
        assert_eq!(pending.attempt(fd, "", &policy), Attempt::Pause);
        client.write_all(b"Y TCP4 192.0.2.1 192.0").unwrap();
        assert_eq!(pending.attempt(fd, "", &policy), Attempt::Wait);
        // Taken: nothing is left to read, so a readiness wait waits.
        let mut peek = [0u8; 8];
        assert!(recv(
            fd.as_raw_fd(),
            &mut peek,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT
        )
        .is_err());
        assert_eq!(pending.attempt(fd, "", &policy), Attempt::Wait);
        client.write_all(b".2.2 7 80\r\nGET").unwrap();
        match pending.attempt(fd, "", &policy) {
            Attempt::Done(read) => assert_eq!(named(&read), Some("192.0.2.1:7".to_owned())),
            other => panic!("{other:?}"),
        }
        let mut rest = [0u8; 8];
        assert_eq!((&server).read(&mut rest).unwrap(), 3);
        assert_eq!(&rest[..3], b"GET");
    }

    #[test]
    fn malformed_truncated_and_late_headers_close() {
        // Malformed: 400, then the connection's sending side is shut.
        let (mut client, server) = UnixStream::pair().unwrap();
        client
            .write_all(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n")
            .unwrap();
        let fd = server.as_fd();
        let got = read_header(&mut ThreadWait { fd }, "", &policy(ProxyMode::V1), soon());
        assert_eq!(got, HeaderRead::Close);
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        // Truncated, then closed: closed at once, unanswered.
        let (mut client, server) = UnixStream::pair().unwrap();
        client.write_all(b"PROXY TCP4 1.2").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let fd = server.as_fd();
        let started = Instant::now();
        let far = Some(Instant::now() + Duration::from_secs(60));
        let got = read_header(&mut ThreadWait { fd }, "", &policy(ProxyMode::V1), far);
        assert_eq!(got, HeaderRead::Close);
        assert!(started.elapsed() < Duration::from_secs(30));
        // Silent past the deadline: closed.
        let (_client, server) = UnixStream::pair().unwrap();
        let fd = server.as_fd();
        let past = Some(Instant::now() + Duration::from_millis(50));
        let got = read_header(&mut ThreadWait { fd }, "", &policy(ProxyMode::Auto), past);
        assert_eq!(got, HeaderRead::Close);
    }
}
