//! The pool: `--threads` threads that take readable connections from a
//! channel, serve them until idle or closed, and hand them back to the
//! poller through a second channel and an eventfd that wakes it. What a
//! thread does with each connection is `job::run_job`.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam::channel::{self, Receiver, Sender};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::error::ThreadError;
use crate::hangup::HangUpProbe;
use crate::job::{run_job, Job, Returned};
use crate::serve::Shared;

/// How the pool wakes the poller: an eventfd written only when the poller
/// has not yet been told (one write per wake-up, not per connection).
#[derive(Debug)]
struct Doorbell {
    eventfd: EventFd,
    rung: AtomicBool,
}

impl Doorbell {
    fn ring(&self) {
        if !self.rung.swap(true, Ordering::SeqCst) {
            // A failed write can only mean the counter is full, i.e. rung.
            let _ = self.eventfd.write(1);
        }
    }

    /// Called by the poller before it drains the returns channel.
    fn answer(&self) {
        if self.rung.load(Ordering::SeqCst) {
            let _ = self.eventfd.read();
            self.rung.store(false, Ordering::SeqCst);
        }
    }
}

/// The running pool.
#[derive(Debug)]
pub(crate) struct Pool {
    jobs: Option<Sender<Job>>,
    returns: Receiver<Returned>,
    doorbell: Arc<Doorbell>,
    handles: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` threads serving with `shared`.
    pub(crate) fn start(threads: usize, shared: &Arc<Shared>) -> Result<Pool, ThreadError> {
        let eventfd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(
            |errno| ThreadError::Poller {
                what: "wake-up eventfd",
                source: errno.into(),
            },
        )?;
        let doorbell = Arc::new(Doorbell {
            eventfd,
            rung: AtomicBool::new(false),
        });
        let (jobs, job_queue) = channel::unbounded::<Job>();
        let (returner, returns) = channel::unbounded::<Returned>();
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let job_queue = job_queue.clone();
            let returner = returner.clone();
            let doorbell = Arc::clone(&doorbell);
            let shared = Arc::clone(shared);
            let probe = HangUpProbe::new()?;
            let handle = thread::Builder::new()
                .name(format!("gthread-{index}"))
                .spawn(move || {
                    for job in job_queue {
                        if returner.send(run_job(&shared, &probe, job)).is_err() {
                            return;
                        }
                        doorbell.ring();
                    }
                })
                .map_err(|source| ThreadError::Thread {
                    index,
                    threads,
                    source,
                })?;
            handles.push(handle);
        }
        Ok(Pool {
            jobs: Some(jobs),
            returns,
            doorbell,
            handles,
        })
    }

    /// Hands a readable connection to the next free thread (or the queue).
    pub(crate) fn submit(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // The receivers live as long as the threads, which outlive this.
            let _ = jobs.send(job);
        }
    }

    /// The descriptor that becomes readable when connections come back.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.doorbell.eventfd.as_fd()
    }

    /// Every connection handed back since the last call.
    pub(crate) fn returned(&self) -> impl Iterator<Item = Returned> + '_ {
        self.doorbell.answer();
        self.returns.try_iter()
    }

    /// Closes the job queue; with `join`, waits for the threads (only when
    /// none is busy, so this cannot hang).
    pub(crate) fn finish(mut self, join: bool) {
        self.jobs = None;
        if join {
            for handle in self.handles.drain(..) {
                let _ = handle.join();
            }
        }
    }
}
