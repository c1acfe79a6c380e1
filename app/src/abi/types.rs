//! The `#[repr(C)]` data that crosses the boundary, version 1.
//!
//! Every exported object starts with an [`RcObjectHeader`]: a magic number, the
//! ABI version and the size of the whole struct, so that the loader can tell
//! "not a runicorn object" from "built against another ABI" before it calls
//! anything. Only these structs, borrowed byte slices and function pointers
//! cross; nothing here owns memory. `app/include/runicorn.h` mirrors this file
//! by hand and `tests/abi_header.rs` checks the two agree.

use std::ffi::c_void;
use std::marker::PhantomData;

/// `"RUNICORN"` in ASCII, big-endian: the first field of every exported object.
pub const RC_MAGIC: u64 = 0x5255_4E49_434F_524E;
/// The ABI version this crate speaks. Bump it on any incompatible change.
pub const RC_ABI_VERSION: u32 = 1;

/// The kind of an exported object.
pub const RC_KIND_APP: u32 = 1;
/// An app factory (`myapp:create_app()`).
pub const RC_KIND_FACTORY: u32 = 2;
/// A server hook (`post_fork = "myapp:post_fork"`).
pub const RC_KIND_HOOK: u32 = 3;
/// A worker class (`-k ./libmyworker.so:Worker`).
pub const RC_KIND_WORKER_CLASS: u32 = 4;

/// Capability bit: the app may be called from several threads at once.
pub const RC_CAP_THREAD_SAFE: u64 = 1;
/// Capability bit: the app has a poll-style async entry (reserved in v1).
pub const RC_CAP_ASYNC: u64 = 2;
/// Capability bit: the app waits without the host (an embedded interpreter
/// doing its own I/O), so it must run where blocking an OS thread is fine:
/// coroutine worker classes call it on a thread pool.
pub const RC_CAP_BLOCKS_THREAD: u64 = 4;

/// Status codes of every fallible entry.
pub const RC_OK: i32 = 0;
/// The call failed; the error buffer holds the reason.
pub const RC_ERROR: i32 = 1;
/// A panic (or C++ exception) was caught; the worker must be recycled.
pub const RC_PANIC: i32 = 2;

/// Log levels, as [`crate::LogLevel`].
pub const RC_LOG_DEBUG: u32 = 0;
/// `[INFO]`
pub const RC_LOG_INFO: u32 = 1;
/// `[WARNING]`
pub const RC_LOG_WARNING: u32 = 2;
/// `[ERROR]`
pub const RC_LOG_ERROR: u32 = 3;

/// A borrowed byte slice (not NUL-terminated). Valid only during the call
/// that passed it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RcStr {
    /// First byte; may be null when `len` is 0.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl RcStr {
    /// Borrow `bytes` for the duration of a call.
    pub fn new(bytes: &[u8]) -> RcStr {
        RcStr {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The empty slice.
    pub const EMPTY: RcStr = RcStr {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// View the bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: the caller promises `ptr..ptr+len` is readable for 'a.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// One header field (or one `key=value` factory argument).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RcField {
    /// The name.
    pub name: RcStr,
    /// The value.
    pub value: RcStr,
}

/// The request as the app sees it: borrowed from the host for one call.
#[repr(C)]
#[derive(Debug)]
pub struct RcRequest {
    /// The method token.
    pub method: RcStr,
    /// The request target as received.
    pub target: RcStr,
    /// 10 for HTTP/1.0, 11 for HTTP/1.1.
    pub version: u32,
    /// Header fields in received order.
    pub headers: *const RcField,
    /// How many header fields.
    pub headers_len: usize,
    /// The peer address as text, empty for unix sockets.
    pub peer: RcStr,
}

/// Facts about the worker, as [`crate::WorkerInfo`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RcWorkerInfo {
    /// The worker's pid.
    pub pid: u32,
    /// The worker's age (spawn order).
    pub age: u64,
    /// The worker class name.
    pub worker_class: RcStr,
}

/// Where a request came from and where it arrived, as
/// [`crate::Call::url_scheme`], [`crate::Call::client_addr`],
/// [`crate::Call::server_addr`] and [`crate::Call::forwarded_host`]. The caller sets `struct_size` to the size it
/// was built with; the host fills only the fields that fit in it, so the
/// struct may grow at its end. The slices are valid for the whole request.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RcConnectionInfo {
    /// `size_of::<RcConnectionInfo>()` as the caller knows it.
    pub struct_size: usize,
    /// `http` or `https`.
    pub url_scheme: RcStr,
    /// The client: a bare IP from a trusted `X-Forwarded-For`, else the
    /// socket peer (as `RcRequest::peer`).
    pub client_addr: RcStr,
    /// The listening socket's address (`127.0.0.1:8000`, a unix socket
    /// path), empty when the worker class does not know it.
    pub server_addr: RcStr,
    /// Appended: the host a trusted `Forwarded` field's `host=` named, as
    /// [`crate::Call::forwarded_host`]; empty when none did.
    pub forwarded_host: RcStr,
    /// Appended: what the connection's PROXY header said it is, as
    /// [`crate::Call::proxy_protocol`]; empty without a header.
    pub proxy_protocol: RcStr,
    /// Appended: the proxy's own address the header named, as
    /// [`crate::Call::proxy_addr`]; empty when it named none.
    pub proxy_addr: RcStr,
}

impl RcConnectionInfo {
    /// An empty struct of this version's size, for the host to fill.
    pub const fn empty() -> RcConnectionInfo {
        RcConnectionInfo {
            struct_size: size_of::<RcConnectionInfo>(),
            url_scheme: RcStr::EMPTY,
            client_addr: RcStr::EMPTY,
            server_addr: RcStr::EMPTY,
            forwarded_host: RcStr::EMPTY,
            proxy_protocol: RcStr::EMPTY,
            proxy_addr: RcStr::EMPTY,
        }
    }
}

/// A message buffer owned by the caller; the callee writes up to `cap` bytes
/// and sets `len`. Whoever allocates frees: the host owns it.
#[repr(C)]
#[derive(Debug)]
pub struct RcErrorBuf {
    /// The buffer.
    pub ptr: *mut u8,
    /// Its capacity.
    pub cap: usize,
    /// Bytes written.
    pub len: usize,
}

/// Opaque per-call context of the host services. Only the side that made it
/// looks inside.
#[repr(C)]
#[derive(Debug)]
pub struct RcCallCtx {
    _private: [u8; 0],
    _not_send: PhantomData<*mut c_void>,
}

/// Opaque TCP connection opened through the host; freed by `tcp_close`.
#[repr(C)]
#[derive(Debug)]
pub struct RcUpstream {
    _private: [u8; 0],
    _not_send: PhantomData<*mut c_void>,
}

/// The host services for one call. I/O functions return 0 or an errno.
#[repr(C)]
#[derive(Debug)]
pub struct RcHostTable {
    /// `size_of::<RcHostTable>()`, so that later versions may append entries.
    pub struct_size: usize,
    /// Read request body bytes into `buf`; `*out_len` = 0 at the end.
    pub read_body: unsafe extern "C" fn(*mut RcCallCtx, *mut u8, usize, *mut usize) -> i32,
    /// The trailer fields of a chunked body, once read to its end.
    pub trailers: unsafe extern "C" fn(*mut RcCallCtx, *mut *const RcField, *mut usize) -> i32,
    /// Start the response with a status and header fields.
    pub start_response: unsafe extern "C" fn(*mut RcCallCtx, u16, *const RcField, usize) -> i32,
    /// Write response body bytes.
    pub write: unsafe extern "C" fn(*mut RcCallCtx, *const u8, usize) -> i32,
    /// Push buffered response bytes to the client.
    pub flush: unsafe extern "C" fn(*mut RcCallCtx) -> i32,
    /// Send `count` bytes of the file `fd` from `offset` as response body.
    pub sendfile: unsafe extern "C" fn(*mut RcCallCtx, i32, u64, u64) -> i32,
    /// Sleep the worker class's way.
    pub sleep: unsafe extern "C" fn(*mut RcCallCtx, u64),
    /// Connect to `host:port`; `*out` receives a handle for `tcp_*`.
    pub tcp_connect: unsafe extern "C" fn(*mut RcCallCtx, RcStr, *mut *mut RcUpstream) -> i32,
    /// Read from an upstream; `*out_len` = 0 at end of stream.
    pub tcp_read: unsafe extern "C" fn(*mut RcUpstream, *mut u8, usize, *mut usize) -> i32,
    /// Write all of `data` to an upstream.
    pub tcp_write: unsafe extern "C" fn(*mut RcUpstream, *const u8, usize) -> i32,
    /// Close an upstream and free its handle.
    pub tcp_close: unsafe extern "C" fn(*mut RcUpstream),
    /// Write one line to the error log at an `RC_LOG_*` level.
    pub log: unsafe extern "C" fn(*mut RcCallCtx, u32, RcStr),
    /// Facts about this worker.
    pub worker_info: unsafe extern "C" fn(*mut RcCallCtx, *mut RcWorkerInfo),
    /// Where the request came from and arrived: fills the fields of `*out`
    /// that its `struct_size` covers. Appended after the first release of
    /// ABI v1: call it only when this table's `struct_size` covers it
    /// ([`RcHostTable::has_connection_info`]).
    pub connection_info: unsafe extern "C" fn(*mut RcCallCtx, *mut RcConnectionInfo) -> i32,
}

impl RcHostTable {
    /// Whether a table of `struct_size` bytes has the `connection_info`
    /// entry (tables made by libraries built before it was appended do not).
    pub const fn has_connection_info(struct_size: usize) -> bool {
        struct_size
            >= std::mem::offset_of!(RcHostTable, connection_info)
                + size_of::<unsafe extern "C" fn(*mut RcCallCtx, *mut RcConnectionInfo) -> i32>()
    }
}

/// The header every exported object starts with.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RcObjectHeader {
    /// [`RC_MAGIC`].
    pub magic: u64,
    /// The ABI version the library was built against.
    pub abi_version: u32,
    /// One of the `RC_KIND_*` constants.
    pub kind: u32,
    /// The size in bytes of the whole exported struct.
    pub struct_size: u64,
}

impl RcObjectHeader {
    /// The header of an object of kind `kind` and type `T`, this version.
    pub const fn new<T>(kind: u32) -> RcObjectHeader {
        RcObjectHeader {
            magic: RC_MAGIC,
            abi_version: RC_ABI_VERSION,
            kind,
            struct_size: size_of::<T>() as u64,
        }
    }
}

/// `init_worker(data, info, err)`.
pub type InitWorkerFn =
    unsafe extern "C" fn(*const c_void, *const RcWorkerInfo, *mut RcErrorBuf) -> i32;

/// `handle(data, request, host, ctx, err)`.
pub type HandleFn = unsafe extern "C" fn(
    *const c_void,
    *const RcRequest,
    *const RcHostTable,
    *mut RcCallCtx,
    *mut RcErrorBuf,
) -> i32;

/// An app: what `module:variable` names.
#[repr(C)]
#[derive(Debug)]
pub struct RcApp {
    /// Magic, version, kind [`RC_KIND_APP`], size.
    pub header: RcObjectHeader,
    /// `RC_CAP_*` bits.
    pub capabilities: u64,
    /// The app's own data, passed back to every entry; opaque to the host.
    pub data: *const c_void,
    /// Called in each worker after fork, before it serves; may be null.
    pub init_worker: Option<InitWorkerFn>,
    /// Serve one request with blocking semantics through the host table.
    /// Required: the loader refuses a table without it.
    pub handle: Option<HandleFn>,
    /// Reserved for a poll-style async entry; null in ABI v1.
    pub poll: Option<unsafe extern "C" fn(*const c_void) -> i32>,
    /// Called once when the worker exits cleanly; may be null.
    pub shutdown_worker: Option<unsafe extern "C" fn(*const c_void)>,
}

// SAFETY: an RcApp is immutable after it is made and its `data` points to
// data the library shares between threads (apps are `Send + Sync`).
unsafe impl Sync for RcApp {}
// SAFETY: the table is immutable plain data and its `data` is shared by
// the library between threads (apps are `Send + Sync`), so it may move.
unsafe impl Send for RcApp {}

/// An app factory: `myapp:create_app()` or `create_app(key=value, ...)`.
#[repr(C)]
#[derive(Debug)]
pub struct RcFactory {
    /// Magic, version, kind [`RC_KIND_FACTORY`], size.
    pub header: RcObjectHeader,
    /// Make an app from string arguments; `*out` receives a table the
    /// library owns for the rest of the process.
    pub create:
        unsafe extern "C" fn(*const RcField, usize, *mut *const RcApp, *mut RcErrorBuf) -> i32,
}

// SAFETY: a factory table is immutable plain data and function pointers.
unsafe impl Sync for RcFactory {}
