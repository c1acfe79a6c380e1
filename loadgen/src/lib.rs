//! runicorn's load generator: drives an HTTP/1.1 server over TCP or a unix
//! socket, closed-loop (a fixed number of connections, each sending its
//! next request when the last one is answered) or open-loop (a fixed rate,
//! each request's latency measured from the time it was scheduled to be
//! sent, so a slow server cannot hide its queue: no coordinated omission),
//! and records every latency in an HDR histogram.
//!
//! It is a library so that `runicorn bench` (the `runicorn-bench` crate)
//! and the tests share one engine; it knows nothing of worker classes.
//! `run` starts the generator threads (`engine.rs`: one event loop each,
//! a state machine per connection), reports progress from the calling
//! thread and merges what the threads measured.
#![forbid(unsafe_code)]

mod engine;
mod request;
mod response;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use request::{parse_request_file, Request};

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Each connection sends its next request as soon as the last one is
    /// answered: a fixed concurrency.
    Closed,
    /// Requests are scheduled at a fixed rate whatever the server does;
    /// each one's latency counts from its scheduled send time.
    Open {
        /// Requests per second, in total over all generator threads.
        rate: f64,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    /// Sent in turn (round robin per connection).
    pub requests: Vec<Request>,
    pub mode: Mode,
    /// Closed loop: the concurrency. Open loop: the most connections to open.
    pub connections: u32,
    /// False: a new connection per request (its latency includes the connect).
    pub keep_alive: bool,
    /// Generator threads, each an event loop (at most `connections` are used).
    pub threads: u32,
    /// Pin generator threads to these CPUs, round robin (empty: no pinning).
    pub cpus: Vec<u32>,
    /// Run this long first, then discard what was measured.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// One request's deadline (connect included), counted as error `timeout`.
    pub timeout: Duration,
}

/// What a run measured in its window.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Responses completed in the measured window (any status).
    pub requests: u64,
    /// The measured window as it really was (shorter if stopped).
    pub elapsed: Duration,
    /// Response latencies in microseconds, 3 significant figures.
    pub latency: hdrhistogram::Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Connections opened in the window.
    pub connects: u64,
    /// The most connections open at once in the window.
    pub max_open: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The generator threads' own CPU time (user + system) in the window.
    pub client_cpu: Duration,
    /// `stop` was set before the window ended.
    pub stopped: bool,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The connection could not be made (refused, no such socket, ...).
    Connect,
    /// The server reset the connection (or a write found it closed).
    Reset,
    /// The server closed the connection before the response was complete.
    Closed,
    /// No complete response within `Plan::timeout`.
    Timeout,
    /// The bytes received are not a valid HTTP/1.1 response.
    BadResponse,
    /// A complete response with a 4xx status (also in `statuses`).
    Status4xx,
    /// A complete response with a 5xx status (also in `statuses`).
    Status5xx,
}

impl ErrorKind {
    /// Every kind, in order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Connect,
        ErrorKind::Reset,
        ErrorKind::Closed,
        ErrorKind::Timeout,
        ErrorKind::BadResponse,
        ErrorKind::Status4xx,
        ErrorKind::Status5xx,
    ];

    /// The name reports use ("connect", "bad_response", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::Status5xx => "status_5xx",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of the run is going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Measure,
}

/// Where a run is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: Phase,
    /// Time spent in this phase.
    pub elapsed: Duration,
    /// How long this phase lasts.
    pub total: Duration,
    /// Responses completed in this phase.
    pub requests: u64,
    /// Errors in this phase.
    pub errors: u64,
}

/// Why a run could not be made; each says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("request {number} in the requests file: {problem}")]
    RequestFile { number: usize, problem: String },
    #[error("the requests file has no request in it; write raw HTTP/1.1 requests, each a head and its Content-Length body")]
    NoRequests,
    #[error("invalid load plan: {0}")]
    Plan(String),
    #[error("cannot pin a load generator thread to CPU {cpu}: {source}; give CPUs this machine has (see nproc)")]
    Pin { cpu: u32, source: nix::Error },
    #[error("cannot start the load generator: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs `plan`: blocks until the warm-up and the measured window are over
/// (or `stop` is set: what was measured so far is returned, `stopped`
/// set). `progress` is called from the calling thread about every 100 ms.
pub fn run(
    plan: &Plan,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Measurement, LoadError> {
    check(plan)?;
    let threads = plan.threads.min(plan.connections) as usize;
    let t0 = Instant::now();
    let clock = engine::Clock {
        t0,
        window: t0 + plan.warmup,
        end: t0 + plan.warmup + plan.duration,
    };
    let shared = engine::Shared::new(threads, stop);
    let results = std::thread::scope(|scope| -> Result<Vec<engine::ThreadResult>, LoadError> {
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let job = engine::Job::new(plan, index, threads, clock);
            let shared = &shared;
            let handle = std::thread::Builder::new()
                .name(format!("loadgen-{index}"))
                .spawn_scoped(scope, move || engine::run_thread(job, shared));
            match handle {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    shared.abort();
                    return Err(error.into());
                }
            }
        }
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if handles.iter().all(|handle| handle.is_finished()) {
                break;
            }
            let now = Instant::now();
            let (phase, elapsed, total) = if now < clock.window {
                (Phase::Warmup, now - t0, plan.warmup)
            } else {
                (
                    Phase::Measure,
                    (now - clock.window).min(plan.duration),
                    plan.duration,
                )
            };
            let (requests, errors) = shared.counts();
            progress(&Progress {
                phase,
                elapsed,
                total,
                requests,
                errors,
            });
        }
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a load generator thread panicked"))
            .collect()
    })?;
    Ok(merge(plan, clock, &shared, results))
}

fn check(plan: &Plan) -> Result<(), LoadError> {
    let problem = |text: &str| Err(LoadError::Plan(text.to_string()));
    if plan.requests.is_empty() {
        return problem("no request to send");
    }
    if plan.connections == 0 {
        return problem("connections must be at least 1");
    }
    if plan.threads == 0 {
        return problem("threads must be at least 1");
    }
    if plan.duration.is_zero() {
        return problem("the duration must be more than 0");
    }
    if plan.timeout.is_zero() {
        return problem("the timeout must be more than 0");
    }
    if let Mode::Open { rate } = plan.mode {
        if !(rate.is_finite() && rate > 0.0) {
            return problem("the rate must be a positive number of requests per second");
        }
    }
    Ok(())
}

fn merge(
    plan: &Plan,
    clock: engine::Clock,
    shared: &engine::Shared<'_>,
    results: Vec<engine::ThreadResult>,
) -> Measurement {
    let mut latency = engine::new_histogram();
    let mut statuses = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut measurement_stopped = false;
    let mut stopped_at = clock.end;
    let (mut requests, mut connects, mut sent, mut received) = (0, 0, 0, 0);
    let mut client_cpu = Duration::ZERO;
    for result in results {
        latency
            .add(&result.latency)
            .expect("histograms with auto-resize add");
        for (status, &count) in result.statuses.iter().enumerate() {
            if count > 0 {
                *statuses.entry(status as u16).or_insert(0) += count;
            }
        }
        for (kind, &count) in ErrorKind::ALL.iter().zip(result.errors.iter()) {
            if count > 0 {
                *errors.entry(*kind).or_insert(0) += count;
            }
        }
        requests += result.requests;
        connects += result.connects;
        sent += result.bytes_sent;
        received += result.bytes_received;
        client_cpu += result.cpu;
        if let Some(at) = result.stopped_at {
            measurement_stopped = true;
            stopped_at = stopped_at.min(at);
        }
    }
    let elapsed = if measurement_stopped {
        stopped_at.saturating_duration_since(clock.window)
    } else {
        plan.duration
    };
    Measurement {
        requests,
        elapsed,
        latency,
        statuses,
        errors,
        connects,
        max_open: shared.max_open(),
        bytes_sent: sent,
        bytes_received: received,
        client_cpu,
        stopped: measurement_stopped,
    }
}

/// Whether `stop` (the caller's flag) was set.
fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}
