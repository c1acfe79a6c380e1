//! `--metrics-bind`: the master's `/metrics` listener, one of its loop's
//! sources (`arbiter/sources.rs`). Accepts without blocking, keeps at most
//! [`MAX_CLIENTS`] clients (more wait in the kernel's queue), and answers
//! each from the master's state when its request is complete.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags};
use runicorn_worker::clock::monotonic_now;

use super::render::{render, CONTENT_TYPE};
use super::scrape::{response, Ask, Scrape};
use crate::arbiter::sources::LoopSource;
use crate::arbiter::Arbiter;
use crate::error::MasterError;

/// Scrape clients served at once.
pub const MAX_CLIENTS: usize = 8;

/// The metrics listener and its clients.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    listener: TcpListener,
    clients: Vec<Scrape>,
}

impl MetricsServer {
    /// Binds `--metrics-bind` (`HOST:PORT`); the error is one line naming
    /// the address and the fix.
    pub fn bind(address: &str) -> Result<MetricsServer, MasterError> {
        let fail = |source: io::Error| MasterError::MetricsBind {
            address: address.to_owned(),
            source,
        };
        let addrs: Vec<SocketAddr> = address.to_socket_addrs().map_err(fail)?.collect();
        let listener = TcpListener::bind(&addrs[..]).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        Ok(MetricsServer {
            listener,
            clients: Vec::new(),
        })
    }

    /// Logs where it listens (`Metrics at: http://ADDR/metrics (PID)`,
    /// with the port the kernel chose for port 0).
    pub fn announce(&self, pid: nix::unistd::Pid) {
        if let Ok(bound) = self.listener.local_addr() {
            tracing::info!("Metrics at: http://{bound}/metrics ({pid})");
        }
    }

    fn accept(&mut self) {
        while self.clients.len() < MAX_CLIENTS {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.clients.push(Scrape::new(stream, monotonic_now()));
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock: none left; anything else (EMFILE, a client
                // gone) is retried at the next wake.
                Err(_) => return,
            }
        }
    }
}

impl LoopSource for MetricsServer {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = Vec::with_capacity(self.clients.len() + 1);
        if self.clients.len() < MAX_CLIENTS {
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
        }
        for client in &self.clients {
            let events = if client.writing() {
                PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            fds.push(PollFd::new(client.stream.as_fd(), events));
        }
        fds
    }

    fn next_deadline(&self) -> Option<std::time::Duration> {
        self.clients.iter().map(|client| client.deadline).min()
    }

    fn serve(&mut self, _ready: &[PollFlags], arbiter: &Arbiter) {
        self.accept();
        // Every client is tried (reads and writes stop at EAGAIN): cheaper
        // to reason about than mapping the events back, and bounded.
        for client in &mut self.clients {
            if client.writing() {
                client.write();
                continue;
            }
            let Some(ask) = client.read() else {
                continue;
            };
            let answer = match ask {
                Ask::Metrics { head } => response(
                    "200 OK",
                    CONTENT_TYPE,
                    &render(arbiter.metrics_sample()),
                    head,
                ),
                Ask::NotFound => response(
                    "404 Not Found",
                    "text/plain",
                    "Not Found: metrics are at /metrics\n",
                    false,
                ),
                Ask::MethodNotAllowed => response(
                    "405 Method Not Allowed",
                    "text/plain",
                    "Method Not Allowed: GET /metrics\n",
                    false,
                ),
                Ask::Bad => response("400 Bad Request", "text/plain", "Bad Request\n", false),
            };
            client.answer(answer);
        }
        let now = monotonic_now();
        self.clients
            .retain(|client| !client.done() && client.deadline > now);
    }
}
