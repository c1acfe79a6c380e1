//! Gunicorn's gevent worker without monkey-patching: the `green` worker class,
//! one stackful may coroutine per connection, thousands of connections per
//! worker. This crate owns the class: may's configuration (set in the forked
//! child only: `--threads` worker threads, core pinning off, the
//! `--green-stack-size` stack), an accept coroutine per inherited listener that
//! takes one of `--worker-connections` semaphore permits before it accepts, one
//! coroutine per connection through the `http` crate's blocking driver over
//! may's sockets (keep-alive, the head deadline and the linger timed by a
//! sweeper coroutine that wakes overdue reads, not by a may timer per wait), the
//! [`GreenHost`] whose sleep and upstream I/O yield the coroutine, a heartbeat
//! coroutine, max-requests, graceful TERM, quick INT/QUIT and exit when the
//! master dies. It never parses HTTP itself, never runs in the master, and
//! never cancels a coroutine that holds a client connection.
//!
//! **The caveat of every green model: a CPU-bound handler starves its
//! thread.** A coroutine only lets others run when it waits on may (a socket,
//! a sleep through the host). A handler that computes for seconds, or blocks
//! in a plain system call (a std socket, `std::thread::sleep`, a C library's
//! own I/O), holds its may thread for that time, and every other connection
//! scheduled on that thread waits — with `--threads 1`, the whole worker. The
//! heartbeat is a coroutine like the others and only beats from may's worker
//! threads, so such a worker stops beating and the master's `WORKER TIMEOUT`
//! line names the request that hogged it. Send CPU-bound work to `sync` or
//! `gthread` workers, or raise `--threads`. Apps must also not keep a
//! reference to a thread-local across a wait: a coroutine may resume on
//! another may thread.
//!
//! `unsafe` is denied here except in `fence`, which allows it: spawning and
//! cancelling coroutines and adopting the inherited descriptors into may.

#![deny(unsafe_code)]

mod accept;
mod config;
mod error;
#[allow(unsafe_code)] // the fence: may's unsafe spawn, cancel and from_raw_fd
mod fence;
mod heartbeat;
mod host;
mod lifecycle;
mod offload;
pub mod runtime;
mod serve;
mod tracker;
mod transport;

use runicorn_worker::{Ending, Worker, WorkerClass};

pub use config::{RuntimeConfig, MIN_STACK_BYTES};
pub use error::GreenError;
pub use host::{connect_tcp, GreenHost, GreenUpstream};

/// The `green` worker class (`-k green`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GreenWorker;

impl WorkerClass for GreenWorker {
    fn name(&self) -> &'static str {
        "green"
    }

    fn overdue_policy(&self) -> &'static str {
        "the green worker only reports it (a coroutine cannot be killed safely): the request runs on, \
         and the worker is killed as a whole only if its heartbeat stops"
    }

    fn timeout_advice(&self) -> &'static str {
        "a call in that request held a may thread without yielding (CPU work, or a blocking call that does \
         not go through the host): find it first; waits that yield never do this; move CPU-bound views to \
         -k sync or -k gthread, or raise --threads"
    }

    fn run(&self, worker: Worker) -> Ending {
        lifecycle::run(worker)
    }
}
