//! What the master counts and serves as Prometheus metrics.
//!
//! The workers count their own requests in their scoreboard slots (status
//! class, duration histogram: `runicorn_worker::slot`); the master adds the
//! live slots to [`Totals`], where it folds each worker's counts when it
//! reaps it, so no count drops when a worker is replaced; workers that left
//! are counted by reason where they are reaped (`ExitCounts`). `--metrics-bind`
//! serves them at `/metrics` ([`MetricsServer`], `server.rs`, one
//! connection at a time per client in `scrape.rs`), from the loop's poll
//! set: no thread, nothing that blocks. `render.rs` writes the Prometheus
//! text format with the `prometheus-client` crate; `process.rs` reads a
//! worker's CPU time from `/proc` when a scrape asks (its RSS: `crate::memory`).

pub mod process;
mod render;
mod scrape;
mod server;

pub use render::render;
pub(crate) use server::MetricsServer;

use runicorn_worker::slot::Counters;
use runicorn_worker::Slot;

use crate::arbiter::ExitCounts;

/// The requests of the workers the master has reaped.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Their finished requests.
    pub folded: Counters,
}

impl Totals {
    /// Adds a reaped worker's counts (call before its slot is reused).
    pub fn fold(&mut self, slot: &Slot) {
        self.folded.add(&slot.counters());
    }
}

/// One live worker, as a scrape sees it.
#[derive(Debug, Clone)]
pub struct WorkerSample {
    /// Its pid.
    pub pid: i32,
    /// It has booted (loaded the app, first heartbeat).
    pub booted: bool,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Requests it finished.
    pub served: u64,
    /// Its finished requests' counters.
    pub counters: Counters,
    /// Its resident memory, bytes (`/proc/<pid>/statm`).
    pub rss_bytes: Option<u64>,
    /// The CPU time it used, user and system, seconds (`/proc/<pid>/stat`).
    pub cpu_seconds: Option<f64>,
}

/// One listener's accept queue.
#[derive(Debug, Clone)]
pub struct ListenerSample {
    /// The listener, as `Listening at:` names it.
    pub name: String,
    /// Connections queued and the queue's limit (TCP only: `TCP_INFO`).
    pub queue: Option<(u32, u32)>,
}

/// Everything one scrape reports, read from the master's state.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The worker class.
    pub class: &'static str,
    /// Workers the master keeps (`-w`, TTIN/TTOU).
    pub target_workers: usize,
    /// The live workers.
    pub workers: Vec<WorkerSample>,
    /// Requests of the reaped workers.
    pub totals: Totals,
    /// Workers that left, by reason (`arbiter/reap.rs`).
    pub exits: ExitCounts,
    /// The listeners.
    pub listeners: Vec<ListenerSample>,
}

impl Sample {
    /// The finished requests of every worker, live and reaped.
    pub fn requests(&self) -> Counters {
        let mut sum = self.totals.folded;
        for worker in &self.workers {
            sum.add(&worker.counters);
        }
        sum
    }
}
