//! A worker's stop state: running, graceful, or quick.
//!
//! Installed in the child right after fork: SIGTERM asks for a graceful stop
//! (stop accepting, finish in-flight requests within `graceful_timeout`),
//! SIGINT and SIGQUIT for a quick one, SIGUSR1 reopens the log file. The
//! kernel sends SIGTERM if the master dies (`PR_SET_PDEATHSIG`). Each state
//! change writes a byte to a self-pipe whose read end ([`Shutdown::wake_fd`])
//! stays readable from then on, so poll/epoll loops wake at once.
//!
//! With `worker_int` / `worker_abort` hooks configured
//! ([`Shutdown::watch_signal_hooks`]), the handler only writes the signal's
//! number to a second pipe and a watcher thread runs the hook: after
//! `worker_int` (INT/QUIT) it asks for the quick stop (exit 0), after
//! `worker_abort` (ABRT, the master's timeout) it exits 1. Without them,
//! INT/QUIT stop at once and ABRT exits 1 from the handler (no core dump).

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use runicorn_http::Retiring;

use crate::sys;
pub use crate::sys::REOPEN_LOGS;

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShutdownState {
    /// Serving.
    Running,
    /// Stop accepting; finish in-flight requests within `graceful_timeout`.
    Graceful,
    /// Stop now.
    Quick,
}

impl ShutdownState {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => ShutdownState::Running,
            1 => ShutdownState::Graceful,
            _ => ShutdownState::Quick,
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// Set by [`Shutdown::request_graceful`]; the signal-set state lives in
    /// `sys::WORKER_STOP` when `installed`.
    local: AtomicU8,
    installed: AtomicBool,
    wake_read: OwnedFd,
    wake_write: OwnedFd,
    master_pid: Pid,
    /// Where the `worker_int` watcher is, for [`Shutdown::finish_signal_hooks`].
    hook_progress: Mutex<HookProgress>,
    hook_done: Condvar,
}

/// The `worker_int` watcher's progress, as the main thread sees it.
#[derive(Debug, Default)]
struct HookProgress {
    /// `worker_int` ran to the end.
    int_done: bool,
    /// The worker class returned: the main thread will exit, the watcher
    /// must not ask for a quick stop (two threads would race in `exit`).
    class_returned: bool,
}

impl Inner {
    fn state(&self) -> ShutdownState {
        let mut value = self.local.load(Ordering::SeqCst);
        if self.installed.load(Ordering::Relaxed) {
            value = value.max(sys::WORKER_STOP.load(Ordering::SeqCst));
        }
        ShutdownState::from_u8(value)
    }
}

impl Retiring for Inner {
    fn is_retiring(&self) -> bool {
        self.state() != ShutdownState::Running
    }
}

/// A signal hook the watcher thread runs.
pub type SignalHook = Box<dyn Fn() + Send + 'static>;

/// The shared stop state of one worker process. Cheap to clone; every
/// thread, coroutine or task of the worker holds one.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Shutdown {
    /// A stop state with its wake pipe, not yet tied to any signal (usable
    /// as is in tests). The master is taken to be the current parent.
    pub fn new() -> std::io::Result<Self> {
        let (wake_read, wake_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(std::io::Error::from)?;
        Ok(Shutdown {
            inner: Arc::new(Inner {
                local: AtomicU8::new(0),
                installed: AtomicBool::new(false),
                wake_read,
                wake_write,
                master_pid: nix::unistd::getppid(),
                hook_progress: Mutex::new(HookProgress::default()),
                hook_done: Condvar::new(),
            }),
        })
    }

    /// A stop state driven by this process's signals: TERM graceful,
    /// INT/QUIT quick, USR1 reopen logs, and SIGTERM when the master dies.
    /// Called once in the child after fork, once the master's handlers are
    /// gone (the master's `sys::forget_master_signals`).
    pub fn install() -> std::io::Result<Self> {
        let shutdown = Shutdown::new()?;
        sys::install_worker_signals(&shutdown.inner.wake_write)?;
        shutdown.inner.installed.store(true, Ordering::SeqCst);
        sys::set_parent_death_signal()?;
        // The master may have died between fork and prctl.
        if !shutdown.master_alive() {
            shutdown.inner.local.store(2, Ordering::SeqCst);
            shutdown.wake();
        }
        Ok(shutdown)
    }

    /// The current state: the furthest of what signals and the worker asked.
    pub fn state(&self) -> ShutdownState {
        self.inner.state()
    }

    /// This stop state as a connection watches it: once the worker leaves
    /// `Running`, every response that starts says `Connection: close`
    /// (`runicorn_http::Retiring`). Every class hands it to each connection.
    pub fn retirement(&self) -> Arc<dyn Retiring> {
        Arc::clone(&self.inner) as Arc<dyn Retiring>
    }

    /// True while the worker should keep serving.
    pub fn is_running(&self) -> bool {
        self.state() == ShutdownState::Running
    }

    /// The worker retires itself (max-requests, a panicking app): graceful.
    pub fn request_graceful(&self) {
        if self
            .inner
            .local
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.wake();
        }
    }

    /// The app panicked: its state may be broken, so the worker says so
    /// and retires gracefully once its in-flight requests are answered.
    /// Every worker class calls this, so the log line is the same for all.
    pub fn retire_after_panic(&self) {
        tracing::warn!(
            "Retiring worker (pid: {}) after a panic in the app",
            std::process::id()
        );
        self.request_graceful();
    }

    /// Asks for a quick stop from inside the worker.
    pub fn request_quick(&self) {
        self.inner.local.store(2, Ordering::SeqCst);
        self.wake();
    }

    /// Readable once the state has left `Running` (and stays readable):
    /// add it to a poll set to wake at once on TERM/INT/QUIT.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.inner.wake_read.as_fd()
    }

    /// The raw form of [`Shutdown::wake_fd`], for runtimes that want one.
    pub fn wake_raw_fd(&self) -> RawFd {
        self.inner.wake_read.as_raw_fd()
    }

    /// False once the master is gone (this process was reparented).
    pub fn master_alive(&self) -> bool {
        nix::unistd::getppid() == self.inner.master_pid
    }

    /// When the master is gone, says so in Gunicorn's words and asks for a
    /// graceful stop; true then. Every class asks at least once per poll
    /// interval.
    pub fn retire_if_orphaned(&self) -> bool {
        if self.master_alive() {
            return false;
        }
        tracing::info!("Parent changed, shutting down: {}", std::process::id());
        self.request_graceful();
        true
    }

    /// Starts the thread that runs `worker_int` on INT/QUIT and
    /// `worker_abort` on ABRT (either may be absent). Called in the worker
    /// after fork, once the environment is set; does nothing without hooks.
    pub fn watch_signal_hooks(
        &self,
        worker_int: Option<SignalHook>,
        worker_abort: Option<SignalHook>,
    ) -> std::io::Result<()> {
        let mut mask = 0;
        if worker_int.is_some() {
            mask |= sys::HOOK_INT;
        }
        if worker_abort.is_some() {
            mask |= sys::HOOK_ABORT;
        }
        if mask == 0 {
            return Ok(());
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let write_fd = write.as_raw_fd();
        let shutdown = self.clone();
        let thread = std::thread::Builder::new()
            .name("signal-hooks".to_owned())
            .spawn(move || {
                shutdown.run_signal_hooks(read, worker_int, worker_abort);
                // The handler may write to the pipe at any time: its write
                // end stays open for the life of the process.
                let _write = write;
                loop {
                    std::thread::park();
                }
            })?;
        drop(thread);
        sys::install_hook_pipe(write_fd, mask);
        Ok(())
    }

    fn run_signal_hooks(
        &self,
        read: OwnedFd,
        worker_int: Option<SignalHook>,
        worker_abort: Option<SignalHook>,
    ) {
        let mut pipe = std::fs::File::from(read);
        let mut byte = [0u8];
        let mut int_ran = false;
        loop {
            match pipe.read(&mut byte) {
                Ok(1) => {}
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                _ => return,
            }
            if i32::from(byte[0]) == Signal::SIGABRT as i32 {
                if let Some(hook) = &worker_abort {
                    hook();
                }
                crate::Ending::say_exiting();
                std::process::exit(1);
            }
            if int_ran {
                continue;
            }
            int_ran = true;
            if let Some(hook) = &worker_int {
                hook();
            }
            let mut progress = self.hook_progress();
            progress.int_done = true;
            if progress.class_returned {
                self.inner.hook_done.notify_all();
            } else {
                drop(progress);
                self.request_quick();
            }
        }
    }

    /// Called once the worker class returned: waits for a `worker_int` hook
    /// that INT/QUIT started, so the process does not exit under it (a hook
    /// that never returns dies by the master's SIGKILL).
    pub fn finish_signal_hooks(&self) {
        let mut progress = self.hook_progress();
        progress.class_returned = true;
        while sys::HOOK_SIGNALLED.load(Ordering::SeqCst) != 0 && !progress.int_done {
            progress = self
                .inner
                .hook_done
                .wait(progress)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn hook_progress(&self) -> MutexGuard<'_, HookProgress> {
        self.inner
            .hook_progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake(&self) {
        let _ = nix::unistd::write(&self.inner.wake_write, &[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    fn readable(shutdown: &Shutdown) -> bool {
        let mut fds = [PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn graceful_request_wakes_and_stays_readable() {
        let shutdown = Shutdown::new().unwrap();
        assert!(shutdown.is_running());
        assert!(!readable(&shutdown));
        shutdown.clone().request_graceful();
        assert_eq!(shutdown.state(), ShutdownState::Graceful);
        assert!(readable(&shutdown));
        assert!(readable(&shutdown));
        shutdown.request_quick();
        assert_eq!(shutdown.state(), ShutdownState::Quick);
        shutdown.request_graceful();
        assert_eq!(shutdown.state(), ShutdownState::Quick);
    }

    #[test]
    fn a_connection_sees_the_worker_retire_however_it_was_asked() {
        let shutdown = Shutdown::new().unwrap();
        let retirement = shutdown.retirement();
        assert!(!retirement.is_retiring());
        shutdown.request_graceful();
        assert!(retirement.is_retiring());
        let quick = Shutdown::new().unwrap();
        let retirement = quick.retirement();
        quick.request_quick();
        assert!(retirement.is_retiring());
    }

    #[test]
    fn master_is_alive_in_tests() {
        assert!(Shutdown::new().unwrap().master_alive());
    }
}
