//! The blocking TLS transport: a rustls server connection over any of the
//! blocking driver's transports (std's TCP and unix streams, gthread's
//! `Stream`, green's may sockets), itself a [`Transport`].
//!
//! The handshake runs inside the first reads: the driver's first read of a
//! request head drives it, so it is bounded by the same wait as the head
//! (the state's deadline from the connection's start). One `read` call
//! may need several socket reads (a handshake flight, a record split
//! across segments): together they never wait longer than the timeout the
//! driver set, so a client that drips a handshake a byte at a time holds a
//! thread no longer than one that drips a head. A socket that reports
//! `WouldBlock` (nothing more to read now) ends the call with it, as a
//! plain socket's read would.
//!
//! Without waiting ([`Transport::read_now`], gthread's head reads) the
//! handshake advances as far as the bytes that have arrived allow, then
//! says `WouldBlock`, so a slow handshake is parked like a slow head.
//! Plaintext rustls decrypted and holds counts as buffered input
//! ([`Transport::has_buffered_input`]): a gthread connection is not parked
//! in epoll, waiting for socket bytes, while a request already sits in it.
//! An EOF without `close_notify` (a "ragged" EOF) ends the stream like a
//! clean one (Python's `suppress_ragged_eofs=True`): the state judges a
//! body cut short either way.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use runicorn_http::Transport;
use rustls::ServerConnection;

/// A client connection under TLS.
#[derive(Debug)]
pub struct TlsStream<S> {
    tls: ServerConnection,
    socket: S,
    /// The bound of one whole `read` call, as the driver set it.
    read_timeout: Option<Duration>,
    /// The timeout last set on the socket.
    socket_timeout: Option<Duration>,
}

impl<S: Transport> TlsStream<S> {
    /// The server side of a TLS connection over `socket`, before its handshake.
    pub fn new(socket: S, tls: ServerConnection) -> TlsStream<S> {
        TlsStream {
            tls,
            socket,
            read_timeout: None,
            socket_timeout: None,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.socket
    }

    /// Whether the handshake is done.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// The protocol ALPN settled on, once the handshake is done.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.tls.alpn_protocol()
    }

    /// Sends every TLS record rustls has queued (handshake messages,
    /// alerts, encrypted output), within the socket's write timeout.
    fn send_queued(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut self.socket)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Sends what rustls has queued without waiting where the socket can
    /// (a closing alert must never hold a poller), else within the write
    /// timeout; best effort.
    fn send_queued_now(&mut self) {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut Now(&mut self.socket)) {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Unsupported => {
                    let _ = self.send_queued();
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Sets the socket's read timeout when it differs from the last one set.
    fn socket_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.socket_timeout != timeout {
            self.socket.set_read_timeout(timeout)?;
            self.socket_timeout = timeout;
        }
        Ok(())
    }
}

impl<S: Transport> Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let started = Instant::now();
        let mut first = true;
        loop {
            match self.tls.reader().read(buf) {
                Ok(count) => return Ok(count),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                // A ragged EOF: the end of the stream all the same.
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(err) => return Err(err),
            }
            // The handshake's answers before waiting for the client's next flight.
            self.send_queued()?;
            if let Some(timeout) = self.read_timeout {
                let wait = if first {
                    timeout
                } else {
                    let left = timeout.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    left
                };
                self.socket_timeout(Some(wait))?;
            } else {
                self.socket_timeout(None)?;
            }
            first = false;
            let received = self.tls.read_tls(&mut self.socket)?;
            if let Err(err) = self.tls.process_new_packets() {
                // Best effort: the alert tells the client why.
                let _ = self.send_queued();
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
            if received == 0 {
                // The client closed: whatever it completed before is read
                // first, then the end.
                return match self.tls.reader().read(buf) {
                    Ok(count) => Ok(count),
                    Err(_) => Ok(0),
                };
            }
        }
    }
}

impl<S: Transport> Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let count = self.tls.writer().write(buf)?;
        self.send_queued()?;
        Ok(count)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tls.writer().flush()?;
        self.send_queued()
    }
}

impl<S: Transport> Transport for TlsStream<S> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Applied to the socket by each read, as what is left of it.
        self.read_timeout = timeout;
        Ok(())
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_write_timeout(timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        self.send_queued_now();
        self.socket.shutdown_write()
    }

    /// What rustls holds, else what the socket has now, decrypted: the
    /// handshake advances as far as the client's bytes allow
    /// (`WouldBlock` then, and a gthread connection is parked until more
    /// come or its head deadline passes).
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(count) => return Ok(count),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(err) => return Err(err),
            }
            self.send_queued()?;
            let received = self.tls.read_tls(&mut Now(&mut self.socket))?;
            if let Err(err) = self.tls.process_new_packets() {
                self.send_queued_now();
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
            if received == 0 {
                return match self.tls.reader().read(buf) {
                    Ok(count) => Ok(count),
                    Err(_) => Ok(0),
                };
            }
        }
    }

    /// Encrypts `buf` and sends it without waiting: all of it, or
    /// `WouldBlock` (a record may then be cut; the caller closes). Before
    /// the handshake is done nothing can be said: `Unsupported`.
    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tls.is_handshaking() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let count = self.tls.writer().write(buf)?;
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut Now(&mut self.socket))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(count)
    }

    fn has_buffered_input(&mut self) -> bool {
        match self.tls.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0,
            // A read reports it.
            Err(_) => true,
        }
    }

    fn closing(&mut self) {
        // Only once the handshake is done: a connection refused before (a
        // bad handshake) has had its alert.
        if !self.tls.is_handshaking() {
            self.tls.send_close_notify();
            self.send_queued_now();
        }
    }
}

/// The socket's reads and writes that do not wait ([`Transport::read_now`],
/// [`Transport::write_now`]), as rustls's `Read` and `Write`.
struct Now<'s, S>(&'s mut S);

impl<S: Transport> Read for Now<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_now(buf)
    }
}

impl<S: Transport> Write for Now<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_now(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: AsFd> AsFd for TlsStream<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl<S: AsRawFd> AsRawFd for TlsStream<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// A client connection as a worker serves it: the plain socket, or the
/// socket under TLS. (Where a class starts a connection's transport:
/// accept, then any PROXY header read on the raw socket, then this.)
#[derive(Debug)]
pub enum Secured<S> {
    /// Plain HTTP.
    Plain(S),
    /// HTTP over TLS.
    Tls(Box<TlsStream<S>>),
}

impl<S: Transport> Secured<S> {
    /// `socket` as `tls` says: under TLS when the worker serves TLS.
    pub fn new(socket: S, tls: Option<&super::Tls>) -> io::Result<Secured<S>> {
        Ok(match tls {
            Some(tls) => Secured::Tls(Box::new(TlsStream::new(socket, tls.accept()?))),
            None => Secured::Plain(socket),
        })
    }

    /// Whether this connection is under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Secured::Tls(_))
    }

    /// The socket.
    pub fn socket(&self) -> &S {
        match self {
            Secured::Plain(socket) => socket,
            Secured::Tls(tls) => tls.get_ref(),
        }
    }

    /// The socket, mutably: for what is read on it before TLS (a PROXY
    /// protocol header), nothing after.
    pub fn socket_mut(&mut self) -> &mut S {
        match self {
            Secured::Plain(socket) => socket,
            Secured::Tls(tls) => &mut tls.socket,
        }
    }
}

impl<S: Transport> Read for Secured<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Secured::Plain(socket) => socket.read(buf),
            Secured::Tls(tls) => tls.read(buf),
        }
    }
}

impl<S: Transport> Write for Secured<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Secured::Plain(socket) => socket.write(buf),
            Secured::Tls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Secured::Plain(socket) => socket.write_vectored(bufs),
            Secured::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Secured::Plain(socket) => socket.flush(),
            Secured::Tls(tls) => tls.flush(),
        }
    }
}

impl<S: Transport> Transport for Secured<S> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Secured::Plain(socket) => socket.set_read_timeout(timeout),
            Secured::Tls(tls) => tls.set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Secured::Plain(socket) => socket.set_write_timeout(timeout),
            Secured::Tls(tls) => tls.set_write_timeout(timeout),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Secured::Plain(socket) => socket.shutdown_write(),
            Secured::Tls(tls) => tls.shutdown_write(),
        }
    }

    fn request_begins(&mut self) {
        match self {
            Secured::Plain(socket) => socket.request_begins(),
            Secured::Tls(tls) => tls.socket.request_begins(),
        }
    }

    fn answer_begins(&mut self) -> io::Result<()> {
        match self {
            Secured::Plain(socket) => socket.answer_begins(),
            Secured::Tls(tls) => tls.socket.answer_begins(),
        }
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Secured::Plain(socket) => socket.read_now(buf),
            Secured::Tls(tls) => tls.read_now(buf),
        }
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Secured::Plain(socket) => socket.write_now(buf),
            Secured::Tls(tls) => tls.write_now(buf),
        }
    }

    fn has_buffered_input(&mut self) -> bool {
        match self {
            Secured::Plain(socket) => socket.has_buffered_input(),
            Secured::Tls(tls) => tls.has_buffered_input(),
        }
    }

    fn closing(&mut self) {
        match self {
            Secured::Plain(socket) => socket.closing(),
            Secured::Tls(tls) => tls.closing(),
        }
    }
}

impl<S: AsFd> AsFd for Secured<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Secured::Plain(socket) => socket.as_fd(),
            Secured::Tls(tls) => tls.as_fd(),
        }
    }
}

impl<S: AsRawFd> AsRawFd for Secured<S> {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Secured::Plain(socket) => socket.as_raw_fd(),
            Secured::Tls(tls) => tls.as_raw_fd(),
        }
    }
}
