//! The contract between the master and a worker class.
//!
//! The master forks; in the child it loads the app (unless preloaded),
//! builds a [`Worker`] and returns it to `main`, which hands it to the
//! class's [`WorkerClass::run`], which owns the rest of the child's life:
//! its runtime, its threads, its accept loop. The master knows nothing of
//! any class but this trait.

use std::sync::Arc;
use std::time::Duration;

use runicorn_app::Application;

use crate::ending::Ending;
use crate::listener::Listener;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::slot::Slot;

/// A concurrency model: `sync`, `gthread`, `green`, `async`, or a class
/// loaded from a library.
pub trait WorkerClass: Send + Sync {
    /// The name `-k` selects it by, as logged at boot.
    fn name(&self) -> &'static str;
    /// Runs in the forked child until it should exit; owns its runtime.
    /// How it ended becomes the process's exit status ([`Ending::exit_code`]).
    fn run(&self, worker: Worker) -> Ending;
    /// The most client connections one worker of this class holds at once
    /// under `settings`, for the master's descriptor-limit check: by
    /// default `--worker-connections` (the cap of gthread, green, async).
    fn connections_per_worker(&self, settings: &Settings) -> usize {
        settings.worker_connections
    }

    /// What this class does with a request that runs past `--timeout`: the
    /// end of the master's line naming such a request. The default suits a
    /// class that cannot end one request alone.
    fn overdue_policy(&self) -> &'static str {
        "this class only reports it: the request runs on, and the worker is killed as a whole only if \
         its heartbeat stops"
    }

    /// What to do, as a `WORKER TIMEOUT` line under this class says after
    /// the request it names: the slow call first, then a class that suits.
    fn timeout_advice(&self) -> &'static str {
        "find the slow call in that request first; raise --timeout only if the request is meant to be slow"
    }
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

/// "a" or "an" before a class's name in a log line ("an async worker").
pub fn article(class: &str) -> &'static str {
    match class.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// How long a worker's accept loop may wait between two heartbeats: half
/// the timeout (Gunicorn's choice) within 50 ms..1 s, so the heartbeat is
/// never late and a dead master is noticed; 1 s when there is no timeout.
pub fn poll_interval(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        return Duration::from_secs(1);
    }
    (timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Whether a worker that has served (or started) `served` requests has
/// reached `--max-requests` (0: no limit) and must retire after the
/// current request: the request reaching the limit is the last.
pub fn past_max_requests(served: u64, max_requests: u64) -> bool {
    max_requests > 0 && served >= max_requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poll_interval_keeps_the_heartbeat_on_time() {
        assert_eq!(poll_interval(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            poll_interval(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(
            poll_interval(Duration::from_millis(20)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn class_names_take_their_article() {
        assert_eq!(article("async"), "an");
        assert_eq!(article("green"), "a");
        assert_eq!(article(""), "a");
    }

    #[test]
    fn the_request_reaching_max_requests_is_the_last() {
        assert!(!past_max_requests(5, 0));
        assert!(!past_max_requests(4, 5));
        assert!(past_max_requests(5, 5));
        assert!(past_max_requests(6, 5));
    }
}
