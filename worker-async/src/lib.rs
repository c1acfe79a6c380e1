//! The `async` worker class (Gunicorn users know it as `uvicorn.workers.UvicornWorker`): in each
//! forked worker, one tokio `current_thread` runtime per `--threads` (default 1), each on its own
//! thread and sharing the inherited listeners; one task per connection, a loop that does what the
//! `http` crate's sans-IO connection state machine says (no second parser, no rule of its own); a
//! semaphore of `--worker-connections` permits taken *before* accept, so a full worker leaves
//! clients in the kernel's queue for its siblings; accept errors such as EMFILE back off (10 ms
//! doubling to 1 s) instead of spinning. Apps with an async entry are awaited on the runtime, their
//! sleeps tokio timers. Sync apps run on a bounded blocking pool, `--blocking-threads` (default 40,
//! shared out between the runtimes): 40 is AnyIO's default thread limiter, the pool in which
//! Starlette and FastAPI run sync endpoints, so an app moved from there sees the same concurrency
//! for blocking code; the connection is handed to the pool thread and its waits are the runtime's
//! I/O driven with `Handle::block_on`, so a sync app never stalls the event loop. Keep-alive, a
//! head deadline, pipelining with one write per batch of responses (all decided by the state
//! machine), a heartbeat from each runtime's tick task that beats only while every runtime ticks (a
//! stuck runtime thread stops it, and the master's timeout log names the request), `--max-requests`
//! (+ jitter), graceful TERM within `--graceful-timeout`, quick INT/QUIT, exit when the master
//! dies, and a panicking app recycles the worker after its 500. This crate never runs in the
//! master, never starts a runtime or thread before `run` is called in the forked child, and never
//! parses HTTP itself.
#![forbid(unsafe_code)]

mod accept;
mod call;
mod connection;
mod driver;
mod error;
mod heartbeat;
mod lifecycle;
mod local;
mod proxy;
mod runtime;
mod serve;

#[cfg(test)]
mod tests;

use runicorn_worker::{Ending, Worker, WorkerClass};

pub use error::AsyncError;

/// The `async` worker class (`-k async`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncWorker;

impl WorkerClass for AsyncWorker {
    fn name(&self) -> &'static str {
        "async"
    }

    fn overdue_policy(&self) -> &'static str {
        "the async worker only reports it (a task cannot be killed safely): the request runs on, and the \
         worker is killed as a whole only if its heartbeat stops"
    }

    fn timeout_advice(&self) -> &'static str {
        "a call in that request blocked the event loop's thread (CPU work or blocking I/O inside an async \
         view): find it first; await it, or serve the view as a sync app (which runs on the blocking \
         pool); CPU-bound views belong under -k sync or -k gthread"
    }

    fn run(&self, worker: Worker) -> Ending {
        lifecycle::run(worker)
    }
}
