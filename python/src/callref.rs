//! Lending the request's [`Call`] to Python objects (`wsgi.input`, the
//! `write` callable) for exactly the duration of one request, and calling
//! it with the GIL released.
//!
//! Python objects may outlive the request (an app can keep `environ`), so
//! they hold a [`CallRef`], not the `&mut dyn Call`: the reference is
//! cleared when the request ends, after which every use fails with an
//! error instead of touching freed memory. The objects are `unsendable`
//! pyclasses, so they are only ever used on the thread that serves the
//! request.

use std::cell::Cell;
use std::io;
use std::ptr::NonNull;
use std::rc::Rc;

use pyo3::Python;
use runicorn_app::Call;

/// A [`Call`] lent for one request, or nothing once it ended.
#[derive(Debug, Default)]
pub struct CallRef {
    slot: Cell<Option<NonNull<dyn Call + 'static>>>,
    /// Reading the body or writing the response failed: the client went
    /// away (or stalled), so an exception the app raises because of it is
    /// the client's doing, not the app's.
    client_failed: Cell<bool>,
}

/// Clears the slot when the request ends, also by unwinding.
struct Lent<'a>(&'a CallRef);

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.0.slot.set(None);
    }
}

/// `T` sent to "another thread" that is really this one: pyo3's `detach`
/// runs its closure synchronously on the calling thread, with the GIL
/// released, and asks for `Send` only to keep Python objects out of it.
struct SameThread<T>(T);

// SAFETY: used only for closures passed to `Python::detach`, which runs
// them on the calling thread before returning; nothing crosses a thread.
unsafe impl<T> Send for SameThread<T> {}

impl CallRef {
    /// Lend `call` to `body` through `slot`; the slot is cleared when
    /// `body` returns or unwinds.
    pub fn lend<R>(slot: &Rc<CallRef>, call: &mut dyn Call, body: impl FnOnce() -> R) -> R {
        let pointer: NonNull<dyn Call + '_> = NonNull::from(call);
        // SAFETY: only the lifetime is erased; `Lent` clears the slot before
        // `call`'s borrow ends, and every use goes through `with`, which
        // takes the pointer out of the slot while it runs (no aliasing).
        let pointer: NonNull<dyn Call + 'static> = unsafe { std::mem::transmute(pointer) };
        slot.slot.set(Some(pointer));
        let _lent = Lent(slot);
        body()
    }

    /// Run `f` with the lent call, with the GIL released. Fails when the
    /// request has ended or the call is already in use on this thread.
    pub fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn Call) -> io::Result<R>,
    ) -> io::Result<R> {
        let Some(mut pointer) = self.slot.take() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "this request has ended (wsgi.input, write and file objects are valid only during it)",
            ));
        };
        let task = SameThread((pointer, f));
        let SameThread(result) = py.detach(move || {
            let SameThread((mut pointer, f)) = { task };
            // SAFETY: the pointer was lent by `lend`, whose borrow is still
            // alive (the slot is cleared when it ends), and it was taken out
            // of the slot, so this is the only reference in use.
            SameThread(f(unsafe { pointer.as_mut() }))
        });
        let _ = &mut pointer;
        self.slot.set(Some(pointer));
        result
    }

    /// Run `f` with the lent call, keeping the GIL (for calls that cannot
    /// block: reading the head, buffering a small write).
    pub fn with_gil<R>(&self, f: impl FnOnce(&mut dyn Call) -> R) -> Option<R> {
        let mut pointer = self.slot.take()?;
        // SAFETY: as in `with`.
        let result = f(unsafe { pointer.as_mut() });
        self.slot.set(Some(pointer));
        Some(result)
    }

    /// Write bytes borrowed from a Python object, then flush when `flush`,
    /// with the GIL released: the caller keeps the object alive and it is
    /// immutable (`bytes`), so the memory stays valid and unchanged.
    pub fn write_bytes(&self, py: Python<'_>, data: &[u8], flush: bool) -> io::Result<()> {
        let data = SameThread((data.as_ptr(), data.len()));
        let result = self.with(py, move |call| {
            let SameThread((ptr, len)) = { data };
            // SAFETY: see above; the slice is read before `with` returns.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
            call.write(bytes)?;
            if flush {
                call.flush()?;
            }
            Ok(())
        });
        self.note(result)
    }

    /// Read request body bytes into `buf` with the GIL released.
    pub fn read_body(&self, py: Python<'_>, buf: &mut [u8]) -> io::Result<usize> {
        let target = SameThread((buf.as_mut_ptr(), buf.len()));
        let result = self.with(py, move |call| {
            let SameThread((ptr, len)) = { target };
            // SAFETY: `buf` is exclusively borrowed by this function for the
            // whole (synchronous) call.
            let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
            call.read_body(buf)
        });
        self.note(result)
    }

    fn note<T>(&self, result: io::Result<T>) -> io::Result<T> {
        if result.is_err() {
            self.client_failed.set(true);
        }
        result
    }

    /// Whether a read or write on the connection failed in this request.
    pub fn client_failed(&self) -> bool {
        self.client_failed.get()
    }
}

/// A file for the descriptor `fd` that Python owns: a duplicate, so that
/// closing ours leaves Python's open.
pub fn dup_fd(fd: i32) -> io::Result<std::fs::File> {
    use std::os::fd::BorrowedFd;
    if fd < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "negative file descriptor",
        ));
    }
    // SAFETY: the Python file object that gave `fd` is alive during this
    // call, so the descriptor is open; it is only borrowed to duplicate it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(std::fs::File::from(borrowed.try_clone_to_owned()?))
}
