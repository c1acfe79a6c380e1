//! The one clock the master and its workers share.
//!
//! `CLOCK_MONOTONIC` is system-wide, so a timestamp a worker writes into the
//! scoreboard means the same instant when the master reads it. Timestamps
//! are stored as nanoseconds; 0 is reserved for "never".

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// Now, on the system-wide monotonic clock.
pub fn monotonic_now() -> Duration {
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(spec) => Duration::new(spec.tv_sec() as u64, spec.tv_nsec() as u32),
        // CLOCK_MONOTONIC cannot fail on Linux; fall back to "no time".
        Err(_) => Duration::ZERO,
    }
}

/// Now as scoreboard nanoseconds, never 0.
pub fn monotonic_nanos() -> u64 {
    (monotonic_now().as_nanos() as u64).max(1)
}
