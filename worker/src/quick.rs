//! The quick stop (INT/QUIT): the worker leaves at once, even in the middle
//! of a request, as Gunicorn's workers do (`sys.exit(0)` from the signal
//! handler). The signal handler only records the state; the class's main
//! thread ([`quick_exit`] when it sees the state) or, for a class whose
//! main thread may be inside app code that never returns, a watcher thread
//! ([`spawn_quick_exit_watcher`]) ends the process; the same thread starts
//! that class's graceful stop (it stops accepting at once, without waiting
//! for the request the main thread is running).

use std::thread;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::ending::Ending;
use crate::shutdown::{Shutdown, ShutdownState};

/// How often the watcher re-checks once a graceful stop has begun (the wake
/// fd then stays readable, so it can no longer wait on it).
const GRACEFUL_RECHECK: Duration = Duration::from_millis(50);

/// INT/QUIT: leave now, whatever the worker's threads are doing. Only one
/// thread of the process may call it (two threads racing in `exit` is
/// undefined behaviour in C libraries' atexit handlers).
pub fn quick_exit() -> ! {
    // Lines of requests already answered; a thread caught writing one
    // keeps its lines rather than the exit waiting for it.
    crate::access::try_flush();
    Ending::say_exiting();
    std::process::exit(0);
}

/// Starts the thread that ends this process on a quick stop, for a class
/// whose main thread runs app code: that thread must then never exit
/// itself on a quick stop, but [`park_for_quick_exit`]. `on_graceful`
/// runs on the watcher once, when a graceful stop begins.
pub fn spawn_quick_exit_watcher(
    shutdown: Shutdown,
    on_graceful: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("quick-stop".to_owned())
        .spawn(move || watch(&shutdown, on_graceful))
        .map(drop)
}

fn watch(shutdown: &Shutdown, on_graceful: impl FnOnce()) -> ! {
    let mut on_graceful = Some(on_graceful);
    loop {
        match shutdown.state() {
            ShutdownState::Quick => quick_exit(),
            ShutdownState::Running => {
                let mut fds = [PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN)];
                // Readable on any state change; a timeout or EINTR re-checks.
                let _ = poll(&mut fds, PollTimeout::from(1000u16));
            }
            ShutdownState::Graceful => {
                if let Some(begin) = on_graceful.take() {
                    begin();
                }
                thread::sleep(GRACEFUL_RECHECK);
            }
        }
    }
}

/// Called by the main thread of a class with a watcher when it sees a
/// quick stop: the watcher ends the process, so the main thread must not
/// also return from `main` and call `exit` concurrently.
pub fn park_for_quick_exit() -> ! {
    loop {
        thread::park();
    }
}
