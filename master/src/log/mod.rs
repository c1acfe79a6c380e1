//! The error log, for the master, workers and cli.
//!
//! `[2026-11-25 20:30:00 +0530] [1234] [INFO] Listening at: http://127.0.0.1:8000 (1234)`
//! (Gunicorn's format) or one JSON object per line (`--log-format json`,
//! `format.rs`), on stderr or in `--error-logfile`, filtered by
//! `--log-level`, and to syslog with `--log-syslog` (the worker kit's
//! `log::syslog`). The writer is synchronous (one `write` per line,
//! `O_APPEND` for files, so lines of several processes never interleave)
//! and never spawns a thread: the master must stay single-threaded.
//! SIGUSR1 sets a flag (the worker kit's `REOPEN_LOGS`, set by the master's
//! and the worker's handlers) and the next line reopens the file, in the
//! master and in every worker. Times are local, with the real UTC offset:
//! the zone is read once in [`init`], before any fork.

mod format;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::error::MasterError;
use crate::sys;
use runicorn_worker::log::syslog::{self, Severity, Stream, SyslogConfig};
use runicorn_worker::log::{load_local_zone, local_time, LogFormat};
use runicorn_worker::shutdown::REOPEN_LOGS;
use runicorn_worker::Settings;

/// The levels `--log-level` accepts, Gunicorn's names.
pub const LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "critical"];

/// The `tracing` target of CRITICAL lines (the worker kit's, where
/// [`runicorn_worker::critical!`] is).
pub use runicorn_worker::log::CRITICAL_TARGET;

/// 0 debug .. 3 error, 4 critical; lines below it are dropped.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(1);

/// `--log-format`: 0 text, 1 json.
static FORMAT: AtomicU8 = AtomicU8::new(0);

/// Where lines go: `None` is stderr.
static TARGET: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

/// `--capture-output`: stdout and stderr point at the log file too.
static CAPTURE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Gunicorn's `--capture-output`: when the error log is a file, the
/// process's stdout and stderr (descriptors 1 and 2, so `print()` in a
/// Python app and a C library's writes alike) go to it, in the master and,
/// inherited, in every worker; again after each reopen (USR1).
pub fn set_capture_output(capture: bool) {
    CAPTURE.store(capture, Ordering::Relaxed);
    let target = TARGET.lock().unwrap_or_else(|poison| poison.into_inner());
    capture_into(target.as_ref().map(|(_, file)| file));
}

fn capture_into(file: Option<&File>) {
    use std::os::fd::AsRawFd;
    let (true, Some(file)) = (CAPTURE.load(Ordering::Relaxed), file) else {
        return;
    };
    let _ = io::stdout().flush();
    for fd in [1, 2] {
        if let Err(err) = sys::dup2(file.as_raw_fd(), fd) {
            eprintln!("--capture-output: cannot point descriptor {fd} at the log file: {err}");
        }
    }
}

fn rank(meta: &tracing::Metadata<'_>) -> u8 {
    match *meta.level() {
        Level::TRACE | Level::DEBUG => 0,
        Level::INFO => 1,
        Level::WARN => 2,
        Level::ERROR if meta.target() == CRITICAL_TARGET => 4,
        Level::ERROR => 3,
    }
}

/// Parses a `--log-level` value into its rank.
pub fn parse_level(value: &str) -> Result<u8, MasterError> {
    match value.to_ascii_lowercase().as_str() {
        "debug" => Ok(0),
        "info" => Ok(1),
        "warning" | "warn" => Ok(2),
        "error" => Ok(3),
        "critical" => Ok(4),
        _ => Err(MasterError::BadLogLevel {
            value: value.to_owned(),
        }),
    }
}

/// What the error log is told at start and on HUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// `--log-level`.
    pub loglevel: String,
    /// `--error-logfile` (`-`: stderr).
    pub errorlog: String,
    /// `--log-format`.
    pub format: LogFormat,
    /// `--log-syslog` and its settings, validated.
    pub syslog: Option<SyslogConfig>,
}

impl LogOptions {
    /// Gunicorn's settings, validated: a bad syslog address or facility is
    /// an error here (one line, with the fix).
    pub fn from_settings(settings: &Settings) -> Result<LogOptions, MasterError> {
        let syslog = if settings.syslog {
            Some(
                SyslogConfig::new(
                    &settings.syslog_addr,
                    &settings.syslog_facility,
                    syslog_prefix(settings),
                    !settings.disable_redirect_access_to_syslog,
                )
                .map_err(MasterError::Syslog)?,
            )
        } else {
            None
        };
        Ok(LogOptions {
            loglevel: settings.loglevel.clone(),
            errorlog: settings.errorlog.clone(),
            format: settings.log_format,
            syslog,
        })
    }

    /// A level and a file only (the `--reload` watcher, a test).
    pub fn plain(loglevel: &str, errorlog: &str, format: LogFormat) -> LogOptions {
        LogOptions {
            loglevel: loglevel.to_owned(),
            errorlog: errorlog.to_owned(),
            format,
            syslog: None,
        }
    }
}

/// The syslog program name's PREFIX: `--log-syslog-prefix`, else `--name`,
/// else the app (Gunicorn's order).
pub fn syslog_prefix(settings: &Settings) -> &str {
    settings
        .syslog_prefix
        .as_deref()
        .or(settings.proc_name.as_deref())
        .unwrap_or(&settings.app)
}

/// Installs the global subscriber (once per process; later calls only
/// reconfigure), and reads the local time zone (before any fork).
pub fn init(options: &LogOptions) -> Result<(), MasterError> {
    load_local_zone();
    configure(options)?;
    let filter = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
        rank(meta) >= MIN_LEVEL.load(Ordering::Relaxed)
    });
    let subscriber = tracing_subscriber::registry()
        .with(ErrorLog.with_filter(filter))
        .with(crate::statsd::LogCounter);
    // Already installed (a second init, or a test harness): configured above.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

/// Changes the level, the format, the target and syslog (on start and on
/// HUP; in the master, before it forks).
pub fn configure(options: &LogOptions) -> Result<(), MasterError> {
    let level = parse_level(&options.loglevel)?;
    let errorlog = options.errorlog.as_str();
    let target = if errorlog == "-" || errorlog.is_empty() {
        None
    } else {
        let path = PathBuf::from(errorlog);
        let file = open(&path).map_err(|source| MasterError::LogFile {
            path: path.clone(),
            source,
        })?;
        Some((path, file))
    };
    syslog::configure(options.syslog.clone()).map_err(MasterError::Syslog)?;
    MIN_LEVEL.store(level, Ordering::Relaxed);
    FORMAT.store(
        u8::from(options.format == LogFormat::Json),
        Ordering::Relaxed,
    );
    capture_into(target.as_ref().map(|(_, file)| file));
    *TARGET.lock().unwrap_or_else(|poison| poison.into_inner()) = target;
    Ok(())
}

/// The format in force.
pub fn format() -> LogFormat {
    match FORMAT.load(Ordering::Relaxed) {
        1 => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Reopens the log file now (after logrotate moved it).
pub fn reopen() {
    REOPEN_LOGS.store(0, Ordering::Relaxed);
    let mut target = TARGET.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some((path, file)) = target.as_mut() {
        if let Ok(fresh) = open(path) {
            capture_into(Some(&fresh));
            *file = fresh;
        }
    }
}

/// Asks the next line to reopen the file (what SIGUSR1 does).
pub fn request_reopen() {
    REOPEN_LOGS.store(1, Ordering::Relaxed);
}

/// The log file's path, if not stderr.
pub fn log_path() -> Option<PathBuf> {
    TARGET
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .as_ref()
        .map(|(path, _)| path.clone())
}

fn open(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The layer that writes every event that passes `--log-level`: to the
/// file or stderr in the format in force, and to syslog when it is on.
#[derive(Debug, Clone, Copy)]
pub struct ErrorLog;

impl<S: Subscriber> Layer<S> for ErrorLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let (level, severity) = match rank(event.metadata()) {
            0 => ("DEBUG", Severity::Debug),
            1 => ("INFO", Severity::Info),
            2 => ("WARNING", Severity::Warning),
            3 => ("ERROR", Severity::Error),
            _ => ("CRITICAL", Severity::Critical),
        };
        let fields = format::Fields::of(event);
        let pid = std::process::id();
        let format = format();
        let line = format::line(format, &local_time(SystemTime::now()), level, pid, &fields);
        write_line(line.as_bytes());
        if syslog::takes(Stream::Error) {
            syslog::send(
                Stream::Error,
                severity,
                &format::syslog_body(format, level, pid, &fields),
            );
        }
    }
}

/// Writes one line to the current target (reopening it first after USR1).
fn write_line(line: &[u8]) {
    if REOPEN_LOGS.load(Ordering::Relaxed) != 0 {
        reopen();
    }
    let mut target = TARGET.lock().unwrap_or_else(|poison| poison.into_inner());
    let _ = match target.as_mut() {
        Some((_, file)) => file.write_all(line),
        None => io::stderr().write_all(line),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("WARNING").unwrap(), 2);
        assert_eq!(parse_level("error").unwrap(), 3);
        assert_eq!(parse_level("critical").unwrap(), 4);
        assert!(parse_level("loud")
            .unwrap_err()
            .to_string()
            .contains("debug, info"));
    }
}
