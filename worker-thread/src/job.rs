//! One connection's turn on a pool thread.
//!
//! A connection that waited for a thread (it was already readable when a
//! thread asked for work: every thread was busy when it came) is closed
//! unanswered if its client has hung up meanwhile, instead of holding a
//! thread for a request nobody will read (nginx logs such a client as 499).
//! Without this, clients that give up, or a load generator that stops,
//! leave a saturated worker running every abandoned request in its queue
//! before any live one: after a 200-connection `wrk` run against `-w 2
//! --threads 8` and a 100 ms app, about two seconds of work for one
//! worker's threads. Asking costs nothing: the epoll event that handed the
//! connection over says `EPOLLRDHUP` when the client had shut its sending
//! side by then, behind the unread request (a client that closed its socket
//! and one that only half-closed look the same from here). A client that
//! half-closes right after its request is still answered when a thread was
//! free for it.

use nix::sys::epoll::EpollFlags;
use runicorn_http::Outcome;

use runicorn_worker::Shared;

use crate::serve::{serve_readable, Client};

/// A parked connection the kernel reported, as a pool thread received it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    /// The connection's token in the hub.
    pub(crate) token: u64,
    /// What epoll reported for it.
    pub(crate) events: EpollFlags,
    /// It was reported before the thread asked: it waited for a thread.
    pub(crate) waited: bool,
}

/// Serves `client` until it is idle, waiting for the rest of a head, or
/// closed: the connection back with how it ended, to park it, or `None`
/// once it is closed. Unanswered when it has only an error or hang-up to
/// report, or when it waited for a thread and its client hung up meanwhile.
pub(crate) fn run_job(
    shared: &Shared,
    mut client: Client,
    ready: Ready,
) -> Option<(Client, Outcome)> {
    let hung_up = EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR;
    if !ready
        .events
        .intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP)
    {
        // An error or hang-up with nothing to read: dropping closes it.
        return None;
    }
    if ready.waited && ready.events.intersects(hung_up) {
        tracing::debug!(
            "client {} hung up while its request waited for a thread; closing it unanswered",
            client.peer()
        );
        return None;
    }
    match serve_readable(shared, &mut client) {
        Outcome::Close => None,
        outcome => Some((client, outcome)),
    }
}
