//! The error log, in Gunicorn's format, for the master, workers and cli.
//!
//! `[2026-11-25 15:00:00 +0000] [1234] [INFO] Listening at: http://127.0.0.1:8000 (1234)`
//! on stderr or in `--error-logfile`, filtered by `--log-level`. The writer
//! is synchronous (one `write` per line, `O_APPEND` for files, so lines of
//! several processes never interleave) and never spawns a thread: the
//! master must stay single-threaded. SIGUSR1 sets a flag (the worker kit's
//! `REOPEN_LOGS`, set by the master's and the worker's handlers) and the
//! next line reopens the file, in the master and in every worker. Times are
//! UTC, as in a container.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

use crate::error::MasterError;
use crate::sys;
use runicorn_worker::shutdown::REOPEN_LOGS;

/// The levels `--log-level` accepts, Gunicorn's names.
pub const LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "critical"];

/// The `tracing` target of CRITICAL lines (the worker kit's, where
/// [`runicorn_worker::critical!`] is).
pub use runicorn_worker::log::CRITICAL_TARGET;

/// 0 debug .. 3 error, 4 critical; lines below it are dropped.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(1);

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

/// Installs the global subscriber (once per process; later calls only
/// reconfigure) with `--log-level` and `--error-logfile` (`-`: stderr).
pub fn init(loglevel: &str, errorlog: &str) -> Result<(), MasterError> {
    configure(loglevel, errorlog)?;
    let filter = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
        rank(meta) >= MIN_LEVEL.load(Ordering::Relaxed)
    });
    let layer = tracing_subscriber::fmt::layer()
        .event_format(GunicornFormat)
        .with_writer(LogWriter)
        .with_filter(filter);
    let subscriber = tracing_subscriber::registry().with(layer);
    // Already installed (a second init, or a test harness): configured above.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

use tracing_subscriber::Layer as _;

/// Changes the level and the target (on start and on HUP).
pub fn configure(loglevel: &str, errorlog: &str) -> Result<(), MasterError> {
    let level = parse_level(loglevel)?;
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
    MIN_LEVEL.store(level, Ordering::Relaxed);
    capture_into(target.as_ref().map(|(_, file)| file));
    *TARGET.lock().unwrap_or_else(|poison| poison.into_inner()) = target;
    Ok(())
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

/// `[%Y-%m-%d %H:%M:%S +0000] [pid] [LEVEL] message`.
#[derive(Debug, Clone, Copy)]
pub struct GunicornFormat;

impl<S, N> FormatEvent<S, N> for GunicornFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match rank(event.metadata()) {
            0 => "DEBUG",
            1 => "INFO",
            2 => "WARNING",
            3 => "ERROR",
            _ => "CRITICAL",
        };
        write!(
            writer,
            "[{}] [{}] [{level}] ",
            timestamp(SystemTime::now()),
            std::process::id()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Formats a time as Gunicorn's `%Y-%m-%d %H:%M:%S %z`, in UTC.
pub fn timestamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} +0000",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Makes a [`LogSink`] per line.
#[derive(Debug, Clone, Copy)]
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogSink;
    fn make_writer(&'a self) -> LogSink {
        if REOPEN_LOGS.load(Ordering::Relaxed) != 0 {
            reopen();
        }
        LogSink
    }
}

/// Writes one formatted line to the current target.
#[derive(Debug)]
pub struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut target = TARGET.lock().unwrap_or_else(|poison| poison.into_inner());
        match target.as_mut() {
            Some((_, file)) => file.write_all(buf)?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_gunicorns() {
        let time = UNIX_EPOCH + Duration::from_secs(1_795_618_800);
        assert_eq!(timestamp(time), "2026-11-25 15:00:00 +0000");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00 +0000");
    }

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
