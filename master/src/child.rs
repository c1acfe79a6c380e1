//! A forked worker on its way out of the arbiter.
//!
//! In the child, `spawn_worker` boots the worker (signals, environment,
//! privileges, the app, `init_worker`, the first heartbeat) and the
//! arbiter's loop returns it to `main` as [`Role::Worker`]: no worker runs
//! inside the master's call stack. `main` calls [`Child::run`], which runs
//! the class and the end of a worker's life (the `worker_int` wait, the
//! `worker_exit` hook), and exits with [`Ending::exit_code`].
//!
//! [`Role::Worker`]: crate::Role::Worker

use std::fmt;
use std::sync::Arc;

use runicorn_worker::{Ending, Settings, Shutdown, Worker, WorkerClass};

use crate::hooks::{ArbiterView, Hooks, WorkerView};

/// A worker the master booted.
#[derive(Debug)]
pub(crate) struct Booted {
    pub(crate) worker: Worker,
    pub(crate) shutdown: Shutdown,
}

/// A forked child: its worker, booted (or how its boot failed), and what
/// the end of its life needs of the master's state.
pub struct Child {
    pub(crate) class: Arc<dyn WorkerClass>,
    pub(crate) booted: Result<Booted, Ending>,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) master_pid: u32,
    pub(crate) settings: Arc<Settings>,
    pub(crate) num_workers: usize,
    pub(crate) view: WorkerView,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("class", &self.class.name())
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl Child {
    /// Runs the worker class until it ends, then what ends every worker:
    /// the `Worker exiting` line after a clean stop, the wait for a
    /// `worker_int` hook in progress, the `worker_exit` hook. A worker that
    /// failed to boot ends at once (its failure was logged).
    pub fn run(self) -> Ending {
        let Booted { worker, shutdown } = match self.booted {
            Ok(booted) => booted,
            Err(ending) => return ending,
        };
        let ending = self.class.run(worker);
        // The access lines still buffered (a graceful stop, --max-requests).
        runicorn_worker::access::flush();
        if ending == Ending::Stopped {
            Ending::say_exiting();
        }
        shutdown.finish_signal_hooks();
        let arbiter = ArbiterView {
            pid: self.master_pid,
            settings: &self.settings,
            num_workers: self.num_workers,
        };
        self.hooks.worker_exit(&arbiter, &self.view);
        ending
    }
}
