//! may's sockets as the http driver's [`Transport`]: their reads, writes
//! and timeouts yield the coroutine instead of blocking the thread.
//!
//! A read in a connection coroutine is may_minihttp's loop: a non-blocking
//! read, and while there is nothing to read, `wait_io` (the coroutine
//! sleeps until may's event loop sees the socket readable). Its timeout
//! (the keep-alive wait, the head deadline, the linger) is not one of may's
//! I/O timers, which cost an allocation and a timer-list insert and removal
//! per wait, i.e. per keep-alive request: the read writes its deadline into
//! the connection's entry in the worker's [`Sweeper`], a coroutine that
//! looks at every entry [`sweep_interval`] apart and wakes the coroutines
//! whose deadline has passed, which then fail their read with `TimedOut`.
//! So a read times out up to one sweep late (a tenth of the shortest
//! timeout the driver uses, at most 100 ms). Off a coroutine (an app that
//! blocks a thread reads its body on a pool thread) a read is may's own,
//! with may's timer. Writes are may's own: they only wait when the client
//! does not read, and then with may's timer.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use may::io::{WaitIo, WaitIoWaker};
use runicorn_http::{ConnConfig, Transport};
use runicorn_worker::proxy::{pause_with, HeaderWait};

use crate::{fence, runtime};

/// An accepted may socket.
#[derive(Debug)]
pub(crate) enum Socket {
    /// TCP.
    Tcp(may::net::TcpStream),
    /// Unix domain.
    Unix(may::os::unix::net::UnixStream),
}

impl Socket {
    /// A non-blocking read (may's sockets are non-blocking underneath).
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.inner_mut().read(buf),
            Socket::Unix(stream) => stream.inner_mut().read(buf),
        }
    }

    /// Yields the coroutine until the socket may have become readable, or
    /// its waker is called.
    fn wait_readable(&self) {
        match self {
            Socket::Tcp(stream) => {
                stream.wait_io();
            }
            Socket::Unix(stream) => {
                stream.wait_io();
            }
        }
    }

    fn waker(&self) -> WaitIoWaker {
        match self {
            Socket::Tcp(stream) => stream.waker(),
            Socket::Unix(stream) => stream.waker(),
        }
    }

    /// may's own read, with may's timer for `timeout`.
    fn read_with_may_timer(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.read(buf)
            }
            Socket::Unix(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.read(buf)
            }
        }
    }
}

/// How often the [`Sweeper`] looks: a tenth of the shortest timeout a
/// connection's reads use (keep-alive, the head deadline, the body
/// timeout, the linger), within 10..100 ms.
pub(crate) fn sweep_interval(config: &ConnConfig) -> Duration {
    [
        config.keepalive_timeout,
        config.header_timeout,
        config.body_timeout,
        config.linger,
    ]
    .into_iter()
    .filter(|timeout| !timeout.is_zero())
    .min()
    .map_or(Duration::from_millis(100), |shortest| shortest / 10)
    .clamp(Duration::from_millis(10), Duration::from_millis(100))
}

/// One connection's read deadline, as the sweeper sees it.
struct Deadline {
    /// Nanoseconds after the sweeper's base instant, plus one; 0: no read
    /// is waiting with a timeout.
    at: AtomicU64,
    waker: WaitIoWaker,
}

/// The read deadlines of a worker's connections, and the coroutine that
/// wakes the reads whose deadline has passed.
pub(crate) struct Sweeper {
    base: Instant,
    entries: Mutex<Vec<Weak<Deadline>>>,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper").finish_non_exhaustive()
    }
}

impl Sweeper {
    pub(crate) fn new() -> Sweeper {
        Sweeper {
            base: Instant::now(),
            entries: Mutex::new(Vec::new()),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX - 1)
            + 1
    }

    fn register(&self, waker: WaitIoWaker) -> Arc<Deadline> {
        let deadline = Arc::new(Deadline {
            at: AtomicU64::new(0),
            waker,
        });
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::downgrade(&deadline));
        deadline
    }

    /// Wakes every read whose deadline is at or before `now`, and forgets
    /// the connections that closed. Returns how many it woke.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let now = self.nanos(now);
        let mut woken = 0;
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|entry| {
                let Some(deadline) = entry.upgrade() else {
                    return false;
                };
                let at = deadline.at.load(Ordering::Acquire);
                if at != 0 && at <= now {
                    deadline.waker.wakeup();
                    woken += 1;
                }
                true
            });
        woken
    }

    /// Sweeps every `every`, for the life of the process (a coroutine).
    pub(crate) fn run(&self, every: Duration) -> ! {
        loop {
            runtime::sleep(every);
            self.sweep(Instant::now());
        }
    }
}

/// A connection's socket, with its entry in the worker's sweeper.
pub(crate) struct GreenStream<'c> {
    socket: Socket,
    sweeper: &'c Sweeper,
    deadline: Arc<Deadline>,
    read_timeout: Option<Duration>,
}

impl std::fmt::Debug for GreenStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GreenStream")
            .field("socket", &self.socket)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl<'c> GreenStream<'c> {
    /// Wraps `socket`; `sweeper` times out its reads.
    pub(crate) fn new(socket: Socket, sweeper: &'c Sweeper) -> Self {
        let deadline = sweeper.register(socket.waker());
        GreenStream {
            socket,
            sweeper,
            deadline,
            read_timeout: None,
        }
    }
}

/// Reads `socket` in a coroutine, waiting at most `timeout` (see the
/// module's notes).
fn read_in_coroutine(
    socket: &mut Socket,
    buf: &mut [u8],
    timeout: Option<Duration>,
    sweeper: &Sweeper,
    deadline: &Deadline,
) -> io::Result<usize> {
    let mut until: Option<Instant> = None;
    let result = loop {
        match socket.read_now(buf) {
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            done => break done,
        }
        if let Some(timeout) = timeout {
            let now = Instant::now();
            match until {
                None => {
                    let at = now + timeout;
                    until = Some(at);
                    deadline.at.store(sweeper.nanos(at), Ordering::Release);
                }
                Some(at) if now >= at => break Err(io::ErrorKind::TimedOut.into()),
                Some(_) => {}
            }
        }
        socket.wait_readable();
    };
    if until.is_some() {
        deadline.at.store(0, Ordering::Release);
    }
    result
}

impl GreenStream<'_> {
    /// Yields until the socket may have become readable, or `until`
    /// passes (the sweeper wakes it then): false once it passed.
    fn readable_until(&mut self, until: Option<Instant>) -> bool {
        if let Some(until) = until {
            if Instant::now() >= until {
                return false;
            }
            self.deadline
                .at
                .store(self.sweeper.nanos(until), Ordering::Release);
        }
        self.socket.wait_readable();
        self.deadline.at.store(0, Ordering::Release);
        until.is_none_or(|until| Instant::now() < until)
    }
}

/// The PROXY protocol header's waits, in the connection's coroutine: for
/// the first bytes, may's readiness (timed by the sweeper); after a
/// partial header, a coroutine sleep.
impl HeaderWait for GreenStream<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        fence::borrow_fd(self)
    }

    fn readable(&mut self, until: Option<Instant>) -> bool {
        self.readable_until(until)
    }

    fn pause(&mut self, until: Option<Instant>) -> bool {
        pause_with(until, runtime::sleep)
    }
}

impl Read for GreenStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let GreenStream {
            socket,
            sweeper,
            deadline,
            read_timeout,
        } = self;
        let timeout = *read_timeout;
        if may::coroutine::is_coroutine() {
            read_in_coroutine(socket, buf, timeout, sweeper, deadline)
        } else {
            socket.read_with_may_timer(buf, timeout)
        }
    }
}

impl Write for GreenStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.socket {
            Socket::Tcp(stream) => stream.write(buf),
            Socket::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.socket {
            Socket::Tcp(stream) => stream.flush(),
            Socket::Unix(stream) => stream.flush(),
        }
    }
}

impl AsRawFd for GreenStream<'_> {
    fn as_raw_fd(&self) -> RawFd {
        match &self.socket {
            Socket::Tcp(stream) => stream.as_raw_fd(),
            Socket::Unix(stream) => stream.as_raw_fd(),
        }
    }
}

impl Transport for GreenStream<'_> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout = timeout;
        Ok(())
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.socket {
            Socket::Tcp(stream) => stream.set_write_timeout(timeout),
            Socket::Unix(stream) => stream.set_write_timeout(timeout),
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        match &self.socket {
            Socket::Tcp(stream) => stream.shutdown(Shutdown::Write),
            Socket::Unix(stream) => stream.shutdown(Shutdown::Write),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    use crate::fence;

    #[test]
    fn a_sweep_comes_a_tenth_of_the_shortest_read_timeout_apart() {
        let config = ConnConfig::default();
        // keep-alive 2 s, head 10 s, body 30 s, linger 1 s: a tenth of the linger.
        assert_eq!(sweep_interval(&config), Duration::from_millis(100));
        let short = ConnConfig {
            keepalive_timeout: Duration::from_millis(300),
            ..config
        };
        assert_eq!(sweep_interval(&short), Duration::from_millis(30));
        let tiny = ConnConfig {
            body_timeout: Duration::from_millis(20),
            ..short
        };
        assert_eq!(
            sweep_interval(&tiny),
            Duration::from_millis(10),
            "at least 10 ms"
        );
        let none = ConnConfig {
            keepalive_timeout: Duration::ZERO,
            header_timeout: Duration::ZERO,
            body_timeout: Duration::ZERO,
            linger: Duration::ZERO,
            ..config
        };
        assert_eq!(sweep_interval(&none), Duration::from_millis(100));
    }

    #[test]
    fn a_sweep_wakes_only_reads_past_their_deadline_and_forgets_closed_connections() {
        let sweeper = Sweeper::new();
        let (_client, server) = may::os::unix::net::UnixStream::pair().unwrap();
        let deadline = sweeper.register(server.waker());
        let now = Instant::now();
        assert_eq!(sweeper.sweep(now), 0, "no read waits");
        deadline.at.store(
            sweeper.nanos(now + Duration::from_secs(60)),
            Ordering::Release,
        );
        assert_eq!(sweeper.sweep(now), 0, "not due yet");
        deadline.at.store(sweeper.nanos(now), Ordering::Release);
        assert_eq!(sweeper.sweep(now), 1, "due");
        drop(deadline);
        assert_eq!(sweeper.sweep(now), 0);
        assert!(sweeper.entries.lock().unwrap().is_empty(), "forgotten");
    }

    /// Reads once from `server` in a coroutine with `timeout`, the sweeper
    /// sweeping every 10 ms; the read's result and how long it took.
    fn read_in_a_coroutine(
        server: may::os::unix::net::UnixStream,
        timeout: Duration,
    ) -> (io::Result<usize>, Duration) {
        let sweeper = Arc::new(Sweeper::new());
        {
            let sweeper = Arc::clone(&sweeper);
            fence::spawn(move || sweeper.run(Duration::from_millis(10))).unwrap();
        }
        let (sender, results) = mpsc::channel();
        fence::spawn(move || {
            let mut stream = GreenStream::new(Socket::Unix(server), &sweeper);
            stream.set_read_timeout(Some(timeout)).unwrap();
            let started = Instant::now();
            let result = stream.read(&mut [0u8; 16]);
            let _ = sender.send((result, started.elapsed()));
        })
        .unwrap();
        results
            .recv_timeout(Duration::from_secs(20))
            .expect("the read returned")
    }

    #[test]
    fn a_read_in_a_coroutine_times_out_through_the_sweeper_and_data_ends_the_wait() {
        let (_client, server) = may::os::unix::net::UnixStream::pair().unwrap();
        let (result, took) = read_in_a_coroutine(server, Duration::from_millis(200));
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(
            took >= Duration::from_millis(200),
            "timed out early: {took:?}"
        );

        let (mut client, server) = may::os::unix::net::UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            client.write_all(b"GET").unwrap();
            client
        });
        let (result, _) = read_in_a_coroutine(server, Duration::from_secs(10));
        assert_eq!(result.unwrap(), 3);
        drop(writer.join().unwrap());
    }
}
