//! One accepted connection, start to close: the blocking driver with
//! keep-alive off, the app through the blocking glue, the scoreboard told
//! when each request starts and ends.

use runicorn_app::blocking::{call_app, Endpoint, ThreadHost};
use runicorn_app::App;
use runicorn_http::{
    Bookkeeping, ConnConfig, Connection, Exchange, ForwardedPolicy, ParseError, RequestDone,
    RequestHead, ServeMode, Transport,
};
use runicorn_worker::{RequestGuard, Shutdown, Slot};

/// What every connection of this worker shares.
pub(crate) struct Serving<'w> {
    /// The app's blocking entry.
    pub(crate) app: &'w dyn App,
    /// This worker's scoreboard slot.
    pub(crate) slot: &'w Slot,
    /// The worker's stop state.
    pub(crate) shutdown: &'w Shutdown,
    /// Driver settings (keep-alive off).
    pub(crate) config: ConnConfig,
    /// Whom to believe about forwarded clients and schemes.
    pub(crate) forwarded: ForwardedPolicy,
    /// Each listener's address, as apps are told it, by listener index.
    pub(crate) server_addrs: Vec<String>,
}

/// The worker's bookkeeping of one connection's requests: the scoreboard lane and the counters.
struct ConnBookkeeping<'w> {
    slot: &'w Slot,
    shutdown: &'w Shutdown,
    peer: &'w str,
    in_flight: Option<RequestGuard>,
    finished: u64,
}

impl Bookkeeping for ConnBookkeeping<'_> {
    fn should_close(&mut self) -> bool {
        !self.shutdown.is_running()
    }

    fn request_started(&mut self, head: &RequestHead) {
        let line = format!("{} {} {}", head.method, head.target, head.version.as_str());
        self.in_flight = Some(self.slot.begin_request(&line));
    }

    fn request_finished(&mut self, _done: &RequestDone<'_>) {
        // Dropping the guard frees the lane and counts the request served.
        self.in_flight = None;
        self.finished += 1;
    }

    fn bad_request(&mut self, err: &ParseError) {
        let peer = if self.peer.is_empty() {
            "unix socket"
        } else {
            self.peer
        };
        tracing::debug!("Invalid request from ip={peer}: {err}");
    }
}

impl Serving<'_> {
    /// Serves `stream`, accepted on listener `listener`, until it closes;
    /// returns the requests answered by the app (0 for a connection that
    /// sent nothing, or only garbage).
    pub(crate) fn connection<S: Transport>(&self, stream: S, peer: String, listener: usize) -> u64 {
        let mut connection = Connection::new(stream, peer.clone(), self.config);
        connection.watch_retirement(self.shutdown.retirement());
        let mut bookkeeping = ConnBookkeeping {
            slot: self.slot,
            shutdown: self.shutdown,
            peer: &peer,
            in_flight: None,
            finished: 0,
        };
        let shutdown = self.shutdown;
        let app = self.app;
        let endpoint = Endpoint {
            server_addr: self.server_addrs.get(listener).map_or("", String::as_str),
            forwarded: &self.forwarded,
        };
        let mut handler = |exchange: &mut Exchange<'_>| {
            if let Err(err) = call_app(app, exchange, &ThreadHost, &endpoint) {
                if err.panicked {
                    shutdown.retire_after_panic();
                }
            }
        };
        connection.serve(&mut handler, &mut bookkeeping, ServeMode::Blocking);
        bookkeeping.finished
    }
}
