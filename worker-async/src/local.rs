//! What the connections of one runtime share ([`Local`], on its thread):
//! the worker's [`Shared`] state (across runtime threads), the connection
//! permits, and the count of the runtime's open connections that a
//! graceful stop waits on (each ends after its next answer, or at
//! `--keep-alive` when idle).

use std::cell::Cell;
use std::sync::Arc;

use runicorn_worker::Shared;
use tokio::sync::{watch, Notify, Semaphore};

/// What an async worker's runtimes share besides [`Shared`].
#[derive(Debug, Clone)]
pub(crate) struct Serving {
    /// `--worker-connections` permits, taken before accept.
    pub(crate) permits: Arc<Semaphore>,
    /// The log level shows each request line (debug), asked once: the
    /// subscriber's filter is fixed for the worker's life, and asking per
    /// request costs a dispatcher look-up on the hot path.
    pub(crate) log_requests: bool,
}

/// The state of one runtime, shared by its tasks (never across threads).
#[derive(Debug)]
pub(crate) struct Local {
    /// The worker-wide state.
    pub(crate) shared: Arc<Shared>,
    /// What the runtimes share besides it.
    pub(crate) serving: Serving,
    /// Becomes true when the worker stops accepting (graceful stop).
    pub(crate) stop: watch::Receiver<bool>,
    /// Connections open on this runtime.
    live: Cell<usize>,
    /// Notified when `live` drops to zero.
    drained: Notify,
}

impl Local {
    pub(crate) fn new(shared: Arc<Shared>, serving: Serving, stop: watch::Receiver<bool>) -> Local {
        Local {
            shared,
            serving,
            stop,
            live: Cell::new(0),
            drained: Notify::new(),
        }
    }

    /// Counts a connection open until the guard drops.
    pub(crate) fn open(self: &std::rc::Rc<Self>) -> LiveGuard {
        self.live.set(self.live.get() + 1);
        LiveGuard(std::rc::Rc::clone(self))
    }

    /// Connections open on this runtime now.
    pub(crate) fn live(&self) -> usize {
        self.live.get()
    }

    /// Waits until no connection is open on this runtime.
    pub(crate) async fn drained(&self) {
        while self.live.get() > 0 {
            self.drained.notified().await;
        }
    }
}

/// One open connection of a runtime.
#[derive(Debug)]
pub(crate) struct LiveGuard(std::rc::Rc<Local>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let left = self.0.live.get() - 1;
        self.0.live.set(left);
        if left == 0 {
            // notify_one keeps a permit if nobody waits yet, so a waiter
            // that checks `live` and then awaits cannot miss this.
            self.0.drained.notify_one();
        }
    }
}
