//! Client loops shared by every e2e file: N threads sending requests at once,
//! on fresh connections or reusing keep-alive ones, and a background loop
//! that runs across a reload and counts every failure.
//!
//! A keep-alive client behaves as HTTP libraries and browsers do: a request
//! on a reused connection that gets no byte back (the server closed or reset
//! the connection under it) is sent again once on a new connection. Such a
//! retry is counted ([`LoadReport::retried`]) apart from a failure: a POST
//! would not have been retried, so a server that loses no request shows
//! zero of both.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use crate::client::{get, Addr, Conn, Response, Reuse};
use crate::wait::{wait_until, Deadline};

/// How many error messages a report keeps (the count is always exact).
const KEPT_ERRORS: usize = 20;

/// What a batch of requests saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Responses with status 200.
    pub ok: usize,
    /// I/O errors and non-200 responses.
    pub failed: usize,
    /// Requests sent again on a new connection because the reused one
    /// closed or reset before any byte of an answer (each also counted once
    /// in `ok` or `failed`, by how the retry went).
    pub retried: usize,
    /// Count per status code.
    pub statuses: BTreeMap<u16, usize>,
    /// The first few failures, described.
    pub errors: Vec<String>,
}

impl LoadReport {
    /// Records one outcome.
    pub fn record(&mut self, outcome: &std::io::Result<Response>) {
        match outcome {
            Ok(response) => {
                *self.statuses.entry(response.status).or_default() += 1;
                if response.status == 200 {
                    self.ok += 1;
                } else {
                    self.fail(format!("status {}: {}", response.status, response.text()));
                }
            }
            Err(err) => self.fail(format!("i/o error: {err}")),
        }
    }

    fn fail(&mut self, message: String) {
        self.failed += 1;
        if self.errors.len() < KEPT_ERRORS {
            self.errors.push(message);
        }
    }

    /// Adds another report into this one.
    pub fn merge(&mut self, other: LoadReport) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.retried += other.retried;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        let room = KEPT_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
    }

    /// Total requests attempted.
    pub fn total(&self) -> usize {
        self.ok + self.failed
    }
}

/// `threads` threads each sending `per_thread` `GET path`, each on a fresh
/// connection; returns when all are done.
pub fn concurrent(addr: &Addr, threads: usize, per_thread: usize, path: &str) -> LoadReport {
    batch(addr, threads, per_thread, path, false)
}

/// `threads` threads each sending `per_thread` `GET path` over one
/// keep-alive connection, reconnecting only when the server closes it
/// (`Connection: close`) or the connection fails.
pub fn keepalive(addr: &Addr, threads: usize, per_thread: usize, path: &str) -> LoadReport {
    batch(addr, threads, per_thread, path, true)
}

fn batch(
    addr: &Addr,
    threads: usize,
    per_thread: usize,
    path: &str,
    keep_alive: bool,
) -> LoadReport {
    run_threads(threads, |_| {
        let mut client = Client::new(addr.clone(), path.to_owned(), keep_alive);
        let mut report = LoadReport::default();
        for _ in 0..per_thread {
            let (outcome, retried) = client.request();
            report.retried += usize::from(retried);
            report.record(&outcome);
        }
        report
    })
}

/// One client thread's requests: each on a fresh connection, or (with
/// `keep_alive`) on one kept connection, reconnecting only when the server
/// closes it (`Connection: close`) or it fails.
struct Client {
    addr: Addr,
    path: String,
    keep_alive: bool,
    conn: Option<Conn>,
}

impl Client {
    fn new(addr: Addr, path: String, keep_alive: bool) -> Client {
        Client {
            addr,
            path,
            keep_alive,
            conn: None,
        }
    }

    /// One request; true when it was retried on a new connection after
    /// the reused one gave nothing back.
    fn request(&mut self) -> (std::io::Result<Response>, bool) {
        if !self.keep_alive {
            return (get(&self.addr, &self.path), false);
        }
        let mut retried = false;
        if let Some(open) = self.conn.as_mut() {
            match open.get_reused(&self.path) {
                Reuse::Answered(outcome) => {
                    self.keep_if_open(&outcome);
                    return (outcome, false);
                }
                Reuse::Unanswered(_) => {
                    self.conn = None;
                    retried = true;
                }
            }
        }
        let outcome = Conn::connect(&self.addr).and_then(|mut fresh| {
            let response = fresh.get(&self.path);
            self.conn = Some(fresh);
            response
        });
        self.keep_if_open(&outcome);
        (outcome, retried)
    }

    /// Drops the connection unless `outcome` is a response that keeps it.
    fn keep_if_open(&mut self, outcome: &std::io::Result<Response>) {
        if !outcome.as_ref().is_ok_and(|response| !response.closes()) {
            self.conn = None;
        }
    }
}

fn run_threads(threads: usize, work: impl Fn(usize) -> LoadReport + Sync) -> LoadReport {
    let work = &work;
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| scope.spawn(move || work(index)))
            .collect();
        let mut total = LoadReport::default();
        for handle in handles {
            total.merge(handle.join().expect("client thread panicked"));
        }
        total
    })
}

/// A background client loop: `threads` threads sending `GET path` on fresh
/// connections until stopped, e.g. across a HUP.
#[derive(Debug)]
pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<LoadReport>>,
    handles: Vec<JoinHandle<()>>,
}

impl ClientLoop {
    /// Starts the loop.
    pub fn start(addr: &Addr, path: &str, threads: usize) -> ClientLoop {
        ClientLoop::spawn(addr, path, threads, false)
    }

    /// Like [`ClientLoop::start`], but each thread keeps one keep-alive
    /// connection, reconnecting only when the server closes it
    /// (`Connection: close`) or it fails.
    pub fn start_keepalive(addr: &Addr, path: &str, threads: usize) -> ClientLoop {
        ClientLoop::spawn(addr, path, threads, true)
    }

    fn spawn(addr: &Addr, path: &str, threads: usize, keep_alive: bool) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let handles = (0..threads)
            .map(|_| {
                let (stop, report) = (Arc::clone(&stop), Arc::clone(&report));
                let mut client = Client::new(addr.clone(), path.to_owned(), keep_alive);
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let (outcome, retried) = client.request();
                        let mut report = report.lock().expect("report lock");
                        report.retried += usize::from(retried);
                        report.record(&outcome);
                    }
                })
            })
            .collect();
        ClientLoop {
            stop,
            report,
            handles,
        }
    }

    /// A snapshot of what the loop has seen so far.
    pub fn report(&self) -> LoadReport {
        self.report.lock().expect("report lock").clone()
    }

    /// Waits until at least `count` requests succeeded; false on timeout.
    pub fn wait_ok(&self, count: usize, deadline: Deadline) -> bool {
        wait_until(deadline, || self.report().ok >= count)
    }

    /// Stops the threads, joins them, and returns the final report.
    pub fn stop(mut self) -> LoadReport {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.halt();
    }
}
