//! `--log-format json` for the access log: one JSON object per request,
//! the error log's keys (`time`, `level`, `pid`, `role`, `message`) with
//! the Gunicorn line as `message` (so `--access-logformat` still shapes
//! it), then the request's fields as values of their own:
//!
//! `{"time":"2026-11-25T20:30:00.042+05:30","level":"INFO","pid":1240,
//! "role":"worker","message":"127.0.0.1 - - [25/Nov/2026:20:30:00 +0530]
//! \"GET /x?a=1 HTTP/1.1\" 200 13 \"-\" \"curl/8.5\"","remote_addr":
//! "127.0.0.1","peer":"127.0.0.1:51234","request":"GET /x?a=1 HTTP/1.1",
//! "method":"GET","path":"/x","query":"a=1","protocol":"HTTP/1.1",
//! "status":200,"bytes":13,"duration":0.000412,"referer":null,
//! "user_agent":"curl/8.5"}`
//!
//! Header values are read as latin-1, as Gunicorn decodes them; a field the
//! request did not send is `null`. `request_id` is there under
//! `--request-id-header`.

use std::time::SystemTime;

use serde_json::Value;

use crate::access::format::AccessFormat;
use crate::access::line::{split_peer, split_target, Record};
use crate::log::{local_time, role};

/// Appends `record`'s JSON object to `out`: with `time` and a `\n` for a
/// file, without both for syslog (the daemon stamps its own time).
pub fn render(
    record: &Record<'_>,
    text: &AccessFormat,
    request_id_header: Option<&str>,
    for_file: bool,
    out: &mut Vec<u8>,
) {
    let mut message = Vec::with_capacity(160);
    record.render(text, &mut message);
    message.pop();
    let head = record.done.head;
    let (path, query) = split_target(&head.target);
    let header = |name: &str| -> Value {
        match head.header(name) {
            Some(value) => Value::String(value.iter().map(|byte| char::from(*byte)).collect()),
            None => Value::Null,
        }
    };
    let peer = record.done.peer;
    let mut fields: Vec<(&str, Value)> = Vec::with_capacity(20);
    if for_file {
        fields.push(("time", Value::from(local_time(SystemTime::now()).rfc3339())));
    }
    fields.extend([
        ("level", Value::from("INFO")),
        ("pid", Value::from(record.pid)),
        ("role", Value::from(role().name())),
        ("message", Value::from(String::from_utf8_lossy(&message))),
        (
            "remote_addr",
            Value::from(if peer.is_empty() {
                "unix socket"
            } else {
                split_peer(peer).0
            }),
        ),
        ("peer", Value::from(peer)),
        (
            "request",
            Value::from(format!(
                "{} {} {}",
                head.method,
                head.target,
                head.version.as_str()
            )),
        ),
        ("method", Value::from(head.method.as_str())),
        ("path", Value::from(path)),
        ("query", Value::from(query)),
        ("protocol", Value::from(head.version.as_str())),
        ("status", Value::from(record.done.status)),
        ("bytes", Value::from(record.body_sent())),
        ("duration", Value::from(record.elapsed.as_secs_f64())),
        ("referer", header("referer")),
        ("user_agent", header("user-agent")),
    ]);
    if let Some(name) = request_id_header {
        fields.push(("request_id", header(name)));
    }
    out.push(b'{');
    for (index, (key, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, value);
    }
    out.push(b'}');
    if for_file {
        out.push(b'\n');
    }
}
