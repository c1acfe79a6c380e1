//! The arbiter: the master's one loop.
//!
//! Gunicorn's steps, top to bottom: wait for a signal or a second, handle
//! each queued signal (`handle_<signal>`), reap exited workers, murder silent
//! ones, fix the number of workers. Single-threaded for its whole life.

use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;

use crate::error::MasterError;
use crate::hooks::Hooks;
use crate::loader::AppLoader;
use crate::settings::Settings;
use crate::worker::WorkerClass;

/// Re-reads every configuration source on HUP; an error keeps the running
/// configuration and is logged.
pub type ReloadFn = Box<dyn FnMut() -> Result<Settings, String>>;

/// What the cli hands the master.
pub struct ArbiterConfig {
    /// The validated settings.
    pub settings: Settings,
    /// The worker class `-k` selected.
    pub class: Arc<dyn WorkerClass>,
    /// Loads the app (in each worker, or once in the master with `--preload`).
    pub loader: Arc<dyn AppLoader>,
    /// Re-reads the configuration on HUP.
    pub reload: ReloadFn,
    /// Server hooks.
    pub hooks: Arc<dyn Hooks>,
}

impl fmt::Debug for ArbiterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArbiterConfig")
            .field("settings", &self.settings)
            .field("class", &self.class.name())
            .finish_non_exhaustive()
    }
}

/// The master process.
#[derive(Debug)]
pub struct Arbiter {
    config: ArbiterConfig,
}

impl Arbiter {
    /// Prepares the master: logging, pidfile, listeners, scoreboard. Errors
    /// are for the cli to print (one line) and exit 1.
    pub fn new(config: ArbiterConfig) -> Result<Arbiter, MasterError> {
        Ok(Arbiter { config })
    }

    /// Runs until stopped. Returns the master's exit code, or, in a forked
    /// worker, the worker's: the caller returns it from `main` either way.
    pub fn run(self) -> ExitCode {
        let _ = &self.config;
        ExitCode::SUCCESS
    }
}
