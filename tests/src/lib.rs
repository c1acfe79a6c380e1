//! Helpers for the end-to-end tests: start the real `runicorn` binary in its
//! own process group, find its port from the `Listening at:` line, speak
//! HTTP over loopback, and kill everything it started, also on panic.
//!
//! Every e2e test file uses these instead of its own copies: [`Server`] (the
//! running master and its log), [`client`] (one response read correctly:
//! Content-Length, chunked, or to end of stream; keep-alive reuse),
//! [`load`] (concurrent request loops that count failures), [`scenario`]
//! (the checks every worker class passes, parameterised by the running
//! server) and [`wait`] (deadlines and condition polling; tests never
//! synchronise on bare sleeps); [`command`] runs helper commands (pip,
//! maturin) to completion within a bound, killed with their group.
//! Nothing here talks to anything but 127.0.0.1, ::1 or a unix socket.
//!
//! ```no_run
//! use runicorn_tests::{deadline, get, ClientLoop, Server, Signal};
//!
//! // Bind port 0; the harness reads the port from `Listening at:`.
//! let mut server = Server::start(["-w", "2", "-b", "127.0.0.1:0", "builtin:hello"]);
//! assert_eq!(get(server.addr(), "/").unwrap().text(), "Hello, World!");
//! let workers = server.wait_workers(2, 10.0);
//! let clients = ClientLoop::start(server.addr(), "/", 4);
//! server.signal(Signal::SIGHUP);
//! server.expect_log("Booting worker", 10.0);
//! assert_eq!(clients.stop().failed, 0);
//! server.signal(Signal::SIGTERM);
//! assert!(server.wait_exit(deadline(30.0)).unwrap().success());
//! # let _ = workers;
//! // Dropping `server` SIGKILLs its whole process group, also on panic.
//! ```

#![forbid(unsafe_code)]

pub mod binary;
pub mod client;
pub mod command;
pub mod examples;
pub mod load;
pub mod nginx;
pub mod proc;
pub mod python;
pub mod rlimit;
pub mod scenario;
pub mod server;
pub mod tcp_proxy;
pub mod tls;
pub mod wait;

pub use binary::runicorn_bin;
pub use client::{get, raw, raw_response, Addr, Conn, Response, Reuse};
pub use load::{concurrent, keepalive, ClientLoop, LoadReport};
pub use nginx::Nginx;
pub use nix::sys::signal::Signal;
pub use scenario::{exit_code, wait_replaced, Class, InFlight, LOCAL};
pub use server::{Exited, Launch, Server};
pub use wait::{deadline, wait_until, Deadline};
