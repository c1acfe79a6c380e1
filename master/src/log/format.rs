//! The two line formats of `--log-format`, from one `tracing` event.
//!
//! `text` is Gunicorn's, `[2026-11-25 20:30:00 +0530] [1234] [INFO] Booting
//! worker with pid: 1234`: the message only, so a line reads as it always
//! did. `json` is one object per line for log shippers,
//! `{"time":"2026-11-25T20:30:00.042+05:30","level":"INFO","pid":1234,
//! "role":"worker","message":"Booting worker with pid: 1234","worker_pid":1234}`:
//! the same message, and every field the event carries as its own key
//! (numbers stay numbers). Syslog gets the same body without the time
//! (the daemon stamps it): `[pid] message` or the JSON object.

use std::fmt::{self, Write as _};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::Event;

use runicorn_worker::log::{role, LocalTime, LogFormat};

/// The keys every JSON line has; an event field of the same name is
/// written with a `_` after it instead of hiding them.
const RESERVED: [&str; 5] = ["time", "level", "pid", "role", "message"];

/// An event's message and fields, in the order written.
#[derive(Debug, Default)]
pub struct Fields {
    /// The `message` (the format string's text).
    pub message: String,
    /// Every other field.
    pub extra: Vec<(&'static str, Value)>,
}

impl Fields {
    /// Collects an event's fields.
    pub fn of(event: &Event<'_>) -> Fields {
        let mut fields = Fields::default();
        event.record(&mut fields);
        fields
    }

    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            match value {
                Value::String(text) => self.message = text,
                other => self.message = other.to_string(),
            }
        } else {
            self.extra.push((field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::from(value));
    }
}

/// One error log line, with its newline.
pub fn line(format: LogFormat, time: &LocalTime, level: &str, pid: u32, fields: &Fields) -> String {
    match format {
        LogFormat::Text => format!(
            "[{}] [{pid}] [{level}] {}\n",
            time.gunicorn(),
            fields.message
        ),
        LogFormat::Json => {
            let mut line = json(Some(time), level, pid, fields);
            line.push('\n');
            line
        }
    }
}

/// The body of a syslog message (no time: the daemon adds it).
pub fn syslog_body(format: LogFormat, level: &str, pid: u32, fields: &Fields) -> String {
    match format {
        LogFormat::Text => format!("[{pid}] {}", fields.message),
        LogFormat::Json => json(None, level, pid, fields),
    }
}

/// The JSON object, keys in a fixed order (`time` first).
fn json(time: Option<&LocalTime>, level: &str, pid: u32, fields: &Fields) -> String {
    let mut out = String::with_capacity(128 + fields.message.len());
    out.push('{');
    if let Some(time) = time {
        let _ = write!(out, "\"time\":{},", Value::from(time.rfc3339()));
    }
    let _ = write!(
        out,
        "\"level\":{},\"pid\":{pid},\"role\":{},\"message\":{}",
        Value::from(level),
        Value::from(role().name()),
        Value::from(fields.message.as_str()),
    );
    for (name, value) in &fields.extra {
        let key = if RESERVED.contains(name) {
            format!("{name}_")
        } else {
            (*name).to_owned()
        };
        let _ = write!(out, ",{}:{value}", Value::from(key));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_worker::log::local_time;
    use std::time::SystemTime;

    fn fields() -> Fields {
        Fields {
            message: "Booting \"worker\"\nwith pid: 7".to_owned(),
            extra: vec![
                ("worker_pid", Value::from(7)),
                ("pid", Value::from(8)),
                ("request", Value::from("GET / HTTP/1.1")),
            ],
        }
    }

    #[test]
    fn json_lines_parse_and_keep_every_field() {
        let time = local_time(SystemTime::now());
        let line = line(LogFormat::Json, &time, "INFO", 42, &fields());
        assert!(
            line.ends_with("}\n") && line.matches('\n').count() == 1,
            "{line}"
        );
        let parsed: Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(parsed["level"], "INFO");
        assert_eq!(parsed["pid"], 42);
        assert_eq!(parsed["role"], "master");
        assert_eq!(parsed["message"], "Booting \"worker\"\nwith pid: 7");
        assert_eq!(parsed["worker_pid"], 7);
        assert_eq!(parsed["pid_"], 8);
        assert_eq!(parsed["request"], "GET / HTTP/1.1");
        assert_eq!(parsed["time"], time.rfc3339());
        assert!(line.starts_with("{\"time\":"));
    }

    #[test]
    fn text_lines_are_gunicorns() {
        let time = local_time(SystemTime::now());
        let line = line(LogFormat::Text, &time, "WARNING", 42, &fields());
        assert_eq!(
            line,
            format!(
                "[{}] [42] [WARNING] Booting \"worker\"\nwith pid: 7\n",
                time.gunicorn()
            )
        );
        assert_eq!(
            syslog_body(LogFormat::Text, "INFO", 42, &fields()),
            "[42] Booting \"worker\"\nwith pid: 7"
        );
        let body = syslog_body(LogFormat::Json, "INFO", 42, &fields());
        let parsed: Value = serde_json::from_str(&body).expect("one JSON object");
        assert!(parsed.get("time").is_none());
    }
}
