//! The worker kit: what every worker class builds on, and all a
//! third-party class author needs to read.
//!
//! The master forks and hands the child a [`Worker`]: the inherited
//! [`Listener`]s, the [`Settings`], the loaded app, its scoreboard [`Slot`]
//! and its [`Shutdown`] state. A [`WorkerClass`] runs it. The rules every
//! class shares live here once: how often to beat the heartbeat
//! ([`poll_interval`]), when `--max-requests` is reached
//! ([`past_max_requests`]), which accept errors are transient
//! ([`is_transient_accept_error`]) and what to do about the others
//! ([`AcceptBackoff`]: one cause-and-fix line, rate limited, and a pause),
//! the HTTP settings of a connection ([`Settings::conn_config`]), and the
//! line a coroutine class logs when the app runs on its blocking pool
//! ([`blocking_pool`]). The kit knows nothing of the arbiter; its only
//! `unsafe` is the worker's signal handlers (`sys`).

#![deny(unsafe_code)]

pub mod access;
pub mod blocking_pool;
pub mod bookkeeping;
pub mod class;
pub mod clock;
pub mod ending;
pub mod listener;
pub mod log;
pub mod proxy;
pub mod quick;
pub mod settings;
pub mod shared;
pub mod shutdown;
pub mod slot;
pub mod statsd;
#[allow(unsafe_code)]
mod sys;
pub mod tls;
pub mod unanswered;

pub use bookkeeping::ConnBookkeeping;
pub use class::{past_max_requests, poll_interval, Worker, WorkerClass};
pub use ending::Ending;
pub use listener::{
    is_transient_accept_error, stop_accepting, AcceptBackoff, Accepted, Drain, Listener,
    NonblockingError,
};
pub use quick::quick_exit;
pub use settings::Settings;
pub use shared::{Shared, Started};
pub use shutdown::{Shutdown, ShutdownState, SignalHook};
pub use slot::{LaneRequest, RequestGuard, RetireCause, Slot};
pub use unanswered::{Answering, Unanswered};
