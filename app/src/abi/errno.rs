//! `io::Error` <-> errno, the only error shape the host table's I/O entries
//! use, and the error buffer both sides fill.

use std::io;

use super::types::RcErrorBuf;

/// `EIO`: the errno for an error with no OS code.
pub const EIO: i32 = 5;
/// `EINVAL`: bad arguments (non-UTF-8 header name, null pointer).
pub const EINVAL: i32 = 22;
/// `ENOTCONN`: no request in this context (e.g. `read_body` outside `handle`).
pub const ENOTCONN: i32 = 107;

/// The errno that carries `err` across the boundary.
pub fn to_errno(err: &io::Error) -> i32 {
    if let Some(code) = err.raw_os_error() {
        return code;
    }
    match err.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => EINVAL,
        io::ErrorKind::NotConnected => ENOTCONN,
        io::ErrorKind::BrokenPipe => 32,
        io::ErrorKind::ConnectionRefused => 111,
        io::ErrorKind::ConnectionReset => 104,
        io::ErrorKind::TimedOut => 110,
        io::ErrorKind::WouldBlock => 11,
        _ => EIO,
    }
}

/// The `io::Error` for an errno returned by the other side.
pub fn from_errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Write `message` into a caller-owned error buffer, truncated to fit on a
/// character boundary.
///
/// # Safety
/// `buf` is null or points to a valid `RcErrorBuf` whose `ptr` has `cap`
/// writable bytes.
pub unsafe fn fill_error(buf: *mut RcErrorBuf, message: &str) {
    // SAFETY: the caller promises `buf` is null or valid.
    let Some(buf) = (unsafe { buf.as_mut() }) else {
        return;
    };
    if buf.ptr.is_null() {
        return;
    }
    let mut len = message.len().min(buf.cap);
    while !message.is_char_boundary(len) {
        len -= 1;
    }
    // SAFETY: `ptr` has `cap` writable bytes and `len <= cap`; the message
    // and the buffer are distinct allocations.
    unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), buf.ptr, len) };
    buf.len = len;
}

/// A host-owned error buffer handed to an entry, read back after it returns.
#[derive(Debug)]
pub struct ErrorBuffer {
    storage: Vec<u8>,
    raw: RcErrorBuf,
}

impl ErrorBuffer {
    /// A buffer of 1 KiB, enough for any one-line error.
    pub fn new() -> Self {
        Self::with_capacity(1024)
    }

    /// A buffer of `capacity` bytes (a Python traceback needs more).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut storage = vec![0u8; capacity];
        let raw = RcErrorBuf {
            ptr: storage.as_mut_ptr(),
            cap: storage.len(),
            len: 0,
        };
        ErrorBuffer { storage, raw }
    }

    /// The pointer to pass to the entry.
    pub fn as_raw(&mut self) -> *mut RcErrorBuf {
        self.raw.ptr = self.storage.as_mut_ptr();
        self.raw.cap = self.storage.len();
        &mut self.raw
    }

    /// What the entry wrote, or `fallback` when it wrote nothing.
    pub fn message(&self, fallback: &str) -> String {
        let len = self.raw.len.min(self.storage.len());
        if len == 0 {
            return fallback.to_owned();
        }
        String::from_utf8_lossy(&self.storage[..len]).into_owned()
    }
}

impl Default for ErrorBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// The text of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
