//! The one blocking connection driver, generic over a [`Transport`], shared
//! by the sync, gthread and green worker classes.
//!
//! A [`Connection`] owns everything that must outlive one dispatch: the
//! stream, the read buffer (with any pipelined bytes), the output buffer,
//! the reused request head and [`Cycle`], and the `Date` cache. The worker
//! calls [`Connection::serve`]: in [`ServeMode::Blocking`] it serves until
//! the connection closes (sync, green); in [`ServeMode::UntilIdle`] it
//! returns [`Outcome::Idle`] as soon as no request is buffered, so a
//! gthread worker can park the connection in its poller and free the thread.
//!
//! Responses to pipelined requests are coalesced in the output buffer and
//! written before the driver blocks on a read, or when the buffer grows
//! past [`FLUSH_THRESHOLD`]. Every wait is bounded by a read timeout: the
//! keep-alive timeout between requests, the I/O timeout within one (and as
//! a deadline for a whole head). This is the one place in `http` that does
//! I/O and reads the clock.

use std::io;
use std::time::{Duration, Instant};

use crate::driver::exchange::Exchange;
use crate::driver::hooks::{Handler, Hooks, RequestDone};
use crate::driver::transport::Transport;
use crate::proto::buffer::ReadBuffer;
use crate::proto::config::{ConnConfig, Outcome, ServeMode};
use crate::proto::cycle::{Cycle, CycleOptions};
use crate::proto::date::DateCache;
use crate::proto::error::ParseError;
use crate::proto::head::RequestHead;
use crate::proto::parse::{parse_head_into, HeadStatus};
use crate::proto::status::encode_error;

/// Output bytes buffered before the driver writes them out mid-response.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;
/// Most bytes read and discarded during a lingering close.
const LINGER_BYTES: usize = 1 << 20;

/// The state of one client connection across requests and dispatches.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    config: ConnConfig,
    peer: String,
    pub(crate) io: ConnIo,
    head: RequestHead,
    cycle: Cycle,
    requests: u64,
    closed: bool,
    linger: bool,
    /// The buffered bytes may hold a complete head not yet parsed.
    parse_pending: bool,
    /// Buffered length at the last partial parse: a slow client's bytes
    /// are re-parsed only when a line ends or 1 KiB more has come, so a
    /// head sent a byte at a time costs linear, not quadratic, work.
    partial_len: usize,
}

/// The buffers and I/O state an [`Exchange`] borrows.
#[derive(Debug)]
pub(crate) struct ConnIo {
    pub(crate) input: ReadBuffer,
    pub(crate) output: Vec<u8>,
    pub(crate) date: DateCache,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) body_error: Option<ParseError>,
    pub(crate) io_failed: bool,
    pub(crate) head_cap: usize,
}

impl<S: Transport> Connection<S> {
    /// Wrap an accepted stream. `peer` is the client address as text
    /// (`""` for unix sockets). Sets the stream's write timeout.
    pub fn new(mut stream: S, peer: impl Into<String>, mut config: ConnConfig) -> Connection<S> {
        if config.keepalive_timeout.is_zero() {
            config.keep_alive = false;
        }
        // A failure here shows up on the first write instead.
        let _ = stream.set_write_timeout(Some(config.io_timeout).filter(|t| !t.is_zero()));
        Connection {
            stream,
            config,
            peer: peer.into(),
            io: ConnIo {
                input: ReadBuffer::new(),
                output: Vec::new(),
                date: DateCache::default(),
                read_timeout: None,
                body_error: None,
                io_failed: false,
                head_cap: config.limits.head.saturating_add(1024),
            },
            head: RequestHead::default(),
            cycle: Cycle::default(),
            requests: 0,
            closed: false,
            linger: false,
            parse_pending: false,
            partial_len: 0,
        }
    }

    /// The stream (to register it with a poller, or read its fd).
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Give the stream back (buffered input is lost).
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Bytes received and not yet consumed (a pipelined or partial request).
    pub fn has_buffered(&self) -> bool {
        !self.io.input.is_empty()
    }

    /// Requests served on this connection so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The client address given to [`Connection::new`].
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// True once the connection has finished; `serve` returns `Close` at once.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Serve requests; see [`ServeMode`] for how long.
    pub fn serve<H, K>(&mut self, handler: &mut H, hooks: &mut K, mode: ServeMode) -> Outcome
    where
        H: Handler + ?Sized,
        K: Hooks + ?Sized,
    {
        let mut served = 0u64;
        let mut head_started: Option<Instant> = None;
        loop {
            if self.closed {
                return Outcome::Close;
            }
            if self.parse_pending && !self.io.input.is_empty() {
                self.parse_pending = false;
                match parse_head_into(self.io.input.data(), &self.config.limits, &mut self.head) {
                    Ok(HeadStatus::Complete(info)) => {
                        self.io.input.consume(info.head_len);
                        self.parse_pending = true;
                        head_started = None;
                        served += 1;
                        self.run_request(info, handler, hooks);
                        continue;
                    }
                    Ok(HeadStatus::Partial) => self.partial_len = self.io.input.len(),
                    Err(err) => {
                        hooks.bad_request(&err);
                        self.reject(err.status(), hooks);
                        return Outcome::Close;
                    }
                }
            }

            // More bytes are needed.
            let between_requests = self.io.input.is_empty();
            let timeout = if between_requests {
                if mode == ServeMode::UntilIdle && served > 0 {
                    return self.park();
                }
                if self.requests > 0 && hooks.should_close() {
                    self.close();
                    return Outcome::Close;
                }
                if self.requests > 0 && mode == ServeMode::Blocking {
                    self.config.keepalive_timeout
                } else {
                    self.config.io_timeout
                }
            } else if self.config.io_timeout.is_zero() {
                // No I/O timeout configured: no head deadline either.
                Duration::ZERO
            } else {
                let started = *head_started.get_or_insert_with(Instant::now);
                let left = self.config.io_timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    self.reject(408, hooks);
                    return Outcome::Close;
                }
                left
            };
            if self.flush().is_err() {
                self.closed = true;
                return Outcome::Close;
            }
            match self.read_more(timeout) {
                Ok(0) => {
                    // The client closed; a partial head gets no answer.
                    self.close();
                    return Outcome::Close;
                }
                Ok(_) => {}
                Err(err) if is_timeout(&err) => {
                    if between_requests {
                        self.close();
                    } else {
                        self.reject(408, hooks);
                    }
                    return Outcome::Close;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::OutOfMemory => {
                    // The buffer is full of an unfinished head.
                    let err = ParseError::HeadTooLarge {
                        limit: self.config.limits.head,
                    };
                    hooks.bad_request(&err);
                    self.reject(err.status(), hooks);
                    return Outcome::Close;
                }
                Err(_) => {
                    self.closed = true;
                    return Outcome::Close;
                }
            }
        }
    }

    /// Serve one parsed request, then finish, drain or close.
    fn run_request<H, K>(&mut self, info: crate::RequestInfo, handler: &mut H, hooks: &mut K)
    where
        H: Handler + ?Sized,
        K: Hooks + ?Sized,
    {
        self.requests += 1;
        self.io.date.update(hooks.now());
        // Always asked, once per request, so a worker may count requests here.
        let last = hooks.should_close() || !self.config.keep_alive;
        let options = CycleOptions {
            keep_alive: self.config.keep_alive,
            last,
            max_drain: self.config.max_drain,
        };
        self.cycle
            .reset(info, &self.head, &self.config.limits, options);
        self.io.body_error = None;
        self.io.io_failed = false;
        hooks.request_started(&self.head);
        {
            let mut exchange = Exchange::new(
                &mut self.stream,
                &mut self.io,
                &self.head,
                &mut self.cycle,
                &self.config,
                &self.peer,
            );
            handler.handle(&mut exchange);
        }
        let date = *self.io.date_bytes();
        let finish = match self.io.body_error.take() {
            Some(err) => {
                hooks.bad_request(&err);
                self.cycle.fail(&mut self.io.output, &err, &date)
            }
            None => self.cycle.finish(&mut self.io.output, &date),
        };
        hooks.request_finished(&RequestDone {
            head: &self.head,
            status: finish.status,
            body_bytes: finish.body_bytes,
            keep_alive: finish.keep_alive && !self.io.io_failed,
        });
        if self.io.io_failed {
            self.closed = true;
            return;
        }
        let keep = finish.keep_alive && (!finish.drain || self.drain_body());
        if !keep {
            self.linger = !self.cycle.body_done();
            self.close();
        } else if self.io.output.len() >= FLUSH_THRESHOLD && self.flush().is_err() {
            self.closed = true;
        }
    }

    /// Read and discard the rest of an unread body (bounded by `max_drain`
    /// and the I/O timeout). True when the connection can be reused.
    fn drain_body(&mut self) -> bool {
        loop {
            match self.cycle.drain(self.io.input.data()) {
                Ok(used) => self.io.input.consume(used),
                Err(_) => return false,
            }
            if self.cycle.body_done() {
                return true;
            }
            if self.flush().is_err() {
                return false;
            }
            match self.read_more(self.config.io_timeout) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    }

    /// Answer `status` before (or instead of) any app, then close lingering.
    fn reject<K: Hooks + ?Sized>(&mut self, status: u16, hooks: &mut K) {
        self.io.date.update(hooks.now());
        let date = *self.io.date_bytes();
        encode_error(&mut self.io.output, status, Some(&date));
        self.linger = true;
        self.close();
    }

    /// Flush and return `Idle`, or `Close` if the flush failed.
    fn park(&mut self) -> Outcome {
        if self.flush().is_err() {
            self.closed = true;
            return Outcome::Close;
        }
        Outcome::Idle
    }

    /// Write out buffered response bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.io.flush(&mut self.stream)
    }

    fn read_more(&mut self, timeout: Duration) -> io::Result<usize> {
        let before = self.io.input.len();
        if before == 0 {
            self.partial_len = 0;
        }
        let count = self.io.read_more(&mut self.stream, timeout)?;
        let data = self.io.input.data();
        if count > 0 && (data[before..].contains(&b'\n') || data.len() >= self.partial_len + 1024) {
            self.parse_pending = true;
        }
        Ok(count)
    }

    /// Flush, then close; with a lingering close when the client may still
    /// be sending (unread input must not turn our answer into a reset).
    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.flush().is_err() || !self.linger {
            return;
        }
        if self.stream.shutdown_write().is_err() {
            return;
        }
        let deadline = Instant::now() + self.config.linger;
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.io.input.consume(usize::MAX);
            match self.io.read_more(&mut self.stream, left) {
                Ok(0) | Err(_) => break,
                Ok(count) => discarded += count,
            }
        }
    }
}

impl ConnIo {
    pub(crate) fn date_bytes(&self) -> &[u8; 29] {
        self.date.fixed()
    }

    /// Write out and clear the output buffer.
    pub(crate) fn flush(&mut self, stream: &mut dyn Transport) -> io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let result = stream.write_all(&self.output).and_then(|()| stream.flush());
        self.output.clear();
        if result.is_err() {
            self.io_failed = true;
        }
        result
    }

    /// One read with `timeout` (zero: none), setting the socket's timeout
    /// only when it changes.
    pub(crate) fn read_more(
        &mut self,
        stream: &mut dyn Transport,
        timeout: Duration,
    ) -> io::Result<usize> {
        let wanted = Some(timeout).filter(|t| !t.is_zero());
        if self.read_timeout != wanted {
            stream.set_read_timeout(wanted)?;
            self.read_timeout = wanted;
        }
        self.input.read_from(stream, self.head_cap)
    }
}

/// A read timeout, as std reports it on each platform.
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
