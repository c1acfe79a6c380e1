//! What can stop a gthread worker from booting.

use std::io;

/// A gthread worker could not start serving; the worker exits 3.
#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    /// A listener could not be made non-blocking for the poller.
    #[error(transparent)]
    Nonblocking(#[from] runicorn_worker::NonblockingError),
    /// The epoll instance or the pool's wake-up eventfd could not be made.
    #[error("cannot create the {what}: {source}; check the descriptor limit (ulimit -n) and /proc/sys/fs/epoll/max_user_watches")]
    Poller {
        /// `epoll instance` or `wake-up eventfd`.
        what: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// A descriptor could not be added to the epoll set.
    #[error("cannot watch {what} with epoll: {source}; check /proc/sys/fs/epoll/max_user_watches")]
    Register {
        /// What was being watched.
        what: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A pool thread could not start.
    #[error("cannot start pool thread {index} of {threads}: {source}; lower --threads or raise the process/thread limit (ulimit -u)")]
    Thread {
        /// The thread that failed (0-based).
        index: usize,
        /// `--threads`.
        threads: usize,
        /// What the OS said.
        source: io::Error,
    },
}
