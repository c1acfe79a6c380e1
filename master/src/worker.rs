//! The contract between the master and a worker class.
//!
//! The master forks; in the child it loads the app (unless preloaded),
//! builds a [`Worker`] and hands it to the class's [`WorkerClass::run`],
//! which owns the rest of the child's life: its runtime, its threads, its
//! accept loop. The master knows nothing of any class but this trait.

use std::process::ExitCode;
use std::sync::Arc;

use runicorn_app::Application;

use crate::listener::Listener;
use crate::scoreboard::Slot;
use crate::settings::Settings;
use crate::shutdown::Shutdown;

/// A concurrency model: `sync`, `gthread`, `green`, `async`, or a class
/// loaded from a library.
pub trait WorkerClass: Send + Sync {
    /// The name `-k` selects it by, as logged at boot.
    fn name(&self) -> &'static str;
    /// Runs in the forked child until it should exit; owns its runtime.
    /// Exit codes: 0 after a clean stop, 3 when the worker cannot boot.
    fn run(&self, worker: Worker) -> ExitCode;
}

/// What a worker class gets from the master, and nothing more.
#[derive(Debug)]
pub struct Worker {
    /// The listeners the master bound, inherited across fork.
    pub listeners: Vec<Listener>,
    /// The settings of this worker's generation.
    pub settings: Arc<Settings>,
    /// The app, loaded in this child (or preloaded in the master), with
    /// `init_worker` already called.
    pub app: Application,
    /// This worker's scoreboard slot: heartbeat and request counters.
    pub slot: Slot,
    /// Graceful or quick stop, set by this worker's own signal handling.
    pub shutdown: Shutdown,
    /// The spawn order, as Gunicorn's `worker.age`.
    pub age: u64,
    /// Requests after which this worker retires gracefully (jitter applied);
    /// 0 means never.
    pub max_requests: u64,
}
