//! What [`ConnState`] answers and is fed besides bytes: the next
//! [`Action`] (with a [`ReadWait`] for reads, a [`BodyRead`] for the app's
//! body reads), how a request ended ([`RequestEnd`]), the [`Clock`] its
//! time comes from, and whether its worker is [`Retiring`].
//!
//! [`ConnState`]: super::ConnState

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::proto::error::ParseError;

/// Where a connection's time comes from: `ConnState` reads no clock. The
/// monotonic time is asked for only when a deadline starts or is checked
/// (a partial head, a lingering close), the wall time once per request.
pub trait Clock {
    /// Monotonic time, for deadlines.
    fn now(&self) -> Instant;
    /// Wall-clock time, for the `Date` header.
    fn wall(&self) -> SystemTime;
}

/// Whether the worker a connection belongs to has decided to retire (a
/// graceful stop: TERM, a reload, `--max-requests`, fewer workers, a
/// panicking app). The state asks when a response starts: from then on
/// every response says `Connection: close`, so each connection ends after
/// its next answer. A connection waiting idle for its next request is not
/// closed for it: whatever the server closes can cross a request the client
/// is already sending, and that request is lost (or, if the client dares,
/// retried); the client's next request is answered instead, and the idle
/// wait ends as it always does, at `--keep-alive`.
pub trait Retiring: Send + Sync + fmt::Debug {
    /// True once the worker retires (it never goes back).
    fn is_retiring(&self) -> bool;
}

/// What the driver does next, from `ConnState::poll`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read into `ConnState::read_buf` once, waiting as the [`ReadWait`]
    /// says, and hand the result to `ConnState::received`.
    Read(ReadWait),
    /// Write all of `ConnState::output`, then call `ConnState::written`
    /// (or `ConnState::write_failed`).
    Write,
    /// A request head is parsed (`ConnState::head`): call the app, then
    /// `ConnState::finish`.
    Serve,
    /// A request was rejected before any app saw it (for the worker's log);
    /// its status is in the output. Poll on.
    BadRequest(ParseError),
    /// Shut the sending half of the stream (a lingering close begins), then
    /// call `ConnState::shut_down`.
    Shutdown,
    /// The connection is finished: drop the stream.
    Close,
}

/// How a read asked for by [`Action::Read`] or [`BodyRead::Read`] waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadWait {
    /// The longest this one read may wait; `None` waits for ever. A read
    /// that times out is reported as `TimedOut` (or `WouldBlock`).
    pub timeout: Option<Duration>,
    /// The connection is idle between requests (a keep-alive wait): a
    /// driver may park it instead. A retiring worker waits too (see
    /// [`Retiring`]).
    pub idle: bool,
}

/// What `ConnState::read_body` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRead {
    /// This many body bytes were copied out; 0 at the end of the body.
    Data(usize),
    /// Write any `ConnState::output` out, read once as the wait says, hand
    /// the result to `ConnState::body_received`, and ask again.
    Read(ReadWait),
}

/// How a request ended, from `ConnState::finish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEnd {
    /// The status sent.
    pub status: u16,
    /// Response body bytes the app wrote.
    pub body_bytes: u64,
    /// The connection stays open for another request.
    pub keep_alive: bool,
    /// The request body was malformed or over its limit (its status was
    /// sent if no response had started): a bad request for the worker's log.
    pub body_error: Option<ParseError>,
}
