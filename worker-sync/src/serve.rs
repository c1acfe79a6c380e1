//! One accepted connection, start to close: the blocking driver with
//! keep-alive off, the app through the blocking glue, the worker's
//! [`ConnBookkeeping`] around each request.

use runicorn_app::blocking::ThreadHost;
use runicorn_http::{Connection, Exchange, ServeMode, Transport};
use runicorn_worker::{ConnBookkeeping, Shared};

/// Serves `stream`, accepted on listener `listener`, until it closes.
pub(crate) fn connection<S: Transport>(shared: &Shared, stream: S, peer: String, listener: usize) {
    let mut connection = Connection::new(stream, peer, shared.config);
    connection.watch_retirement(shared.shutdown.retirement());
    let mut bookkeeping = ConnBookkeeping::new(shared);
    let mut handler =
        |exchange: &mut Exchange<'_>| shared.call_app(exchange, &ThreadHost, listener);
    connection.serve(&mut handler, &mut bookkeeping, ServeMode::Blocking);
}
