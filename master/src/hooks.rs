//! Gunicorn's master-side server hooks, as a trait with no-op defaults.
//!
//! The master calls each where Gunicorn calls it: `on_starting` before
//! binding, `when_ready` once every worker of the first generation has
//! booted (Gunicorn: once the listeners are up, before forking), `pre_fork` in the master
//! before each fork, `post_fork` in the child right after it,
//! `post_worker_init` in the child once the app is loaded, `worker_exit` in
//! the child as it exits, `child_exit` in the master after reaping,
//! `nworkers_changed` whenever the target count moves, `on_reload` on HUP,
//! `on_exit` just before the master exits, `pre_exec` in the master's
//! forked child on USR2 just before it executes the new binary. `worker_int` and `worker_abort`
//! run in the worker on INT/QUIT and ABRT, on a watcher thread (never in the
//! signal handler), when `has_worker_int` / `has_worker_abort` say so. The
//! app-library loader implements this from exported functions (issue 7).

use std::fmt;

use runicorn_worker::Settings;

/// What a hook sees of the arbiter.
#[derive(Debug, Clone, Copy)]
pub struct ArbiterView<'a> {
    /// The master's pid.
    pub pid: u32,
    /// The settings in force.
    pub settings: &'a Settings,
    /// The target number of workers.
    pub num_workers: usize,
}

/// What a hook sees of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerView {
    /// The worker's pid (0 in `pre_fork`: not forked yet).
    pub pid: u32,
    /// Its spawn order (Gunicorn's `worker.age`).
    pub age: u64,
    /// Its exit status as `waitpid` gave it (`child_exit` only).
    pub exit_code: Option<i32>,
}

/// Server hooks. Every method defaults to doing nothing.
pub trait Hooks: Send + Sync {
    /// Master, before anything is bound.
    fn on_starting(&self, _arbiter: &ArbiterView<'_>) {}
    /// Master, once the listeners are bound and before the first fork.
    fn when_ready(&self, _arbiter: &ArbiterView<'_>) {}
    /// Master, just before forking a worker.
    fn pre_fork(&self, _arbiter: &ArbiterView<'_>, _worker: &WorkerView) {}
    /// Child, just after fork, before the app loads.
    fn post_fork(&self, _arbiter: &ArbiterView<'_>, _worker: &WorkerView) {}
    /// Child, after the app loaded and `init_worker` ran.
    fn post_worker_init(&self, _worker: &WorkerView) {}
    /// Child, on SIGINT or SIGQUIT, before the quick stop (exit 0). Runs on
    /// a watcher thread; a hook that never returns dies by the master's SIGKILL.
    fn worker_int(&self, _worker: &WorkerView) {}
    /// Child, on SIGABRT (the master's timeout), before exit 1.
    fn worker_abort(&self, _worker: &WorkerView) {}
    /// Whether `worker_int` does anything (without it no watcher runs and
    /// INT/QUIT stop the worker at once).
    fn has_worker_int(&self) -> bool {
        false
    }
    /// Whether `worker_abort` does anything (without it SIGABRT exits 1 at once).
    fn has_worker_abort(&self) -> bool {
        false
    }
    /// Child, after the worker class returned, just before the process exits.
    fn worker_exit(&self, _arbiter: &ArbiterView<'_>, _worker: &WorkerView) {}
    /// Master, after a worker was reaped.
    fn child_exit(&self, _arbiter: &ArbiterView<'_>, _worker: &WorkerView) {}
    /// Master, when the target worker count changes (`old` is `None` at start).
    fn nworkers_changed(&self, _arbiter: &ArbiterView<'_>, _new: usize, _old: Option<usize>) {}
    /// Master, on HUP, after the new settings were read.
    fn on_reload(&self, _arbiter: &ArbiterView<'_>) {}
    /// Master, just before it exits.
    fn on_exit(&self, _arbiter: &ArbiterView<'_>) {}
    /// The master's forked child on USR2, just before it executes the new
    /// binary (Gunicorn's `pre_exec`).
    fn pre_exec(&self, _arbiter: &ArbiterView<'_>) {}
}

/// Hooks that do nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {}

impl fmt::Debug for dyn Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hooks")
    }
}
