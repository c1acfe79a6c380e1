//! What a worker class sets for its connections: [`ConnConfig`] (limits,
//! keep-alive, the deadlines of slow and greedy clients, drain, linger),
//! the one settings type of the connection state machine whichever driver
//! runs it.

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
    /// `--header-timeout`: the total deadline for a request head. For a
    /// new connection it runs from its accept (see
    /// [`ConnState::accepted_at`](crate::ConnState::accepted_at)), so it
    /// also bounds the wait for the first byte and anything read before
    /// the head (a PROXY header, a TLS handshake); on a kept-alive
    /// connection from the first byte of the next request. A client that
    /// sent part of a head is answered 408; one that sent nothing is
    /// closed silently. Zero means no deadline.
    pub header_timeout: Duration,
    /// `--body-timeout`: the longest wait for the next bytes of a request
    /// body (each read the app's body read needs, and the drain of an
    /// unread body). A body read that times out answers 408 (if no
    /// response started) and fails the app's read. Zero means no timeout.
    pub body_timeout: Duration,
    /// `--body-min-rate`: the least average rate, in bytes a second, at
    /// which a body must come once [`ConnConfig::body_min_rate_grace`] is
    /// used up: the time spent waiting for body bytes may be at most the
    /// grace plus one second per `body_min_rate` bytes received (Apache's
    /// `mod_reqtimeout` `MinRate`). Zero turns the rule off.
    pub body_min_rate: u64,
    /// `--body-min-rate-grace`: the waiting time a body gets before
    /// [`ConnConfig::body_min_rate`] applies.
    pub body_min_rate_grace: Duration,
    /// `--write-timeout`: the longest a write may go without progress
    /// (a client that does not read); the connection is then closed. A
    /// partial write starts the wait again. Zero means no timeout.
    pub write_timeout: Duration,
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
    /// Defaults: keep-alive on, 2 s keep-alive (Gunicorn's), a 10 s head
    /// deadline, 30 s body and write timeouts, no minimum body rate (20 s
    /// of grace when one is set), 64 KiB drain, 1 s linger.
    pub fn new(limits: Limits) -> ConnConfig {
        ConnConfig {
            limits,
            keep_alive: true,
            keepalive_timeout: Duration::from_secs(2),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 0,
            body_min_rate_grace: Duration::from_secs(20),
            write_timeout: Duration::from_secs(30),
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
