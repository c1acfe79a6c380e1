//! What can stop a green worker from booting.

use std::io;

/// A green worker could not start serving; the worker exits 3.
#[derive(Debug, thiserror::Error)]
pub enum GreenError {
    /// An inherited listener could not be handed to may's event loop.
    #[error("cannot register listener {listener} with the may runtime: {reason}; check the descriptor limit (ulimit -n) and that the socket is a listening stream socket")]
    Adopt {
        /// The listener, as logged at boot.
        listener: String,
        /// What failed.
        reason: String,
    },
    /// A second descriptor of a listener, kept for the stop, could not be made.
    #[error(
        "cannot duplicate listener {listener}: {source}; check the descriptor limit (ulimit -n)"
    )]
    Duplicate {
        /// The listener, as logged at boot.
        listener: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A coroutine (heartbeat or accept loop) could not be started.
    #[error("cannot start the {what} coroutine: {source}; check the memory limit (ulimit -v) or lower --green-stack-size")]
    Spawn {
        /// Which coroutine.
        what: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// The worker has no listener to accept on.
    #[error("the worker inherited no listening socket; pass at least one -b/--bind")]
    NoListener,
}
