//! One generator thread: an event loop (mio: epoll, edge-triggered) over
//! its share of the connections, each a small state machine driven by
//! readiness: connect, write the request, read and frame the response,
//! record its latency, then the next request (closed loop) or wait for the
//! next scheduled one (open loop). Nothing is allocated per request: each
//! connection keeps its read buffer, the requests' bytes are shared, and
//! a request costs one `Instant::now()`, at its completion (which is the
//! send time of the next request on a keep-alive connection).

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::{TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::response::{Parsed, ResponseReader};
use crate::{ErrorKind, LoadError, Mode, Plan, Target};

/// The run's timeline, shared by every thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// The start (of the warm-up, and of the open loop's schedule).
    pub(crate) t0: Instant,
    /// The start of the measured window.
    pub(crate) window: Instant,
    /// Its end.
    pub(crate) end: Instant,
}

/// What one thread publishes while it runs, on its own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counter {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// What the threads and the calling thread share.
#[derive(Debug)]
pub(crate) struct Shared<'a> {
    stop: &'a AtomicBool,
    /// Set when a thread could not start: the others end too.
    aborted: AtomicBool,
    counters: Vec<Counter>,
    open: AtomicU32,
    max_open: AtomicU32,
}

impl<'a> Shared<'a> {
    pub(crate) fn new(threads: usize, stop: &'a AtomicBool) -> Shared<'a> {
        Shared {
            stop,
            aborted: AtomicBool::new(false),
            counters: (0..threads).map(|_| Counter::default()).collect(),
            open: AtomicU32::new(0),
            max_open: AtomicU32::new(0),
        }
    }

    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    fn should_stop(&self) -> bool {
        crate::stopped(self.stop) || self.aborted.load(Ordering::Relaxed)
    }

    /// Responses and errors in the current phase, over all threads.
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.counters
            .iter()
            .fold((0, 0), |(requests, errors), counter| {
                (
                    requests + counter.requests.load(Ordering::Relaxed),
                    errors + counter.errors.load(Ordering::Relaxed),
                )
            })
    }

    pub(crate) fn max_open(&self) -> u32 {
        self.max_open.load(Ordering::Relaxed)
    }

    fn opened(&self, in_window: bool) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if in_window {
            self.max_open.fetch_max(open, Ordering::Relaxed);
        }
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One thread's part of the plan.
#[derive(Debug)]
pub(crate) struct Job<'a> {
    plan: &'a Plan,
    index: usize,
    threads: usize,
    /// The most connections this thread opens (closed loop: exactly).
    connections: usize,
    cpu: Option<u32>,
    clock: Clock,
}

impl<'a> Job<'a> {
    pub(crate) fn new(plan: &'a Plan, index: usize, threads: usize, clock: Clock) -> Job<'a> {
        let total = plan.connections as usize;
        let connections = total / threads + usize::from(index < total % threads);
        let cpu = (!plan.cpus.is_empty()).then(|| plan.cpus[index % plan.cpus.len()]);
        Job {
            plan,
            index,
            threads,
            connections,
            cpu,
            clock,
        }
    }
}

/// What one thread measured in the window.
#[derive(Debug)]
pub(crate) struct ThreadResult {
    pub(crate) latency: Histogram<u64>,
    /// Counts by status code (index).
    pub(crate) statuses: Vec<u64>,
    /// Counts by kind, in `ErrorKind::ALL`'s order.
    pub(crate) errors: [u64; 7],
    pub(crate) requests: u64,
    pub(crate) connects: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) cpu: Duration,
    /// When the thread ended early (stop set before the window's end).
    pub(crate) stopped_at: Option<Instant>,
}

/// Latencies above an hour are recorded as an hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

impl ThreadResult {
    fn new() -> ThreadResult {
        ThreadResult {
            latency: new_histogram(),
            statuses: vec![0; 1000],
            errors: [0; 7],
            requests: 0,
            connects: 0,
            bytes_sent: 0,
            bytes_received: 0,
            cpu: Duration::ZERO,
            stopped_at: None,
        }
    }

    fn reset(&mut self) {
        self.latency.reset();
        self.statuses.fill(0);
        self.errors = [0; 7];
        self.requests = 0;
        self.connects = 0;
        self.bytes_sent = 0;
        self.bytes_received = 0;
    }
}

/// A connection's socket.
#[derive(Debug)]
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn connect(target: &Target) -> io::Result<Sock> {
        match target {
            Target::Tcp(addr) => {
                let stream = TcpStream::connect(*addr)?;
                stream.set_nodelay(true)?;
                Ok(Sock::Tcp(stream))
            }
            Target::Unix(path) => Ok(Sock::Unix(UnixStream::connect(path)?)),
        }
    }

    fn register(&mut self, poll: &Poll, token: Token) -> io::Result<()> {
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self {
            Sock::Tcp(stream) => poll.registry().register(stream, token, interest),
            Sock::Unix(stream) => poll.registry().register(stream, token, interest),
        }
    }

    /// After a readiness event on a connecting socket: Ok(true) connected,
    /// Ok(false) not yet (a spurious event), Err the connect failed.
    fn connected(&self) -> io::Result<bool> {
        let (error, peer) = match self {
            Sock::Tcp(stream) => (stream.take_error(), stream.peer_addr().map(drop)),
            Sock::Unix(stream) => (stream.take_error(), stream.peer_addr().map(drop)),
        };
        if let Some(error) = error? {
            return Err(error);
        }
        match peer {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(error) => Err(error),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(stream) => stream.read(buf),
            Sock::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(stream) => stream.write(buf),
            Sock::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No connection.
    Free,
    /// Closed loop: the connect failed; connect again at the next scan.
    Backoff,
    Connecting,
    Writing,
    Reading,
    /// Open loop: connected, keep-alive, waiting for a scheduled request.
    Idle,
}

/// A read buffer's first size; a head larger than it doubles it, up to
/// `MAX_BUFFER` (bodies are never kept, so they never need more).
const BUFFER: usize = 16 * 1024;
const MAX_BUFFER: usize = 1024 * 1024;

#[derive(Debug)]
struct Slot {
    sock: Option<Sock>,
    state: State,
    /// The request being sent (an index into the plan's requests).
    request: usize,
    /// The next request to send on this connection (round robin).
    next: usize,
    written: usize,
    /// Where the request's latency counts from.
    start: Instant,
    /// Set before the connect when the latency counts from then (a new
    /// connection per request, or a scheduled open-loop request).
    origin: Option<Instant>,
    deadline: Instant,
    buf: Vec<u8>,
    filled: usize,
    reader: ResponseReader,
}

struct Engine<'a> {
    job: Job<'a>,
    shared: &'a Shared<'a>,
    poll: Poll,
    slots: Vec<Slot>,
    /// Per request: whether it is a HEAD (its response has no body).
    head: Vec<bool>,
    /// Open loop: this thread's rate (requests per second).
    rate: Option<f64>,
    /// Open loop: the next scheduled request (its number in this thread).
    next_send: u64,
    /// Open loop: connected slots waiting for a request (may hold stale entries).
    idle: Vec<usize>,
    /// Open loop: slots without a connection.
    free: Vec<usize>,
    open: usize,
    in_window: bool,
    cpu_at_window: Duration,
    stats: ThreadResult,
    /// Responses and errors in this phase (published to `Shared`).
    done: u64,
    failed: u64,
    scan_every: Duration,
    next_scan: Instant,
}

/// This thread's CPU time so far (user + system).
fn thread_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD).map_or(Duration::ZERO, |usage| {
        let to_duration = |time: nix::sys::time::TimeVal| {
            Duration::from_secs(time.tv_sec().max(0) as u64)
                + Duration::from_micros(time.tv_usec().max(0) as u64)
        };
        to_duration(usage.user_time()) + to_duration(usage.system_time())
    })
}

fn pin(cpu: u32) -> Result<(), LoadError> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    set.set(cpu as usize)
        .and_then(|()| sched_setaffinity(nix::unistd::Pid::from_raw(0), &set))
        .map_err(|source| LoadError::Pin { cpu, source })
}

/// How an I/O error on an established connection is counted.
fn error_kind(error: &io::Error) -> ErrorKind {
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        _ => ErrorKind::Closed,
    }
}

/// Runs one generator thread to the end of the window (or the stop).
pub(crate) fn run_thread(job: Job<'_>, shared: &Shared<'_>) -> Result<ThreadResult, LoadError> {
    let started = (|| {
        if let Some(cpu) = job.cpu {
            pin(cpu)?;
        }
        Ok::<_, LoadError>(Poll::new()?)
    })();
    let poll = match started {
        Ok(poll) => poll,
        Err(error) => {
            shared.abort();
            return Err(error);
        }
    };
    let rate = match job.plan.mode {
        Mode::Closed => None,
        Mode::Open { rate } => Some(rate),
    };
    let scan_every =
        (job.plan.timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let now = Instant::now();
    let mut engine = Engine {
        head: job.plan.requests.iter().map(|r| r.is_head()).collect(),
        slots: (0..job.connections)
            .map(|index| Slot {
                sock: None,
                state: State::Free,
                request: 0,
                next: index % job.plan.requests.len(),
                written: 0,
                start: now,
                origin: None,
                deadline: now,
                buf: Vec::new(),
                filled: 0,
                reader: ResponseReader::new(),
            })
            .collect(),
        free: (0..job.connections).rev().collect(),
        idle: Vec::with_capacity(job.connections),
        job,
        shared,
        poll,
        rate,
        next_send: 0,
        open: 0,
        in_window: false,
        cpu_at_window: Duration::ZERO,
        stats: ThreadResult::new(),
        done: 0,
        failed: 0,
        scan_every,
        next_scan: now + scan_every,
    };
    engine.run();
    Ok(engine.finish())
}

impl Engine<'_> {
    fn closed_loop(&self) -> bool {
        self.rate.is_none()
    }

    fn run(&mut self) {
        let clock = self.job.clock;
        let mut events = Events::with_capacity(1024);
        if self.closed_loop() {
            let now = Instant::now();
            let origin = (!self.job.plan.keep_alive).then_some(now);
            for index in 0..self.slots.len() {
                self.slots[index].origin = origin;
                self.connect(index, now);
            }
        }
        loop {
            let now = Instant::now();
            if !self.in_window && now >= clock.window {
                self.begin_window();
            }
            if now >= clock.end {
                break;
            }
            if self.shared.should_stop() {
                self.stats.stopped_at = Some(now);
                break;
            }
            if now >= self.next_scan {
                self.scan(now);
                self.next_scan = now + self.scan_every;
            }
            let mut wake = self
                .next_scan
                .min(clock.end)
                .min(now + Duration::from_millis(100));
            if !self.in_window {
                wake = wake.min(clock.window);
            }
            if self.rate.is_some() {
                self.dispatch(now);
                let due = self.scheduled(self.next_send);
                if due > now {
                    wake = wake.min(due);
                }
            }
            match self
                .poll
                .poll(&mut events, Some(wake.saturating_duration_since(now)))
            {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => panic!("epoll_wait failed: {error}"),
            }
            for event in events.iter() {
                let index = event.token().0;
                // The peer closed (or reset): read to the end, a short read
                // does not mean that no other event is pending.
                let closing = event.is_read_closed() || event.is_error();
                let readable = event.is_readable() || closing;
                match self.slots[index].state {
                    State::Connecting => self.on_connect(index),
                    State::Writing => {
                        if event.is_writable() || event.is_error() {
                            self.write(index);
                        }
                        if readable && self.slots[index].state == State::Writing {
                            self.read(index, closing);
                        }
                    }
                    State::Reading | State::Idle if readable => self.read(index, closing),
                    _ => {}
                }
            }
        }
    }

    fn begin_window(&mut self) {
        self.in_window = true;
        self.stats.reset();
        self.done = 0;
        self.failed = 0;
        let counter = &self.shared.counters[self.job.index];
        counter.requests.store(0, Ordering::Relaxed);
        counter.errors.store(0, Ordering::Relaxed);
        let open = self.shared.open.load(Ordering::Relaxed);
        self.shared.max_open.fetch_max(open, Ordering::Relaxed);
        self.cpu_at_window = thread_cpu();
    }

    fn finish(mut self) -> ThreadResult {
        if self.in_window {
            self.stats.cpu = thread_cpu().saturating_sub(self.cpu_at_window);
        } else {
            // Stopped during the warm-up: nothing was measured.
            self.stats.reset();
        }
        for slot in &mut self.slots {
            if slot.sock.take().is_some() {
                self.shared.closed();
            }
        }
        self.stats
    }

    /// Open loop: when the thread's `number`th request is due.
    fn scheduled(&self, number: u64) -> Instant {
        let rate = self.rate.unwrap_or(1.0);
        let global = number as f64 * self.job.threads as f64 + self.job.index as f64;
        self.job.clock.t0 + Duration::from_secs_f64(global / rate)
    }

    /// Open loop: sends every request that is due, on an idle connection
    /// or a new one while fewer than the most are open; the others wait.
    fn dispatch(&mut self, now: Instant) {
        loop {
            let due = self.scheduled(self.next_send);
            if due > now {
                return;
            }
            if let Some(index) = self.idle.pop() {
                if self.slots[index].state == State::Idle {
                    self.next_send += 1;
                    self.send(index, due, now + self.job.plan.timeout);
                }
            } else if let Some(index) = self.free.pop() {
                self.next_send += 1;
                self.slots[index].origin = Some(due);
                self.connect(index, now);
            } else {
                return;
            }
        }
    }

    /// Times out the requests past their deadline; reconnects the closed
    /// loop's connections that failed to connect.
    fn scan(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            match self.slots[index].state {
                State::Connecting | State::Writing | State::Reading
                    if now >= self.slots[index].deadline =>
                {
                    self.fail(index, ErrorKind::Timeout);
                }
                State::Backoff => self.connect(index, now),
                _ => {}
            }
        }
    }

    /// Opens the connection of slot `index` (its `origin` already set
    /// when the latency counts from before the connect).
    fn connect(&mut self, index: usize, now: Instant) {
        let result = Sock::connect(&self.job.plan.target).and_then(|mut sock| {
            sock.register(&self.poll, Token(index))?;
            Ok(sock)
        });
        let slot = &mut self.slots[index];
        match result {
            Ok(sock) => {
                if slot.buf.is_empty() {
                    slot.buf = vec![0; BUFFER];
                }
                slot.sock = Some(sock);
                slot.state = State::Connecting;
                slot.deadline = now + self.job.plan.timeout;
                self.open += 1;
                self.shared.opened(self.in_window);
                if self.in_window {
                    self.stats.connects += 1;
                }
            }
            Err(_) => {
                self.count_error(ErrorKind::Connect, now);
                let slot = &mut self.slots[index];
                if self.rate.is_some() {
                    slot.state = State::Free;
                    self.free.push(index);
                } else {
                    slot.state = State::Backoff;
                }
            }
        }
    }

    fn on_connect(&mut self, index: usize) {
        let slot = &self.slots[index];
        match slot.sock.as_ref().map(Sock::connected) {
            Some(Ok(true)) => {}
            Some(Ok(false)) | None => return,
            Some(Err(_)) => return self.fail(index, ErrorKind::Connect),
        }
        let (origin, deadline) = (slot.origin, slot.deadline);
        match origin {
            Some(origin) => self.send(index, origin, deadline),
            None => {
                let now = Instant::now();
                self.send(index, now, now + self.job.plan.timeout);
            }
        }
    }

    /// Starts the next request on a connected slot.
    fn send(&mut self, index: usize, start: Instant, deadline: Instant) {
        let requests = self.job.plan.requests.len();
        let slot = &mut self.slots[index];
        slot.request = slot.next;
        slot.next = if slot.next + 1 == requests {
            0
        } else {
            slot.next + 1
        };
        slot.written = 0;
        slot.start = start;
        slot.deadline = deadline;
        slot.filled = 0;
        slot.reader.reset();
        slot.state = State::Writing;
        self.write(index);
    }

    fn write(&mut self, index: usize) {
        let plan = self.job.plan;
        let slot = &mut self.slots[index];
        let bytes = &plan.requests[slot.request].bytes;
        let Some(sock) = slot.sock.as_mut() else {
            return;
        };
        while slot.written < bytes.len() {
            match sock.write(&bytes[slot.written..]) {
                Ok(0) => return self.fail(index, ErrorKind::Closed),
                Ok(written) => {
                    slot.written += written;
                    self.stats.bytes_sent += written as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return self.fail(index, error_kind(&error)),
            }
        }
        slot.state = State::Reading;
    }

    /// Reads what arrived; `closing`: the peer closed or reset, read on
    /// to the end of the stream.
    fn read(&mut self, index: usize, closing: bool) {
        loop {
            let slot = &mut self.slots[index];
            if slot.filled == slot.buf.len() {
                if slot.buf.len() >= MAX_BUFFER {
                    return self.fail(index, ErrorKind::BadResponse);
                }
                let grown = slot.buf.len() * 2;
                slot.buf.resize(grown, 0);
            }
            let Some(sock) = slot.sock.as_mut() else {
                return;
            };
            let space = slot.buf.len() - slot.filled;
            match sock.read(&mut slot.buf[slot.filled..]) {
                Ok(0) => return self.on_eof(index),
                Ok(read) => {
                    self.stats.bytes_received += read as u64;
                    if slot.state == State::Idle {
                        // Bytes nobody asked for.
                        return self.fail(index, ErrorKind::BadResponse);
                    }
                    slot.filled += read;
                    if !self.parse(index) || (read < space && !closing) {
                        // A short read emptied the socket: the next bytes
                        // (or the close) bring a new edge (epoll,
                        // edge-triggered), so no read to find EAGAIN.
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    if slot.state == State::Idle {
                        return self.close(index);
                    }
                    return self.fail(index, error_kind(&error));
                }
            }
        }
    }

    /// Feeds the bytes read; false once the response is over (complete or
    /// failed) and the slot moved on.
    fn parse(&mut self, index: usize) -> bool {
        let slot = &mut self.slots[index];
        let head = self.head[slot.request];
        let (parsed, used) = slot.reader.feed(&slot.buf[..slot.filled], head);
        match parsed {
            Parsed::More => {
                if used == slot.filled {
                    slot.filled = 0;
                } else if used > 0 {
                    slot.buf.copy_within(used..slot.filled, 0);
                    slot.filled -= used;
                }
                true
            }
            Parsed::Done { used } => {
                let extra = used < slot.filled;
                self.complete(index, extra);
                false
            }
            Parsed::Bad(_) => {
                self.fail(index, ErrorKind::BadResponse);
                false
            }
        }
    }

    fn on_eof(&mut self, index: usize) {
        let slot = &self.slots[index];
        match slot.state {
            State::Idle => self.close(index),
            _ if slot.reader.done_at_close() => self.complete(index, false),
            _ => self.fail(index, ErrorKind::Closed),
        }
    }

    /// A complete response: records it, then the next request.
    fn complete(&mut self, index: usize, extra: bool) {
        let now = Instant::now();
        let slot = &self.slots[index];
        let status = slot.reader.status;
        let close =
            slot.reader.close || extra || !self.job.plan.keep_alive || slot.state == State::Writing;
        if self.in_window && now < self.job.clock.end {
            let micros = now.saturating_duration_since(slot.start).as_micros() as u64;
            self.stats.latency.saturating_record(micros);
            self.stats.statuses[usize::from(status).min(999)] += 1;
            self.stats.requests += 1;
        }
        self.done += 1;
        self.shared.counters[self.job.index]
            .requests
            .store(self.done, Ordering::Relaxed);
        if status >= 500 {
            self.count_error(ErrorKind::Status5xx, now);
        } else if status >= 400 {
            self.count_error(ErrorKind::Status4xx, now);
        }
        if extra {
            self.count_error(ErrorKind::BadResponse, now);
        }
        if close {
            self.close(index);
            if self.closed_loop() {
                self.slots[index].origin = (!self.job.plan.keep_alive).then_some(now);
                self.connect(index, now);
            }
        } else if self.closed_loop() {
            self.send(index, now, now + self.job.plan.timeout);
        } else {
            let due = self.scheduled(self.next_send);
            if due <= now {
                self.next_send += 1;
                self.send(index, due, now + self.job.plan.timeout);
            } else {
                self.slots[index].state = State::Idle;
                self.idle.push(index);
            }
        }
    }

    /// A failed request: counted, its connection closed, and (closed loop)
    /// a new one opened for the next request.
    fn fail(&mut self, index: usize, kind: ErrorKind) {
        let now = Instant::now();
        self.count_error(kind, now);
        self.close(index);
        if self.closed_loop() {
            if kind == ErrorKind::Connect {
                // Connecting again at once would spin on a server that is down.
                self.slots[index].state = State::Backoff;
            } else {
                self.slots[index].origin = (!self.job.plan.keep_alive).then_some(now);
                self.connect(index, now);
            }
        }
    }

    fn count_error(&mut self, kind: ErrorKind, now: Instant) {
        if self.in_window && now < self.job.clock.end {
            self.stats.errors[kind as usize] += 1;
        }
        self.failed += 1;
        self.shared.counters[self.job.index]
            .errors
            .store(self.failed, Ordering::Relaxed);
    }

    /// Closes slot `index`'s connection (closing the socket removes it
    /// from the poll); the open loop's slot becomes free.
    fn close(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if slot.sock.take().is_some() {
            self.open -= 1;
            self.shared.closed();
        }
        slot.filled = 0;
        if slot.state != State::Free {
            slot.state = State::Free;
            if self.rate.is_some() {
                self.free.push(index);
            }
        }
    }
}
