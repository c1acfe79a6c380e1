//! The one blocking connection driver, generic over a [`Transport`], shared
//! by the sync, gthread and green worker classes.
//!
//! A [`Connection`] is a stream, a sans-IO [`ConnState`] and the client's
//! address. [`Connection::serve`] is a loop that does what the state says
//! (read within a timeout, write its output, call the app, half-close,
//! close) and decides nothing itself, except what belongs to the worker:
//! whether a request must be the last ([`Bookkeeping::should_close`]) and,
//! in [`ServeMode::UntilIdle`], handing back to the caller a connection
//! that is idle, whose client is slow to send its head, or that lingers
//! (a gthread worker parks it in its poller and frees the thread; its
//! poller closes it at its deadline, [`Connection::close_at_deadline`]). A retiring worker is
//! the state's to know ([`Connection::watch_retirement`]).

use crate::driver::bookkeeping::{Bookkeeping, RequestDone};
use crate::driver::exchange::{Exchange, Handler};
use crate::driver::transport::{SystemClock, Transport, Wire};
use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::proto::config::ConnConfig;
use crate::proto::conn::{Action, ConnState, Retiring};
use crate::proto::proxy::{Proxied, ProxyHeader};

/// Reads (of up to 1 KiB each) [`Connection::close_at_deadline`] makes to
/// drop what a client sent before its connection closes.
const LINGER_NOW_READS: usize = 16;

/// How long [`Connection::serve`] keeps the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    /// Serve until the connection closes, waiting between requests for up
    /// to the keep-alive timeout (sync, green).
    Blocking,
    /// Read (the caller knows the stream is readable), serve every request
    /// that arrives, and return [`Outcome::Idle`] once none is buffered
    /// (gthread). Heads, and a lingering close's discarded input, are read
    /// without waiting ([`Transport::read_now`]): when nothing more has
    /// come, return [`Outcome::Waiting`], so a slow client holds no thread.
    /// (A transport that cannot read without waiting waits for the bytes,
    /// within the deadline.)
    UntilIdle,
}

/// Why [`Connection::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing is buffered and the connection may be kept: park it and
    /// call `serve` again when it is readable (UntilIdle mode only).
    Idle,
    /// A request head has not (wholly) arrived, or a lingering close waits
    /// for the client's last bytes, and nothing more has come: park the
    /// connection and call `serve` again when it is readable; close it with
    /// [`Connection::close_at_deadline`] if it is still parked at
    /// [`Connection::park_deadline`] (UntilIdle mode only).
    Waiting,
    /// The connection is finished (closed by either side, timed out, an
    /// error, or `Connection: close`); any lingering close was done. Drop it.
    Close,
}

/// One client connection across requests and dispatches.
#[derive(Debug)]
pub struct Connection<S> {
    wire: Wire<S>,
    state: ConnState,
    peer: String,
    /// What its PROXY header said, when it had one.
    proxied: Option<Proxied>,
}

impl<S: Transport> Connection<S> {
    /// Wrap a stream accepted just now (its head deadline starts here).
    /// `peer` is the client address as text (`""` for unix sockets). Sets
    /// the stream's write timeout.
    pub fn new(mut stream: S, peer: impl Into<String>, config: ConnConfig) -> Connection<S> {
        let mut state = ConnState::new(config);
        state.accepted_at(Instant::now());
        // A failure here shows up on the first write instead.
        let _ = stream.set_write_timeout(state.write_timeout());
        Connection {
            wire: Wire::new(stream),
            state,
            peer: peer.into(),
            proxied: None,
        }
    }

    /// Every response that starts once `retiring` says so closes the
    /// connection (see [`Retiring`]).
    pub fn watch_retirement(&mut self, retiring: Arc<dyn Retiring>) {
        self.state.watch_retirement(retiring);
    }

    /// The stream (to register it with a poller, or read its fd).
    pub fn stream(&self) -> &S {
        &self.wire.stream
    }

    /// The stream, mutably.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.wire.stream
    }

    /// Give the stream back (buffered input is lost).
    pub fn into_inner(self) -> S {
        self.wire.stream
    }

    /// Bytes received and not yet consumed (a pipelined or partial request).
    pub fn has_buffered(&self) -> bool {
        self.state.has_buffered()
    }

    /// The stream was accepted at `at`, before this connection was made
    /// (a PROXY header was read first): the first head's deadline runs
    /// from there (see [`ConnState::accepted_at`]).
    pub fn accepted_at(&mut self, at: Instant) {
        self.state.accepted_at(at);
    }

    /// When the head now awaited must be complete (see
    /// [`ConnState::head_deadline`]): what is read before it (a PROXY
    /// header, a TLS handshake) must end by then too.
    pub fn head_deadline(&self) -> Option<Instant> {
        self.state.head_deadline()
    }

    /// Requests served on this connection so far.
    pub fn requests(&self) -> u64 {
        self.state.requests()
    }

    /// The client address given to [`Connection::new`].
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Replaces the client address: the client a PROXY protocol header
    /// named, read before the first request.
    pub fn set_peer(&mut self, peer: impl Into<String>) {
        self.peer = peer.into();
    }

    /// Takes what the connection's PROXY header said: the client it names
    /// (if any) becomes the peer, and the rest is kept for the app
    /// ([`Exchange::proxied`]).
    pub fn set_proxied(&mut self, header: &ProxyHeader) {
        if let Some(source) = header.source {
            self.peer = source.to_string();
        }
        self.proxied = Some(Proxied::from(header));
    }

    /// True once the connection has finished; `serve` returns `Close` at once.
    pub fn is_closed(&self) -> bool {
        self.state.is_closed()
    }

    /// Serve requests; see [`ServeMode`] for how long.
    pub fn serve<H, K>(&mut self, handler: &mut H, bookkeeping: &mut K, mode: ServeMode) -> Outcome
    where
        H: Handler + ?Sized,
        K: Bookkeeping + ?Sized,
    {
        let first = self.state.requests();
        loop {
            match self.state.poll(&SystemClock) {
                Action::Read(wait) => {
                    if mode == ServeMode::UntilIdle && self.state.read_may_park() {
                        // Plaintext a TLS layer holds is a request already here.
                        if wait.idle
                            && self.state.requests() > first
                            && !self.wire.stream.has_buffered_input()
                        {
                            return Outcome::Idle;
                        }
                        match self.wire.read_now(&mut self.state) {
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                                return if wait.idle {
                                    Outcome::Idle
                                } else {
                                    Outcome::Waiting
                                };
                            }
                            // Wait for the bytes as in Blocking mode.
                            Err(err) if err.kind() == io::ErrorKind::Unsupported => {}
                            result => {
                                self.state.received(result);
                                continue;
                            }
                        }
                    }
                    let result = self.wire.read(&mut self.state, wait.timeout);
                    self.state.received(result);
                }
                Action::Write => {
                    // A failure is the state's to judge; it closes.
                    let _ = self.wire.write(&mut self.state);
                }
                Action::Serve => self.run_request(handler, bookkeeping),
                Action::BadRequest(err) => bookkeeping.bad_request(&self.peer, &err),
                Action::Shutdown => {
                    let result = self.wire.stream.shutdown_write();
                    self.state.shut_down(result);
                }
                Action::Close => {
                    self.wire.stream.closing();
                    return Outcome::Close;
                }
            }
        }
    }

    /// True in a lingering close (see `ConnState::is_lingering`).
    pub fn is_lingering(&self) -> bool {
        self.state.is_lingering()
    }

    /// Until when an [`Outcome::Waiting`] connection may stay parked: the
    /// deadline of the head being received, or the end of its lingering
    /// close (`None`: no head has begun, or there is no deadline).
    pub fn park_deadline(&self) -> Option<Instant> {
        self.state.park_deadline()
    }

    /// Closes a connection still parked ([`Outcome::Waiting`]) at its
    /// [`Connection::park_deadline`], without waiting on the client: a
    /// partial head is answered 408 as far as the socket takes it now, the
    /// sending half shut and what has arrived read and dropped (a lingering
    /// close that costs no wait, so a client that stopped sending reads its
    /// answer rather than a reset); one that sent nothing, or whose
    /// lingering close ended, is closed silently. Drop the connection after.
    pub fn close_at_deadline(&mut self) {
        if !self.state.head_expired(&SystemClock) {
            return;
        }
        let length = self.state.output().len();
        let sent = self.wire.stream.write_now(self.state.output());
        self.state.written();
        if !matches!(sent, Ok(count) if count == length) {
            return;
        }
        if self.wire.stream.shutdown_write().is_err() {
            return;
        }
        let mut scratch = [0u8; 1024];
        for _ in 0..LINGER_NOW_READS {
            match self.wire.stream.read_now(&mut scratch) {
                Ok(1..) => {}
                _ => break,
            }
        }
    }

    /// Serve the parsed request with the app, inside the worker's bookkeeping.
    fn run_request<H, K>(&mut self, handler: &mut H, bookkeeping: &mut K)
    where
        H: Handler + ?Sized,
        K: Bookkeeping + ?Sized,
    {
        // Always asked, once per request, so a worker may count requests here.
        if bookkeeping.should_close() {
            self.state.close_after();
        }
        bookkeeping.request_started(&mut self.state, &self.peer);
        self.wire.stream.request_begins();
        handler.handle(&mut Exchange::new(
            &mut self.wire,
            &mut self.state,
            &self.peer,
            self.proxied.as_ref(),
        ));
        let end = self.state.finish();
        if let Some(err) = &end.body_error {
            bookkeeping.bad_request(&self.peer, err);
        }
        bookkeeping.request_finished(&RequestDone {
            head: self.state.head(),
            peer: &self.peer,
            response_fields: self.state.kept_response_fields(),
            status: end.status,
            body_bytes: end.body_bytes,
            keep_alive: end.keep_alive,
        });
    }
}
