//! A sync worker's life: boot (listeners non-blocking, the quick-stop
//! watcher), then the loop that polls the listeners and the shutdown wake
//! fd with a timeout, beats the heartbeat on every pass, accepts one
//! connection at a time (`accept`) and serves it to the end (`serve`),
//! and stops on TERM after the current request, on max-requests, or when
//! the master is gone.

use nix::poll::PollTimeout;
use runicorn_http::ConnConfig;
use runicorn_worker::{past_max_requests, poll_interval};
use runicorn_worker::{Ending, Listener, Settings, ShutdownState, Worker};

use crate::accept::{accept_and_serve, wait_readable};
use crate::error::SyncError;
use crate::quick;
use crate::serve::Serving;

/// The driver settings of a sync worker: keep-alive off.
pub(crate) fn conn_config(settings: &Settings) -> ConnConfig {
    settings.conn_config(false)
}

/// Runs the worker until it should exit; its exit code.
pub(crate) fn run(worker: Worker) -> Ending {
    if let Err(err) = boot(&worker) {
        return Ending::boot_failed(err);
    }
    let serving = Serving {
        app: &*worker.app.sync,
        slot: &worker.slot,
        shutdown: &worker.shutdown,
        config: conn_config(&worker.settings),
        forwarded: worker.settings.forwarded_policy(),
        server_addrs: worker.listeners.iter().map(Listener::server_addr).collect(),
    };
    serve_until_stopped(&worker, &serving);
    if worker.shutdown.state() == ShutdownState::Quick {
        quick::park_for_quick_exit();
    }
    worker.app.sync.shutdown_worker();
    Ending::Stopped
}

fn boot(worker: &Worker) -> Result<(), SyncError> {
    for listener in &worker.listeners {
        listener
            .set_nonblocking(true)
            .map_err(|source| SyncError::Nonblocking {
                listener: listener.describe(),
                source,
            })?;
    }
    quick::spawn_watcher(worker.shutdown.clone())
}

fn serve_until_stopped(worker: &Worker, serving: &Serving<'_>) {
    let interval = poll_interval(worker.settings.timeout);
    let poll_timeout = PollTimeout::try_from(interval).unwrap_or(PollTimeout::MAX);
    let mut served: u64 = 0;
    loop {
        worker.slot.heartbeat();
        if !worker.shutdown.is_running() {
            return;
        }
        if !worker.shutdown.master_alive() {
            tracing::info!("Parent changed, shutting down: {}", std::process::id());
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
            while worker.shutdown.is_running() {
                let answered = match accept_and_serve(index, worker, serving) {
                    Ok(Some(answered)) => answered,
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(
                            "accept on {} failed: {err}",
                            worker.listeners[index].describe()
                        );
                        std::thread::sleep(crate::accept::ACCEPT_ERROR_PAUSE);
                        break;
                    }
                };
                worker.slot.heartbeat();
                served += answered;
                if past_max_requests(served, worker.max_requests) {
                    tracing::info!("Autorestarting worker after current request.");
                    worker.shutdown.request_graceful();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn connections_close_after_every_response() {
        let settings = Settings {
            timeout: Duration::from_secs(10),
            ..Settings::default()
        };
        let config = conn_config(&settings);
        assert!(!config.keep_alive);
        assert_eq!(config.io_timeout, Duration::from_secs(5));
        assert_eq!(config.limits.request_line, 4094);
    }
}
