//! Waits that yield the coroutine, and the hop back to a may worker thread.
//!
//! may runs a coroutine whose `sleep` timer fired *on its timer thread*
//! (`scheduler.rs`: the timer handler calls `run_coroutine` directly), and
//! the coroutine keeps that thread until its next wait. Two things would go
//! wrong if we let it: a CPU-bound handler that hogs the only worker thread
//! would not stop the heartbeat coroutine (it would beat from the timer
//! thread, so the master would never see the worker hang), and the code
//! after an app's sleep would run on the shared timer thread, delaying
//! every other timer. So every sleep here ends with `yield_now`, which from
//! the timer thread re-queues the coroutine on a worker thread's queue.
//! I/O timeouts need no hop: may fires them on the worker threads' own
//! event loops.

use std::time::Duration;

/// Sleeps `duration`, yielding the coroutine (a plain thread sleeps), and
/// resumes on a may worker thread.
pub fn sleep(duration: Duration) {
    if !duration.is_zero() {
        may::coroutine::sleep(duration);
    }
    may::coroutine::yield_now();
}
