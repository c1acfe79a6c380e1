//! The pool of OS threads on which apps that block a thread run (Python:
//! its own waits, `time.sleep`, a database driver's socket, are not may
//! waits). A connection's coroutine hands its exchange to a pool thread and
//! waits, so an app stuck in a blocking call holds a pool thread, never a
//! may thread; `--blocking-threads` bounds how many such calls run at once
//! (the async class uses the same setting for the same purpose). The
//! exchange's socket is may's, which blocks the pool thread (may parks it
//! on its event loop) when used outside a coroutine.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crossbeam::channel::{unbounded, Sender};

/// A job: the rest of one request.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads started on first use, then kept for the worker's life.
#[derive(Debug)]
pub(crate) struct Pool {
    size: usize,
    sender: OnceLock<Sender<Job>>,
    start: Mutex<()>,
}

impl Pool {
    /// How many threads [`Pool::new`] gives a pool asked for `size`.
    pub(crate) fn size_for(size: usize) -> usize {
        size.max(1)
    }

    /// A pool of `size` threads (at least one), none started yet.
    pub(crate) fn new(size: usize) -> Arc<Pool> {
        Arc::new(Pool {
            size: Pool::size_for(size),
            sender: OnceLock::new(),
            start: Mutex::new(()),
        })
    }

    /// Queue `job` for the next free thread.
    pub(crate) fn submit(&self, job: Job) {
        let sender = self.sender.get_or_init(|| {
            let _starting = self.start.lock().unwrap_or_else(PoisonError::into_inner);
            let (sender, receiver) = unbounded::<Job>();
            for index in 0..self.size {
                let receiver = receiver.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("blocking-{index}"))
                    .spawn(move || {
                        while let Ok(job) = receiver.recv() {
                            job();
                        }
                    });
                if let Err(err) = spawned {
                    tracing::error!("cannot start a blocking-pool thread: {err}");
                }
            }
            sender
        });
        if sender.send(job).is_err() {
            tracing::error!("the blocking pool has no thread left to run a request");
        }
    }
}
