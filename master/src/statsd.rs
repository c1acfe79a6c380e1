//! The master's side of StatsD (the client is the worker kit's,
//! `runicorn_worker::statsd`, made here at start and on HUP and inherited
//! by every worker): the `runicorn.workers` gauge from the loop, and
//! Gunicorn's log counters, `runicorn.log.critical|error|warning|exception`,
//! one per such line in any process, counted by a `tracing` layer (the log
//! level does not filter them, as in Gunicorn).

use std::fmt::{self, Write as _};

use runicorn_worker::log::CRITICAL_TARGET;
use runicorn_worker::statsd;
use runicorn_worker::Settings;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Makes (or remakes, on HUP) the StatsD client of `settings`; a failure
/// is logged as a warning and leaves StatsD off.
pub fn install(settings: &Settings) {
    if let Err(line) = statsd::install(
        settings.statsd_host.as_deref(),
        &settings.statsd_prefix,
        &settings.dogstatsd_tags,
    ) {
        tracing::warn!("{line}");
    }
}

/// Sends the `runicorn.workers` gauge when the number of workers changed
/// since the last one sent (Gunicorn's `manage_workers` does the same).
#[derive(Debug, Default)]
pub struct WorkersGauge {
    last: Option<usize>,
}

impl WorkersGauge {
    /// `count` workers are alive now.
    pub fn report(&mut self, count: usize) {
        if self.last == Some(count) {
            return;
        }
        if let Some(client) = statsd::current() {
            client.gauge("runicorn.workers", count as u64);
            self.last = Some(count);
        }
    }
}

/// Counts warning, error and critical lines (and Gunicorn's `exception`:
/// the app's failed requests, "Error handling request ...").
#[derive(Debug, Clone, Copy, Default)]
pub struct LogCounter;

impl<S: Subscriber> Layer<S> for LogCounter {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        let level = *metadata.level();
        if level > Level::WARN {
            return;
        }
        let Some(client) = statsd::current() else {
            return;
        };
        let name = if level == Level::WARN {
            "runicorn.log.warning"
        } else if metadata.target() == CRITICAL_TARGET {
            "runicorn.log.critical"
        } else {
            let mut start = MessageStart::default();
            event.record(&mut start);
            if start.text().starts_with(EXCEPTION) {
                "runicorn.log.exception"
            } else {
                "runicorn.log.error"
            }
        };
        client.increment(name, 1);
    }
}

/// How the lines Gunicorn logs with `log.exception` begin.
const EXCEPTION: &str = "Error handling request";

/// The first bytes of an event's message, kept without allocating.
#[derive(Debug, Default)]
struct MessageStart {
    bytes: [u8; EXCEPTION.len()],
    len: usize,
}

impl MessageStart {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for MessageStart {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        if take < text.len() {
            // Full: stop formatting the rest of the message.
            return Err(fmt::Error);
        }
        Ok(())
    }
}

impl Visit for MessageStart {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && self.len == 0 {
            let _ = write!(self, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_of_a_message_is_kept() {
        let mut start = MessageStart::default();
        let _ = write!(start, "{}", format_args!("Error handling request /x: boom"));
        assert_eq!(start.text(), EXCEPTION);
        let mut short = MessageStart::default();
        let _ = write!(short, "oops");
        assert_eq!(short.text(), "oops");
    }
}
