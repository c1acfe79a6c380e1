//! The master's errors. Each operator-facing message names the cause and
//! the fix.

use std::io;
use std::path::PathBuf;

/// What can stop the master from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A `-b` value that is not a bind spec.
    #[error("invalid bind '{spec}': {reason}")]
    BadBind {
        /// What the operator wrote.
        spec: String,
        /// What is wrong, and what is allowed.
        reason: String,
    },
    /// The address stayed in use through every retry (Gunicorn's words first).
    #[error(
        "Connection in use: {address} (another process is listening there: stop it, \
         or choose another address with -b)"
    )]
    AddressInUse {
        /// The address, `127.0.0.1:8000`.
        address: String,
    },
    /// Any other bind failure.
    #[error("cannot bind {address}: {source} (check the address and the permissions)")]
    Bind {
        /// The address.
        address: String,
        /// The OS error.
        source: io::Error,
    },
    /// The pidfile names a process that is alive.
    #[error(
        "pidfile {path} names a running process {pid}: is runicorn already running? \
         stop it, or choose another pidfile with -p"
    )]
    AlreadyRunning {
        /// The pidfile.
        path: PathBuf,
        /// The live pid it names.
        pid: i32,
    },
    /// The pidfile cannot be written.
    #[error(
        "cannot write pidfile {path}: {source} (check that its directory exists and is writable)"
    )]
    Pidfile {
        /// The pidfile.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `-u`/`-g` name no user or group.
    #[error("{setting} '{value}' does not exist: {fix}")]
    NoSuchId {
        /// `user` or `group`.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What to do.
        fix: &'static str,
    },
    /// The error log file cannot be opened.
    #[error("cannot open the error log {path}: {source} (check the path and its permissions, or use '-' for stderr)")]
    LogFile {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The access log file cannot be opened.
    #[error("cannot open the access log {path}: {source} (check the path and its permissions, or use '-' for stdout)")]
    AccessLog {
        /// The path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// `--log-level` is not one of Gunicorn's levels.
    #[error(
        "log-level '{value}' is not a level: use one of debug, info, warning, error, critical"
    )]
    BadLogLevel {
        /// The value given.
        value: String,
    },
    /// `--log-syslog-to` or `--log-syslog-facility` is wrong, or its host
    /// does not resolve.
    #[error("syslog: {0}")]
    Syslog(String),
    /// `--preload`: the app failed to load in the master (exit 4, or 3).
    #[error("{0}")]
    AppLoad(#[from] runicorn_app::LoadError),
    /// A variable that hands this process listeners (`RUNICORN_FD`,
    /// `LISTEN_FDS`) or names its old master (`RUNICORN_PID`) is wrong.
    #[error("{variable}='{value}': {reason}; {}", inherited_fix(variable))]
    Inherited {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--control-socket` cannot be served.
    #[error("--control-socket {path}: {reason}")]
    ControlSocket {
        /// The path.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// `--metrics-bind` cannot be listened on.
    #[error(
        "cannot listen for metrics at {address}: {source} (give --metrics-bind a free \
         HOST:PORT, such as 127.0.0.1:9100)"
    )]
    MetricsBind {
        /// The address.
        address: String,
        /// The OS error.
        source: io::Error,
    },
    /// A system call the master depends on failed.
    #[error("{what} failed: {source}")]
    System {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// Who sets an inherited variable, and how to start without it.
fn inherited_fix(variable: &str) -> &'static str {
    if variable.starts_with("LISTEN_") {
        "systemd sets it for socket activation: check the .socket unit, or unset LISTEN_FDS and \
         LISTEN_PID to bind -b instead"
    } else {
        "a runicorn master sets it for its new binary on USR2 (binary upgrade): unset RUNICORN_FD \
         and RUNICORN_PID to bind -b instead"
    }
}

impl MasterError {
    /// Wraps an OS error from `what`.
    pub fn system(what: &'static str, source: impl Into<io::Error>) -> Self {
        MasterError::System {
            what,
            source: source.into(),
        }
    }
}

impl MasterError {
    /// The master's exit code for this error: Gunicorn's 4 (app load) or 3
    /// (boot), as a worker's would be, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            MasterError::AppLoad(err) => runicorn_worker::Ending::of_load_error(err).exit_code(),
            _ => 1,
        }
    }
}
