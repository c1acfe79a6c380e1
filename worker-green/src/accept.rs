//! The accept loops: one coroutine per inherited listener. Each takes a
//! connection permit from the worker's may semaphore *before* it accepts,
//! so a worker holding `--worker-connections` connections stops accepting
//! and leaves new clients in the kernel's queue for the other workers; then
//! it accepts and hands the connection, with its permit, to a coroutine of
//! its own. An accept error such as EMFILE pauses the loop
//! (`runicorn_worker::AcceptBackoff`: the kit's cause-and-fix line).

use std::io;
use std::sync::Arc;

use may::coroutine::JoinHandle;
use may::sync::Semphore;
use runicorn_worker::{is_transient_accept_error, AcceptBackoff, Accepted};

use crate::fence::{self, GreenListener};
use crate::runtime;
use crate::serve::{self, Green};
use crate::tracker::Open;
use crate::transport::Socket;

/// One of `--worker-connections` slots; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct Permit(Arc<Semphore>);

impl Permit {
    /// Waits (yielding) for a free slot.
    pub(crate) fn acquire(permits: &Arc<Semphore>) -> Permit {
        permits.wait();
        Permit(Arc::clone(permits))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.post();
    }
}

/// Starts the accept coroutine of `listener` (logged as `name`), the
/// worker's listener `index`.
pub(crate) fn spawn_acceptor(
    listener: GreenListener,
    name: String,
    index: usize,
    green: Green,
) -> io::Result<JoinHandle<()>> {
    fence::spawn(move || accept_loop(&listener, &name, index, &green))
}

fn accept_loop(listener: &GreenListener, name: &str, index: usize, green: &Green) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let permit = Permit::acquire(&green.permits);
        match accept(listener) {
            Ok((socket, peer)) => {
                backoff.reset();
                // Open from now, so a graceful stop waits for it.
                let open = Open::new(Arc::clone(&green.tracker));
                let green = green.clone();
                let spawned = fence::spawn(move || {
                    let _permit = permit;
                    let _open = open;
                    serve::connection(&green, socket, peer, index);
                });
                if let Err(err) = spawned {
                    // The closure (socket, open, permit) is dropped: the
                    // client sees the connection closed.
                    tracing::error!("cannot start a connection coroutine: {err}; lower --worker-connections or --green-stack-size");
                }
            }
            Err(err) if is_transient_accept_error(&err) => {}
            Err(err) => {
                drop(permit);
                let pause = backoff.failed(name, &err);
                runtime::sleep(pause);
            }
        }
    }
}

/// Serves a connection the stop took off listener `index`'s queue, in a
/// coroutine of its own, counted open so the stop waits for it. It takes no
/// permit: a stopping worker serves what the kernel queued for it whatever
/// `--worker-connections` says, or the client would be reset.
pub(crate) fn serve_taken(green: &Green, index: usize, accepted: Accepted) {
    let (socket, peer) = match fence::adopt_stream(accepted) {
        Ok(adopted) => adopted,
        Err(err) => {
            tracing::error!("cannot hand a queued connection to may: {err}");
            return;
        }
    };
    let open = Open::new(Arc::clone(&green.tracker));
    let green = green.clone();
    let spawned = fence::spawn(move || {
        let _open = open;
        serve::connection(&green, socket, peer, index);
    });
    if let Err(err) = spawned {
        tracing::error!("cannot start a connection coroutine: {err}; lower --worker-connections or --green-stack-size");
    }
}

fn accept(listener: &GreenListener) -> io::Result<(Socket, String)> {
    match listener {
        GreenListener::Tcp(tcp) => {
            let (stream, peer) = tcp.accept()?;
            // Best effort: a response is written in few writes anyway.
            let _ = stream.set_nodelay(true);
            Ok((Socket::Tcp(stream), peer.to_string()))
        }
        GreenListener::Unix(unix) => {
            let (stream, _) = unix.accept()?;
            Ok((Socket::Unix(stream), String::new()))
        }
    }
}
