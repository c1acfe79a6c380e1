//! Accepting: the worker's listeners ([`Listening`]), shared by the main
//! thread, which waits until one (or the shutdown wake fd) is readable and
//! takes one connection at a time, and the quick-stop watcher, which closes
//! them the moment the worker stops, even while the main thread is inside
//! a request (`runicorn_worker::stop_accepting`: a client that comes later
//! is refused rather than queued behind a worker that will not serve it).

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runicorn_worker::{stop_accepting, Accepted, Drain, Listener, Shared, Shutdown, Slot};

use crate::serve;

/// The pause after each connection a stopping sync worker takes off the
/// queue, letting the other workers, stopping at the same moment, take
/// theirs: each serves its share, none the whole queue alone.
const SHARED_DRAIN_PAUSE: Duration = Duration::from_millis(2);

/// The worker's listeners while it accepts, and what its stop took off
/// their queues.
#[derive(Debug)]
pub(crate) struct Listening {
    /// Empty once the worker stopped accepting.
    listeners: Mutex<Vec<Listener>>,
    /// Connections the stop took off the queues, for the main thread.
    taken: Mutex<VecDeque<(usize, Accepted)>>,
    /// Says whether the stop must take what is queued first.
    slot: Slot,
}

impl Listening {
    pub(crate) fn new(listeners: Vec<Listener>, slot: Slot) -> Listening {
        Listening {
            listeners: Mutex::new(listeners),
            taken: Mutex::new(VecDeque::new()),
            slot,
        }
    }

    fn listeners(&self) -> MutexGuard<'_, Vec<Listener>> {
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops accepting, once: takes what the kernel queued when the master
    /// asked (the service stops), and closes this worker's listeners.
    pub(crate) fn stop(&self) {
        let mut listeners = self.listeners();
        if listeners.is_empty() {
            return;
        }
        let drain = match Drain::on_stop(&self.slot) {
            Drain::Leave => Drain::Leave,
            _ => Drain::Shared(SHARED_DRAIN_PAUSE),
        };
        let taken = stop_accepting(std::mem::take(&mut *listeners), drain);
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(taken);
    }

    /// The next connection the stop took, to serve.
    pub(crate) fn next_taken(&self) -> Option<(usize, Accepted)> {
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }

    /// Polls the listeners and the wake fd; the indices of readable
    /// listeners, or `None` once the worker stopped accepting.
    pub(crate) fn wait_readable(
        &self,
        shutdown: &Shutdown,
        timeout: PollTimeout,
    ) -> Result<Option<Vec<usize>>, Errno> {
        // Held while polling: the watcher that closes them on a stop waits
        // for this poll, which the stop's wake-up ends at once.
        let listeners = self.listeners();
        if listeners.is_empty() {
            return Ok(None);
        }
        let mut fds: Vec<PollFd<'_>> = listeners
            .iter()
            .map(|listener| PollFd::new(listener.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN));
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(Some(Vec::new())),
            Err(err) => return Err(err),
        }
        let readable = PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP;
        Ok(Some(
            fds[..listeners.len()]
                .iter()
                .enumerate()
                .filter(|(_, fd)| {
                    fd.revents()
                        .is_some_and(|events| events.intersects(readable))
                })
                .map(|(index, _)| index)
                .collect(),
        ))
    }

    /// Takes one connection from listener `index` without waiting:
    /// `Ok(None)` when none is queued or the worker stopped accepting.
    pub(crate) fn accept(&self, index: usize) -> io::Result<Option<Accepted>> {
        match self.listeners().get(index) {
            Some(listener) => listener.accept_now(),
            None => Ok(None),
        }
    }

    /// How listener `index` is logged.
    pub(crate) fn describe(&self, index: usize) -> String {
        self.listeners()
            .get(index)
            .map_or_else(|| "a closed listener".to_owned(), Listener::describe)
    }
}

/// Waits `pause` after a failed accept (`runicorn_worker::AcceptBackoff`),
/// or less if the worker is told to stop meanwhile.
pub(crate) fn pause(shutdown: &Shutdown, pause: Duration) {
    let millis = pause.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = [PollFd::new(shutdown.wake_fd(), PollFlags::POLLIN)];
    let _ = poll(
        &mut fds,
        PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
    );
}

/// Serves `accepted`, taken from listener `index`, to its end.
pub(crate) fn serve(accepted_connection: Accepted, index: usize, shared: &Shared) {
    // The connection gets its own fresh heartbeat budget.
    shared.slot.heartbeat();
    let accepted = Instant::now();
    match accepted_connection {
        Accepted::Tcp(stream, peer) => {
            // Best effort: a response is written in few writes anyway.
            let _ = stream.set_nodelay(true);
            serve::connection(shared, stream, peer.to_string(), index, accepted);
        }
        Accepted::Unix(stream) => {
            serve::connection(shared, stream, String::new(), index, accepted);
        }
    }
}
