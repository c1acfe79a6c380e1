//! Every `unsafe` call of the worker kit: a worker's signal handlers.
//!
//! The handlers only store into atomics, write one byte to a pipe, write
//! the pre-encoded timeout answer to the sockets of the requests not yet
//! answered ([`answer_unanswered`], on SIGABRT), or `_exit`: all
//! async-signal-safe. The master resets its own handlers in
//! the child before [`install_worker_signals`] runs (`master/src/sys.rs`);
//! the signals it blocked around fork stay blocked until then.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The write end of the worker's wake pipe (-1: none).
static WAKE_PIPE: AtomicI32 = AtomicI32::new(-1);

/// What a worker's handler recorded: 0 running, 1 graceful, 2 quick.
pub(crate) static WORKER_STOP: AtomicU8 = AtomicU8::new(0);

/// Set by SIGUSR1 in any runicorn process, master or worker: the log
/// writer (`master::log`) reopens its file on its next line.
pub static REOPEN_LOGS: AtomicU8 = AtomicU8::new(0);

/// Set by SIGUSR1 in a worker: the access log (`crate::access`) reopens
/// its file at the worker's next tick. A flag of its own, so the error
/// log's reopen does not consume it.
pub(crate) static REOPEN_ACCESS_LOG: AtomicU8 = AtomicU8::new(0);

/// The write end of the worker's hook pipe (-1: no `worker_int` /
/// `worker_abort` watcher).
static HOOK_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Which signals the hook watcher takes over: `HOOK_INT` (INT/QUIT runs
/// `worker_int` before the quick stop), `HOOK_ABORT` (ABRT runs `worker_abort`).
static HOOK_MASK: AtomicU8 = AtomicU8::new(0);

/// [`install_hook_pipe`]: INT/QUIT go to the watcher.
pub(crate) const HOOK_INT: u8 = 1;
/// [`install_hook_pipe`]: ABRT goes to the watcher.
pub(crate) const HOOK_ABORT: u8 = 2;

/// Set by the handler when it handed INT/QUIT to the hook watcher.
pub(crate) static HOOK_SIGNALLED: AtomicU8 = AtomicU8::new(0);

fn write_wake_byte(byte: u8) {
    let fd = WAKE_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        // A full pipe drops the byte, which is fine: the reader only needs
        // to wake, and the state lives in atomics.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
}

fn write_hook_byte(byte: u8) -> bool {
    let fd = HOOK_PIPE.load(Ordering::SeqCst);
    if fd < 0 {
        return false;
    }
    // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
    unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    true
}

/// Writes `unanswered::TIMEOUT_ANSWER` to the socket of every request
/// listed in `unanswered::LANES` (see that module), marking each lane while
/// it writes so that the request's own thread neither writes nor closes the
/// descriptor meanwhile. Async-signal-safe: atomics and send(2) only, on a
/// static table and static bytes; nothing blocks (`MSG_DONTWAIT`) and a
/// client that hung up raises no SIGPIPE (`MSG_NOSIGNAL`).
pub(crate) fn answer_unanswered() {
    use crate::unanswered::{ANSWERED, ANSWERING, LANES, TIMEOUT_ANSWER};
    for lane in &LANES {
        let fd = lane.load(Ordering::Acquire);
        if fd < 0
            || lane
                .compare_exchange(fd, ANSWERING, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        // SAFETY: send(2) is async-signal-safe, and reads `TIMEOUT_ANSWER`'s
        // static bytes within their length. `fd` is open: a request lists
        // its socket while it owns it, and takes it out of the lane (a
        // compare-exchange that fails while the lane says ANSWERING, after
        // which it waits for ANSWERED) before its socket can be closed, so
        // the number cannot have been closed and reused under this write.
        // At worst the client is gone and send fails, which is ignored.
        unsafe {
            libc::send(
                fd,
                TIMEOUT_ANSWER.as_ptr().cast(),
                TIMEOUT_ANSWER.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        lane.store(ANSWERED, Ordering::Release);
    }
}

extern "C" fn worker_handler(signal: libc::c_int) {
    let hooks = HOOK_MASK.load(Ordering::SeqCst);
    match signal {
        libc::SIGTERM => {
            let _ = WORKER_STOP.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
        }
        libc::SIGINT | libc::SIGQUIT if hooks & HOOK_INT != 0 => {
            // Stop accepting now; the watcher runs `worker_int`, then asks
            // for the quick stop.
            let _ = WORKER_STOP.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
            HOOK_SIGNALLED.store(1, Ordering::SeqCst);
            write_hook_byte(signal as u8);
        }
        libc::SIGINT | libc::SIGQUIT => WORKER_STOP.store(2, Ordering::SeqCst),
        libc::SIGABRT => {
            // The master kills this worker for --timeout: the clients of the
            // requests not yet answered get a 500 rather than a reset.
            answer_unanswered();
            if hooks & HOOK_ABORT == 0 || !write_hook_byte(signal as u8) {
                // No hook: leave at once with 1, as Gunicorn's handle_abort,
                // and without the core dump SIGABRT's default would leave.
                // SAFETY: _exit(2) is async-signal-safe.
                unsafe { libc::_exit(1) };
            }
            return;
        }
        libc::SIGUSR1 => {
            REOPEN_LOGS.store(1, Ordering::Relaxed);
            REOPEN_ACCESS_LOG.store(1, Ordering::Relaxed);
        }
        _ => {}
    }
    write_wake_byte(signal as u8);
}

fn install(signal: Signal, handler: SigHandler) -> io::Result<()> {
    let action = SigAction::new(handler, SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler above only touches atomics, calls write(2),
    // send(2) and _exit(2), all async-signal-safe; SIG_IGN is always sound.
    unsafe { sigaction(signal, &action) }.map_err(io::Error::from)?;
    Ok(())
}

/// The signals a worker handles itself.
const HANDLED: [Signal; 5] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGABRT,
];

/// The signals a worker ignores: a client that hangs up (PIPE) must not
/// kill it, nor a stray TTIN/TTOU/HUP/WINCH/USR2 meant for the master
/// (their default actions would stop or kill it).
const IGNORED: [Signal; 6] = [
    Signal::SIGPIPE,
    Signal::SIGHUP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGWINCH,
    Signal::SIGUSR2,
];

/// In a fresh child: the worker's TERM/INT/QUIT/USR1/ABRT handlers writing
/// to `pipe`, the stray signals ignored, and all of those unblocked (what
/// arrived since fork was held, and arrives now).
pub(crate) fn install_worker_signals(pipe: &OwnedFd) -> io::Result<()> {
    WAKE_PIPE.store(pipe.as_raw_fd(), Ordering::SeqCst);
    for signal in HANDLED {
        install(signal, SigHandler::Handler(worker_handler))?;
    }
    for signal in IGNORED {
        install(signal, SigHandler::SigIgn)?;
    }
    let mut set = SigSet::empty();
    for signal in HANDLED.into_iter().chain(IGNORED) {
        set.add(signal);
    }
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_UNBLOCK, Some(&set), None)
        .map_err(io::Error::from)
}

/// In a worker: hand INT/QUIT (`HOOK_INT`) and/or ABRT (`HOOK_ABORT`) to
/// the thread reading the pipe whose write end is `pipe`, which runs
/// `worker_int` / `worker_abort`. `pipe` must stay open for the life of the
/// process (the watcher thread owns it and never ends before the process).
pub(crate) fn install_hook_pipe(pipe: RawFd, mask: u8) {
    HOOK_PIPE.store(pipe, Ordering::SeqCst);
    HOOK_MASK.store(mask, Ordering::SeqCst);
}

/// Asks the kernel to send SIGTERM to this process when its parent dies.
pub(crate) fn set_parent_death_signal() -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Some(Signal::SIGTERM)).map_err(io::Error::from)
}
