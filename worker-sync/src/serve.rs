//! One accepted connection, start to close: the blocking driver with
//! keep-alive off, the app through the blocking glue, the worker's
//! [`ConnBookkeeping`] around each request.

use std::os::fd::AsRawFd;

use runicorn_app::blocking::ThreadHost;
use runicorn_http::{Connection, Exchange, ServeMode, Transport};
use runicorn_worker::{Answering, ConnBookkeeping, Shared};

/// Serves `stream`, accepted on listener `listener`, until it closes. Its
/// request is listed while its answer has not started, so that a worker
/// the master kills for `--timeout` still answers its client
/// (`runicorn_worker::unanswered`).
pub(crate) fn connection<S: Transport + AsRawFd>(
    shared: &Shared,
    stream: S,
    peer: String,
    listener: usize,
) {
    let mut connection = Connection::new(Answering::new(stream), peer, shared.config);
    connection.watch_retirement(shared.shutdown.retirement());
    let mut bookkeeping = ConnBookkeeping::new(shared);
    let mut handler =
        |exchange: &mut Exchange<'_>| shared.call_app(exchange, &ThreadHost, listener);
    connection.serve(&mut handler, &mut bookkeeping, ServeMode::Blocking);
}
