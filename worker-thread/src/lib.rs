//! Gunicorn's gthread worker, without its weak spots: a pool of `--threads`
//! threads serves requests, and one poller on the worker's main thread owns
//! the listeners and every connection that is not being served, so an idle
//! or slow client never holds a thread.
//!
//! This crate owns the `gthread` [`WorkerClass`]. Theory of operation: the
//! poller (`poller`) waits in epoll on the listeners, the stop state's wake
//! pipe and the pool's doorbell; every connection that is not on a thread
//! is parked in the hub (`pool::Hub`), an epoll set of its own where the
//! pool threads wait. A fresh connection waits there for its first bytes
//! (at most the head deadline, `--header-timeout` from the accept), a kept-alive
//! one for its next request (at most `--keep-alive`), one whose client
//! sent part of a head for the rest (until that head's deadline, which the
//! connection reports), and one lingering after an error answer for the
//! client's last bytes (until the linger's end); the poller closes what expires, answering a partial
//! head 408 without waiting on the client. The kernel wakes one waiting
//! thread for a readable connection; that thread takes it, the `http`
//! crate's blocking driver reads heads without waiting and answers every
//! request that has arrived, pipelined ones in order, and the thread parks
//! the connection again itself once nothing is buffered or a head is still
//! incomplete, so a request never changes threads once its head is in and
//! a client dripping a head (slowloris) holds no thread; an unread request body is drained
//! (bounded) or the connection closed, so no request is ever parsed from
//! the middle of a body. The worker accepts only while a thread is free
//! (waiting with no connection ready, and not about to take a connection
//! accepted in the last `FRESH_CLAIM` whose first bytes are on the way; at
//! most one connection per free thread) and under `--worker-connections` (closing the oldest
//! idle kept-alive connection to make room), so a busy worker leaves new
//! clients in the kernel queue for a worker that can serve them now; only
//! when a connection has waited there across two looks (`ACCEPT_PATIENCE`
//! apart, so no worker had a free thread) does a saturated worker take from
//! the queue (up to `--threads` connections per look, so saturated workers
//! share a burst evenly) and serve them behind its busy threads, so
//! kept-alive clients can never starve new ones. A request that waited for
//! a thread is dropped unanswered if its client hung up meanwhile (`job`),
//! so abandoned requests never delay live ones. The heartbeat beats from the
//! poller; every request in flight has a scoreboard lane.
//!
//! What `--timeout` means here: the heartbeat only says the poller is alive,
//! so the master's silent-worker kill applies to a stuck poller, not to a
//! long request. Instead the worker reads its own scoreboard slot once per
//! poll interval; when its oldest request has run past `--timeout` it logs
//! `WORKER TIMEOUT` naming that request, stops accepting and retires
//! gracefully: its other requests finish, and if the long one has not
//! finished within `--graceful-timeout` the worker exits and takes it along.
//! (Gunicorn's gthread never ends a long request.) `--max-requests` (with
//! jitter), a panicking app, TERM and a dead master all retire the worker the
//! same way: stop accepting, answer every response that starts from then
//! on with `Connection: close`, let idle connections wait for their
//! client's next request (never closed under it) until `--keep-alive`, then
//! exit, within `--graceful-timeout`; INT/QUIT exit at once. It never parses HTTP itself, never blocks the poller on a client
//! and never runs in the master.
#![forbid(unsafe_code)]

mod accept;
mod error;
mod idle;
mod job;
mod lifecycle;
mod policy;
mod poller;
mod pool;
mod serve;
mod stream;

use runicorn_worker::{Ending, Worker, WorkerClass};

pub use error::ThreadError;

/// The `gthread` worker class (`-k gthread`, or `--threads N` with `sync`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadWorker;

impl WorkerClass for ThreadWorker {
    fn name(&self) -> &'static str {
        "gthread"
    }

    fn overdue_policy(&self) -> &'static str {
        "the gthread worker stops accepting and exits once the request ends, or at --graceful-timeout \
         (a thread cannot be killed safely, so the request is not cut sooner)"
    }

    fn timeout_advice(&self) -> &'static str {
        "the worker's poller stopped beating, so a call in that request held the whole process (the GIL \
         kept by a C extension, a lock taken before fork): find it first; raise --timeout only if that is \
         meant; for views that wait on IO, -k async waits without a thread"
    }

    fn run(&self, worker: Worker) -> Ending {
        lifecycle::run(worker)
    }
}
