//! `builtin:upstream`: connects to `?addr=host:port` through the host (so
//! the wait is the worker class's kind of wait), writes one line, reads the
//! reply line and returns it. The upstream-bound workload of issue 7's
//! concurrency tests; a failed upstream is a 502 naming the address.

use super::query;
use crate::contract::{App, AppError, Call};

/// What the app writes to the upstream.
const REQUEST_LINE: &[u8] = b"ping from runicorn\n";

/// The longest reply line read back.
const MAX_REPLY: usize = 64 * 1024;

/// Asks an upstream for one line and returns it.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamApp;

fn ask(call: &dyn Call, addr: &str) -> std::io::Result<Vec<u8>> {
    let mut upstream = call.host().connect(addr)?;
    upstream.write_all(REQUEST_LINE)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.contains(&b'\n') && reply.len() < MAX_REPLY {
        let read = upstream.read(&mut buf)?;
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..read]);
    }
    Ok(reply)
}

impl App for UpstreamApp {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let Some(addr) = query::param(call.head().query(), "addr").map(str::to_owned) else {
            return super::bad_request(call, "missing query parameter addr=host:port\n");
        };
        let (status, body) = match ask(call, &addr) {
            Ok(reply) => (200, reply),
            Err(err) => (502, format!("upstream {addr} failed: {err}\n").into_bytes()),
        };
        super::plain(call, status, &body)
    }
}
