//! The clients a worker owes an answer, so that a worker killed for
//! `--timeout` still answers them.
//!
//! When a request runs past `--timeout` the master kills its worker
//! (SIGABRT, then SIGKILL a second later; gthread retires itself and exits
//! at `--graceful-timeout`). Before, the client of that request saw its
//! connection reset, which a proxy turns into a 502 that points at the
//! wrong place. Now every request whose answer has not started is listed
//! here by its socket, and the worker's SIGABRT handler (and a worker
//! exiting at its graceful timeout) writes one pre-encoded
//! [`TIMEOUT_ANSWER`] to each before it exits: `500 Internal Server
//! Error`, with `Connection: close`. 500, as Gunicorn's client gets: the
//! server failed this request (it may have run in part), which a proxy
//! passes on; a 503 would invite a retry of a request that just hung for
//! `--timeout`. The reason is the master's `WORKER TIMEOUT` line, which
//! names the request.
//!
//! The list is a fixed table of descriptors ([`CAPACITY`] lanes of
//! atomics) that a signal handler can read without a lock or an
//! allocation. A request takes a lane when it starts ([`Unanswered::register`])
//! and gives it back before the first byte of its answer is written
//! ([`Unanswered::claim`]) or, when it ends unanswered, before its socket
//! is closed (on drop). Whichever of the request and the handler changes
//! the lane first owns the socket: a request that finds its lane taken by
//! the handler writes nothing (the client has its 500), and waits until
//! the handler is done with the descriptor before it may close it, so the
//! handler never writes to a descriptor number that was closed and reused.
//! A request over the table's capacity is not listed, and is cut as before.
//! [`Answering`] does all this for the blocking driver's transports.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use runicorn_http::Transport;

/// Requests listed at once; beyond that a request is not listed.
pub const CAPACITY: usize = 1024;

/// What a killed worker writes to each client it owes an answer (the bytes
/// of `http::error_response(500)`, which a test checks).
pub const TIMEOUT_ANSWER: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nServer: runicorn\r\n\
Connection: close\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\nInternal Server Error\n";

/// A free lane.
const FREE: i32 = -1;
/// The handler is writing to the lane's descriptor.
pub(crate) const ANSWERING: i32 = -2;
/// The handler has answered the lane's client.
pub(crate) const ANSWERED: i32 = -3;

/// The lanes: a descriptor, or one of the states above.
pub(crate) static LANES: [AtomicI32; CAPACITY] = [const { AtomicI32::new(FREE) }; CAPACITY];

/// Where the next registration starts looking, so a lane is found in a
/// probe or two.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Writes [`TIMEOUT_ANSWER`] to every client still owed one. For a worker
/// that exits with requests still running (its graceful timeout); the
/// SIGABRT handler does the same itself.
pub fn answer_all() {
    crate::sys::answer_unanswered();
}

/// One request's lane, while its answer has not started.
#[derive(Debug)]
pub struct Unanswered {
    lane: Option<usize>,
    fd: RawFd,
}

impl Unanswered {
    /// Nothing listed.
    pub const fn none() -> Unanswered {
        Unanswered { lane: None, fd: -1 }
    }

    /// Lists the request being served on `fd` (a negative `fd`, or a full
    /// table, lists nothing).
    pub fn register(fd: RawFd) -> Unanswered {
        if fd < 0 {
            return Unanswered::none();
        }
        let start = NEXT.fetch_add(1, Ordering::Relaxed);
        for probe in 0..CAPACITY {
            let lane = (start + probe) % CAPACITY;
            if LANES[lane]
                .compare_exchange(FREE, fd, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Unanswered {
                    lane: Some(lane),
                    fd,
                };
            }
        }
        Unanswered::none()
    }

    /// The answer is about to be written: true when this request may write
    /// it, false when the worker's abort has answered the client already
    /// (then nothing more may be written, and the connection closes).
    pub fn claim(&mut self) -> bool {
        let Some(lane) = self.lane.take() else {
            return true;
        };
        let slot = &LANES[lane];
        match slot.compare_exchange(self.fd, FREE, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(_) => {
                // The handler took it: wait until it is done writing, so the
                // descriptor is not closed under it, then free the lane.
                while slot.load(Ordering::Acquire) == ANSWERING {
                    std::thread::sleep(Duration::from_micros(50));
                }
                slot.store(FREE, Ordering::Release);
                false
            }
        }
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.claim();
    }
}

/// A blocking transport whose requests are listed while their answer has
/// not started (see the module's notes): what the sync, gthread and green
/// classes hand the driver.
#[derive(Debug)]
pub struct Answering<S> {
    /// Declared before the stream: the lane is given back before the
    /// descriptor closes.
    pending: Unanswered,
    /// Whether its requests are listed (not under TLS: the answer a killed
    /// worker writes is plaintext, which a TLS client cannot read).
    listed: bool,
    stream: S,
}

impl<S> Answering<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Answering<S> {
        Answering {
            pending: Unanswered::none(),
            listed: true,
            stream,
        }
    }

    /// Wraps `stream` without ever listing its requests: a client the
    /// worker's abort cannot answer (TLS) sees its connection cut instead.
    pub fn unlisted(stream: S) -> Answering<S> {
        Answering {
            listed: false,
            ..Answering::new(stream)
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

impl<S: Read> Read for Answering<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl<S: Write> Write for Answering<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl<S: Transport + AsRawFd> Transport for Answering<S> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown_write()
    }

    fn request_begins(&mut self) {
        if self.listed {
            self.pending = Unanswered::register(self.stream.as_raw_fd());
        }
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read_now(buf)
    }

    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write_now(buf)
    }

    fn answer_begins(&mut self) -> io::Result<()> {
        if self.pending.claim() {
            Ok(())
        } else {
            Err(answered_already())
        }
    }

    fn has_buffered_input(&mut self) -> bool {
        self.stream.has_buffered_input()
    }

    fn closing(&mut self) {
        self.stream.closing();
    }
}

/// The error of a write the worker's abort made moot.
pub fn answered_already() -> io::Error {
    io::Error::other("the worker is being killed and answered this request already")
}

impl<S: AsFd> AsFd for Answering<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl<S: AsRawFd> AsRawFd for Answering<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::sync::Mutex;

    /// The table is the process's: a test that answers every listed client
    /// must not run beside one that lists its own.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn the_answer_is_the_http_crates_500() {
        assert_eq!(
            TIMEOUT_ANSWER,
            runicorn_http::error_response(500).as_slice()
        );
    }

    #[test]
    fn an_abort_answers_a_request_not_yet_answered_and_only_that_one() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut owed, server) = UnixStream::pair().unwrap();
        let (mut answered, other) = UnixStream::pair().unwrap();
        let mut waiting = Answering::new(server);
        waiting.request_begins();
        let mut done = Answering::new(other);
        done.request_begins();
        done.answer_begins().unwrap();
        done.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        answer_all();
        owed.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let read = owed.read(&mut buf).unwrap();
        assert_eq!(&buf[..read], TIMEOUT_ANSWER);
        // Its own answer may not follow: the connection only closes.
        let err = waiting.answer_begins().unwrap_err();
        assert_eq!(err.to_string(), answered_already().to_string());
        answered.set_nonblocking(true).unwrap();
        let read = answered.read(&mut buf).unwrap();
        assert_eq!(&buf[..read], b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(answered.read(&mut buf).is_err(), "nothing more: no 500");
    }

    #[test]
    fn a_lane_is_free_again_once_its_answer_starts_or_its_request_ends() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_client, server) = UnixStream::pair().unwrap();
        let fd = server.as_raw_fd();
        let listed = |fd| LANES.iter().any(|lane| lane.load(Ordering::SeqCst) == fd);
        let mut pending = Unanswered::register(fd);
        assert!(listed(fd));
        assert!(pending.claim());
        assert!(!listed(fd));
        assert!(pending.claim(), "a second claim is still ours");
        let pending = Unanswered::register(fd);
        assert!(listed(fd));
        drop(pending);
        assert!(!listed(fd));
        assert!(Unanswered::register(-1).claim());
    }
}
