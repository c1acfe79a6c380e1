//! The worker's per-request [`Bookkeeping`], which the blocking driver
//! calls at each request's boundaries: whether the next request is the
//! last, when one starts and ends (the scoreboard, `--max-requests`, the
//! access log), a request rejected before any app saw it.

use crate::proto::conn::ConnState;
use crate::proto::error::ParseError;
use crate::proto::head::RequestHead;
use crate::proto::kept::KeptFields;

/// What a finished request looked like, for the access log and scoreboard.
/// Both drivers (the blocking one here, the async worker's) fill it the
/// same way once `ConnState::finish` has ended the response.
#[derive(Debug, Clone, Copy)]
pub struct RequestDone<'a> {
    /// The request (with the id the worker gave it, if any).
    pub head: &'a RequestHead,
    /// The client address (`ip:port`; `""` for a unix socket).
    pub peer: &'a str,
    /// The response fields kept for the access log.
    pub response_fields: &'a KeptFields,
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
    /// A request head was parsed and is about to be handled. The state is
    /// lent so the worker can read the head and give the request an id
    /// ([`ConnState::set_request_id`]).
    /// `peer` is the client's address (`""`: a unix socket).
    fn request_started(&mut self, _state: &mut ConnState, _peer: &str) {}
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
