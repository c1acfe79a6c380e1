//! Every `unsafe` call the master makes, behind safe wrappers.
//!
//! The rest of the crate calls these functions and never writes `unsafe`
//! itself (the scoreboard's mapping is the one other fenced spot). Each
//! block says why it is sound. The signal handlers here only store into
//! atomics and write one byte to a pipe: both are async-signal-safe.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{ForkResult, Pid};
use runicorn_worker::shutdown::REOPEN_LOGS;

/// Which side of a fork we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(Pid),
    /// The child.
    Child,
}

/// How many threads this process has, from `/proc/self/task`.
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Code that must run around every fork of this process: an embedded
/// interpreter's fork protocol (CPython's `PyOS_BeforeFork` and
/// `PyOS_AfterFork_*`, as `os.fork()` runs them). Registered once, by the
/// code that starts the interpreter in the master.
pub trait ForkHooks: Send + Sync {
    /// Just before `fork()`.
    fn before(&self);
    /// In the parent, after `fork()` returned (also when it failed).
    fn parent(&self);
    /// In the child, before anything else runs.
    fn child(&self);
}

static FORK_HOOKS: std::sync::OnceLock<Box<dyn ForkHooks>> = std::sync::OnceLock::new();

/// Register the hooks [`fork`] runs; the first registration stays.
pub fn set_fork_hooks(hooks: Box<dyn ForkHooks>) {
    let _ = FORK_HOOKS.set(hooks);
}

/// `fork()`, refused when the process has more than one thread: a child of a
/// threaded process may inherit locks held by threads that do not exist in it.
/// Runs the registered [`ForkHooks`] around it.
pub fn fork() -> io::Result<Forked> {
    match thread_count() {
        Ok(1) | Err(_) => {}
        Ok(count) => {
            return Err(io::Error::other(format!(
                "refusing to fork: the process has {count} threads; the master must stay \
                 single-threaded (start no thread or runtime before the arbiter runs)"
            )))
        }
    }
    // The child starts with the master's signals blocked: until it has
    // installed its own handlers, a TERM sent to it must not run the
    // master's handler (which would queue the signal for the master through
    // the inherited pipe). The child unblocks in `install_worker_signals`
    // (or `unblock_signals`); the parent at once.
    let previous = block_signals()?;
    let hooks = FORK_HOOKS.get();
    if let Some(hooks) = hooks {
        hooks.before();
    }
    // SAFETY: the process is single-threaded (checked just above), so the
    // child inherits no lock held by another thread and may run any code.
    let result = unsafe { nix::unistd::fork() }.map_err(io::Error::from);
    match result {
        Ok(ForkResult::Child) => {
            if let Some(hooks) = hooks {
                hooks.child();
            }
            Ok(Forked::Child)
        }
        Ok(ForkResult::Parent { child }) => {
            if let Some(hooks) = hooks {
                hooks.parent();
            }
            restore_signals(&previous);
            Ok(Forked::Parent(child))
        }
        Err(err) => {
            if let Some(hooks) = hooks {
                hooks.parent();
            }
            restore_signals(&previous);
            Err(err)
        }
    }
}

fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in MASTER_SIGNALS.into_iter().chain([Signal::SIGCHLD]) {
        set.add(signal);
    }
    set
}

fn block_signals() -> io::Result<SigSet> {
    let mut previous = SigSet::empty();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&handled_set()),
        Some(&mut previous),
    )
    .map_err(io::Error::from)?;
    Ok(previous)
}

fn restore_signals(previous: &SigSet) {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(previous),
        None,
    );
}

/// Unblocks what `fork` blocked: in a child that stays a master (daemon),
/// and in a worker once its own handlers are in place.
pub fn unblock_signals() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&handled_set()),
        None,
    );
}

/// A shared anonymous mapping of `len` zeroed bytes, inherited across fork.
pub fn map_shared_anonymous(len: usize) -> io::Result<NonNull<u8>> {
    use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
    let length =
        std::num::NonZeroUsize::new(len).ok_or_else(|| io::Error::other("empty mapping"))?;
    // SAFETY: a fresh anonymous mapping aliases no Rust object; the kernel
    // zero-fills it, and the caller owns it until `unmap`.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            length,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .map_err(io::Error::from)?;
    Ok(ptr.cast())
}

/// Unmaps what [`map_shared_anonymous`] returned.
pub fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: `ptr`/`len` come from `map_shared_anonymous`, and the caller
    // (the scoreboard's last handle) guarantees no reference into it remains.
    let _ = unsafe { nix::sys::mman::munmap(ptr.cast(), len) };
}

/// Takes ownership of an inherited descriptor (`fd://N`, `LISTEN_FDS`).
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // fcntl(F_GETFD) tells whether the descriptor is open at all.
    nix::fcntl::fcntl(
        // SAFETY: borrowed only for this call; fcntl on a closed fd fails with EBADF.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .map_err(|err| io::Error::other(format!("file descriptor {fd} is not open ({err})")))?;
    // SAFETY: the descriptor is open and named by the operator as ours to
    // own; nothing else in this process holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `dup2(old, new)`, used to point stdio at /dev/null or a log file.
pub fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table; `new` is a stdio
    // descriptor that std owns without caching anything about its target.
    if unsafe { libc::dup2(old, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A listening TCP socket's accept queue, from `TCP_INFO` (what `ss -lt`
/// shows as Recv-Q and Send-Q): the connections the kernel has queued and
/// not yet handed to `accept`, and the queue's limit (the backlog).
pub fn tcp_accept_queue(socket: std::os::fd::BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable buffer of `len` bytes that lives across
    // the call, and the kernel writes at most `len` bytes into it (fewer
    // for an older kernel's shorter struct, which the zeroing covers);
    // `socket` is borrowed, so the descriptor stays open during the call.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then (partly) filled by the kernel: every
    // field of this plain C struct of integers is valid for any bytes.
    let info = unsafe { info.assume_init() };
    // On a listening socket Linux reports the accept queue's length in
    // `tcpi_unacked` and its limit in `tcpi_sacked` (tcp_get_info).
    Ok((info.tcpi_unacked, info.tcpi_sacked))
}

// --- signals -----------------------------------------------------------

/// The write end of the pipe the handlers below write to (-1: none).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

fn write_wake_byte(byte: u8) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        // A full pipe drops the byte, which is fine: the reader only needs
        // to wake, and the state lives in atomics.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
}

extern "C" fn master_handler(signal: libc::c_int) {
    if signal == libc::SIGUSR1 {
        REOPEN_LOGS.store(1, Ordering::Relaxed);
    }
    write_wake_byte(signal as u8);
}

fn install(signal: Signal, handler: SigHandler) -> io::Result<()> {
    let flags = SaFlags::SA_RESTART;
    let action = SigAction::new(handler, flags, SigSet::empty());
    // SAFETY: the master's handler only touches atomics and calls write(2),
    // both async-signal-safe; SIG_DFL is always sound.
    unsafe { sigaction(signal, &action) }.map_err(io::Error::from)?;
    Ok(())
}

/// The master's signals, each queued as one byte (its number) on `pipe`.
pub const MASTER_SIGNALS: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Installs the master's handlers (plus SIGCHLD) writing to `pipe`.
pub fn install_master_signals(pipe: &OwnedFd) -> io::Result<()> {
    SIGNAL_PIPE.store(pipe.as_raw_fd(), Ordering::SeqCst);
    for signal in MASTER_SIGNALS.into_iter().chain([Signal::SIGCHLD]) {
        install(signal, SigHandler::Handler(master_handler))?;
    }
    Ok(())
}

/// In a fresh child: every master handler back to default, while the
/// signals `fork` blocked stay blocked; the worker kit's `Shutdown::install`
/// then installs the worker's, and [`unblock_signals`] lets them in.
pub fn forget_master_signals() -> io::Result<()> {
    SIGNAL_PIPE.store(-1, Ordering::SeqCst);
    for signal in MASTER_SIGNALS.into_iter().chain([Signal::SIGCHLD]) {
        install(signal, SigHandler::SigDfl)?;
    }
    Ok(())
}

/// In the child of a USR2 fork, just before exec: the master's handlers
/// back to default and every signal unblocked, so the new binary starts as
/// a fresh process would (exec keeps the mask `fork` blocked). The pipe is
/// forgotten first: a signal caught in between must not wake the old master.
pub fn reset_signals_for_exec() {
    let _ = forget_master_signals();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}

/// Ends this process at once, running no exit handler and no destructor:
/// a forked child whose exec failed holds the master's state, and must not
/// clean up what the master still uses (pidfile, unix sockets).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) only ends the process; it touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Whether this process has a controlling terminal (one that sends WINCH
/// when its window is resized).
pub fn has_controlling_terminal() -> bool {
    std::fs::File::open("/dev/tty").is_ok()
}

/// Sets the short process name (`comm`, 15 bytes) `top` and `ps -o comm` show.
pub fn set_process_name(name: &str) {
    let short: String = name.chars().take(15).collect();
    if let Ok(cname) = std::ffi::CString::new(short) {
        let _ = nix::sys::prctl::set_name(&cname);
    }
}

/// `-D`: detach from the terminal (fork, setsid, fork), stdin and stdout
/// to /dev/null, and stderr too when the log goes to a file.
pub fn daemonize(log_to_file: bool) -> io::Result<()> {
    if let Forked::Parent(_) = fork()? {
        std::process::exit(0);
    }
    nix::unistd::setsid().map_err(io::Error::from)?;
    if let Forked::Parent(_) = fork()? {
        std::process::exit(0);
    }
    unblock_signals();
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    dup2(null.as_raw_fd(), 0)?;
    dup2(null.as_raw_fd(), 1)?;
    if log_to_file {
        dup2(null.as_raw_fd(), 2)?;
    }
    Ok(())
}

/// The `[start, end)` addresses of this process's argv strings, from
/// `/proc/self/stat` (fields 48 and 49).
fn argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // `fields[0]` is field 3 (state), so field N is `fields[N - 3]`.
    let start: usize = fields.get(45)?.parse().ok()?;
    let end: usize = fields.get(46)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// Sets the title `ps` shows (`runicorn: master [name]`) by writing over
/// the argv strings, as Gunicorn's setproctitle does, plus the short name.
/// A title longer than the original command line is cut to fit. After this
/// `std::env::args()` reads the title: parse arguments before calling it.
pub fn set_process_title(title: &str, short_name: &str) {
    set_process_name(short_name);
    let Some((start, end)) = argv_area() else {
        return;
    };
    let room = end - start;
    let bytes = title.as_bytes();
    let kept = bytes.len().min(room.saturating_sub(1));
    let area: *mut u8 = std::ptr::with_exposed_provenance_mut(start);
    // SAFETY: `[start, end)` is this process's own argv string area (the
    // kernel reports it in /proc/self/stat), mapped writable on the initial
    // stack for the whole life of the process. No Rust reference points
    // into it: std keeps only raw `argv` pointers, read as C strings, so
    // overwriting it with NUL-terminated bytes keeps those reads in bounds.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), area, kept);
        std::ptr::write_bytes(area.add(kept), 0, room - kept);
    }
}
