//! What the blocking driver calls back: the app [`Handler`], and the
//! worker's per-request [`Hooks`] (last-request decision, scoreboard and
//! access-log events).

use crate::driver::exchange::Exchange;
use crate::proto::error::ParseError;
use crate::proto::head::RequestHead;

/// What a finished request looked like, for the access log and scoreboard.
#[derive(Debug, Clone, Copy)]
pub struct RequestDone<'a> {
    /// The request.
    pub head: &'a RequestHead,
    /// The status sent.
    pub status: u16,
    /// Response body bytes the app wrote.
    pub body_bytes: u64,
    /// The connection stays open.
    pub keep_alive: bool,
}

/// The worker's per-request hooks. Every method has a default.
pub trait Hooks {
    /// Should the request about to start be the last on this connection?
    /// (graceful shutdown, max-requests). If so its response carries
    /// `Connection: close`. Also asked before waiting for another request.
    fn should_close(&mut self) -> bool {
        false
    }
    /// A request head was parsed and is about to be handled.
    fn request_started(&mut self, _head: &RequestHead) {}
    /// A request was answered (the response may still be buffered).
    fn request_finished(&mut self, _done: &RequestDone<'_>) {}
    /// A request was rejected before any app saw it; its status was sent.
    fn bad_request(&mut self, _err: &ParseError) {}
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// The app callback: serve one request through its [`Exchange`].
/// Returning without starting a response sends 500; a started response is
/// finished by the driver (last chunk).
pub trait Handler {
    /// Serve one request.
    fn handle(&mut self, exchange: &mut Exchange<'_>);
}

impl<F: FnMut(&mut Exchange<'_>)> Handler for F {
    fn handle(&mut self, exchange: &mut Exchange<'_>) {
        self(exchange);
    }
}
