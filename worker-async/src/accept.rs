//! The accept loops: one task per listener on each runtime. Each takes one
//! of the `--worker-connections` permits *before* it accepts, so a full
//! worker leaves new clients in the kernel's queue for the other workers;
//! then it accepts and spawns the connection's task with its permit. An
//! accept error such as EMFILE pauses this loop with the kit's doubling
//! back-off and cause-and-fix line (`runicorn_worker::AcceptBackoff`)
//! instead of spinning on a listener that stays readable.
//! When the worker stops accepting, the loop closes its listener, after
//! taking and serving what the kernel queued on it when the service stops
//! (`runicorn_worker::stop_accepting`).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use runicorn_http::Proxied;
use runicorn_worker::proxy::{self, HeaderRead};
use runicorn_worker::{is_transient_accept_error, stop_accepting, AcceptBackoff, Drain, Listener};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::OwnedSemaphorePermit;

use crate::connection::Connection;
use crate::driver;
use crate::local::Local;
use crate::proxy::{read_header, Readiness};

/// A listener registered with one runtime.
#[derive(Debug)]
pub(crate) enum AsyncListener {
    /// TCP, v4 or v6.
    Tcp(TcpListener),
    /// A unix stream socket.
    Unix(UnixListener),
}

/// Accepts on `listener` until the worker stops accepting, then closes it
/// (see the module's notes).
pub(crate) async fn accept_loop(
    listener: AsyncListener,
    name: String,
    server_addr: Arc<str>,
    local: Rc<Local>,
) {
    accept_until_stopped(&listener, &name, &server_addr, &local).await;
    close(listener, &name, &server_addr, &local);
}

/// The worker stops accepting on `listener`: what is queued is taken and
/// served when the service stops, and the listener is closed.
fn close(listener: AsyncListener, name: &str, server_addr: &Arc<str>, local: &Rc<Local>) {
    let listener = match listener {
        AsyncListener::Tcp(tcp) => tcp.into_std().map(Listener::Tcp),
        AsyncListener::Unix(unix) => unix.into_std().map(Listener::Unix),
    };
    let listener = match listener {
        Ok(listener) => listener,
        Err(err) => {
            // Dropped, so closed all the same.
            tracing::error!("cannot take the queued connections of {name}: {err}");
            return;
        }
    };
    for (_, accepted) in stop_accepting(vec![listener], Drain::on_stop(&local.shared.slot)) {
        let spawned = match accepted {
            runicorn_worker::Accepted::Tcp(stream, peer) => stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(stream))
                .map(|stream| {
                    let _ = stream.set_nodelay(true);
                    spawn_connection(stream, peer.to_string(), server_addr, None, local);
                }),
            runicorn_worker::Accepted::Unix(stream) => stream
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixStream::from_std(stream))
                .map(|stream| spawn_connection(stream, String::new(), server_addr, None, local)),
        };
        if let Err(err) = spawned {
            tracing::error!("cannot serve a connection queued on {name}: {err}");
        }
    }
}

async fn accept_until_stopped(
    listener: &AsyncListener,
    name: &str,
    server_addr: &Arc<str>,
    local: &Rc<Local>,
) {
    let mut stop = local.stop.clone();
    let mut backoff = AcceptBackoff::default();
    loop {
        // The stop state is read directly too: a max-requests or panic
        // retirement on this runtime stops accepting at once, before the
        // main thread has broadcast the stop.
        if *stop.borrow_and_update() || !local.shared.shutdown.is_running() {
            return;
        }
        let permits = Arc::clone(&local.serving.permits);
        let permit = tokio::select! {
            biased;
            _ = stop.changed() => return,
            permit = permits.acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => return,
            accepted = accept(listener) => accepted,
        };
        match accepted {
            Ok(Accepted::Tcp(stream, peer)) => {
                backoff.reset();
                // Best effort: responses are written in few writes anyway.
                let _ = stream.set_nodelay(true);
                spawn_connection(stream, peer, server_addr, Some(permit), local);
            }
            Ok(Accepted::Unix(stream)) => {
                backoff.reset();
                spawn_connection(stream, String::new(), server_addr, Some(permit), local);
            }
            Err(err) if is_transient_accept_error(&err) => {}
            Err(err) => {
                drop(permit);
                let pause = backoff.failed(name, &err);
                tokio::select! {
                    biased;
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream, String),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &AsyncListener) -> io::Result<Accepted> {
    match listener {
        AsyncListener::Tcp(tcp) => {
            let (stream, peer) = tcp.accept().await?;
            Ok(Accepted::Tcp(stream, peer.to_string()))
        }
        AsyncListener::Unix(unix) => {
            let (stream, _) = unix.accept().await?;
            Ok(Accepted::Unix(stream))
        }
    }
}

/// Starts the task of a connection, holding its `--worker-connections`
/// permit (none for one a stop took off the queue: it is served whatever
/// the limit says, or its client would be reset). Under TLS the task first
/// runs the handshake (tokio-rustls, the config the master checked),
/// within the head's wait: a client that stalls it is dropped then.
fn spawn_connection<S>(
    stream: S,
    peer: String,
    server_addr: &Arc<str>,
    permit: Option<OwnedSemaphorePermit>,
    local: &Rc<Local>,
) where
    S: AsyncRead + AsyncWrite + AsRawFd + Readiness + Unpin + Send + 'static,
{
    let accepted = Instant::now();
    let live = local.open();
    let local = Rc::clone(local);
    let server_addr = Arc::clone(server_addr);
    tokio::task::spawn_local(async move {
        let _permit = permit;
        let _live = live;
        // The PROXY protocol header, when configured, before anything
        // else: on the raw socket, within the head deadline from accept.
        let mut peer = peer;
        let mut proxied = None;
        let policy = local.shared.proxy();
        let deadline = proxy::header_deadline(&local.shared.config, accepted);
        if policy.is_on() {
            match read_header(&stream, &peer, policy, deadline).await {
                HeaderRead::Serve(Some(header)) => {
                    if let Some(source) = header.source {
                        peer = source.to_string();
                    }
                    proxied = Some(Proxied::from(&header));
                }
                HeaderRead::Serve(None) => {}
                HeaderRead::Close => return,
            }
        }
        let Some(tls) = local.shared.tls() else {
            let fd = stream.as_raw_fd();
            let mut conn = connection(stream, fd, peer, server_addr, &local);
            conn.proxied = proxied;
            // One head deadline from the accept, the PROXY header included.
            conn.state.accepted_at(accepted);
            driver::serve(conn, local).await;
            return;
        };
        // Then TLS, within the same deadline.
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls.config()));
        let handshake = acceptor.accept(stream);
        let stream = match deadline {
            None => handshake.await,
            Some(deadline) => {
                match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), handshake)
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(io::ErrorKind::TimedOut.into()),
                }
            }
        };
        match stream {
            // Not listed for a killed worker's answer (-1): that answer is
            // plaintext, which a TLS client cannot read.
            Ok(stream) => {
                let mut conn = connection(stream, -1, peer, server_addr, &local);
                conn.tls = true;
                conn.proxied = proxied;
                // One head deadline from the accept, the handshake included.
                conn.state.accepted_at(accepted);
                driver::serve(conn, local).await;
            }
            Err(err) => tracing::debug!("TLS handshake with {} failed: {err}", client_name(&peer)),
        }
    });
}

/// A connection's state for `stream` (`fd`: its descriptor, when a killed
/// worker may answer its client; -1 when not).
fn connection<S>(
    stream: S,
    fd: RawFd,
    peer: String,
    server_addr: Arc<str>,
    local: &Local,
) -> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Connection::new(stream, peer, local.shared.config);
    conn.fd = fd;
    conn.state
        .watch_retirement(local.shared.shutdown.retirement());
    conn.server_addr = server_addr;
    conn
}

fn client_name(peer: &str) -> &str {
    runicorn_worker::shared::client(peer)
}
