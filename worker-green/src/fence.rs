//! Every `unsafe` call of the green worker, fenced in one place: spawning
//! may coroutines, adopting the inherited listening descriptors into may
//! (and the connections a stop took off their queues), cancelling the
//! accept coroutines at shutdown, and borrowing a may socket's descriptor
//! (may's sockets have no `AsFd`). The rest of the crate
//! calls these safe wrappers. The crate root allows `unsafe_code` on this
//! module only.

use std::io;
use std::os::fd::IntoRawFd;
use std::os::unix::io::FromRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};

use may::coroutine::{Builder, JoinHandle};
use runicorn_worker::{Accepted, Listener};

use crate::error::GreenError;
use crate::transport::Socket;

/// A listener registered with may's event loop.
#[derive(Debug)]
pub(crate) enum GreenListener {
    /// TCP.
    Tcp(may::net::TcpListener),
    /// Unix domain.
    Unix(may::os::unix::net::UnixListener),
}

/// The descriptor of `owner`, a socket that owns it, borrowed for as long
/// as `owner` is.
pub(crate) fn borrow_fd<T: std::os::fd::AsRawFd>(owner: &T) -> std::os::fd::BorrowedFd<'_> {
    // SAFETY: `owner` owns the descriptor (a may socket closes it only when
    // dropped), and the borrow cannot outlive `&owner`, so the descriptor
    // stays open for the borrow's whole life.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(owner.as_raw_fd()) }
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

/// Hands a connection the stop took off a listener's queue (a blocking std
/// stream) to may, which sets it non-blocking and registers it; the
/// client's address as text (`""` for a unix socket).
pub(crate) fn adopt_stream(accepted: Accepted) -> io::Result<(Socket, String)> {
    let adopted = catch_unwind(AssertUnwindSafe(|| match accepted {
        Accepted::Tcp(stream, peer) => {
            let fd = stream.into_raw_fd();
            // SAFETY: `fd` was just released by an owned std TcpStream, so it
            // is open, a connected TCP socket, and owned by nobody else; may's
            // stream takes ownership and closes it on drop.
            let stream = unsafe { may::net::TcpStream::from_raw_fd(fd) };
            // Best effort: a response is written in few writes anyway.
            let _ = stream.set_nodelay(true);
            (Socket::Tcp(stream), peer.to_string())
        }
        Accepted::Unix(stream) => {
            let fd = stream.into_raw_fd();
            // SAFETY: `fd` was just released by an owned std UnixStream, so it
            // is open, a connected unix stream socket, and owned by nobody
            // else; may's stream takes ownership and closes it on drop.
            let stream = unsafe { may::os::unix::net::UnixStream::from_raw_fd(fd) };
            (Socket::Unix(stream), String::new())
        }
    }));
    // may's `from_raw_fd` panics when the epoll registration fails.
    adopted.map_err(|payload| io::Error::other(runicorn_app::blocking::panic_message(&*payload)))
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

/// Runs `job` on one of `pool`'s OS threads while the calling coroutine
/// waits (yielding its may thread to the other connections), and returns
/// when the job has finished, also when it panicked (the panic is resumed
/// here).
pub(crate) fn run_on_pool<'a>(pool: &crate::offload::Pool, job: Box<dyn FnOnce() + Send + 'a>) {
    // SAFETY: only the lifetime is extended. The job borrows from this
    // coroutine's stack (the connection's exchange); this function does not
    // return until the pool has run the job to its end (or caught its
    // panic) and said so on `done`, so nothing it borrows is used after the
    // borrow ends. The coroutine is suspended meanwhile, so the borrow is
    // not used from two threads at once.
    let job: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(job) };
    let (done, finished) = may::sync::mpsc::channel();
    pool.submit(Box::new(move || {
        let outcome = catch_unwind(AssertUnwindSafe(job));
        let _ = done.send(outcome);
    }));
    match finished.recv() {
        Ok(Ok(())) => {}
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("the blocking pool stopped before a job finished"),
    }
}

/// A value moved to a pool thread while its owner waits for the job (see
/// [`run_on_pool`]).
pub(crate) struct WaitedOn<T>(pub(crate) T);

// SAFETY: a `WaitedOn` is only built for the job of `run_on_pool`, whose
// caller is suspended until the job ends: the value is used by one thread
// at a time, never concurrently.
unsafe impl<T> Send for WaitedOn<T> {}
