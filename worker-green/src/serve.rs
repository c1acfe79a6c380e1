//! One connection, start to close, in its own coroutine: the blocking http
//! driver over a may socket (keep-alive on, pipelining as the driver does
//! it), the app through the blocking glue with [`GreenHost`], the
//! worker's [`ConnBookkeeping`] around each request (the scoreboard,
//! `--max-requests`).

use std::sync::Arc;

use may::sync::Semphore;
use runicorn_app::blocking::{call_app, ThreadHost};
use runicorn_http::{Connection, Exchange, ServeMode};
use std::time::Instant;

use runicorn_worker::proxy::{self, HeaderRead};
use runicorn_worker::{ConnBookkeeping, Shared};

use crate::fence::{run_on_pool, WaitedOn};
use crate::host::GreenHost;
use crate::offload::Pool;
use crate::tracker::Tracker;
use crate::transport::{GreenStream, Socket, Sweeper};

/// What every accept and connection coroutine of a green worker shares:
/// the worker's [`Shared`] state, and the green class's own parts.
#[derive(Debug, Clone)]
pub(crate) struct Green {
    /// The worker's state and per-request bookkeeping.
    pub(crate) shared: Arc<Shared>,
    /// Where apps that block a thread run (`App::blocks_thread`).
    pub(crate) pool: Arc<Pool>,
    /// Times out the connections' reads.
    pub(crate) sweeper: Arc<Sweeper>,
    /// Open connections, which a graceful stop waits for.
    pub(crate) tracker: Arc<Tracker>,
    /// `--worker-connections` permits, taken before accept.
    pub(crate) permits: Arc<Semphore>,
}

/// Serves `socket`, accepted on listener `listener`, until it closes. Runs
/// inside the connection's coroutine.
pub(crate) fn connection(green: &Green, socket: Socket, peer: String, listener: usize) {
    let shared = &*green.shared;
    let accepted = Instant::now();
    let stream = GreenStream::new(socket, &green.sweeper);
    // Under TLS when the worker serves TLS; a plain connection is listed
    // while its answer has not started: a worker killed for a missed
    // heartbeat still answers its client (`runicorn_worker::unanswered`).
    let transport = match shared.transport(stream) {
        Ok(transport) => transport,
        Err(err) => {
            tracing::error!("cannot start TLS for {peer}: {err}");
            return;
        }
    };
    let mut connection = Connection::new(transport, peer, shared.config);
    // The PROXY protocol header, when configured, before any request (and
    // before TLS): read on the raw socket within the head deadline (from
    // `accepted`), the coroutine yielding while it waits.
    let policy = shared.proxy();
    if policy.is_on() {
        let deadline = proxy::header_deadline(&shared.config, accepted);
        let peer = connection.peer().to_owned();
        let stream = connection.stream_mut().get_mut().socket_mut();
        match proxy::read_header(stream, &peer, policy, deadline) {
            HeaderRead::Serve(Some(header)) => connection.set_proxied(&header),
            HeaderRead::Serve(None) => {}
            HeaderRead::Close => return,
        }
    }
    connection.watch_retirement(shared.shutdown.retirement());
    let mut bookkeeping = ConnBookkeeping::new(shared);
    let app = &*shared.app.sync;
    let endpoint = shared.endpoint(listener);
    let on_pool = app.blocks_thread();
    let pool = &green.pool;
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
        // A panic closes this response's connection; the rest in flight
        // are finished before the worker retires.
        shared.app_returned(&result);
    };
    connection.serve(&mut handler, &mut bookkeeping, ServeMode::Blocking);
}
