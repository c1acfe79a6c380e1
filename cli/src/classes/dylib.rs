//! Worker classes from shared libraries (`-k ./libmyworker.so:Worker`).
//!
//! Placeholder written by the cli until the app-ABI engineer, who owns this
//! file, replaces the body with the real loader (same signature).

use std::sync::Arc;

use runicorn_master::{Settings, WorkerClass};

/// Loads the class `spec` (`LIBRARY:SYMBOL` or a path) names.
pub fn load(spec: &str, _settings: &Settings) -> Result<Arc<dyn WorkerClass>, String> {
    Err(format!(
        "worker class '{spec}' cannot be found: classes from libraries are not supported in this build yet; \
         use one of the built-in classes"
    ))
}
