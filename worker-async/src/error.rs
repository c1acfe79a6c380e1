//! What can stop an async worker from booting.

use std::io;

/// An async worker could not start serving; the worker exits 3.
#[derive(Debug, thiserror::Error)]
pub enum AsyncError {
    /// A tokio runtime (its I/O driver: an epoll and an eventfd) could not
    /// be built.
    #[error("cannot build tokio runtime {index}: {source}; check the descriptor limit (ulimit -n) or lower --threads")]
    Runtime {
        /// Which runtime (0-based, one per `--threads`).
        index: usize,
        /// What the OS said.
        source: io::Error,
    },
    /// An inherited listener could not be handed to a runtime.
    #[error("cannot register listener {listener} with runtime {index}: {source}; check the descriptor limit (ulimit -n)")]
    Listener {
        /// The listener, as logged at boot.
        listener: String,
        /// Which runtime.
        index: usize,
        /// What the OS said.
        source: io::Error,
    },
    /// A runtime thread could not start.
    #[error("cannot start runtime thread {index}: {source}; check the process/thread limit (ulimit -u) or lower --threads")]
    Thread {
        /// Which runtime.
        index: usize,
        /// What the OS said.
        source: io::Error,
    },
}
