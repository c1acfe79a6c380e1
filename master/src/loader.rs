//! How the master gets the app: in each worker after fork, or once in the
//! master with `--preload`.

use std::fmt;

use runicorn_app::{Application, LoadError};

use runicorn_worker::Settings;

/// Loads `settings.app`. Implemented by the cli (built-in apps, libraries).
pub trait AppLoader: Send + Sync {
    /// Loads the app named by `settings.app`. Errors keep Gunicorn's words;
    /// the worker exits 4 (3 for [`LoadError::Boot`]: see
    /// `runicorn_worker::Ending::of_load_error`).
    fn load(&self, settings: &Settings) -> Result<Application, LoadError>;
}

impl fmt::Debug for dyn AppLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppLoader")
    }
}
