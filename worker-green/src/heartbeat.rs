//! The heartbeat coroutine: beats the scoreboard slot every interval, from
//! a may worker thread (see `runtime` for the hop back from the timer
//! thread). It competes for the worker threads like every connection, so a
//! CPU-bound handler that hogs them stops the beat, and the master kills
//! the worker naming the request that hogged it.

use std::io;
use std::time::Duration;

use may::coroutine::JoinHandle;
use runicorn_master::Slot;

use crate::{fence, runtime};

/// How long the heartbeat sleeps: half the timeout (Gunicorn's choice),
/// within 50 ms..1 s, so it is never late and a hang is seen soon.
pub(crate) fn interval(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        return Duration::from_secs(1);
    }
    (timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Starts the heartbeat coroutine; it beats until the process exits.
pub(crate) fn spawn(slot: Slot, every: Duration) -> io::Result<JoinHandle<()>> {
    fence::spawn(move || loop {
        slot.heartbeat();
        runtime::sleep(every);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_keeps_the_heartbeat_on_time() {
        assert_eq!(interval(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_secs(30)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_secs(1)), Duration::from_millis(500));
        assert_eq!(
            interval(Duration::from_millis(20)),
            Duration::from_millis(50)
        );
    }
}
