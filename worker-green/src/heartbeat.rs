//! The heartbeat coroutine: beats the scoreboard slot every interval, from
//! a may worker thread (see `runtime` for the hop back from the timer
//! thread). It competes for the worker threads like every connection, so a
//! CPU-bound handler that hogs them stops the beat, and the master kills
//! the worker naming the request that hogged it.

use std::io;
use std::time::Duration;

use may::coroutine::JoinHandle;
use runicorn_worker::Slot;

use crate::{fence, runtime};

/// How long the heartbeat sleeps: the master's poll interval (half the
/// timeout within 50 ms..1 s), so it is never late and a hang is seen soon.
pub(crate) use runicorn_worker::poll_interval as interval;

/// Starts the heartbeat coroutine; it beats until the process exits.
pub(crate) fn spawn(slot: Slot, every: Duration) -> io::Result<JoinHandle<()>> {
    fence::spawn(move || loop {
        slot.heartbeat();
        runtime::sleep(every);
    })
}
