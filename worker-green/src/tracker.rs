//! Which connections are busy, for a graceful stop.
//!
//! A graceful stop waits until every connection is *idle* (blocked waiting
//! for the next request of a keep-alive connection, its last response fully
//! written) or gone. A connection counts as busy from the moment it is
//! accepted until its first request is answered, and again from the moment
//! a read returns while it waits for another request. The transport flips
//! the count around each between-requests read ([`ConnState::idle_read`]);
//! the driver flushes every buffered response before it reads, so an idle
//! connection owes its client nothing.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters shared by every connection of one worker.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Connections open.
    live: AtomicUsize,
    /// Connections not idle.
    busy: AtomicUsize,
    /// Requests started, toward `max_requests`.
    started: AtomicU64,
}

impl Tracker {
    /// Connections open now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Connections busy now.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Counts a request started; the new total.
    pub(crate) fn start_request(&self) -> u64 {
        self.started.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Requests started so far.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }
}

/// One connection's entry in the [`Tracker`]: made busy when accepted,
/// removed on drop.
#[derive(Debug)]
pub(crate) struct ConnState {
    tracker: Arc<Tracker>,
    in_request: Cell<bool>,
    answered: Cell<u64>,
}

impl ConnState {
    /// Registers a just-accepted connection (busy).
    pub(crate) fn new(tracker: Arc<Tracker>) -> ConnState {
        tracker.live.fetch_add(1, Ordering::AcqRel);
        tracker.busy.fetch_add(1, Ordering::AcqRel);
        ConnState {
            tracker,
            in_request: Cell::new(false),
            answered: Cell::new(0),
        }
    }

    /// The driver parsed a request head.
    pub(crate) fn request_started(&self) {
        self.in_request.set(true);
    }

    /// The driver answered the request.
    pub(crate) fn request_finished(&self) {
        self.in_request.set(false);
        self.answered.set(self.answered.get() + 1);
    }

    /// Runs `read`, counting the connection idle meanwhile when it waits
    /// between requests of a keep-alive connection.
    pub(crate) fn idle_read<T>(&self, read: impl FnOnce() -> T) -> T {
        let idle = !self.in_request.get() && self.answered.get() > 0;
        if !idle {
            return read();
        }
        self.tracker.busy.fetch_sub(1, Ordering::AcqRel);
        let result = read();
        self.tracker.busy.fetch_add(1, Ordering::AcqRel);
        result
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        self.tracker.busy.fetch_sub(1, Ordering::AcqRel);
        self.tracker.live.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_between_answered_requests() {
        let tracker = Arc::new(Tracker::default());
        let conn = ConnState::new(Arc::clone(&tracker));
        assert_eq!((tracker.live(), tracker.busy()), (1, 1));
        // Waiting for the first request counts as busy.
        conn.idle_read(|| assert_eq!(tracker.busy(), 1));
        conn.request_started();
        conn.idle_read(|| assert_eq!(tracker.busy(), 1));
        conn.request_finished();
        // Waiting for the next request counts as idle.
        conn.idle_read(|| assert_eq!(tracker.busy(), 0));
        assert_eq!(tracker.busy(), 1);
        drop(conn);
        assert_eq!((tracker.live(), tracker.busy()), (0, 0));
        assert_eq!(tracker.start_request(), 1);
        assert_eq!(tracker.started(), 1);
    }
}
