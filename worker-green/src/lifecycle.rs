//! A green worker's life on its main thread: boot may, then supervise.
//!
//! The main thread runs no coroutine and never beats the heartbeat (only
//! the heartbeat coroutine does, so a starved runtime shows). It waits on
//! the shutdown wake fd, notices a dead master, and runs the stop: on TERM,
//! max-requests or a panicked app it cancels the accept coroutines (stop
//! accepting), then waits until every connection has closed, within
//! `--graceful-timeout`: each response that starts once the worker retired
//! says `Connection: close`, and an idle connection ends with its client's
//! next request or at `--keep-alive` (see `tracker`). On INT/QUIT it exits
//! at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use may::coroutine::JoinHandle;
use may::sync::Semphore;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use runicorn_http::ConnConfig;
use runicorn_worker::blocking_pool::{self, PoolReason};
use runicorn_worker::{
    quick_exit, stop_accepting, Drain, Ending, Listener, Settings, Shared, ShutdownState, Worker,
};

use crate::accept;
use crate::config::RuntimeConfig;
use crate::error::GreenError;
use crate::fence;
use crate::heartbeat;
use crate::offload::Pool;
use crate::serve::Green;
use crate::tracker::Tracker;
use crate::transport::{self, Sweeper};

/// How often the main thread re-checks the master while running.
const SUPERVISE_INTERVAL: Duration = Duration::from_secs(1);

/// How often a graceful stop re-checks the open connections.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// The signals the worker handles: blocked in may's threads (they inherit
/// the mask when the scheduler starts them), so they land on the main
/// thread and never interrupt app code running in a coroutine.
const WORKER_SIGNALS: [Signal; 10] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGCHLD,
];

/// The driver settings of a green worker: keep-alive on.
pub(crate) fn conn_config(settings: &Settings) -> ConnConfig {
    settings.conn_config(true)
}

/// What boot started.
struct Running {
    acceptors: Vec<JoinHandle<()>>,
    /// Second descriptors of the listeners (may has the firsts): the stop
    /// takes what is queued through them, then closes them.
    listeners: Vec<Listener>,
    green: Green,
}

/// Runs the worker until it should exit; its exit code.
pub(crate) fn run(worker: Worker) -> Ending {
    let runtime = RuntimeConfig::from_settings(&worker.settings);
    tracing::info!("{}", runtime.describe(worker.settings.keepalive));
    if worker.app.sync.blocks_thread() {
        // Such an app runs on the pool (`serve::connection`), whose size,
        // not --worker-connections, bounds its requests in flight.
        let bound = Pool::size_for(worker.settings.blocking_threads);
        blocking_pool::log_pool(
            PoolReason::BlocksThread,
            bound,
            worker.settings.blocking_threads,
        );
    }
    let shared = Arc::new(Shared::new(&worker, conn_config(&worker.settings)));
    let Worker {
        listeners,
        settings,
        app,
        shutdown,
        ..
    } = worker;
    let tracker = Arc::new(Tracker::default());
    let running = match boot(&runtime, listeners, &settings, shared, tracker) {
        Ok(running) => running,
        Err(err) => return Ending::boot_failed(err),
    };
    supervise(&shutdown);
    stop_gracefully(running, &shutdown, settings.graceful_timeout);
    app.sync.shutdown_worker();
    Ending::Stopped
}

fn boot(
    runtime: &RuntimeConfig,
    listeners: Vec<Listener>,
    settings: &Settings,
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
) -> Result<Running, GreenError> {
    if listeners.is_empty() {
        return Err(GreenError::NoListener);
    }
    runtime.apply();
    let mut blocked = SigSet::empty();
    for signal in WORKER_SIGNALS {
        blocked.add(signal);
    }
    let mut previous = SigSet::empty();
    // Best effort: without it signals may only interrupt may's epoll waits,
    // which it retries.
    let masked =
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut previous)).is_ok();
    let copies = listeners
        .iter()
        .map(|listener| {
            listener
                .try_clone()
                .map_err(|source| GreenError::Duplicate {
                    listener: listener.describe(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // may's scheduler (and its threads) start at the first registration.
    let started = start(runtime, listeners, settings, shared, tracker);
    if masked {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
    }
    let (acceptors, green) = started?;
    Ok(Running {
        acceptors,
        listeners: copies,
        green,
    })
}

fn start(
    runtime: &RuntimeConfig,
    listeners: Vec<Listener>,
    settings: &Settings,
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
) -> Result<(Vec<JoinHandle<()>>, Green), GreenError> {
    let adopted = listeners
        .into_iter()
        .map(|listener| {
            let name = listener.describe();
            fence::adopt(listener).map(|adopted| (adopted, name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    heartbeat::spawn(shared.slot.clone(), heartbeat::interval(settings.timeout)).map_err(
        |source| GreenError::Spawn {
            what: "heartbeat",
            source,
        },
    )?;
    let sweeper = Arc::new(Sweeper::new());
    let every = transport::sweep_interval(&shared.config);
    let sweeping = Arc::clone(&sweeper);
    fence::spawn(move || sweeping.run(every)).map_err(|source| GreenError::Spawn {
        what: "read-deadline sweeper",
        source,
    })?;
    let green = Green {
        shared,
        pool: Pool::new(settings.blocking_threads),
        sweeper,
        tracker,
        permits: Arc::new(Semphore::new(runtime.worker_connections)),
    };
    let acceptors = adopted
        .into_iter()
        .enumerate()
        .map(|(index, (listener, name))| {
            accept::spawn_acceptor(listener, name, index, green.clone()).map_err(|source| {
                GreenError::Spawn {
                    what: "accept",
                    source,
                }
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((acceptors, green))
}

/// Returns when the worker should stop gracefully; exits on a quick stop.
fn supervise(shutdown: &runicorn_worker::Shutdown) {
    let timeout = PollTimeout::try_from(SUPERVISE_INTERVAL).unwrap_or(PollTimeout::MAX);
    loop {
        match shutdown.state() {
            ShutdownState::Running => {}
            ShutdownState::Graceful => return,
            ShutdownState::Quick => quick_exit(),
        }
        if shutdown.retire_if_orphaned() {
            continue;
        }
        let mut fds = [PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(err) => {
                tracing::error!("poll on the shutdown pipe failed: {err}; stopping the worker");
                shutdown.request_graceful();
            }
        }
    }
}

/// Stops accepting (the accept coroutines cancelled and their listeners
/// closed; what the kernel queued taken and served when the service stops,
/// `runicorn_worker::stop_accepting`; the worker's last listener copies
/// closed), then waits until every connection has closed, within
/// `graceful_timeout`; exits at once if a quick stop arrives.
fn stop_gracefully(
    mut running: Running,
    shutdown: &runicorn_worker::Shutdown,
    graceful_timeout: Duration,
) {
    for acceptor in &running.acceptors {
        fence::cancel(acceptor);
    }
    for acceptor in running.acceptors.drain(..) {
        // A cancelled coroutine ends with may's cancel panic: expected.
        let _ = acceptor.join();
    }
    let listeners = std::mem::take(&mut running.listeners);
    let drain = Drain::on_stop(&running.green.shared.slot);
    for (index, accepted) in stop_accepting(listeners, drain) {
        accept::serve_taken(&running.green, index, accepted);
    }
    let tracker = &running.green.tracker;
    let deadline = Instant::now() + graceful_timeout;
    while tracker.live() > 0 {
        if shutdown.state() == ShutdownState::Quick {
            quick_exit();
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "Worker (pid: {}) exiting with {} connection(s) still open after --graceful-timeout ({:.1}s)",
                std::process::id(),
                tracker.live(),
                graceful_timeout.as_secs_f64()
            );
            // The requests still running get a 500 rather than a reset.
            runicorn_worker::unanswered::answer_all();
            return;
        }
        std::thread::sleep(DRAIN_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_keep_alive() {
        assert!(conn_config(&Settings::default()).keep_alive);
    }
}
