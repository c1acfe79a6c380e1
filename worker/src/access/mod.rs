//! The access log (`--access-logfile`, `--access-logformat`): one line per
//! request, on every worker class, as Gunicorn writes it.
//!
//! Three parts, kept apart so a new line format (JSON) or a new target
//! (syslog) is one more arm, not a new path:
//!
//! - **what a line says**: [`format`] parses Gunicorn's format once into
//!   pieces; [`line`] renders a finished request's [`Record`] through it.
//!   [`LineFormat`] is the choice of format.
//! - **where lines go**: [`sink`]'s [`Sink`], one per process, behind a
//!   process-local mutex (no lock is shared between workers). A line is
//!   rendered straight into the sink's buffer under that lock (no copy;
//!   rendering takes well under a microsecond, and only a gthread
//!   worker's threads share the lock). Lines go out whole, buffered: see
//!   [`sink`] for when.
//! - **when**: [`AccessLog::log`] at each request's end (the kit's
//!   `Shared::end_request`, which every class calls); [`tick`] from the
//!   worker's heartbeat (a due flush, a USR1 reopen); [`flush`] when the
//!   worker ends.
//!
//! The master opens the target ([`open`]) before it forks, so a file that
//! cannot be opened stops the start with one line, and workers inherit the
//! open file even after dropping privileges; the master reopens its copy on
//! USR1 (so workers forked later write to the new file) and each worker
//! reopens its own at its next tick.
//!
//! [`request_id`] is `--request-id-header`. [`json`] is the line under
//! `--log-format json`; with `--log-syslog` each line also goes to syslog
//! (`runicorn.PREFIX.access`, as Gunicorn), unless
//! `--disable-redirect-access-to-syslog`.

pub mod format;
pub mod json;
pub mod line;
pub mod request_id;
pub mod sink;

use std::cell::RefCell;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

pub use format::{AccessFormat, FormatError, GUNICORN_DEFAULT};
pub use line::Record;
pub use request_id::RequestIds;
pub use sink::Sink;

use crate::log::syslog::{self, Severity, Stream};
use crate::log::LogFormat;
use crate::sys::REOPEN_ACCESS_LOG;

/// This process's access log target (`None`: no access log).
static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Whether [`SINK`] holds a target: ticks without one cost a load.
static ACTIVE: AtomicBool = AtomicBool::new(false);

fn sink() -> MutexGuard<'static, Option<Sink>> {
    SINK.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Opens `spec` (`-`: standard output, else a file appended to) as this
/// process's target, or closes it (`None`). Lines buffered for the old
/// target are written to it first. The master calls it at start and on
/// HUP, before it forks.
pub fn open(spec: Option<&str>) -> io::Result<()> {
    let fresh = spec.map(Sink::open).transpose()?;
    let mut current = sink();
    if let Some(old) = current.as_mut() {
        old.flush();
    }
    ACTIVE.store(fresh.is_some(), Ordering::Release);
    *current = fresh;
    Ok(())
}

/// Writes what is buffered and opens the file again by its path (USR1, in
/// the master; a worker does it at its next [`tick`]).
pub fn reopen() {
    REOPEN_ACCESS_LOG.store(0, Ordering::Relaxed);
    if let Some(sink) = sink().as_mut() {
        sink.reopen();
    }
}

/// The worker's periodic chore, run from its heartbeat (at least once a
/// second): a reopen USR1 asked for, and a flush once the oldest buffered
/// line is [`sink::FLUSH_AGE`] old.
pub fn tick() {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    if REOPEN_ACCESS_LOG.load(Ordering::Relaxed) != 0 {
        reopen();
        return;
    }
    let mut guard = sink();
    if let Some(sink) = guard.as_mut() {
        if sink.due(Instant::now()) {
            sink.flush();
        }
    }
}

/// Writes every buffered line now (a worker's end: a graceful stop,
/// `--max-requests`, a quick stop).
pub fn flush() {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    if let Some(sink) = sink().as_mut() {
        sink.flush();
    }
}

/// [`flush`] unless another thread holds the sink (a quick exit must not
/// wait on a thread it is about to end).
pub fn try_flush() {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    if let Ok(mut guard) = SINK.try_lock() {
        if let Some(sink) = guard.as_mut() {
            sink.flush();
        }
    }
}

/// How a line is written: Gunicorn's text, or (`--log-format json`) a
/// JSON object whose `message` is that text; both render the same
/// [`Record`].
#[derive(Debug, Clone)]
pub enum LineFormat {
    /// Gunicorn's `--access-logformat`.
    Text(AccessFormat),
    /// [`json`]: the request's fields, and the text line as `message`.
    Json(AccessFormat),
}

impl LineFormat {
    fn text(&self) -> &AccessFormat {
        match self {
            LineFormat::Text(format) | LineFormat::Json(format) => format,
        }
    }

    /// Appends `record`'s line, with its `\n`, to `out`.
    pub fn render(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        self.render_with(record, None, out);
    }

    fn render_with(&self, record: &Record<'_>, request_id: Option<&str>, out: &mut Vec<u8>) {
        match self {
            LineFormat::Text(format) => record.render(format, out),
            LineFormat::Json(format) => json::render(record, format, request_id, true, out),
        }
    }

    /// The response fields the lines name (kept by each connection).
    pub fn response_fields(&self) -> &[String] {
        self.text().response_fields()
    }

    /// Whether the lines show the request's duration (a JSON line always
    /// carries its `duration`).
    pub fn needs_elapsed(&self) -> bool {
        match self {
            LineFormat::Text(format) => format.needs_elapsed(),
            LineFormat::Json(_) => true,
        }
    }

    /// Whether the lines show `wsgi.url_scheme`.
    pub fn needs_scheme(&self) -> bool {
        self.text().needs_scheme()
    }
}

thread_local! {
    /// The syslog line being written on this thread, reused request after
    /// request.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One worker's access log: the line format and what every line shares.
#[derive(Debug, Clone)]
pub struct AccessLog {
    format: LineFormat,
    pid: u32,
    /// `--request-id-header`, for the JSON line's `request_id`.
    request_id_header: Option<&'static str>,
}

impl AccessLog {
    /// The access log of this process, lines in Gunicorn's `format`.
    pub fn new(format: &str) -> Result<AccessLog, FormatError> {
        Ok(AccessLog {
            format: LineFormat::Text(AccessFormat::parse(format)?),
            pid: std::process::id(),
            request_id_header: None,
        })
    }

    /// The same, in `--log-format`'s form, naming the request id field.
    pub fn with_log_format(
        mut self,
        log_format: LogFormat,
        request_id_header: Option<&'static str>,
    ) -> AccessLog {
        let text = self.format.text().clone();
        self.format = match log_format {
            LogFormat::Text => LineFormat::Text(text),
            LogFormat::Json => LineFormat::Json(text),
        };
        self.request_id_header = request_id_header;
        self
    }

    /// The line format.
    pub fn format(&self) -> &LineFormat {
        &self.format
    }

    /// The worker's pid, as `%(p)s` shows it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Writes the line of one finished request (to the file or stdout
    /// when there is one, and to syslog when it takes access lines).
    pub fn log(&self, record: &Record<'_>) {
        if ACTIVE.load(Ordering::Acquire) {
            if let Some(sink) = sink().as_mut() {
                sink.push_with(|buffer| {
                    self.format
                        .render_with(record, self.request_id_header, buffer);
                });
            }
        }
        if !syslog::takes(Stream::Access) {
            return;
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            match &self.format {
                LineFormat::Text(format) => {
                    let _ = write!(line, "[{}] ", self.pid);
                    record.render(format, line);
                    line.pop();
                }
                LineFormat::Json(format) => {
                    json::render(record, format, self.request_id_header, false, line);
                }
            }
            syslog::send(
                Stream::Access,
                Severity::Info,
                &String::from_utf8_lossy(line),
            );
        });
    }
}
