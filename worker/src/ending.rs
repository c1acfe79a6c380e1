//! How a worker's life ends, and the one place that maps it to the exit
//! status the master reads (Gunicorn's codes: 3 a worker that cannot boot,
//! 4 an app that cannot load; the master halts on either instead of
//! respawning forever).

use std::fmt;
use std::process::ExitCode;

use runicorn_app::LoadError;

/// Gunicorn's `WORKER_BOOT_ERROR`: the worker could not boot.
pub const WORKER_BOOT_ERROR: u8 = 3;

/// Gunicorn's `APP_LOAD_ERROR`: the app could not be loaded.
pub const APP_LOAD_ERROR: u8 = 4;

/// What [`WorkerClass::run`](crate::WorkerClass::run) (and the master's
/// boot of a child before it) ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The worker stopped as asked, or retired itself (TERM, INT/QUIT,
    /// `--max-requests`, a panicking app, a dead master, a broken event
    /// loop it already logged): exit 0, the master replaces it as needed.
    Stopped,
    /// The worker could not boot: exit 3.
    BootFailed,
    /// The app could not be loaded: exit 4.
    AppLoadFailed,
    /// An exit status the class chose itself (a library class's return
    /// value), passed through.
    Exited(u8),
}

impl Ending {
    /// The worker could not boot because of `err`: says so in Gunicorn's
    /// words (`Exception in worker process: ...`) and ends with exit 3.
    pub fn boot_failed(err: impl fmt::Display) -> Ending {
        tracing::error!("Exception in worker process: {err}");
        Ending::BootFailed
    }

    /// The app could not be loaded in the worker: says so (`Exception in
    /// worker process: ...`) and ends with [`Ending::of_load_error`].
    pub fn load_failed(err: &LoadError) -> Ending {
        tracing::error!("Exception in worker process: {err}");
        Ending::of_load_error(err)
    }

    /// Gunicorn's last line of a worker, `Worker exiting (pid: N)`.
    pub fn say_exiting() {
        let pid = std::process::id();
        tracing::info!(worker_pid = pid, "Worker exiting (pid: {pid})");
    }

    /// The ending of a failed app load: 4, or 3 when the app loaded but
    /// its `init_worker` failed ([`LoadError::Boot`]).
    pub fn of_load_error(err: &LoadError) -> Ending {
        match err {
            LoadError::Boot(_) => Ending::BootFailed,
            _ => Ending::AppLoadFailed,
        }
    }

    /// The exit status: the one mapping from endings to Gunicorn's codes.
    pub fn exit_code(self) -> u8 {
        match self {
            Ending::Stopped => 0,
            Ending::BootFailed => WORKER_BOOT_ERROR,
            Ending::AppLoadFailed => APP_LOAD_ERROR,
            Ending::Exited(code) => code,
        }
    }
}

impl From<Ending> for ExitCode {
    fn from(ending: Ending) -> ExitCode {
        ExitCode::from(ending.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_map_to_gunicorns_exit_codes() {
        assert_eq!(Ending::Stopped.exit_code(), 0);
        assert_eq!(Ending::BootFailed.exit_code(), 3);
        assert_eq!(Ending::boot_failed("no listener").exit_code(), 3);
        assert_eq!(Ending::AppLoadFailed.exit_code(), 4);
        assert_eq!(Ending::Exited(7).exit_code(), 7);
        let missing = LoadError::NoModule {
            module: "main".to_owned(),
            hint: String::new(),
        };
        assert_eq!(Ending::of_load_error(&missing).exit_code(), 4);
        let boot = LoadError::Boot("init_worker failed".to_owned());
        assert_eq!(Ending::of_load_error(&boot).exit_code(), 3);
    }
}
