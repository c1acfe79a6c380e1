//! Deadlines and condition polling: tests wait for a condition to hold, with
//! a bound, and never use a bare sleep as synchronisation.

use std::time::{Duration, Instant};

/// A point in time after which a wait gives up.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// A deadline `secs` seconds from now (fractions allowed).
pub fn deadline(secs: f64) -> Deadline {
    Deadline(Instant::now() + Duration::from_secs_f64(secs))
}

/// The polling interval of [`wait_until`]: short enough that tests stay fast,
/// long enough not to burn a shared CPU.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `condition` until it returns `Some`, or `None` once `deadline` passed.
pub fn wait_for<T>(deadline: Deadline, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = condition() {
            return Some(value);
        }
        if deadline.passed() {
            return None;
        }
        std::thread::sleep(POLL.min(deadline.remaining()));
    }
}

/// Polls `condition` until it is true (`true`) or `deadline` passed (`false`).
pub fn wait_until(deadline: Deadline, mut condition: impl FnMut() -> bool) -> bool {
    wait_for(deadline, || condition().then_some(())).is_some()
}
