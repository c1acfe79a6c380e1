//! The listening sockets a worker inherits from the master, and the rules
//! every class shares: which accept errors are transient, and how a worker
//! stops accepting ([`stop_accepting`]). The master binds them
//! (`master/src/listener.rs`) before the first fork; a worker only accepts
//! on them, and closes its copies when it stops accepting.
//!
//! Why a stopping worker closes its copies at once: a listening socket
//! stays open, and the kernel keeps completing handshakes and queueing the
//! connections, as long as any process holds a descriptor of it; when the
//! last one closes, every connection still queued is reset. A worker that
//! stopped accepting but kept its copy until it exits would, if it were the
//! last holder, have the kernel accept clients for it that no one serves.
//! So every process closes its copies as soon as it stops accepting, and
//! when the whole service stops (the master closed its own copies and
//! asked, `Slot::drains_on_stop`), each worker first takes what the kernel
//! queued and serves it: whichever closes last, nothing queued is lost,
//! and a client that comes later finds the port closed (connection
//! refused, which a load balancer or a client retries elsewhere) instead
//! of an accepted connection that is reset.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One listening socket, TCP or unix.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener (v4 or v6).
    Tcp(TcpListener),
    /// A unix stream listener.
    Unix(UnixListener),
}

impl Listener {
    /// The descriptor, for poll sets and `from_raw_fd` in other runtimes.
    pub fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(listener) => listener.as_raw_fd(),
            Listener::Unix(listener) => listener.as_raw_fd(),
        }
    }

    /// Switches `accept` between blocking and non-blocking.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(listener) => listener.set_nonblocking(nonblocking),
            Listener::Unix(listener) => listener.set_nonblocking(nonblocking),
        }
    }

    /// A second handle on the same socket.
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(listener) => Listener::Tcp(listener.try_clone()?),
            Listener::Unix(listener) => Listener::Unix(listener.try_clone()?),
        })
    }

    /// As Gunicorn logs it: `http://127.0.0.1:8000`, `http://[::1]:8000`,
    /// `unix:/run/app.sock`.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(_) => "http://?".to_owned(),
            },
            Listener::Unix(_) => match self.unix_path() {
                Some(path) => format!("unix:{}", path.display()),
                None => "unix:?".to_owned(),
            },
        }
    }

    /// As Gunicorn's `Listening at:` line names it: [`Listener::describe`],
    /// with `https://` for a TCP listener when the workers serve TLS.
    pub fn describe_serving(&self, tls: bool) -> String {
        let name = self.describe();
        match name.strip_prefix("http://") {
            Some(rest) if tls => format!("https://{rest}"),
            _ => name,
        }
    }

    /// The address an app is told a connection arrived on (Gunicorn's
    /// `getsockname()` of the listener, for `SERVER_NAME`/`SERVER_PORT`):
    /// `127.0.0.1:8000`, `[::1]:8000`, or the unix socket's path; `""`
    /// when the socket cannot say.
    pub fn server_addr(&self) -> String {
        match self {
            Listener::Tcp(listener) => listener
                .local_addr()
                .map(|addr| addr.to_string())
                .unwrap_or_default(),
            Listener::Unix(_) => self
                .unix_path()
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
        }
    }

    /// The TCP address, if this is a TCP listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// The socket file, if this is a unix listener bound to a path.
    pub fn unix_path(&self) -> Option<PathBuf> {
        match self {
            Listener::Tcp(_) => None,
            Listener::Unix(listener) => listener
                .local_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(Path::to_path_buf)),
        }
    }
}

/// The most connections [`Listener::drain`] takes in one call: a bound, so
/// clients that keep connecting cannot hold a stopping worker in its drain.
pub const DRAIN_LIMIT: usize = 65_536;

/// A connection taken off a [`Listener`], in blocking mode.
#[derive(Debug)]
pub enum Accepted {
    /// A TCP client and its address.
    Tcp(TcpStream, SocketAddr),
    /// A unix-socket client.
    Unix(UnixStream),
}

impl Listener {
    /// Takes one queued connection without waiting (the listener must be
    /// non-blocking): `Ok(None)` when none is queued, or after an error that
    /// only means "try again" ([`is_transient_accept_error`]). The stream is
    /// blocking (accept(2) on Linux does not pass `O_NONBLOCK` on).
    pub fn accept_now(&self) -> io::Result<Option<Accepted>> {
        let accepted = match self {
            Listener::Tcp(listener) => listener
                .accept()
                .map(|(stream, peer)| Accepted::Tcp(stream, peer)),
            Listener::Unix(listener) => listener.accept().map(|(stream, _)| Accepted::Unix(stream)),
        };
        match accepted {
            Ok(accepted) => Ok(Some(accepted)),
            Err(err) if is_transient_accept_error(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Takes every connection the kernel has queued on this listener, up
    /// to [`DRAIN_LIMIT`], without waiting for more, pausing `pause` after
    /// each one (see [`Drain::Shared`]). An accept error ends the drain (it
    /// is logged); what was taken is returned.
    pub fn drain(&self, pause: Duration) -> Vec<Accepted> {
        let mut taken = Vec::new();
        if let Err(err) = self.set_nonblocking(true) {
            tracing::error!(
                "cannot take the queued connections of {}: {err}",
                self.describe()
            );
            return taken;
        }
        while taken.len() < DRAIN_LIMIT {
            match self.accept_now() {
                Ok(Some(accepted)) => {
                    taken.push(accepted);
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                }
                Ok(None) => {
                    // A transient error is not "empty": look once more.
                    if self.queue_is_empty() {
                        break;
                    }
                }
                Err(err) => {
                    tracing::error!(
                        "accept on {} failed while taking its queued connections: {err}",
                        self.describe()
                    );
                    break;
                }
            }
        }
        taken
    }

    /// Whether nothing is queued (a zero-timeout poll).
    fn queue_is_empty(&self) -> bool {
        let mut fds = [nix::poll::PollFd::new(
            self.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        !matches!(
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO),
            Ok(1..)
        )
    }
}

/// What a worker that stops accepting does with the connections the
/// kernel queued on its listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Leave them: other processes keep the socket open and take them (a
    /// worker that retires while the service goes on).
    Leave,
    /// Take them all at once (the service stops, and the class serves many
    /// connections at once).
    All,
    /// Take them one at a time with this pause after each, so that the
    /// other workers, stopping at the same moment, take their share (the
    /// service stops, and the class serves one connection at a time: one
    /// worker taking the whole queue would serve it alone, one request
    /// after another).
    Shared(Duration),
}

impl Drain {
    /// [`Drain::All`] when the master asked (`Slot::drains_on_stop`),
    /// else [`Drain::Leave`].
    pub fn on_stop(slot: &crate::Slot) -> Drain {
        if slot.drains_on_stop() {
            Drain::All
        } else {
            Drain::Leave
        }
    }
}

/// A worker stops accepting: takes what `drain` says of the connections
/// queued on each listener, then closes every one of `listeners` (this
/// process's copies). Returns what was taken, with the index of the
/// listener it came from, for the class to serve (its responses say
/// `Connection: close`).
pub fn stop_accepting(listeners: Vec<Listener>, drain: Drain) -> Vec<(usize, Accepted)> {
    let mut taken = Vec::new();
    let pause = match drain {
        Drain::Leave => None,
        Drain::All => Some(Duration::ZERO),
        Drain::Shared(pause) => Some(pause),
    };
    if let Some(pause) = pause {
        for (index, listener) in listeners.iter().enumerate() {
            let queued = listener.drain(pause);
            if !queued.is_empty() {
                tracing::info!(
                    "Stopping: took {} queued connection(s) on {} before closing it",
                    queued.len(),
                    listener.describe()
                );
            }
            taken.extend(queued.into_iter().map(|accepted| (index, accepted)));
        }
    }
    drop(listeners);
    taken
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(listener) => listener.as_fd(),
            Listener::Unix(listener) => listener.as_fd(),
        }
    }
}

/// A listener that could not be made non-blocking: a worker that cannot
/// poll its listeners cannot boot.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot make listener {listener} non-blocking: {source}; check the descriptor limit (ulimit -n)"
)]
pub struct NonblockingError {
    /// The listener, as logged at boot.
    pub listener: String,
    /// What the OS said.
    pub source: io::Error,
}

/// Makes every listener's `accept` non-blocking, for a poll loop.
pub fn set_nonblocking(listeners: &[Listener]) -> Result<(), NonblockingError> {
    for listener in listeners {
        listener
            .set_nonblocking(true)
            .map_err(|source| NonblockingError {
                listener: listener.describe(),
                source,
            })?;
    }
    Ok(())
}

/// The first pause after an accept error that is not transient.
pub const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between accept attempts while they keep failing.
pub const LONGEST_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// At most one accept-error line per this long per worker process, however
/// many listeners, threads, coroutines or runtimes fail at once.
pub const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(5);

/// One accept loop's answer to accept errors that are not transient
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM): a doubling pause, 10 ms up to 1 s,
/// so a listener that stays readable does not spin the worker, and the
/// cause-and-fix line of [`accept_error_line`], logged at most once per
/// [`ACCEPT_ERROR_LOG_EVERY`] per worker. Every class keeps one per accept
/// loop and calls [`AcceptBackoff::failed`] after such an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            next: FIRST_ACCEPT_PAUSE,
        }
    }
}

impl AcceptBackoff {
    /// The pause to take now; the next one is twice as long, up to 1 s.
    pub fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(LONGEST_ACCEPT_PAUSE);
        pause
    }

    /// An accept succeeded: the next error pauses briefly again.
    pub fn reset(&mut self) {
        self.next = FIRST_ACCEPT_PAUSE;
    }

    /// An accept on `listener` (as logged) failed with `err`, which is not
    /// transient: logs the cause and the fix (rate limited) and returns
    /// how long the loop must pause before it accepts again.
    pub fn failed(&mut self, listener: &str, err: &io::Error) -> Duration {
        let pause = self.pause();
        log_accept_error(listener, err, pause);
        pause
    }
}

/// When this process last logged an accept error (monotonic ms, 0: never),
/// and how many it left unlogged since.
static LAST_ACCEPT_LOG_MS: AtomicU64 = AtomicU64::new(0);
static UNLOGGED_ACCEPT_ERRORS: AtomicU64 = AtomicU64::new(0);

fn log_accept_error(listener: &str, err: &io::Error, pause: Duration) {
    let now = (crate::clock::monotonic_now().as_millis() as u64).max(1);
    let every = ACCEPT_ERROR_LOG_EVERY.as_millis() as u64;
    let last = LAST_ACCEPT_LOG_MS.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= every;
    if !due
        || LAST_ACCEPT_LOG_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        UNLOGGED_ACCEPT_ERRORS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let unlogged = UNLOGGED_ACCEPT_ERRORS.swap(0, Ordering::Relaxed);
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .ok();
    tracing::error!(
        "{}",
        accept_error_line(listener, err, pause, soft, unlogged)
    );
}

/// The one line every class logs for an accept error that is not
/// transient: what failed, the cause in plain words, the fix, the pause,
/// and how many errors the rate limit left unlogged since the last line.
/// `nofile` is the worker's soft `RLIMIT_NOFILE`, named for EMFILE.
pub fn accept_error_line(
    listener: &str,
    err: &io::Error,
    pause: Duration,
    nofile: Option<u64>,
    unlogged: u64,
) -> String {
    let cause = match err.raw_os_error() {
        Some(libc::EMFILE) => {
            let limit = nofile.map_or_else(String::new, |soft| format!(" of {soft}"));
            format!(
                "this worker has used up its descriptor limit{limit} (RLIMIT_NOFILE); raise it \
                 (LimitNOFILE= in the systemd unit, ulimit -n in the shell that starts runicorn) or \
                 lower the connections a worker holds (--worker-connections, --threads)"
            )
        }
        Some(libc::ENFILE) => "the system-wide table of open files is full; raise fs.file-max \
             (sysctl) or find the process that holds the descriptors"
            .to_owned(),
        Some(libc::ENOBUFS | libc::ENOMEM) => "the kernel has no memory left for a new socket; \
             check the host's free memory and net.ipv4.tcp_mem, or lower the connections a worker \
             holds (--worker-connections, --threads)"
            .to_owned(),
        _ => "an error accept(2) does not usually return".to_owned(),
    };
    let mut line = format!(
        "accept on {listener} failed: {err}: {cause}; pausing accepts for {} ms",
        pause.as_millis()
    );
    if unlogged > 0 {
        line.push_str(&format!(
            " ({unlogged} more accept error(s) since the last line)"
        ));
    }
    line
}

/// Whether an accept error only means "accept again later": nothing to
/// accept (another worker won the race, or a signal interrupted the call),
/// or the client gave up before accept. Every worker class's accept loop
/// applies this one rule; anything else (EMFILE, ENOBUFS) needs a pause
/// ([`AcceptBackoff`]).
pub fn is_transient_accept_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    ) || err.raw_os_error() == Some(libc::EPROTO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_takes_every_queued_connection_and_the_closed_listener_refuses() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = Listener::Tcp(listener);
        let clients: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let taken = stop_accepting(vec![listener], Drain::All);
        assert_eq!(taken.len(), 5);
        assert!(taken
            .iter()
            .all(|(index, accepted)| *index == 0 && matches!(accepted, Accepted::Tcp(..))));
        let refused = TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        drop(clients);
    }

    #[test]
    fn without_a_drain_nothing_is_taken() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        assert!(stop_accepting(vec![Listener::Tcp(listener)], Drain::Leave).is_empty());
    }

    #[test]
    fn only_a_lost_race_or_a_gone_client_is_a_transient_accept_error() {
        for kind in [
            io::ErrorKind::WouldBlock,
            io::ErrorKind::Interrupted,
            io::ErrorKind::ConnectionAborted,
        ] {
            assert!(
                is_transient_accept_error(&io::Error::from(kind)),
                "{kind:?}"
            );
        }
        assert!(is_transient_accept_error(&io::Error::from_raw_os_error(
            libc::EPROTO
        )));
        assert!(!is_transient_accept_error(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
    }

    #[test]
    fn the_backoff_doubles_to_a_second_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u128> = (0..9).map(|_| backoff.pause().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.pause(), FIRST_ACCEPT_PAUSE);
    }

    #[test]
    fn each_resource_error_names_its_cause_and_fix() {
        let pause = Duration::from_millis(40);
        let emfile = accept_error_line(
            "http://127.0.0.1:8000",
            &io::Error::from_raw_os_error(libc::EMFILE),
            pause,
            Some(64),
            3,
        );
        assert!(
            emfile.starts_with("accept on http://127.0.0.1:8000 failed: "),
            "{emfile}"
        );
        for part in [
            "limit of 64",
            "LimitNOFILE=",
            "ulimit -n",
            "pausing accepts for 40 ms",
            "(3 more",
        ] {
            assert!(emfile.contains(part), "{part:?} in {emfile}");
        }
        let enfile = accept_error_line(
            "x",
            &io::Error::from_raw_os_error(libc::ENFILE),
            pause,
            None,
            0,
        );
        assert!(
            enfile.contains("fs.file-max") && !enfile.contains("more accept"),
            "{enfile}"
        );
        for errno in [libc::ENOBUFS, libc::ENOMEM] {
            let line = accept_error_line("x", &io::Error::from_raw_os_error(errno), pause, None, 0);
            assert!(line.contains("no memory left for a new socket"), "{line}");
        }
    }
}
