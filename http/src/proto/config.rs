//! What a worker class sets for its connections: [`ConnConfig`] (limits,
//! keep-alive, timeouts, drain, linger), the one settings type of the
//! connection state machine whichever driver runs it.

use std::time::Duration;

use crate::proto::limits::Limits;

/// The knobs a worker class sets for its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnConfig {
    /// Request limits.
    pub limits: Limits,
    /// Keep connections open between requests. False (the sync class)
    /// sends `Connection: close` on every response.
    pub keep_alive: bool,
    /// `--keep-alive`: how long to wait for the next request on an idle
    /// connection (a driver that parks idle connections times it itself).
    /// Zero turns keep-alive off, as `--keep-alive 0` does in Gunicorn.
    pub keepalive_timeout: Duration,
    /// The client I/O timeout: each read and write within a request, and
    /// the deadline for receiving a whole head once its first byte came.
    /// Zero means no timeout.
    pub io_timeout: Duration,
    /// Unread request-body bytes read and discarded to keep a connection
    /// open; a larger unread body closes it (with `Connection: close`).
    pub max_drain: u64,
    /// How long a lingering close waits for the client's unread input, so
    /// an error response is not destroyed by a TCP reset.
    pub linger: Duration,
    /// Response field names (lower case) whose values each request keeps
    /// for the worker's access log (`%({name}o)s`); empty keeps none. Fixed
    /// for a worker's life, hence `'static`.
    pub kept_response_fields: &'static [String],
    /// The request-id field (`--request-id-header`): when the worker gives
    /// a request an id ([`ConnState::set_request_id`](crate::ConnState::set_request_id)),
    /// the app sees it in this request field and the response carries it
    /// in this field too (unless the app set one).
    pub request_id_header: Option<&'static str>,
}

impl ConnConfig {
    /// Defaults: keep-alive on, 2 s keep-alive (Gunicorn's), 30 s I/O
    /// timeout, 64 KiB drain, 1 s linger.
    pub fn new(limits: Limits) -> ConnConfig {
        ConnConfig {
            limits,
            keep_alive: true,
            keepalive_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(30),
            max_drain: 64 * 1024,
            linger: Duration::from_secs(1),
            kept_response_fields: &[],
            request_id_header: None,
        }
    }
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig::new(Limits::default())
    }
}
