//! `builtin:stream`: a chunked response of `?kb=N` KiB (default 16), written
//! and flushed 1 KiB at a time, for streaming and slow-reader tests.

use super::query;
use crate::contract::{App, AppError, Call};

/// KiB sent when `?kb` is absent.
const DEFAULT_KB: u64 = 16;

/// One chunk: 1 KiB of printable bytes ending in a newline.
fn chunk() -> [u8; 1024] {
    let mut bytes = [0u8; 1024];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[index % 16];
    }
    bytes[1023] = b'\n';
    bytes
}

/// Streams `kb` KiB without a Content-Length (chunked under HTTP/1.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stream;

impl App for Stream {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let kb = match query::number(call.head().query(), "kb", DEFAULT_KB) {
            Ok(kb) => kb,
            Err(message) => return super::bad_request(call, &message),
        };
        call.start_response(200, &[("Content-Type", b"text/plain")])?;
        let chunk = chunk();
        for _ in 0..kb {
            call.write(&chunk)?;
            call.flush()?;
        }
        Ok(())
    }
}
