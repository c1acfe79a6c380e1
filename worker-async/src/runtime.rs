//! The runtimes: one tokio `current_thread` runtime per `--threads`, each on
//! a thread of its own, built in the worker after fork (tokio supports a
//! forked child only if the parent never started it, and the master never
//! does). Each runtime registers its own handle on every inherited
//! listener, so the runtimes share the accept queues; each runs a
//! `LocalSet` (app futures need not be `Send`) with the accept loops and
//! the tick task, until a graceful stop has let its connections finish.

use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use runicorn_worker::Listener;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::watch;
use tokio::task::LocalSet;

use crate::accept::{self, AsyncListener};
use crate::error::AsyncError;
use crate::heartbeat::{self, Beats};
use crate::local::{Local, Serving};
use runicorn_worker::Shared;

/// How long a finished runtime waits for its blocking-pool threads.
const POOL_SHUTDOWN: Duration = Duration::from_millis(100);

/// One runtime, built and with its listeners registered, not yet running.
#[derive(Debug)]
pub(crate) struct Prepared {
    index: usize,
    runtime: Runtime,
    listeners: Vec<(AsyncListener, String)>,
}

/// Builds runtime `index` with its share of the blocking pool, and registers
/// a duplicate of every listener with it.
pub(crate) fn prepare(
    index: usize,
    blocking_threads: usize,
    listeners: &[Listener],
) -> Result<Prepared, AsyncError> {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads.max(1))
        .thread_name(format!("runicorn-blocking-{index}"))
        .build()
        .map_err(|source| AsyncError::Runtime { index, source })?;
    let mut registered = Vec::with_capacity(listeners.len());
    {
        let _entered = runtime.enter();
        for listener in listeners {
            let name = listener.describe();
            let failed = |source| AsyncError::Listener {
                listener: name.clone(),
                index,
                source,
            };
            let copy = listener.try_clone().map_err(failed)?;
            copy.set_nonblocking(true).map_err(failed)?;
            let async_listener = match copy {
                Listener::Tcp(tcp) => {
                    AsyncListener::Tcp(tokio::net::TcpListener::from_std(tcp).map_err(failed)?)
                }
                Listener::Unix(unix) => {
                    AsyncListener::Unix(tokio::net::UnixListener::from_std(unix).map_err(failed)?)
                }
            };
            registered.push((async_listener, name));
        }
    }
    Ok(Prepared {
        index,
        runtime,
        listeners: registered,
    })
}

/// What each runtime thread needs besides its [`Prepared`] runtime.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) shared: Arc<Shared>,
    pub(crate) serving: Serving,
    pub(crate) beats: Arc<Beats>,
    pub(crate) every: Duration,
    pub(crate) stop: watch::Receiver<bool>,
    /// Each runtime sends its index here when its thread ends.
    pub(crate) done: mpsc::Sender<usize>,
}

/// Starts the thread of a prepared runtime.
pub(crate) fn spawn(prepared: Prepared, launch: Launch) -> Result<(), AsyncError> {
    let index = prepared.index;
    thread::Builder::new()
        .name(format!("runicorn-runtime-{index}"))
        .spawn(move || {
            let done = launch.done.clone();
            let beats = Arc::clone(&launch.beats);
            // Reports the end even if the runtime panics.
            let _report = Finished { index, done, beats };
            run(prepared, launch);
        })
        .map(drop)
        .map_err(|source| AsyncError::Thread { index, source })
}

struct Finished {
    index: usize,
    done: mpsc::Sender<usize>,
    beats: Arc<Beats>,
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.beats.retire(self.index);
        let _ = self.done.send(self.index);
    }
}

/// The life of one runtime thread.
fn run(prepared: Prepared, launch: Launch) {
    let Prepared {
        index,
        runtime,
        listeners,
    } = prepared;
    let local_set = LocalSet::new();
    local_set.block_on(&runtime, async {
        let local = Rc::new(Local::new(
            launch.shared,
            launch.serving,
            launch.stop.clone(),
        ));
        tokio::task::spawn_local(heartbeat::tick_forever(launch.beats, index, launch.every));
        let mut accepting = Vec::with_capacity(listeners.len());
        for (index, (listener, name)) in listeners.into_iter().enumerate() {
            let server_addr = Arc::clone(local.shared.server_addr(index));
            accepting.push(tokio::task::spawn_local(accept::accept_loop(
                listener,
                name,
                server_addr,
                Rc::clone(&local),
            )));
        }
        let mut stop = launch.stop;
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        // The accept loops close their listeners, and start the connections
        // a stop took off the queues, before the wait for the last one.
        for accept_loop in accepting {
            let _ = accept_loop.await;
        }
        local.drained().await;
        tracing::debug!(
            "runtime {index} finished its connections ({} open)",
            local.live()
        );
    });
    // Accept loops and the tick task are dropped with the set.
    drop(local_set);
    runtime.shutdown_timeout(POOL_SHUTDOWN);
}
