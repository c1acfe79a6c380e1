//! Helpers for the end-to-end tests: start the real `runicorn` binary in its
//! own process group, find its port from the `Listening at:` line, speak
//! HTTP over loopback, and kill everything it started, also on panic.
//!
//! Every e2e test file uses these instead of its own copies: [`Server`] (the
//! running master and its log), [`client`] (one response read correctly:
//! Content-Length, chunked, or to end of stream; keep-alive reuse),
//! [`load`] (concurrent request loops that count failures) and [`wait`]
//! (deadlines and condition polling; tests never synchronise on bare sleeps).
//! Nothing here talks to anything but 127.0.0.1, ::1 or a unix socket.

pub mod binary;
pub mod client;
pub mod load;
pub mod proc;
pub mod server;
pub mod wait;

pub use binary::runicorn_bin;
pub use client::{get, raw, raw_response, Addr, Conn, Response};
pub use load::{concurrent, keepalive, ClientLoop, LoadReport};
pub use nix::sys::signal::Signal;
pub use server::{Exited, Launch, Server};
pub use wait::{deadline, wait_until, Deadline};
