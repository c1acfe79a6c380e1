//! The worker's decisions, as pure functions of its counts and settings:
//! how long the poller sleeps, when it may accept, which request is the
//! last, when a long request retires the worker. Unit-tested here; the
//! poller only applies them.

use std::time::Duration;

use runicorn_http::ConnConfig;
use runicorn_worker::Settings;

/// How long a saturated worker lets a connection wait in the kernel queue
/// for a worker with a free thread. A worker that is free takes it within
/// microseconds; one still there after two looks this far apart means every
/// worker is saturated (kept-alive clients refill their threads as soon as
/// they free up), so the saturated workers take from the queue (one pool's
/// worth per look each) and serve it behind their busy threads rather than
/// let it starve.
pub(crate) const ACCEPT_PATIENCE: Duration = Duration::from_millis(50);

/// How long a connection just accepted counts as taking one of the free
/// threads, until its first bytes put it on one. A client sends its
/// request right behind the handshake (the bytes reach the server
/// microseconds after the connection is queued), so a worker that counted
/// only the threads waiting in epoll saw them all still free while its
/// fresh connections' bytes were on the way, and went on accepting: on a
/// loaded machine one worker took a whole burst of 24 kept-alive clients
/// and left the other worker idle for as long as they stayed. Past this,
/// a silent connection no longer holds the worker back from accepting (a
/// client that connects and says nothing holds no thread).
pub(crate) const FRESH_CLAIM: Duration = Duration::from_millis(20);

/// How long one epoll wait may last: the master's heartbeat interval.
pub(crate) use runicorn_worker::poll_interval;

/// The driver settings of a gthread worker: keep-alive on unless
/// `--keep-alive 0`; the poller, not the driver, times idle connections.
pub(crate) fn conn_config(settings: &Settings) -> ConnConfig {
    settings.conn_config(!settings.keepalive.is_zero())
}

/// How long a fresh connection may wait in the poller for its first bytes:
/// the head deadline (`--header-timeout`), which the driver puts on the
/// whole head from the same accept. Zero (no deadline) waits a year.
pub(crate) fn head_deadline(settings: &Settings) -> Duration {
    if settings.header_timeout.is_zero() {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        settings.header_timeout
    }
}

/// What the poller knows when it decides whether to watch the listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Connections on a pool thread.
    pub(crate) busy: usize,
    /// Threads waiting with no connection ready. Zero when every thread is
    /// busy or a readable connection waits for one.
    pub(crate) waiting: usize,
    /// Connections accepted within [`FRESH_CLAIM`] and still waiting for
    /// their first bytes: each will need one of the waiting threads.
    pub(crate) claimed: usize,
    /// `--threads`.
    pub(crate) threads: usize,
    /// Connections parked in the poller.
    pub(crate) parked: usize,
    /// Of those, kept-alive ones (which may be closed to make room).
    pub(crate) kept: usize,
    /// `--worker-connections`.
    pub(crate) cap: usize,
}

impl Load {
    /// Connections this worker holds.
    pub(crate) fn total(&self) -> usize {
        self.busy + self.parked
    }

    /// Free threads: those waiting that no connection just accepted will
    /// take.
    pub(crate) fn free(&self) -> usize {
        self.waiting.saturating_sub(self.claimed)
    }

    /// Whether to accept now: only with a free thread (so a busy worker
    /// leaves new clients in the kernel queue for another worker), and
    /// with room under `--worker-connections`, or an idle kept-alive
    /// connection to close for room.
    pub(crate) fn may_accept(&self) -> bool {
        self.free() > 0 && self.has_room()
    }

    /// Whether one more connection fits under `--worker-connections`, or
    /// an idle kept-alive connection can be closed to make room.
    pub(crate) fn has_room(&self) -> bool {
        self.total() < self.cap.max(1) || self.kept > 0
    }

    /// No thread is free (every one busy, or work waits for one) but
    /// there is room: the case where new clients wait in the kernel queue.
    pub(crate) fn saturated(&self) -> bool {
        self.free() == 0 && self.has_room()
    }

    /// Whether accepting one more first needs an idle connection closed.
    pub(crate) fn needs_room(&self) -> bool {
        self.total() >= self.cap.max(1)
    }
}

/// Whether the oldest request in flight, `age` old, has run past
/// `--timeout` (zero: never), so the worker must retire.
pub(crate) fn overdue(age: Duration, timeout: Duration) -> bool {
    !timeout.is_zero() && age > timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two threads, `busy` of them with a connection, the others free.
    fn load(busy: usize, parked: usize, kept: usize) -> Load {
        Load {
            busy,
            waiting: 2usize.saturating_sub(busy),
            claimed: 0,
            threads: 2,
            parked,
            kept,
            cap: 10,
        }
    }

    #[test]
    fn connections_are_kept_alive_unless_keepalive_is_zero() {
        let settings = Settings {
            timeout: Duration::from_secs(10),
            ..Settings::default()
        };
        assert!(conn_config(&settings).keep_alive);
        assert_eq!(head_deadline(&settings), Duration::from_secs(10));
        let no_deadline = Settings {
            header_timeout: Duration::ZERO,
            ..settings.clone()
        };
        assert!(head_deadline(&no_deadline) > Duration::from_secs(86400));
        let closing = Settings {
            keepalive: Duration::ZERO,
            ..settings
        };
        assert!(!conn_config(&closing).keep_alive);
    }

    #[test]
    fn a_worker_with_every_thread_busy_does_not_accept() {
        assert!(load(0, 0, 0).may_accept());
        assert!(load(1, 3, 0).may_accept());
        assert!(!load(2, 0, 0).may_accept());
        let queued = Load {
            waiting: 0,
            ..load(1, 3, 0)
        };
        assert!(
            !queued.may_accept(),
            "a thread about to take queued work is not free"
        );
    }

    #[test]
    fn a_connection_just_accepted_takes_a_free_thread_before_its_bytes_come() {
        let one_claimed = Load {
            claimed: 1,
            ..load(0, 1, 0)
        };
        assert_eq!(one_claimed.free(), 1);
        assert!(one_claimed.may_accept());
        let both_claimed = Load {
            claimed: 2,
            ..load(0, 2, 0)
        };
        assert_eq!(both_claimed.free(), 0);
        assert!(
            !both_claimed.may_accept(),
            "two threads waiting for two connections' bytes are not free"
        );
        assert!(both_claimed.saturated());
        let over = Load {
            claimed: 5,
            ..load(1, 5, 0)
        };
        assert_eq!(over.free(), 0);
    }

    #[test]
    fn at_the_connection_cap_only_an_idle_kept_alive_connection_makes_room() {
        assert!(!load(1, 9, 0).may_accept(), "full of fresh connections");
        let full = load(1, 9, 4);
        assert!(full.may_accept());
        assert!(full.needs_room());
        assert!(!load(1, 8, 4).needs_room());
        let tiny = Load {
            cap: 0,
            ..load(0, 0, 0)
        };
        assert!(tiny.may_accept(), "a cap of 0 still lets one in");
    }

    #[test]
    fn saturated_means_every_thread_busy_and_room_left() {
        assert!(!load(1, 3, 0).saturated());
        assert!(load(2, 3, 0).saturated());
        assert!(
            Load {
                waiting: 0,
                ..load(1, 3, 0)
            }
            .saturated(),
            "work waiting for a thread"
        );
        assert!(
            !load(2, 8, 0).saturated(),
            "at the cap with nothing to close"
        );
        assert!(load(2, 8, 1).saturated());
    }

    #[test]
    fn overdue_only_past_a_nonzero_timeout() {
        let timeout = Duration::from_secs(30);
        assert!(!overdue(Duration::from_secs(30), timeout));
        assert!(overdue(Duration::from_secs(31), timeout));
        assert!(!overdue(Duration::from_secs(3600), Duration::ZERO));
    }
}
