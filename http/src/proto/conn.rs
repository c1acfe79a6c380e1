//! [`ConnState`]: one client connection as a sans-IO state machine, the
//! way hyper's `proto/h1` is one. It is fed bytes (what a read returned,
//! whether a write went out) and time (through a [`Clock`]), and answers
//! what to do next ([`Action`]): read more within a timeout, write the
//! buffered output, call the app with the parsed head, pass on a rejected
//! request, half-close for a lingering close, or close.
//!
//! It owns every decision of a connection's life, so the blocking driver
//! (`driver::connection`) and the async worker's loop are a few dozen lines
//! of moving bytes each:
//!
//! - **Re-parsing a partial head** only when a line ended or
//!   [`REPARSE_STEP`] more bytes came since the last try, so a client
//!   dripping a head a byte at a time costs work linear in its bytes (a
//!   re-parse on every read would be quadratic).
//! - **Keep-alive and pipelining**: every complete head buffered is served
//!   in turn; responses are batched in one output buffer, written before the
//!   next read (or once [`FLUSH_THRESHOLD`] bytes are waiting).
//! - **Deadlines for slow and greedy clients**: a total deadline for a
//!   head (`header_timeout`: from the accept for a new connection, so the
//!   wait for its first byte and whatever comes before the head are in it,
//!   see [`ConnState::accepted_at`]; from the first byte of the next
//!   request on a kept-alive one, whose wait for that byte is the
//!   keep-alive timeout), 408 after it (a silent close when nothing came);
//!   body reads with an idle timeout and a minimum average rate after a
//!   grace (408 and a failed read for the app, never a short body passed
//!   off as whole); the write timeout a driver puts on each write
//!   ([`ConnState::write_timeout`]); and the output never grows past
//!   [`FLUSH_THRESHOLD`] plus one write of the app before it is written
//!   out, with nothing read meanwhile, so a client that pipelines and never
//!   reads costs bounded memory and is closed at the write timeout.
//! - **Bad requests**: a malformed or over-limit head gets its status, then
//!   a lingering close (the output is written, the sending half shut, and the
//!   client's unread input read and dropped for up to `linger`, at most
//!   [`LINGER_BYTES`], so the answer is not destroyed by a TCP reset).
//! - **After the app**: its response finished (or a 500, or the body
//!   error's status); an unread body drained up to `max_drain` to keep the
//!   connection, else a close, lingering when the client may still send.
//! - **A retiring worker** ([`Retiring`], watched with
//!   [`ConnState::watch_retirement`]): every response that starts once the
//!   worker retires says `Connection: close`, one already in flight when it
//!   decided included; an idle connection keeps waiting for its client's
//!   next request (answered, and closed after) rather than being closed
//!   under a request the client may be sending.
//!
//! The order of calls: [`ConnState::poll`] until it says
//! [`Action::Close`]. On [`Action::Serve`] the app runs against the state
//! ([`ConnState::read_body`], [`ConnState::start_response`],
//! [`ConnState::write_body`]), and [`ConnState::finish`] ends the request.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::buffer::ReadBuffer;
use crate::proto::config::ConnConfig;
use crate::proto::cycle::{Cycle, CycleOptions};
use crate::proto::date::DateCache;
use crate::proto::error::ParseError;
use crate::proto::framing::RequestInfo;
use crate::proto::head::RequestHead;
use crate::proto::kept::KeptFields;
use crate::proto::parse::{parse_head_into, HeadStatus};
use crate::proto::status::encode_error;

mod action;

pub use action::{Action, BodyRead, Clock, ReadWait, RequestEnd, Retiring};

/// Output bytes buffered before they are written out mid-response.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;
/// Most bytes read and discarded during a lingering close.
pub const LINGER_BYTES: usize = 1 << 20;
/// New bytes after which a partial head is parsed again even if no line
/// ended in them.
pub const REPARSE_STEP: usize = 1024;
/// The wait of the one read a connection gets when its head deadline is
/// found already past (its bytes may be in the socket, unread because the
/// worker was busy): long enough for a driver to take what is there.
pub const LATE_LOOK: Duration = Duration::from_millis(1);

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading and parsing request heads.
    Head,
    /// A request is with the app.
    Request,
    /// Reading and discarding the rest of an unread body.
    Drain,
    /// A request to answer with this status before any app, decided when a
    /// read result came (which carries no time for the `Date`).
    Reject(u16),
    /// Writing out what is left, then closing (lingering or not).
    Closing { linger: bool },
    /// A lingering close: reading and discarding until the deadline, this
    /// many bytes so far (at most [`LINGER_BYTES`]).
    Lingering { discarded: u32 },
    /// Finished.
    Closed,
}

/// One client connection's protocol state, across requests: its buffers
/// (with any pipelined bytes), the reused request head and [`Cycle`], the
/// `Date` cache, and where it is in its life. No I/O, no clock. Kept small:
/// a gthread worker moves it between its poller and its pool for every
/// request.
#[derive(Debug)]
pub struct ConnState {
    config: ConnConfig,
    phase: Phase,
    input: ReadBuffer,
    output: Vec<u8>,
    head: RequestHead,
    cycle: Cycle,
    date: DateCache,
    requests: u64,
    /// The buffered bytes may hold a complete head not yet parsed.
    parse_pending: bool,
    /// Buffered length at the last partial parse.
    partial_len: usize,
    /// Heads parsed (complete or not), for the tests of the re-parse rule.
    parses: u32,
    /// When the head being received must be complete, or the lingering
    /// close end.
    deadline: Option<Instant>,
    /// The head deadline was found past with no read since (the worker
    /// was busy, the task ran late), and the one read without waiting
    /// that follows has been asked for.
    looked_late: bool,
    /// The current request's body, as the minimum rate judges it.
    body_pace: BodyPace,
    /// In a request, its body error (answered if no response started); in
    /// [`Phase::Reject`], why the request was refused when it is a bad
    /// request for the worker's log.
    error: Option<ParseError>,
    /// A read or write failed during the current request: the connection
    /// is unusable.
    io_failed: bool,
    /// The worker's retirement, asked when a response starts.
    retiring: Option<Arc<dyn Retiring>>,
    /// The response fields kept for the access log (see [`KeptFields`]).
    kept: KeptFields,
    /// The id given to this request (empty: none), for its response.
    request_id: Vec<u8>,
}

impl ConnState {
    /// A fresh connection. A zero keep-alive timeout turns keep-alive off,
    /// as `--keep-alive 0` does in Gunicorn.
    pub fn new(mut config: ConnConfig) -> ConnState {
        if config.keepalive_timeout.is_zero() {
            config.keep_alive = false;
        }
        ConnState {
            config,
            phase: Phase::Head,
            input: ReadBuffer::new(),
            output: Vec::new(),
            head: RequestHead::default(),
            cycle: Cycle::default(),
            date: DateCache::default(),
            requests: 0,
            parse_pending: false,
            partial_len: 0,
            parses: 0,
            deadline: None,
            looked_late: false,
            body_pace: BodyPace::default(),
            error: None,
            io_failed: false,
            retiring: None,
            kept: KeptFields::default(),
            request_id: Vec::new(),
        }
    }

    /// Watch `retiring`: once it says so, every response that starts on
    /// this connection says `Connection: close` (see [`Retiring`]).
    pub fn watch_retirement(&mut self, retiring: Arc<dyn Retiring>) {
        self.retiring = Some(retiring);
    }

    /// The connection was accepted at `now`: its first head's deadline
    /// (`header_timeout`) runs from here, so the wait for its first byte,
    /// and anything a worker reads before the head (a PROXY header, a TLS
    /// handshake: see [`ConnState::head_deadline`]), count against it. A
    /// driver that does not call this starts the deadline at its first poll.
    pub fn accepted_at(&mut self, now: Instant) {
        if self.requests == 0 && self.phase == Phase::Head {
            self.looked_late = false;
            self.deadline = nonzero(self.config.header_timeout).map(|timeout| now + timeout);
        }
    }

    /// When the head now awaited must be complete (`None`: no deadline
    /// running, as between kept-alive requests before the next byte).
    /// What a worker reads before the head (a PROXY header, a TLS
    /// handshake) must end by then too; past it, the connection is closed.
    pub fn head_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Head => self.deadline,
            _ => None,
        }
    }

    /// The settings this connection runs under.
    pub fn config(&self) -> &ConnConfig {
        &self.config
    }

    /// What to do next.
    #[inline(always)]
    pub fn poll<C: Clock + ?Sized>(&mut self, clock: &C) -> Action {
        // Between and within heads is where a kept-alive connection spends
        // its polls: that path stays small enough to inline into a driver.
        if self.phase == Phase::Head {
            return self.poll_head(clock);
        }
        self.poll_other(clock)
    }

    #[inline(never)]
    fn poll_other<C: Clock + ?Sized>(&mut self, clock: &C) -> Action {
        match self.phase {
            Phase::Head => self.poll_head(clock),
            Phase::Request => {
                // The driver polled without finishing: finish now.
                self.finish();
                self.poll_other(clock)
            }
            Phase::Drain => self.poll_drain(clock),
            Phase::Reject(status) => {
                self.reject(status, clock);
                match self.error.take() {
                    Some(err) => Action::BadRequest(err),
                    None => self.poll_closing(true),
                }
            }
            Phase::Closing { linger } => self.poll_closing(linger),
            Phase::Lingering { .. } => self.poll_lingering(clock),
            Phase::Closed => Action::Close,
        }
    }

    #[inline(always)]
    fn poll_head<C: Clock + ?Sized>(&mut self, clock: &C) -> Action {
        if self.output.len() >= FLUSH_THRESHOLD {
            return Action::Write;
        }
        if self.parse_pending && !self.input.is_empty() {
            if let Some(action) = self.parse(clock) {
                return action;
            }
        }
        // More bytes are needed; what is answered goes out first.
        if !self.output.is_empty() {
            return Action::Write;
        }
        if self.input.is_empty() && self.requests > 0 {
            // Kept alive: the head deadline starts with the next byte.
            return Action::Read(ReadWait {
                timeout: nonzero(self.config.keepalive_timeout),
                idle: true,
            });
        }
        self.head_wait(clock)
    }

    /// Parse the buffered head: [`Action::Serve`] when it is complete, a
    /// rejection when it is bad, `None` when more bytes are needed.
    #[inline(never)]
    fn parse<C: Clock + ?Sized>(&mut self, clock: &C) -> Option<Action> {
        self.parse_pending = false;
        self.parses = self.parses.wrapping_add(1);
        match parse_head_into(self.input.data(), &self.config.limits, &mut self.head) {
            Ok(HeadStatus::Complete(info)) => {
                self.input.consume(info.head_len);
                self.parse_pending = true;
                self.start_request(info, clock);
                Some(Action::Serve)
            }
            Ok(HeadStatus::Partial) => {
                self.partial_len = self.input.len();
                None
            }
            Err(err) => {
                self.reject(err.status(), clock);
                Some(Action::BadRequest(err))
            }
        }
    }

    /// The wait for a head (a new connection's first byte, or the rest of
    /// a partial head) within its deadline (no `header_timeout` means no
    /// deadline); past it, 408 for a partial head, a silent close when
    /// nothing came.
    #[cold]
    fn head_wait<C: Clock + ?Sized>(&mut self, clock: &C) -> Action {
        let Some(header_timeout) = nonzero(self.config.header_timeout) else {
            return Action::Read(ReadWait {
                timeout: None,
                idle: false,
            });
        };
        let now = clock.now();
        let deadline = *self.deadline.get_or_insert(now + header_timeout);
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            if !self.looked_late {
                // Found past, not reached in a read that waited for it: the
                // wait was the server's (every thread busy, a task run
                // late), so what the client has sent by now is read, once
                // and without waiting, before the head is judged.
                self.looked_late = true;
                return Action::Read(ReadWait {
                    timeout: Some(LATE_LOOK),
                    idle: false,
                });
            }
            if self.input.is_empty() {
                self.phase = Phase::Closed;
                return Action::Close;
            }
            self.reject(408, clock);
            return self.poll_closing(true);
        }
        Action::Read(ReadWait {
            timeout: Some(left),
            idle: false,
        })
    }

    #[inline(never)]
    fn poll_drain<C: Clock + ?Sized>(&mut self, clock: &C) -> Action {
        match self.cycle.drain(self.input.data()) {
            Ok(used) => self.input.consume(used),
            Err(_) => {
                self.phase = Phase::Closing { linger: true };
                return self.poll_closing(true);
            }
        }
        if self.cycle.body_done() {
            self.phase = Phase::Head;
            return self.poll_head(clock);
        }
        if !self.output.is_empty() {
            return Action::Write;
        }
        Action::Read(self.drain_wait())
    }

    #[inline(never)]
    fn poll_closing(&mut self, linger: bool) -> Action {
        if !self.output.is_empty() {
            return Action::Write;
        }
        if !linger {
            self.phase = Phase::Closed;
            return Action::Close;
        }
        self.deadline = None;
        self.phase = Phase::Lingering { discarded: 0 };
        Action::Shutdown
    }

    #[inline(never)]
    fn poll_lingering<C: Clock + ?Sized>(&mut self, clock: &C) -> Action {
        let Phase::Lingering { discarded } = self.phase else {
            return Action::Close;
        };
        let now = clock.now();
        let deadline = *self.deadline.get_or_insert(now + self.config.linger);
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() || discarded as usize >= LINGER_BYTES {
            self.phase = Phase::Closed;
            return Action::Close;
        }
        self.input.consume(usize::MAX);
        Action::Read(ReadWait {
            timeout: Some(left),
            idle: false,
        })
    }

    /// Room to read into for [`Action::Read`] and [`BodyRead::Read`]; fails
    /// with `OutOfMemory` when the buffer is full (hand that error to
    /// [`ConnState::received`] or [`ConnState::body_received`]).
    pub fn read_buf(&mut self) -> io::Result<&mut [u8]> {
        self.input.spare(self.head_cap())
    }

    /// The result of the read asked for by [`Action::Read`].
    #[inline(always)]
    pub fn received(&mut self, result: io::Result<usize>) {
        match (self.phase, result) {
            (Phase::Head, Ok(count)) if count > 0 => self.head_bytes(count),
            (_, result) => self.received_other(result),
        }
    }

    /// `count` bytes came while a head is awaited: re-parse only when a
    /// line ended in them or [`REPARSE_STEP`] more came since the last try.
    #[inline(always)]
    fn head_bytes(&mut self, count: usize) {
        let before = self.input.len();
        if before == 0 {
            self.partial_len = 0;
        }
        self.input.filled(count);
        let data = self.input.data();
        let new = &data[before..];
        // A read that ends a line (as one of a whole request does) needs no
        // scan for one.
        if new.last() == Some(&b'\n')
            || data.len() >= self.partial_len + REPARSE_STEP
            || new.contains(&b'\n')
        {
            self.parse_pending = true;
        }
    }

    /// Every other read result: the end of the stream, errors, and bytes
    /// while draining or lingering.
    #[inline(never)]
    fn received_other(&mut self, result: io::Result<usize>) {
        match self.phase {
            Phase::Head => match result {
                // The client closed; a partial head gets no answer.
                Ok(0) => self.phase = Phase::Closing { linger: false },
                Ok(count) => self.head_bytes(count),
                Err(err) if is_timeout(&err) => {
                    if self.input.is_empty() {
                        self.phase = Phase::Closing { linger: false };
                    } else {
                        self.phase = Phase::Reject(408);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::OutOfMemory => {
                    // The buffer is full of an unfinished head.
                    let err = ParseError::HeadTooLarge {
                        limit: self.config.limits.head,
                    };
                    self.phase = Phase::Reject(err.status());
                    self.error = Some(err);
                }
                Err(_) => self.phase = Phase::Closed,
            },
            Phase::Drain => match result {
                Ok(count) if count > 0 => self.input.filled(count),
                _ => self.phase = Phase::Closing { linger: true },
            },
            Phase::Lingering { ref mut discarded } => match result {
                Ok(count) if count > 0 => {
                    // A read is smaller than the buffer, so no overflow.
                    *discarded = discarded.saturating_add(count as u32);
                    self.input.filled(count);
                }
                _ => self.phase = Phase::Closed,
            },
            Phase::Request => {
                // A driver reading on the app's behalf uses body_received
                // (which also counts the wait for the minimum rate).
                self.body_pace.since = None;
                let _ = self.body_result(result);
            }
            Phase::Reject(_) | Phase::Closing { .. } | Phase::Closed => {}
        }
    }

    /// The output waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// All of [`ConnState::output`] was written.
    pub fn written(&mut self) {
        self.output.clear();
    }

    /// Writing [`ConnState::output`] failed: the connection is unusable (a
    /// request in progress fails; the driver reports the error to the app).
    pub fn write_failed(&mut self) {
        self.output.clear();
        if self.phase == Phase::Request {
            self.cycle.abort();
            self.io_failed = true;
        } else {
            self.phase = Phase::Closed;
        }
    }

    /// The result of the half-close asked for by [`Action::Shutdown`].
    pub fn shut_down(&mut self, result: io::Result<()>) {
        if result.is_err() {
            self.phase = Phase::Closed;
        }
    }

    /// The timeout a driver puts on each write (`None`: no timeout): a
    /// write that makes no progress for this long fails, and the
    /// connection closes. Progress restarts it (each system call's own
    /// timeout, as `SO_SNDTIMEO` times each `send`).
    pub fn write_timeout(&self) -> Option<Duration> {
        nonzero(self.config.write_timeout)
    }

    /// Requests started on this connection so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Bytes received and not yet consumed (a pipelined or partial request).
    pub fn has_buffered(&self) -> bool {
        !self.input.is_empty()
    }

    /// True once [`ConnState::poll`] has said [`Action::Close`] or will.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether a read asked for now may be left to a poller: a request
    /// head's (the first, the next, or the rest of one) or a lingering
    /// close's. A driver that parks connections reads without waiting and
    /// parks the connection when nothing came (see
    /// [`ConnState::park_deadline`]).
    #[inline(always)]
    pub fn read_may_park(&self) -> bool {
        matches!(self.phase, Phase::Head | Phase::Lingering { .. })
    }

    /// True in a lingering close (the error answer sent, the client's
    /// input read and dropped until the linger's end).
    pub fn is_lingering(&self) -> bool {
        matches!(self.phase, Phase::Lingering { .. })
    }

    /// Until when a connection whose read was left to a poller may stay
    /// parked: the deadline of the head being received, or the end of a
    /// lingering close (`None`: no head has begun, or there is no
    /// deadline). Past it, [`ConnState::head_expired`].
    pub fn park_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Head | Phase::Lingering { .. } => self.deadline,
            _ => None,
        }
    }

    /// The [`ConnState::park_deadline`] passed while no driver polled (a
    /// poller held the connection parked and closes it): with part of a
    /// head received, the 408 is put in [`ConnState::output`] and `true`
    /// returned (write what the socket takes, then close); with nothing
    /// received, or at the end of a lingering close, `false` (close
    /// silently). The connection is closed either way.
    pub fn head_expired<C: Clock + ?Sized>(&mut self, clock: &C) -> bool {
        let answer = self.phase == Phase::Head && !self.input.is_empty();
        if answer {
            self.reject(408, clock);
            self.input.consume(usize::MAX);
        }
        self.phase = Phase::Closed;
        answer
    }

    /// Times a head was parsed, complete or not (the re-parse rule's cost).
    pub fn parse_attempts(&self) -> u64 {
        u64::from(self.parses)
    }

    /// Most bytes buffered while a head is incomplete.
    fn head_cap(&self) -> usize {
        self.config.limits.head.saturating_add(1024)
    }

    fn start_request<C: Clock + ?Sized>(&mut self, info: RequestInfo, clock: &C) {
        self.requests += 1;
        self.deadline = None;
        self.looked_late = false;
        self.body_pace = BodyPace::default();
        self.date.update(clock.wall());
        let options = CycleOptions {
            keep_alive: self.config.keep_alive,
            last: !self.config.keep_alive,
            max_drain: self.config.max_drain,
        };
        self.cycle
            .reset(info, &self.head, &self.config.limits, options);
        self.error = None;
        self.io_failed = false;
        self.phase = Phase::Request;
        if !self.config.kept_response_fields.is_empty() {
            self.kept.clear();
        }
        self.request_id.clear();
    }

    /// Answer `status` before (or instead of) any app, then close lingering.
    fn reject<C: Clock + ?Sized>(&mut self, status: u16, clock: &C) {
        self.date.update(clock.wall());
        encode_error(&mut self.output, status, Some(self.date.as_bytes()));
        self.phase = Phase::Closing { linger: true };
    }

    /// The wait for more of an unread body being drained.
    fn drain_wait(&self) -> ReadWait {
        ReadWait {
            timeout: nonzero(self.config.body_timeout),
            idle: false,
        }
    }
}

/// A request body's pace, for `body_min_rate`: the time spent waiting for
/// body bytes and the bytes those waits brought.
#[derive(Debug, Clone, Copy, Default)]
struct BodyPace {
    /// When the read in progress started waiting.
    since: Option<Instant>,
    /// Time spent waiting for the body so far.
    waited: Duration,
    /// Body bytes (as framed on the wire) the waits brought.
    received: u64,
}

/// A duration, `None` when zero (zero means no timeout in the settings).
fn nonzero(duration: Duration) -> Option<Duration> {
    Some(duration).filter(|duration| !duration.is_zero())
}

/// A read timeout, as std reports it on each platform (and tokio as `TimedOut`).
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

mod request;
#[cfg(test)]
mod tests;
