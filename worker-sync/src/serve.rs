//! One accepted connection, start to close: the blocking driver with
//! keep-alive off, the app through the blocking glue, the worker's
//! [`ConnBookkeeping`] around each request.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use runicorn_app::blocking::ThreadHost;
use runicorn_http::{Connection, Exchange, ServeMode, Transport};
use runicorn_worker::proxy::{self, HeaderRead};
use runicorn_worker::{ConnBookkeeping, Shared};

/// Serves `stream`, accepted on listener `listener`, until it closes (under
/// TLS when the worker serves TLS: the handshake is the first read). Its
/// plain request is listed while its answer has not started, so that a worker
/// the master kills for `--timeout` still answers its client
/// (`runicorn_worker::unanswered`).
pub(crate) fn connection<S: Transport + AsRawFd + AsFd>(
    shared: &Shared,
    stream: S,
    peer: String,
    listener: usize,
    accepted: Instant,
) {
    let transport = match shared.transport(stream) {
        Ok(transport) => transport,
        Err(err) => {
            tracing::error!("cannot start TLS for {peer}: {err}");
            return;
        }
    };
    let mut connection = Connection::new(transport, peer, shared.config);
    // The PROXY protocol header, when configured, before any request (and
    // before TLS): on the raw socket, on this thread (sync holds one
    // connection at a time anyway), within the head deadline that runs
    // from `accepted`.
    if shared.proxy().is_on() {
        let peer = connection.peer().to_owned();
        let fd = connection.stream().get_ref().socket().as_fd();
        match proxy::on_thread(shared, fd, &peer, accepted) {
            HeaderRead::Serve(Some(header)) => connection.set_proxied(&header),
            HeaderRead::Serve(None) => {}
            HeaderRead::Close => return,
        }
    }
    connection.watch_retirement(shared.shutdown.retirement());
    let mut bookkeeping = ConnBookkeeping::new(shared);
    let mut handler =
        |exchange: &mut Exchange<'_>| shared.call_app(exchange, &ThreadHost, listener);
    connection.serve(&mut handler, &mut bookkeeping, ServeMode::Blocking);
}
