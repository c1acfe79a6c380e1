//! The worker's per-request [`Bookkeeping`], which the blocking driver
//! calls at each request's boundaries: whether the next request is the
//! last, when one starts and ends (the scoreboard, `--max-requests`, later
//! the access log), a request rejected before any app saw it.

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

/// The worker's per-request bookkeeping. Every method has a default.
pub trait Bookkeeping {
    /// Should the request about to start be the last on this connection?
    /// (graceful shutdown, max-requests). If so its response carries
    /// `Connection: close`.
    fn should_close(&mut self) -> bool {
        false
    }
    /// A request head was parsed and is about to be handled.
    fn request_started(&mut self, _head: &RequestHead) {}
    /// A request was answered (the response may still be buffered).
    fn request_finished(&mut self, _done: &RequestDone<'_>) {}
    /// A request from `peer` (`""`: a unix socket) was rejected before any
    /// app saw it; its status was sent.
    fn bad_request(&mut self, _peer: &str, _err: &ParseError) {}
}

/// Bookkeeping that keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBookkeeping;

impl Bookkeeping for NoBookkeeping {}
