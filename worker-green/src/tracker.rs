//! Which connections are open, for a graceful stop.
//!
//! A graceful stop waits until every connection is gone: its requests
//! answered, each response that started once the worker retired saying
//! `Connection: close`, and the idle ones ended by their client (its next
//! request answered and closed after, or its own close) or by `--keep-alive`.
//! An idle connection is never closed under its client, who may be sending
//! a request at that very moment.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters shared by every connection of one worker.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Connections open.
    live: AtomicUsize,
}

impl Tracker {
    /// Connections open now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

/// One connection's entry in the [`Tracker`]: counted open from its accept
/// until dropped.
#[derive(Debug)]
pub(crate) struct Open {
    tracker: Arc<Tracker>,
}

impl Open {
    /// Registers a just-accepted connection.
    pub(crate) fn new(tracker: Arc<Tracker>) -> Open {
        tracker.live.fetch_add(1, Ordering::AcqRel);
        Open { tracker }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.tracker.live.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_counts_open_until_dropped() {
        let tracker = Arc::new(Tracker::default());
        let conn = Open::new(Arc::clone(&tracker));
        assert_eq!(tracker.live(), 1);
        drop(conn);
        assert_eq!(tracker.live(), 0);
    }
}
