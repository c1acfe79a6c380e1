//! What can stop a sync worker from booting.

use std::io;

/// A sync worker could not start serving; the worker exits 3.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A listener could not be made non-blocking for the poll loop.
    #[error(transparent)]
    Nonblocking(#[from] runicorn_worker::NonblockingError),
    /// The thread that enforces a quick stop could not start.
    #[error("cannot start the quick-stop watcher thread: {source}; check the process/thread limit (ulimit -u)")]
    Watcher {
        /// What the OS said.
        source: io::Error,
    },
}
