//! A sync worker's life: boot (listeners non-blocking, the quick-stop
//! watcher), then the loop that polls the listeners and the shutdown wake
//! fd with a timeout, beats the heartbeat on every pass, accepts one
//! connection at a time (`accept`) and serves it to the end (`serve`),
//! and stops on TERM after the current request, on max-requests, or when
//! the master is gone.

use nix::poll::PollTimeout;
use runicorn_http::ConnConfig;
use runicorn_worker::listener::set_nonblocking;
use runicorn_worker::poll_interval;
use runicorn_worker::quick::{park_for_quick_exit, spawn_quick_exit_watcher};
use runicorn_worker::{Ending, Settings, Shared, ShutdownState, Worker};

use crate::accept::{accept_and_serve, wait_readable};
use crate::error::SyncError;

/// The driver settings of a sync worker: keep-alive off.
pub(crate) fn conn_config(settings: &Settings) -> ConnConfig {
    settings.conn_config(false)
}

/// Runs the worker until it should exit; its exit code.
pub(crate) fn run(worker: Worker) -> Ending {
    if let Err(err) = boot(&worker) {
        return Ending::boot_failed(err);
    }
    let shared = Shared::new(&worker, conn_config(&worker.settings));
    serve_until_stopped(&worker, &shared);
    if worker.shutdown.state() == ShutdownState::Quick {
        park_for_quick_exit();
    }
    worker.app.sync.shutdown_worker();
    Ending::Stopped
}

/// Listeners non-blocking for the poll loop; the thread that ends the
/// process on INT/QUIT while the main thread may be inside the app.
fn boot(worker: &Worker) -> Result<(), SyncError> {
    set_nonblocking(&worker.listeners)?;
    spawn_quick_exit_watcher(worker.shutdown.clone())
        .map_err(|source| SyncError::Watcher { source })
}

fn serve_until_stopped(worker: &Worker, shared: &Shared) {
    let interval = poll_interval(worker.settings.timeout);
    let poll_timeout = PollTimeout::try_from(interval).unwrap_or(PollTimeout::MAX);
    loop {
        worker.slot.heartbeat();
        if !worker.shutdown.is_running() || worker.shutdown.retire_if_orphaned() {
            return;
        }
        let ready = match wait_readable(&worker.listeners, worker, poll_timeout) {
            Ok(ready) => ready,
            Err(err) => {
                tracing::error!("poll on the listeners failed: {err}; the worker exits and the master replaces it");
                return;
            }
        };
        for index in ready {
            // Accept until the queue is empty (Gunicorn's sync worker does
            // too), beating between connections.
            // The request reaching --max-requests stops the loop here.
            while worker.shutdown.is_running() {
                match accept_and_serve(index, worker, shared) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(err) => {
                        tracing::error!(
                            "accept on {} failed: {err}",
                            worker.listeners[index].describe()
                        );
                        std::thread::sleep(crate::accept::ACCEPT_ERROR_PAUSE);
                        break;
                    }
                }
                worker.slot.heartbeat();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_close_after_every_response() {
        assert!(!conn_config(&Settings::default()).keep_alive);
    }
}
