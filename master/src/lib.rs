//! The arbiter: runicorn's master process.
//!
//! This crate owns the listening sockets, fork, signals, the shared-memory
//! scoreboard and heartbeat, reload and reaping, and the [`WorkerClass`]
//! trait every concurrency model implements. It never starts a thread or a
//! runtime, before or after fork: everything here is one single-threaded
//! loop. It never touches a client connection and knows nothing of any
//! worker class but the trait. All `unsafe` lives in `sys` (and the
//! scoreboard's mapping).

pub mod arbiter;
pub mod clock;
pub mod error;
pub mod hooks;
pub mod listener;
pub mod loader;
pub mod log;
pub mod oom;
pub mod pidfile;
pub mod privileges;
pub mod scoreboard;
pub mod settings;
pub mod shutdown;
mod sys;
pub mod worker;

pub use arbiter::{Arbiter, ArbiterConfig, ReloadFn};
pub use error::MasterError;
pub use hooks::{ArbiterView, Hooks, NoHooks, WorkerView};
pub use listener::Listener;
pub use loader::AppLoader;
pub use scoreboard::{RequestGuard, Scoreboard, Slot};
pub use settings::Settings;
pub use shutdown::{Shutdown, ShutdownState};
pub use sys::{set_fork_hooks, ForkHooks};
pub use worker::{Worker, WorkerClass};
