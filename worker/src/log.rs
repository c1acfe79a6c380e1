//! Gunicorn's CRITICAL level, for the master and every worker class.
//!
//! The writer (Gunicorn's line format, the log file, reopen on USR1) is
//! `master::log`, installed before the first fork and inherited.

/// The `tracing` target of Gunicorn's CRITICAL lines: `tracing` has no
/// level above ERROR, so a critical line is an ERROR event with this target
/// (see [`critical!`](crate::critical)), ranked above ERROR and shown as
/// `[CRITICAL]`, the word alerting rules match.
pub const CRITICAL_TARGET: &str = "runicorn::critical";

/// Logs one line at Gunicorn's CRITICAL level (as `tracing::error!` takes
/// its arguments): what the master says when it kills a hung worker.
#[macro_export]
macro_rules! critical {
    ($($arg:tt)+) => {
        ::tracing::error!(target: $crate::log::CRITICAL_TARGET, $($arg)+)
    };
}
