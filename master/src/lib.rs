//! The arbiter: runicorn's master process.
//!
//! This crate owns the listening sockets, fork, signals, the shared-memory
//! scoreboard and heartbeat, reload and reaping, and the [`WorkerClass`]
//! trait every concurrency model implements. It never starts a thread or a
//! runtime, before or after fork: everything here is one single-threaded
//! loop. It never touches a client connection and knows nothing of any
//! worker class but the trait. All `unsafe` lives in `sys`.

pub mod settings;
pub mod worker;

pub use settings::Settings;
pub use worker::{Worker, WorkerClass};
