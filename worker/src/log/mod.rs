//! What every process's log lines share: Gunicorn's CRITICAL level, the
//! line format (`--log-format`), the process's role, the local clock
//! (`time.rs`) and the syslog socket (`syslog.rs`), so the access log a
//! worker writes and the error log agree.
//!
//! The error log's writer (Gunicorn's line format or JSON, the log file,
//! reopen on USR1) is `master::log`, installed before the first fork and
//! inherited.

/// The `tracing` target of Gunicorn's CRITICAL lines: `tracing` has no
/// level above ERROR, so a critical line is an ERROR event with this target
/// (see [`critical!`](crate::critical)), ranked above ERROR and shown as
/// `[CRITICAL]`, the word alerting rules match.
pub const CRITICAL_TARGET: &str = "runicorn::critical";

/// Logs one line at Gunicorn's CRITICAL level (as `tracing::error!` takes
/// its arguments): what the master says when it kills a hung worker.
#[macro_export]
macro_rules! critical {
    ($($arg:tt)+) => {
        ::tracing::error!(target: $crate::log::CRITICAL_TARGET, $($arg)+)
    };
}

pub mod syslog;
mod time;

pub use time::{load_local_zone, local_time, LocalTime};

use std::sync::atomic::{AtomicU8, Ordering};

/// `--log-format`: how a line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Gunicorn's lines: `[time] [pid] [LEVEL] message`.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// Parses `text` or `json`.
    pub fn parse(value: &str) -> Result<LogFormat, String> {
        match value.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {value:?}: use text or json")),
        }
    }

    /// The setting's value.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Which process writes a line: the `role` of a JSON line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// The arbiter (and the cli before it starts).
    Master = 0,
    /// A forked worker.
    Worker = 1,
    /// The `--reload` file watcher.
    Watcher = 2,
}

static ROLE: AtomicU8 = AtomicU8::new(Role::Master as u8);

/// Says which process this is (a worker sets it right after fork).
pub fn set_role(role: Role) {
    ROLE.store(role as u8, Ordering::Relaxed);
}

/// This process's role.
pub fn role() -> Role {
    match ROLE.load(Ordering::Relaxed) {
        1 => Role::Worker,
        2 => Role::Watcher,
        _ => Role::Master,
    }
}

impl Role {
    /// `master`, `worker`, `watcher`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Watcher => "watcher",
        }
    }
}
