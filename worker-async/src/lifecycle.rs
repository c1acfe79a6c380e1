//! The worker's main thread: boots the runtimes, then watches the stop
//! state (the shutdown wake fd, with a timeout so a dead master is noticed)
//! while the runtime threads serve. On a graceful stop (TERM, max-requests,
//! a panicking app, the master gone) it tells every runtime to stop
//! accepting and waits for their connections within `--graceful-timeout`;
//! on a quick stop (INT/QUIT) it ends the process at once, even with a
//! runtime thread stuck in app code.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runicorn_http::ConnConfig;
use runicorn_worker::blocking_pool::{self, PoolReason};
use runicorn_worker::{quick_exit, Ending, Settings, Shared, ShutdownState, Worker};
use tokio::sync::{watch, Semaphore};

use crate::error::AsyncError;
use crate::heartbeat::{self, Beats};
use crate::local::Serving;
use crate::runtime::{self, Launch};

/// How often the main thread re-checks while a graceful stop runs (the
/// wake fd then stays readable, so it can no longer wait on it).
const GRACEFUL_RECHECK: Duration = Duration::from_millis(50);

/// The connection settings of an async worker: keep-alive on.
pub(crate) fn conn_config(settings: &Settings) -> ConnConfig {
    settings.conn_config(true)
}

/// Runs the worker until it should exit; its exit code.
pub(crate) fn run(mut worker: Worker) -> Ending {
    let runtimes = worker.settings.threads.max(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = mpsc::channel();
    if let Err(err) = boot(&worker, runtimes, stop_rx, done_tx) {
        return Ending::boot_failed(err);
    }
    // Each runtime accepts on copies of its own: these are not used again,
    // and a copy kept open would keep the socket queueing clients after the
    // runtimes stopped accepting.
    drop(std::mem::take(&mut worker.listeners));
    let ended_early = wait_for_stop(&worker, &done_rx);
    // Stop accepting everywhere; each connection ends after its next answer
    // (`Connection: close`) or, idle, at `--keep-alive`.
    let _ = stop_tx.send(true);
    let finished = wait_for_runtimes(&worker, &done_rx, runtimes - ended_early);
    if finished {
        worker.app.sync.shutdown_worker();
    } else {
        tracing::warn!(
            "Worker (pid: {}) still had requests in flight after the graceful timeout ({:?}); exiting",
            std::process::id(),
            worker.settings.graceful_timeout
        );
        // Their clients get a 500 rather than a reset.
        runicorn_worker::unanswered::answer_all();
    }
    Ending::Stopped
}

fn boot(
    worker: &Worker,
    runtimes: usize,
    stop: watch::Receiver<bool>,
    done: mpsc::Sender<usize>,
) -> Result<(), AsyncError> {
    let settings = &worker.settings;
    let shared = Arc::new(Shared::new(worker, conn_config(settings)));
    let serving = Serving {
        permits: Arc::new(Semaphore::new(settings.worker_connections.max(1))),
        log_requests: tracing::enabled!(tracing::Level::DEBUG),
    };
    let every = heartbeat::interval(settings.timeout);
    let beats = Arc::new(Beats::new(worker.slot.clone(), runtimes, every));
    // The pool is shared out between the runtimes, so `--blocking-threads`
    // bounds the worker's threads for sync apps whatever `--threads` is.
    let per_runtime = settings.blocking_threads.div_ceil(runtimes).max(1);
    if worker.app.asynch.is_none() {
        // Its blocking entry runs on the runtime's blocking pool
        // (`serve::call_blocking`): a connection stays on the runtime that
        // accepted it, so the worker serves at most its runtimes' shares.
        let reason = if worker.app.sync.blocks_thread() {
            PoolReason::BlocksThread
        } else {
            PoolReason::NoAsyncEntry
        };
        blocking_pool::log_pool(
            reason,
            per_runtime.saturating_mul(runtimes),
            settings.blocking_threads,
        );
    }
    let prepared = (0..runtimes)
        .map(|index| runtime::prepare(index, per_runtime, &worker.listeners))
        .collect::<Result<Vec<_>, _>>()?;
    let launch = Launch {
        shared,
        serving,
        beats,
        every,
        stop,
        done,
    };
    for runtime in prepared {
        runtime::spawn(runtime, launch.clone())?;
    }
    Ok(())
}

/// Blocks the main thread until the worker should stop accepting; the
/// number of runtimes that already ended (0, or 1 when one ended early).
fn wait_for_stop(worker: &Worker, done: &mpsc::Receiver<usize>) -> usize {
    let every = heartbeat::interval(worker.settings.timeout);
    let timeout = PollTimeout::try_from(every).unwrap_or(PollTimeout::MAX);
    loop {
        match worker.shutdown.state() {
            ShutdownState::Quick => quick_exit(),
            ShutdownState::Graceful => return 0,
            ShutdownState::Running => {}
        }
        if worker.shutdown.retire_if_orphaned() {
            return 0;
        }
        if let Ok(index) = done.try_recv() {
            tracing::error!(
                "runtime {index} of worker (pid: {}) ended unexpectedly; the worker exits and the master replaces it",
                std::process::id()
            );
            worker.shutdown.request_graceful();
            return 1;
        }
        let mut fds = [PollFd::new(worker.shutdown.wake_fd(), PollFlags::POLLIN)];
        // Readable on any state change; a timeout or EINTR re-checks.
        let _ = poll(&mut fds, timeout);
    }
}

/// Waits until every runtime finished, within the graceful timeout; true
/// when they all did. A quick stop meanwhile ends the process.
fn wait_for_runtimes(worker: &Worker, done: &mpsc::Receiver<usize>, runtimes: usize) -> bool {
    let deadline = Instant::now() + worker.settings.graceful_timeout;
    let mut finished = 0;
    while finished < runtimes {
        if worker.shutdown.state() == ShutdownState::Quick {
            quick_exit();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match done.recv_timeout(left.min(GRACEFUL_RECHECK)) {
            Ok(_) => finished += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return finished >= runtimes,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_keep_alive() {
        assert!(conn_config(&Settings::default()).keep_alive);
    }
}
