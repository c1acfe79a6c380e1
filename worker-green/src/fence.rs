//! Every `unsafe` call of the green worker, fenced in one place: spawning
//! may coroutines, adopting the inherited listening descriptors into may,
//! and cancelling the accept coroutines at shutdown. The rest of the crate
//! calls these safe wrappers.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::IntoRawFd;
use std::os::unix::io::FromRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use may::coroutine::{Builder, JoinHandle};
use runicorn_master::Listener;

use crate::error::GreenError;

/// A listener registered with may's event loop.
#[derive(Debug)]
pub(crate) enum GreenListener {
    /// TCP.
    Tcp(may::net::TcpListener),
    /// Unix domain.
    Unix(may::os::unix::net::UnixListener),
}

/// Spawns a coroutine on the default (configured) stack size.
pub(crate) fn spawn<F>(body: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    // SAFETY: may names two hazards. (1) Thread-locals: a coroutine may
    // resume on another may thread after any yield, so a reference into a
    // thread-local held across a yield would point at another thread's
    // value. The worker's own code (the http driver, the scoreboard,
    // tracing) touches thread-locals only inside calls that never yield;
    // apps are warned in the crate doc. (2) Stack overflow: every stack has
    // a guard page; may's `generator` catches the fault, prints "coroutine
    // has overflowed its stack" and abandons that coroutine (see `config`),
    // so an overflow never silently corrupts memory.
    unsafe { Builder::new().spawn(body) }
}

/// Hands an inherited listener to may (which sets it non-blocking and
/// registers it with its epoll). The descriptor moves: the worker's
/// `Listener` is consumed.
pub(crate) fn adopt(listener: Listener) -> Result<GreenListener, GreenError> {
    let shown = listener.describe();
    let adopted = catch_unwind(AssertUnwindSafe(|| match listener {
        Listener::Tcp(tcp) => {
            let fd = tcp.into_raw_fd();
            // SAFETY: `fd` was just released by an owned std TcpListener, so
            // it is open, a listening TCP socket, and owned by nobody else;
            // may's listener takes ownership and closes it on drop.
            GreenListener::Tcp(unsafe { may::net::TcpListener::from_raw_fd(fd) })
        }
        Listener::Unix(unix) => {
            let fd = unix.into_raw_fd();
            // SAFETY: as above, a listening unix socket owned by nobody else.
            GreenListener::Unix(unsafe { may::os::unix::net::UnixListener::from_raw_fd(fd) })
        }
    }));
    // may's `from_raw_fd` panics when the epoll registration fails.
    adopted.map_err(|payload| GreenError::Adopt {
        listener: shown,
        reason: runicorn_app::blocking::panic_message(&*payload),
    })
}

/// Stops an accept coroutine at its next wait (the semaphore or `accept`).
pub(crate) fn cancel(handle: &JoinHandle<()>) {
    // SAFETY: cancelling unwinds the coroutine from its current (or next)
    // yield point with may's `Cancel` panic, dropping what it holds. An
    // accept coroutine holds only `Arc`s and, between the semaphore and
    // `accept`, a connection permit whose drop gives the slot back. It hands
    // an accepted connection to its own coroutine without yielding in
    // between, so no accepted client is ever dropped by the cancel; a
    // connection not yet accepted stays in the kernel's queue for the next
    // worker. Connection coroutines are never cancelled.
    unsafe { handle.coroutine().cancel() }
}
