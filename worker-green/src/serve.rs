//! One connection, start to close, in its own coroutine: the blocking http
//! driver over a may socket (keep-alive on, pipelining as the driver does
//! it), the app through the blocking glue with [`GreenHost`], the
//! scoreboard told when each request starts and ends, and the request
//! count checked against `max_requests`.

use std::sync::Arc;

use runicorn_app::blocking::{call_app, Endpoint, ThreadHost};
use runicorn_app::App;
use runicorn_http::{
    Bookkeeping, ConnConfig, Connection, Exchange, ForwardedPolicy, ParseError, RequestDone,
    RequestHead, ServeMode,
};
use runicorn_worker::{RequestGuard, Shutdown, Slot};

use crate::fence::{run_on_pool, WaitedOn};
use crate::host::GreenHost;
use crate::offload::Pool;
use crate::tracker::Tracker;
use crate::transport::{GreenStream, Socket, Sweeper};

/// What every connection coroutine of this worker shares.
pub(crate) struct Shared {
    /// The app's blocking entry.
    pub(crate) app: Arc<dyn App>,
    /// This worker's scoreboard slot.
    pub(crate) slot: Slot,
    /// The worker's stop state.
    pub(crate) shutdown: Shutdown,
    /// Driver settings (keep-alive on).
    pub(crate) config: ConnConfig,
    /// Requests after which the worker retires (0: never).
    pub(crate) max_requests: u64,
    /// Open connections, requests started.
    pub(crate) tracker: Arc<Tracker>,
    /// Whom to believe about forwarded clients and schemes.
    pub(crate) forwarded: ForwardedPolicy,
    /// Each listener's address, as apps are told it, by listener index.
    pub(crate) server_addrs: Vec<String>,
    /// Where apps that block a thread run (`App::blocks_thread`).
    pub(crate) pool: Arc<Pool>,
    /// Times out the connections' reads.
    pub(crate) sweeper: Arc<Sweeper>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("max_requests", &self.max_requests)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// True once the next request should be this worker's last on its
    /// connection: stopping, or the max-requests budget is spent.
    fn closing(&self) -> bool {
        !self.shutdown.is_running()
            || (self.max_requests > 0 && self.tracker.started() + 1 >= self.max_requests)
    }
}

/// The worker's bookkeeping of one connection's requests.
struct ConnBookkeeping<'c> {
    shared: &'c Shared,
    peer: &'c str,
    in_flight: Option<RequestGuard>,
    /// The request line for the scoreboard, reused: no allocation and no
    /// formatting per request.
    line: String,
}

impl Bookkeeping for ConnBookkeeping<'_> {
    fn should_close(&mut self) -> bool {
        self.shared.closing()
    }

    fn request_started(&mut self, head: &RequestHead) {
        let line = &mut self.line;
        line.clear();
        line.push_str(&head.method);
        line.push(' ');
        line.push_str(&head.target);
        line.push(' ');
        line.push_str(head.version.as_str());
        self.in_flight = Some(self.shared.slot.begin_request(line));
        let started = self.shared.tracker.start_request();
        let max = self.shared.max_requests;
        if max > 0 && started == max {
            tracing::info!("Autorestarting worker after current request.");
            self.shared.shutdown.request_graceful();
        }
    }

    fn request_finished(&mut self, _done: &RequestDone<'_>) {
        // Dropping the guard frees the lane and counts the request served.
        self.in_flight = None;
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

/// Serves `socket`, accepted on listener `listener`, until it closes. Runs
/// inside the connection's coroutine.
pub(crate) fn connection(shared: &Shared, socket: Socket, peer: String, listener: usize) {
    let stream = GreenStream::new(socket, &shared.sweeper);
    let mut connection = Connection::new(stream, peer.clone(), shared.config);
    connection.watch_retirement(shared.shutdown.retirement());
    let mut bookkeeping = ConnBookkeeping {
        shared,
        peer: &peer,
        in_flight: None,
        line: String::new(),
    };
    let app = &*shared.app;
    let shutdown = &shared.shutdown;
    let endpoint = Endpoint {
        server_addr: shared.server_addrs.get(listener).map_or("", String::as_str),
        forwarded: &shared.forwarded,
    };
    let on_pool = app.blocks_thread();
    let pool = &shared.pool;
    let mut handler = |exchange: &mut Exchange<'_>| {
        let result = if on_pool {
            // The app's own waits would block this may thread: run it on a
            // pool thread (with host waits that block that thread) while
            // this coroutine waits.
            let mut result = None;
            let task = WaitedOn((&mut *exchange, &mut result));
            let endpoint = &endpoint;
            run_on_pool(
                pool,
                Box::new(move || {
                    let WaitedOn((exchange, result)) = { task };
                    *result = Some(call_app(app, exchange, &ThreadHost, endpoint));
                }),
            );
            result.unwrap_or_else(|| {
                Err(runicorn_app::AppError::new(
                    "the blocking pool lost a request",
                ))
            })
        } else {
            call_app(app, exchange, &GreenHost, &endpoint)
        };
        if let Err(err) = result {
            if err.panicked {
                // This response closes its connection; the rest in flight
                // are finished before the worker retires.
                shutdown.retire_after_panic();
            }
        }
    };
    connection.serve(&mut handler, &mut bookkeeping, ServeMode::Blocking);
}
