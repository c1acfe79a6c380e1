//! The quick stop (INT/QUIT): the worker leaves at once, even in the middle
//! of a request, as Gunicorn's sync worker does (`sys.exit(0)` from its
//! signal handler). The signal handler only records the state; this one
//! watcher thread sees it and ends the process, because the main thread may
//! be inside app code that never returns to the accept loop.

use std::thread;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runicorn_worker::{Shutdown, ShutdownState};

use crate::error::SyncError;

/// How often the watcher re-checks once a graceful stop has begun (the wake
/// fd then stays readable, so it can no longer wait on it).
const GRACEFUL_RECHECK: Duration = Duration::from_millis(50);

/// Starts the watcher thread for this worker process.
pub(crate) fn spawn_watcher(shutdown: Shutdown) -> Result<(), SyncError> {
    thread::Builder::new()
        .name("quick-stop".to_owned())
        .spawn(move || watch(&shutdown))
        .map(drop)
        .map_err(|source| SyncError::Watcher { source })
}

fn watch(shutdown: &Shutdown) -> ! {
    loop {
        match shutdown.state() {
            ShutdownState::Quick => {
                tracing::info!("Worker exiting (pid: {})", std::process::id());
                // Only this thread exits on a quick stop (the main thread
                // parks, see `park_for_quick_exit`), so two threads never
                // race in `exit`.
                std::process::exit(0);
            }
            ShutdownState::Running => {
                let mut fds = [PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN)];
                // Readable on any state change; a timeout or EINTR re-checks.
                let _ = poll(&mut fds, PollTimeout::from(1000u16));
            }
            ShutdownState::Graceful => thread::sleep(GRACEFUL_RECHECK),
        }
    }
}

/// Called by the main thread when it sees a quick stop: the watcher ends the
/// process, so the main thread must not also return from `main` and call
/// `exit` concurrently.
pub(crate) fn park_for_quick_exit() -> ! {
    loop {
        thread::park();
    }
}
