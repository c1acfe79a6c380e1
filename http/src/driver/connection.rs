//! The one blocking connection driver, generic over a [`Transport`], shared
//! by the sync, gthread and green worker classes.
//!
//! A [`Connection`] is a stream, a sans-IO [`ConnState`] and the client's
//! address. [`Connection::serve`] is a loop that does what the state says
//! (read within a timeout, write its output, call the app, half-close,
//! close) and decides nothing itself, except what belongs to the worker:
//! whether a request must be the last ([`Bookkeeping::should_close`]) and,
//! in [`ServeMode::UntilIdle`], handing an idle connection back to the
//! caller (a gthread worker parks it in its poller and frees the thread). A
//! retiring worker is the state's to know ([`Connection::watch_retirement`]).

use crate::driver::bookkeeping::{Bookkeeping, RequestDone};
use crate::driver::exchange::{Exchange, Handler};
use crate::driver::transport::{SystemClock, Transport, Wire};
use std::sync::Arc;

use crate::proto::config::ConnConfig;
use crate::proto::conn::{Action, ConnState, Retiring};

/// How long [`Connection::serve`] keeps the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    /// Serve until the connection closes, waiting between requests for up
    /// to the keep-alive timeout (sync, green).
    Blocking,
    /// Read (the caller knows the stream is readable), serve every request
    /// that arrives, and return [`Outcome::Idle`] once none is buffered
    /// (gthread). A partly received head is waited for, within the I/O timeout.
    UntilIdle,
}

/// Why [`Connection::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing is buffered and the connection may be kept: park it and
    /// call `serve` again when it is readable (UntilIdle mode only).
    Idle,
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
}

impl<S: Transport> Connection<S> {
    /// Wrap an accepted stream. `peer` is the client address as text
    /// (`""` for unix sockets). Sets the stream's write timeout.
    pub fn new(mut stream: S, peer: impl Into<String>, config: ConnConfig) -> Connection<S> {
        let state = ConnState::new(config);
        // A failure here shows up on the first write instead.
        let _ = stream.set_write_timeout(state.write_timeout());
        Connection {
            wire: Wire::new(stream),
            state,
            peer: peer.into(),
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

    /// Requests served on this connection so far.
    pub fn requests(&self) -> u64 {
        self.state.requests()
    }

    /// The client address given to [`Connection::new`].
    pub fn peer(&self) -> &str {
        &self.peer
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
                    if wait.idle && mode == ServeMode::UntilIdle && self.state.requests() > first {
                        return Outcome::Idle;
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
                Action::Close => return Outcome::Close,
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
