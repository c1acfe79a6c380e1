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

/// How many bytes [`ErrorBuffer::new`] holds: enough for any one-line error.
const INLINE_CAPACITY: usize = 1024;

/// A host-owned error buffer handed to an entry, read back after it returns.
///
/// The usual 1 KiB lives inline (no allocation: one is made for every
/// request a library app serves, and requests rarely fail); a larger one
/// ([`ErrorBuffer::with_capacity`], for Python tracebacks) is on the heap.
#[derive(Debug)]
pub struct ErrorBuffer {
    storage: Storage,
    raw: RcErrorBuf,
}

// The inline variant is the point: no allocation for the usual buffer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Storage {
    Inline([u8; INLINE_CAPACITY]),
    Heap(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Inline(bytes) => bytes,
            Storage::Heap(bytes) => bytes,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Inline(bytes) => bytes,
            Storage::Heap(bytes) => bytes,
        }
    }
}

impl ErrorBuffer {
    /// A buffer of 1 KiB, enough for any one-line error.
    pub fn new() -> Self {
        ErrorBuffer {
            storage: Storage::Inline([0; INLINE_CAPACITY]),
            raw: RcErrorBuf {
                ptr: std::ptr::null_mut(),
                cap: 0,
                len: 0,
            },
        }
    }

    /// A buffer of `capacity` bytes (a Python traceback needs more).
    pub fn with_capacity(capacity: usize) -> Self {
        ErrorBuffer {
            storage: Storage::Heap(vec![0u8; capacity]),
            raw: RcErrorBuf {
                ptr: std::ptr::null_mut(),
                cap: 0,
                len: 0,
            },
        }
    }

    /// The pointer to pass to the entry (valid while `self` stays where
    /// it is and is not otherwise used).
    pub fn as_raw(&mut self) -> *mut RcErrorBuf {
        let storage = self.storage.bytes_mut();
        self.raw.ptr = storage.as_mut_ptr();
        self.raw.cap = storage.len();
        &mut self.raw
    }

    /// What the entry wrote, or `fallback` when it wrote nothing.
    pub fn message(&self, fallback: &str) -> String {
        let storage = self.storage.bytes();
        let len = self.raw.len.min(storage.len());
        if len == 0 {
            return fallback.to_owned();
        }
        String::from_utf8_lossy(&storage[..len]).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_buffers_return_what_the_entry_wrote_cut_on_a_char_boundary() {
        let mut inline = ErrorBuffer::new();
        assert_eq!(inline.message("none"), "none");
        // SAFETY: the buffer is valid and ours.
        unsafe { fill_error(inline.as_raw(), "bad thing") };
        assert_eq!(inline.message("none"), "bad thing");

        let mut small = ErrorBuffer::with_capacity(4);
        // SAFETY: as above.
        unsafe { fill_error(small.as_raw(), "ab\u{e9}cd") };
        assert_eq!(small.message("none"), "ab\u{e9}");

        let mut big = ErrorBuffer::with_capacity(4096);
        let long = "x".repeat(3000);
        // SAFETY: as above.
        unsafe { fill_error(big.as_raw(), &long) };
        assert_eq!(big.message("none"), long);
        let mut cut = ErrorBuffer::new();
        // SAFETY: as above.
        unsafe { fill_error(cut.as_raw(), &long) };
        assert_eq!(cut.message("none").len(), 1024);
    }
}
