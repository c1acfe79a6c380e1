//! A sync worker's life: boot (listeners non-blocking, the quick-stop
//! watcher), then the loop that polls the listeners and the shutdown wake
//! fd with a timeout, beats the heartbeat on every pass, accepts one
//! connection at a time (`accept`) and serves it to the end (`serve`),
//! and stops on TERM after the current request, on max-requests, or when
//! the master is gone. The listeners are closed as soon as the worker
//! stops (by the watcher, while a request may still run); what the stop
//! took off their queues is served before the worker exits.

use std::sync::Arc;

use nix::poll::PollTimeout;
use runicorn_http::ConnConfig;
use runicorn_worker::listener::set_nonblocking;
use runicorn_worker::poll_interval;
use runicorn_worker::quick::{park_for_quick_exit, spawn_quick_exit_watcher};
use runicorn_worker::{AcceptBackoff, Ending, Settings, Shared, ShutdownState, Worker};

use crate::accept::{self, Listening};
use crate::error::SyncError;

/// The driver settings of a sync worker: keep-alive off, and a head
/// deadline its heartbeat outlasts (the worker does not beat while it waits
/// for a head: see [`Settings::header_timeout_without_beats`]).
pub(crate) fn conn_config(settings: &Settings) -> ConnConfig {
    let mut config = settings.conn_config(false);
    config.header_timeout = settings.header_timeout_without_beats();
    config
}

/// Runs the worker until it should exit; its exit code.
pub(crate) fn run(mut worker: Worker) -> Ending {
    // Before boot takes the listeners: it reads their addresses.
    let shared = Shared::new(&worker, conn_config(&worker.settings));
    let listening = match boot(&mut worker) {
        Ok(listening) => listening,
        Err(err) => return Ending::boot_failed(err),
    };
    serve_until_stopped(&worker, &shared, &listening);
    // The watcher may have closed the listeners already; if not, now.
    listening.stop();
    while let Some((index, accepted)) = listening.next_taken() {
        if worker.shutdown.state() == ShutdownState::Quick {
            break;
        }
        accept::serve(accepted, index, &shared);
    }
    if worker.shutdown.state() == ShutdownState::Quick {
        park_for_quick_exit();
    }
    worker.app.sync.shutdown_worker();
    Ending::Stopped
}

/// Listeners non-blocking for the poll loop; the thread that ends the
/// process on INT/QUIT while the main thread may be inside the app, and
/// that stops accepting as soon as a graceful stop begins.
fn boot(worker: &mut Worker) -> Result<Arc<Listening>, SyncError> {
    set_nonblocking(&worker.listeners)?;
    let listening = Arc::new(Listening::new(
        std::mem::take(&mut worker.listeners),
        worker.slot.clone(),
    ));
    let stopping = Arc::clone(&listening);
    spawn_quick_exit_watcher(worker.shutdown.clone(), move || stopping.stop())
        .map_err(|source| SyncError::Watcher { source })?;
    Ok(listening)
}

fn serve_until_stopped(worker: &Worker, shared: &Shared, listening: &Listening) {
    let interval = poll_interval(worker.settings.timeout);
    let poll_timeout = PollTimeout::try_from(interval).unwrap_or(PollTimeout::MAX);
    let mut backoff = AcceptBackoff::default();
    loop {
        worker.slot.heartbeat();
        if !worker.shutdown.is_running() || worker.shutdown.retire_if_orphaned() {
            return;
        }
        let ready = match listening.wait_readable(&worker.shutdown, poll_timeout) {
            Ok(Some(ready)) => ready,
            Ok(None) => return,
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
                match listening.accept(index) {
                    Ok(Some(accepted)) => {
                        backoff.reset();
                        accept::serve(accepted, index, shared);
                    }
                    Ok(None) => break,
                    Err(err) => {
                        let pause = backoff.failed(&listening.describe(index), &err);
                        // Within a heartbeat, and a stop ends it at once.
                        accept::pause(&worker.shutdown, pause.min(interval));
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn connections_close_after_every_response() {
        assert!(!conn_config(&Settings::default()).keep_alive);
    }

    #[test]
    fn the_head_deadline_ends_before_the_heartbeat_kill() {
        let settings = Settings {
            timeout: Duration::from_secs(4),
            ..Settings::default()
        };
        assert_eq!(
            conn_config(&settings).header_timeout,
            Duration::from_secs(2)
        );
        assert_eq!(
            conn_config(&Settings::default()).header_timeout,
            Duration::from_secs(10)
        );
    }
}
