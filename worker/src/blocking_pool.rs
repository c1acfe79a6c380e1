//! The blocking pool's line: a coroutine class (green, async) that calls
//! the app on its bounded pool of OS threads (`--blocking-threads`) rather
//! than on its coroutines or tasks says so once at boot, at INFO, in the
//! same words whichever class it is. The pool, not `--worker-connections`,
//! then bounds how many requests a worker serves at once (a Flask app
//! under `-k green` serves at most `--blocking-threads` at a time), and
//! operators and `runicorn bench` (which reads the line from the server's
//! log to compute its Little's-law limit) learn that figure here:
//! [`pool_line`] writes it and [`parse_pool_line`] reads it back.

/// Why the app's requests run on the blocking pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolReason {
    /// `App::blocks_thread`: its waits block the OS thread (a Python WSGI
    /// app, or a library that sets `RC_CAP_BLOCKS_THREAD`).
    BlocksThread,
    /// The async class, for an app without an async entry: its blocking
    /// entry runs on the runtime's blocking pool.
    NoAsyncEntry,
}

impl PoolReason {
    fn words(self) -> &'static str {
        match self {
            PoolReason::BlocksThread => {
                "The app blocks its thread (a Python WSGI app, or a library that sets RC_CAP_BLOCKS_THREAD)"
            }
            PoolReason::NoAsyncEntry => "The app has no async entry (only a blocking one)",
        }
    }
}

/// The fixed text of the line before the bound; [`parse_pool_line`] finds
/// it anywhere in a log line (after any log prefix).
pub const POOL_LINE_MARKER: &str = ": its requests run on the blocking pool, at most ";

/// The line: `The app blocks its thread (...): its requests run on the
/// blocking pool, at most N at once in this worker (--blocking-threads B)`,
/// where `bound` is the pool the worker really applies (the async class
/// shares `--blocking-threads` out between its runtimes, rounding up) and
/// `blocking_threads` the setting.
pub fn pool_line(reason: PoolReason, bound: usize, blocking_threads: usize) -> String {
    format!(
        "{}{POOL_LINE_MARKER}{bound} at once in this worker (--blocking-threads {blocking_threads})",
        reason.words()
    )
}

/// Logs [`pool_line`] at INFO.
pub fn log_pool(reason: PoolReason, bound: usize, blocking_threads: usize) {
    tracing::info!("{}", pool_line(reason, bound, blocking_threads));
}

/// The per-worker bound a [`pool_line`] names, from a log line (with or
/// without its prefix); `None` for any other line.
pub fn parse_pool_line(line: &str) -> Option<u32> {
    let (_, rest) = line.split_once(POOL_LINE_MARKER)?;
    let (bound, _) = rest.split_once(" at once in this worker")?;
    bound.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_back() {
        let line = pool_line(PoolReason::BlocksThread, 40, 40);
        assert_eq!(
            line,
            "The app blocks its thread (a Python WSGI app, or a library that sets \
             RC_CAP_BLOCKS_THREAD): its requests run on the blocking pool, at most 40 at once \
             in this worker (--blocking-threads 40)"
        );
        assert_eq!(parse_pool_line(&line), Some(40));
        let logged = format!(
            "[2026-12-07 20:15:42 +0000] [20347] [INFO] {}",
            pool_line(PoolReason::NoAsyncEntry, 4, 3)
        );
        assert_eq!(parse_pool_line(&logged), Some(4));
        assert_eq!(
            parse_pool_line("[x] [1] [INFO] Ready: 1 worker booted"),
            None
        );
        assert_eq!(
            parse_pool_line("its requests run on the blocking pool, at most many at once"),
            None
        );
    }
}
