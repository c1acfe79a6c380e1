//! What every connection of a worker shares ([`Shared`], across runtime
//! threads) and what the connections of one runtime share ([`Local`], on
//! its thread): the app, the scoreboard slot, the stop state, the
//! connection permits, the request count toward `--max-requests`, and the
//! count of a runtime's open connections that a graceful stop waits on
//! (each ends after its next answer, or at `--keep-alive` when idle).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use runicorn_app::Application;
use runicorn_http::{ConnConfig, ForwardedPolicy};
use runicorn_worker::{Shutdown, Slot};
use tokio::sync::{watch, Notify, Semaphore};

/// The worker-wide state, shared by every runtime thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The app, with its async entry when it has one.
    pub(crate) app: Application,
    /// This worker's scoreboard slot.
    pub(crate) slot: Slot,
    /// The worker's stop state.
    pub(crate) shutdown: Shutdown,
    /// Driver settings.
    pub(crate) config: ConnConfig,
    /// Requests after which the worker retires (0: never).
    pub(crate) max_requests: u64,
    /// Requests started so far.
    pub(crate) started: AtomicU64,
    /// Run sync apps on the runtime thread (test-only inline mode).
    pub(crate) inline_sync: bool,
    /// `--worker-connections` permits, taken before accept.
    pub(crate) permits: Arc<Semaphore>,
    /// The log level shows each request line (debug), asked once: the
    /// subscriber's filter is fixed for the worker's life, and asking per
    /// request costs a dispatcher look-up on the hot path.
    pub(crate) log_requests: bool,
    /// Whom to believe about forwarded clients and schemes.
    pub(crate) forwarded: ForwardedPolicy,
    /// Each listener's address, as apps are told it, by listener index.
    pub(crate) server_addrs: Vec<Arc<str>>,
}

impl Shared {
    /// Counts a request as started; true when it must be the last on its
    /// connection (the worker is stopping, or this request reaches
    /// `--max-requests`, which starts the graceful stop).
    pub(crate) fn start_request(&self) -> bool {
        let count = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        if self.max_requests > 0 && count >= self.max_requests {
            if count == self.max_requests {
                tracing::info!("Autorestarting worker after current request.");
                self.shutdown.request_graceful();
            }
            return true;
        }
        !self.shutdown.is_running()
    }

    /// The app panicked: its state may be broken, so the worker retires
    /// once in-flight requests are answered.
    pub(crate) fn retire_after_panic(&self) {
        self.shutdown.retire_after_panic();
    }
}

/// The state of one runtime, shared by its tasks (never across threads).
#[derive(Debug)]
pub(crate) struct Local {
    /// The worker-wide state.
    pub(crate) shared: Arc<Shared>,
    /// Becomes true when the worker stops accepting (graceful stop).
    pub(crate) stop: watch::Receiver<bool>,
    /// Connections open on this runtime.
    live: Cell<usize>,
    /// Notified when `live` drops to zero.
    drained: Notify,
}

impl Local {
    pub(crate) fn new(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Local {
        Local {
            shared,
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
