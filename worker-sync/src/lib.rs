//! Gunicorn's sync worker: one connection at a time, blocking I/O,
//! `Connection: close` on every response.
//!
//! This crate owns the `sync` [`WorkerClass`]: an accept loop that polls the
//! inherited listeners and the shutdown wake fd with a timeout (so the
//! heartbeat beats while idle), serves each accepted connection through the
//! `http` crate's blocking driver and the app crate's blocking glue, counts
//! requests toward `max_requests`, finishes the current request on TERM and
//! leaves at once on INT/QUIT or when the master dies. It never keeps a
//! connection open after its response (one slow client cannot hold the
//! worker), never parses HTTP itself and never runs in the master.
#![forbid(unsafe_code)]

mod accept;
mod error;
mod lifecycle;
mod serve;

use runicorn_worker::{Ending, Settings, Worker, WorkerClass};

pub use error::SyncError;

/// The `sync` worker class (`-k sync`, the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncWorker;

impl WorkerClass for SyncWorker {
    fn name(&self) -> &'static str {
        "sync"
    }

    fn run(&self, worker: Worker) -> Ending {
        lifecycle::run(worker)
    }

    /// One connection at a time, whatever `--worker-connections` says.
    fn connections_per_worker(&self, _settings: &Settings) -> usize {
        1
    }

    fn overdue_policy(&self) -> &'static str {
        "the sync worker is killed with it (its heartbeat stops while a request runs: WORKER TIMEOUT)"
    }

    fn timeout_advice(&self) -> &'static str {
        "find the slow call in that request first (a query, an upstream call without a timeout of its \
         own); raise --timeout only if the request is meant to be slow; for views that wait on IO use \
         -k gthread --threads N or -k async, where a waiting request does not hold the whole worker"
    }
}
