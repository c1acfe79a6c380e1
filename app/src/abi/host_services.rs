//! A [`Call`] seen from C: the host services table, implemented by
//! forwarding every entry to the `Call` and `Host` trait objects the worker
//! class supplies. So the worker class decides what blocking means and a
//! library needs no runtime of its own.
//!
//! The host uses it to serve a library app; a library worker class uses the
//! same code the other way round (see `worker_class`). Every entry catches
//! panics, since unwinding into C is undefined behaviour.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use super::errno::{to_errno, EINVAL, EIO};
use super::types::{
    RcCallCtx, RcConnectionInfo, RcField, RcHostTable, RcRequest, RcStr, RcUpstream, RcWorkerInfo,
    RC_OK,
};
use crate::{Call, Host, LogLevel, Upstream, Version, WorkerInfo};

/// The state behind one `*mut RcCallCtx`: the call (absent outside a
/// request), the host, the worker facts, and scratch space for borrowed views.
pub struct CallContext<'a> {
    call: Option<&'a mut dyn Call>,
    host: Option<&'a dyn Host>,
    info: Option<&'a WorkerInfo>,
    trailers: Vec<RcField>,
    connection: Option<Connection>,
}

/// The call's connection facts: views into the request's copy (see
/// [`lend_call`]), so that the views `connection_info` hands out never
/// alias the `&mut dyn Call`.
#[derive(Debug, Clone, Copy)]
struct Connection {
    url_scheme: RcStr,
    client_addr: RcStr,
    server_addr: RcStr,
    forwarded_host: RcStr,
    proxy_protocol: RcStr,
    proxy_addr: RcStr,
}

impl<'a> CallContext<'a> {
    /// The context of one request, with its connection facts (views valid
    /// as long as the context is used).
    fn for_call(
        call: &'a mut dyn Call,
        info: Option<&'a WorkerInfo>,
        connection: Connection,
    ) -> Self {
        CallContext {
            call: Some(call),
            host: None,
            info,
            trailers: Vec::new(),
            connection: Some(connection),
        }
    }

    /// A context with host services but no request (for hooks and boots).
    pub fn for_host(host: Option<&'a dyn Host>, info: Option<&'a WorkerInfo>) -> Self {
        CallContext {
            call: None,
            host,
            info,
            trailers: Vec::new(),
            connection: None,
        }
    }

    /// The raw pointer to hand to C; valid while `self` is borrowed.
    pub fn as_raw(&mut self) -> *mut RcCallCtx {
        (self as *mut CallContext<'a>).cast()
    }

    fn host(&self) -> Option<&dyn Host> {
        match &self.call {
            Some(call) => Some(call.host()),
            None => self.host,
        }
    }
}

impl std::fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("has_call", &self.call.is_some())
            .finish()
    }
}

/// The request's bytes copied into one buffer (the head, the peer and the
/// connection facts), with the ranges of each piece, so that the views
/// lent to C never alias the `&mut dyn Call` the context holds: two
/// allocations per request instead of one per string.
struct RequestCopy {
    bytes: Vec<u8>,
    /// `(start, len)` of method, target, peer, url scheme, client and
    /// server address, forwarded host, PROXY protocol and proxy address,
    /// then each header's name and value.
    ranges: Vec<(usize, usize)>,
}

impl RequestCopy {
    const FIXED: usize = 9;

    fn of(call: &dyn Call) -> Self {
        let head = call.head();
        let fixed: [&[u8]; Self::FIXED] = [
            head.method.as_bytes(),
            head.target.as_bytes(),
            call.peer().as_bytes(),
            call.url_scheme().as_bytes(),
            call.client_addr().as_bytes(),
            call.server_addr().as_bytes(),
            call.forwarded_host().unwrap_or("").as_bytes(),
            call.proxy_protocol().unwrap_or("").as_bytes(),
            call.proxy_addr().unwrap_or("").as_bytes(),
        ];
        let total = fixed.iter().map(|piece| piece.len()).sum::<usize>()
            + head
                .headers
                .iter()
                .map(|field| field.name.len() + field.value.len())
                .sum::<usize>();
        let mut copy = RequestCopy {
            bytes: Vec::with_capacity(total),
            ranges: Vec::with_capacity(Self::FIXED + 2 * head.headers.len()),
        };
        for piece in fixed {
            copy.push(piece);
        }
        for field in &head.headers {
            copy.push(field.name.as_bytes());
            copy.push(&field.value);
        }
        copy
    }

    fn push(&mut self, piece: &[u8]) {
        self.ranges.push((self.bytes.len(), piece.len()));
        self.bytes.extend_from_slice(piece);
    }

    /// The view of piece `index` (valid while `self` is neither dropped
    /// nor changed).
    fn view(&self, index: usize) -> RcStr {
        let (start, len) = self.ranges[index];
        RcStr::new(&self.bytes[start..start + len])
    }
}

/// Lend `call` to C for the duration of `body`: a borrowed request view, the
/// host services table and a context pointer. The request is copied first,
/// so no view aliases the `&mut dyn Call` the context holds.
pub fn lend_call<R>(
    call: &mut dyn Call,
    info: Option<&WorkerInfo>,
    body: impl FnOnce(&RcRequest, &'static RcHostTable, *mut RcCallCtx) -> R,
) -> R {
    let copy = RequestCopy::of(call);
    let version = if call.head().version == Version::Http10 {
        10
    } else {
        11
    };
    let fields: Vec<RcField> = (RequestCopy::FIXED..copy.ranges.len())
        .step_by(2)
        .map(|index| RcField {
            name: copy.view(index),
            value: copy.view(index + 1),
        })
        .collect();
    let request = RcRequest {
        method: copy.view(0),
        target: copy.view(1),
        version,
        headers: fields.as_ptr(),
        headers_len: fields.len(),
        peer: copy.view(2),
    };
    let connection = Connection {
        url_scheme: copy.view(3),
        client_addr: copy.view(4),
        server_addr: copy.view(5),
        forwarded_host: copy.view(6),
        proxy_protocol: copy.view(7),
        proxy_addr: copy.view(8),
    };
    let mut context = CallContext::for_call(call, info, connection);
    body(&request, &HOST_TABLE, context.as_raw())
}

/// The host services table; its entries expect a `*mut RcCallCtx` made by
/// [`CallContext::as_raw`].
pub static HOST_TABLE: RcHostTable = RcHostTable {
    struct_size: size_of::<RcHostTable>(),
    read_body,
    trailers,
    start_response,
    write,
    flush,
    sendfile,
    sleep,
    tcp_connect,
    tcp_read,
    tcp_write,
    tcp_close,
    log,
    worker_info,
    connection_info,
};

/// Run `body` on the context behind `ctx`, turning a null context or a
/// panic into an errno.
fn with_context(
    ctx: *mut RcCallCtx,
    body: impl FnOnce(&mut CallContext<'_>) -> io::Result<()>,
) -> i32 {
    // SAFETY: every `*mut RcCallCtx` given to C by this module comes from
    // `CallContext::as_raw` and outlives the entry that receives it.
    let Some(context) = (unsafe { ctx.cast::<CallContext<'_>>().as_mut() }) else {
        return EINVAL;
    };
    match catch_unwind(AssertUnwindSafe(|| body(context))) {
        Ok(Ok(())) => RC_OK,
        Ok(Err(err)) => to_errno(&err),
        Err(_) => EIO,
    }
}

fn no_call() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "no request in this context")
}

fn call_of<'c>(context: &'c mut CallContext<'_>) -> io::Result<&'c mut dyn Call> {
    match context.call.as_mut() {
        Some(call) => Ok(&mut **call),
        None => Err(no_call()),
    }
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn read_body(
    ctx: *mut RcCallCtx,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> i32 {
    if buf.is_null() || out_len.is_null() {
        return EINVAL;
    }
    with_context(ctx, |context| {
        // SAFETY: the app passes a writable buffer of `len` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        let read = call_of(context)?.read_body(buf)?;
        // SAFETY: checked non-null above; the app owns the out slot.
        unsafe { *out_len = read };
        Ok(())
    })
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn trailers(
    ctx: *mut RcCallCtx,
    out: *mut *const RcField,
    out_len: *mut usize,
) -> i32 {
    if out.is_null() || out_len.is_null() {
        return EINVAL;
    }
    with_context(ctx, |context| {
        let fields: Vec<RcField> = call_of(context)?
            .trailers()
            .iter()
            .map(|field| RcField {
                name: RcStr::new(field.name.as_bytes()),
                value: RcStr::new(&field.value),
            })
            .collect();
        // The views borrow the call's trailers, which live as long as the
        // call; the array lives in the context until the next `trailers`.
        context.trailers = fields;
        // SAFETY: checked non-null above.
        unsafe {
            *out = context.trailers.as_ptr();
            *out_len = context.trailers.len();
        }
        Ok(())
    })
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn start_response(
    ctx: *mut RcCallCtx,
    status: u16,
    headers: *const RcField,
    count: usize,
) -> i32 {
    if headers.is_null() && count > 0 {
        return EINVAL;
    }
    with_context(ctx, |context| {
        let fields: &[RcField] = if count == 0 {
            &[]
        } else {
            // SAFETY: the app passes `count` fields, valid during this call.
            unsafe { std::slice::from_raw_parts(headers, count) }
        };
        let mut pairs: Vec<(&str, &[u8])> = Vec::with_capacity(fields.len());
        for field in fields {
            // SAFETY: each field borrows app memory valid during this call.
            let (name, value) = unsafe { (field.name.as_bytes(), field.value.as_bytes()) };
            let name = std::str::from_utf8(name).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "header name is not utf-8")
            })?;
            pairs.push((name, value));
        }
        call_of(context)?.start_response(status, &pairs)
    })
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn write(ctx: *mut RcCallCtx, data: *const u8, len: usize) -> i32 {
    with_context(ctx, |context| {
        // SAFETY: the app passes `len` readable bytes (or null and 0).
        let data = unsafe { RcStr { ptr: data, len }.as_bytes() };
        call_of(context)?.write(data)
    })
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn flush(ctx: *mut RcCallCtx) -> i32 {
    with_context(ctx, |context| call_of(context)?.flush())
}

/// The response body from a file, through the call's own `sendfile`.
///
/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn sendfile(ctx: *mut RcCallCtx, fd: i32, offset: u64, count: u64) -> i32 {
    if fd < 0 {
        return EINVAL;
    }
    with_context(ctx, |context| {
        // SAFETY: the app promises `fd` is an open file for this call; we
        // only borrow it to duplicate it, so it is never closed here.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd as RawFd) };
        let file = std::fs::File::from(borrowed.try_clone_to_owned()?);
        call_of(context)?.sendfile(&file, offset, count)
    })
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn sleep(ctx: *mut RcCallCtx, millis: u64) {
    let duration = Duration::from_millis(millis);
    let status = with_context(ctx, |context| {
        match context.host() {
            Some(host) => host.sleep(duration),
            None => std::thread::sleep(duration),
        }
        Ok(())
    });
    if status == EINVAL {
        std::thread::sleep(duration);
    }
}

/// The handle behind `*mut RcUpstream`: allocated by `tcp_connect`, freed
/// by `tcp_close`, both here.
type UpstreamBox = Box<dyn Upstream>;

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn tcp_connect(
    ctx: *mut RcCallCtx,
    addr: RcStr,
    out: *mut *mut RcUpstream,
) -> i32 {
    if out.is_null() {
        return EINVAL;
    }
    with_context(ctx, |context| {
        // SAFETY: the app borrows the address to us for this call.
        let addr = unsafe { addr.as_bytes() };
        let addr = std::str::from_utf8(addr)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "address is not utf-8"))?;
        let host = context.host().ok_or_else(no_call)?;
        let upstream: UpstreamBox = host.connect(addr)?;
        let handle = Box::into_raw(Box::new(upstream));
        // SAFETY: checked non-null above.
        unsafe { *out = handle.cast() };
        Ok(())
    })
}

fn with_upstream(
    handle: *mut RcUpstream,
    body: impl FnOnce(&mut dyn Upstream) -> io::Result<()>,
) -> i32 {
    // SAFETY: handles come from `tcp_connect` and stay valid until `tcp_close`.
    let Some(upstream) = (unsafe { handle.cast::<UpstreamBox>().as_mut() }) else {
        return EINVAL;
    };
    match catch_unwind(AssertUnwindSafe(|| body(&mut **upstream))) {
        Ok(Ok(())) => RC_OK,
        Ok(Err(err)) => to_errno(&err),
        Err(_) => EIO,
    }
}

/// # Safety
/// The library calls it with a handle `tcp_connect` gave it and has not
/// closed, and a buffer valid for its length (the ABI's rule).
unsafe extern "C" fn tcp_read(
    handle: *mut RcUpstream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> i32 {
    if buf.is_null() || out_len.is_null() {
        return EINVAL;
    }
    with_upstream(handle, |upstream| {
        // SAFETY: the app passes a writable buffer of `len` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        let read = upstream.read(buf)?;
        // SAFETY: checked non-null above.
        unsafe { *out_len = read };
        Ok(())
    })
}

/// # Safety
/// The library calls it with a handle `tcp_connect` gave it and has not
/// closed, and a buffer valid for its length (the ABI's rule).
unsafe extern "C" fn tcp_write(handle: *mut RcUpstream, data: *const u8, len: usize) -> i32 {
    with_upstream(handle, |upstream| {
        // SAFETY: the app passes `len` readable bytes.
        let data = unsafe { RcStr { ptr: data, len }.as_bytes() };
        upstream.write_all(data)
    })
}

/// # Safety
/// The library calls it with a handle `tcp_connect` gave it and has not
/// closed, and a buffer valid for its length (the ABI's rule).
unsafe extern "C" fn tcp_close(handle: *mut RcUpstream) {
    if handle.is_null() {
        return;
    }
    // SAFETY: the handle was made by `Box::into_raw` in `tcp_connect` and the
    // app gives it back exactly once.
    let upstream = unsafe { Box::from_raw(handle.cast::<UpstreamBox>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(upstream)));
}

fn level_of(level: u32) -> LogLevel {
    match level {
        0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warning,
        _ => LogLevel::Error,
    }
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn log(ctx: *mut RcCallCtx, level: u32, message: RcStr) {
    // SAFETY: the app borrows the message to us for this call.
    let message = String::from_utf8_lossy(unsafe { message.as_bytes() }).into_owned();
    let status = with_context(ctx, |context| {
        match context.host() {
            Some(host) => host.log(level_of(level), &message),
            None => eprintln!("[{}] {message}", level_name(level)),
        }
        Ok(())
    });
    if status == EINVAL {
        eprintln!("[{}] {message}", level_name(level));
    }
}

/// Gunicorn's level names, for lines logged without a host.
pub fn level_name(level: u32) -> &'static str {
    match level {
        0 => "DEBUG",
        1 => "INFO",
        2 => "WARNING",
        _ => "ERROR",
    }
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn worker_info(ctx: *mut RcCallCtx, out: *mut RcWorkerInfo) {
    if out.is_null() {
        return;
    }
    let _ = with_context(ctx, |context| {
        let view = match context.info {
            Some(info) => RcWorkerInfo {
                pid: info.pid,
                age: info.age,
                worker_class: RcStr::new(info.worker_class.as_bytes()),
            },
            None => RcWorkerInfo {
                pid: std::process::id(),
                age: 0,
                worker_class: RcStr::EMPTY,
            },
        };
        // SAFETY: checked non-null above.
        unsafe { *out = view };
        Ok(())
    });
}

/// # Safety
/// The library calls it through the host table while the call `ctx`
/// names runs, with pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn connection_info(ctx: *mut RcCallCtx, out: *mut RcConnectionInfo) -> i32 {
    if out.is_null() {
        return EINVAL;
    }
    with_context(ctx, |context| {
        let connection = context.connection.ok_or_else(no_call)?;
        // SAFETY: checked non-null above; the app says how much of the
        // struct it has in `struct_size`, and only that much is written.
        let known = unsafe { (*out).struct_size };
        let full = RcConnectionInfo {
            struct_size: known.min(size_of::<RcConnectionInfo>()),
            url_scheme: connection.url_scheme,
            client_addr: connection.client_addr,
            server_addr: connection.server_addr,
            forwarded_host: connection.forwarded_host,
            proxy_protocol: connection.proxy_protocol,
            proxy_addr: connection.proxy_addr,
        };
        let count = full.struct_size;
        // SAFETY: `count` bytes fit in both structs; the views borrow the
        // request's copy, which `lend_call` keeps for the whole request.
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const full).cast::<u8>(), out.cast::<u8>(), count);
        }
        Ok(())
    })
}
