//! The arbiter: runicorn's master process.
//!
//! This crate owns the listening sockets, fork, signals, the shared-memory
//! scoreboard and heartbeat, reload and reaping. The contract with the
//! worker classes ([`runicorn_worker::WorkerClass`], `Worker`, `Settings`,
//! `Shutdown`, `Slot`) is the worker kit's. It never starts a thread or a
//! runtime, before or after fork: everything here is one single-threaded
//! loop. It never touches a client connection and knows nothing of any
//! worker class but the trait, nor of HTTP.
//!
//! `unsafe` is denied here except in the two fenced modules that allow it:
//! `sys` (fork, signals, the other system calls nix leaves unsafe) and
//! `scoreboard::mapping` (the shared mapping as a slice); each block there
//! says why it is sound.

#![deny(unsafe_code)]

pub mod arbiter;
pub mod child;
pub mod control;
pub mod error;
pub mod hooks;
pub mod inherit;
pub mod listener;
pub mod loader;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod nofile;
pub mod notify;
pub mod oom;
pub mod pidfile;
pub mod privileges;
pub mod scoreboard;
pub mod statsd;
#[allow(unsafe_code)] // the fence: every system call nix leaves unsafe
mod sys;

pub use arbiter::{Arbiter, ArbiterConfig, ReloadFn, Role};
pub use child::Child;
pub use error::MasterError;
pub use hooks::{ArbiterView, Hooks, NoHooks, WorkerView};
pub use loader::AppLoader;
pub use scoreboard::{ArbiterSlot, Scoreboard};
pub use sys::{set_fork_hooks, ForkHooks};
