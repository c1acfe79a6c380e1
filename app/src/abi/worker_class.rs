//! Third-party worker classes: `-k ./libmyworker.so:Worker`.
//!
//! A library exports an [`RcWorkerClass`] table whose `run` owns the forked
//! worker until it should exit, like `runicorn_worker::WorkerClass::run`. The host
//! gives it the worker's parameters (inherited listener fds, timeouts) and a
//! services table: heartbeat (`notify`), the shutdown state, logging, and
//! `handle`, which serves one request with the loaded app. The worker class
//! parses HTTP itself and lends each request to the host as a host services
//! table of its own ([`RcHostTable`]), the same table the host lends to
//! apps: the ABI is symmetric. The host answers 500 itself when the app
//! fails before starting a response.

use std::ffi::c_void;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use super::errno::{fill_error, ErrorBuffer};
use super::foreign_call::ForeignCall;
use super::host_services::lend_call;
use super::types::{
    RcCallCtx, RcErrorBuf, RcHostTable, RcObjectHeader, RcRequest, RcStr, RC_ERROR, RC_OK, RC_PANIC,
};
use crate::watched::Watched;
use crate::{AppError, Application, Call, LogLevel};

/// `should_stop`: keep serving.
pub const RC_STOP_NONE: u32 = 0;
/// `should_stop`: stop accepting, finish in-flight requests.
pub const RC_STOP_GRACEFUL: u32 = 1;
/// `should_stop`: exit now.
pub const RC_STOP_QUICK: u32 = 2;

/// What the worker class gets, borrowed for the whole of `run`.
#[repr(C)]
#[derive(Debug)]
pub struct RcWorkerParams {
    /// `size_of::<RcWorkerParams>()`.
    pub struct_size: usize,
    /// The inherited listening sockets (TCP or unix), already non-blocking
    /// or not as the master made them.
    pub listener_fds: *const i32,
    /// How many listeners.
    pub listeners_len: usize,
    /// The worker's pid.
    pub pid: u32,
    /// `--threads`.
    pub threads: u32,
    /// The worker's age (spawn order).
    pub age: u64,
    /// `--worker-connections`.
    pub worker_connections: u64,
    /// `--timeout` in milliseconds: call `notify` more often than this.
    pub timeout_ms: u64,
    /// `--graceful-timeout` in milliseconds.
    pub graceful_timeout_ms: u64,
    /// `--keep-alive` in milliseconds.
    pub keepalive_ms: u64,
    /// Requests after which to retire (0: never); `handle` counts them.
    pub max_requests: u64,
    /// The app's name, for logs.
    pub app_name: RcStr,
}

/// Opaque worker context; only the host looks inside.
#[repr(C)]
#[derive(Debug)]
pub struct RcWorkerCtx {
    _private: [u8; 0],
    _not_send: PhantomData<*mut c_void>,
}

/// The services the host gives a library worker class.
#[repr(C)]
#[derive(Debug)]
pub struct RcWorkerServices {
    /// `size_of::<RcWorkerServices>()`.
    pub struct_size: usize,
    /// Beat the heartbeat: "this worker is alive".
    pub notify: unsafe extern "C" fn(*mut RcWorkerCtx),
    /// One of `RC_STOP_*`.
    pub should_stop: unsafe extern "C" fn(*mut RcWorkerCtx) -> u32,
    /// Serve one request with the app through the worker's own host table.
    /// `RC_OK` (a 500 was sent if the app failed early), or `RC_PANIC`: the
    /// worker must exit after this request.
    pub handle: unsafe extern "C" fn(
        *mut RcWorkerCtx,
        *const RcRequest,
        *const RcHostTable,
        *mut RcCallCtx,
        *mut RcErrorBuf,
    ) -> i32,
    /// Write one line to the error log.
    pub log: unsafe extern "C" fn(*mut RcWorkerCtx, u32, RcStr),
}

/// A worker class table: what `-k lib:Symbol` names.
#[repr(C)]
#[derive(Debug)]
pub struct RcWorkerClass {
    /// Magic, version, kind `RC_KIND_WORKER_CLASS`, size.
    pub header: RcObjectHeader,
    /// The class's name, as logged at boot.
    pub name: RcStr,
    /// Run the worker until it should exit; returns the exit code.
    pub run: unsafe extern "C" fn(
        *const RcWorkerParams,
        *const RcWorkerServices,
        *mut RcWorkerCtx,
    ) -> i32,
}

// SAFETY: the table is immutable plain data, a static string and function
// pointers.
unsafe impl Sync for RcWorkerClass {}
// SAFETY: immutable plain data (a static string, function pointers) may
// move to another thread.
unsafe impl Send for RcWorkerClass {}

// ---------------------------------------------------------------- host side

/// What the host side needs from the master's `Worker`; `cli` implements it
/// (the `app` crate must not depend on `master`).
pub trait WorkerHost {
    /// Beat the heartbeat.
    fn notify(&self);
    /// One of `RC_STOP_*`.
    fn should_stop(&self) -> u32;
    /// The loaded app, `init_worker` already called.
    fn app(&self) -> &Application;
    /// Run `serve` as one request: the scoreboard marks it in flight (with
    /// its request line) and counts it served when it returns.
    fn around_request(&self, request_line: &str, serve: &mut dyn FnMut());
    /// Log one line.
    fn log(&self, level: LogLevel, message: &str);
}

/// The worker's parameters, host side.
#[derive(Debug, Clone, Default)]
pub struct WorkerParams {
    /// Inherited listener fds.
    pub listener_fds: Vec<RawFd>,
    /// `--threads`.
    pub threads: u32,
    /// The worker's age.
    pub age: u64,
    /// `--worker-connections`.
    pub worker_connections: u64,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--graceful-timeout`.
    pub graceful_timeout: Duration,
    /// `--keep-alive`.
    pub keepalive: Duration,
    /// Requests before retiring (0: never).
    pub max_requests: u64,
}

/// A worker class loaded from a library (never unloaded).
#[derive(Debug, Clone, Copy)]
pub struct LoadedWorkerClass {
    table: &'static RcWorkerClass,
    name: &'static str,
}

impl LoadedWorkerClass {
    /// Wrap a checked table.
    pub fn new(table: &'static RcWorkerClass) -> Self {
        // SAFETY: the name is a static string of the library, never unloaded.
        let bytes = unsafe { table.name.as_bytes() };
        let name: &'static str =
            Box::leak(String::from_utf8_lossy(bytes).into_owned().into_boxed_str());
        LoadedWorkerClass { table, name }
    }

    /// The class's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Run the worker class in this (forked) process; returns its exit code.
    pub fn run(&self, params: &WorkerParams, host: &dyn WorkerHost) -> i32 {
        let app_name = host.app().name.clone();
        let raw = RcWorkerParams {
            struct_size: size_of::<RcWorkerParams>(),
            listener_fds: params.listener_fds.as_ptr(),
            listeners_len: params.listener_fds.len(),
            pid: std::process::id(),
            threads: params.threads,
            age: params.age,
            worker_connections: params.worker_connections,
            timeout_ms: millis(params.timeout),
            graceful_timeout_ms: millis(params.graceful_timeout),
            keepalive_ms: millis(params.keepalive),
            max_requests: params.max_requests,
            app_name: RcStr::new(app_name.as_bytes()),
        };
        let mut host_ref: &dyn WorkerHost = host;
        let ctx: *mut RcWorkerCtx = (&mut host_ref as *mut &dyn WorkerHost).cast();
        // SAFETY: the table was checked at load; params, services and the
        // context outlive `run`.
        unsafe { (self.table.run)(&raw, &WORKER_SERVICES, ctx) }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The services table the host hands every library worker class.
pub static WORKER_SERVICES: RcWorkerServices = RcWorkerServices {
    struct_size: size_of::<RcWorkerServices>(),
    notify: host_notify,
    should_stop: host_should_stop,
    handle: host_handle,
    log: host_log,
};

fn worker_host<'a>(ctx: *mut RcWorkerCtx) -> Option<&'a dyn WorkerHost> {
    // SAFETY: every context given out by `LoadedWorkerClass::run` points to a
    // `&dyn WorkerHost` that outlives the `run` call.
    unsafe { ctx.cast::<&dyn WorkerHost>().as_ref().copied() }
}

/// # Safety
/// The library worker class calls it during `run`, with the `ctx` the host
/// passed it and pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn host_notify(ctx: *mut RcWorkerCtx) {
    if let Some(host) = worker_host(ctx) {
        let _ = catch_unwind(AssertUnwindSafe(|| host.notify()));
    }
}

/// # Safety
/// The library worker class calls it during `run`, with the `ctx` the host
/// passed it and pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn host_should_stop(ctx: *mut RcWorkerCtx) -> u32 {
    match worker_host(ctx) {
        Some(host) => {
            catch_unwind(AssertUnwindSafe(|| host.should_stop())).unwrap_or(RC_STOP_QUICK)
        }
        None => RC_STOP_QUICK,
    }
}

/// # Safety
/// The library worker class calls it during `run`, with the `ctx` the host
/// passed it and pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn host_log(ctx: *mut RcWorkerCtx, level: u32, message: RcStr) {
    // SAFETY: the worker borrows the message for this call.
    let message = String::from_utf8_lossy(unsafe { message.as_bytes() }).into_owned();
    if let Some(host) = worker_host(ctx) {
        let level = match level {
            0 => LogLevel::Debug,
            1 => LogLevel::Info,
            2 => LogLevel::Warning,
            _ => LogLevel::Error,
        };
        let _ = catch_unwind(AssertUnwindSafe(|| host.log(level, &message)));
    }
}

/// # Safety
/// The library worker class calls it during `run`, with the `ctx` the host
/// passed it and pointers valid for their lengths (the ABI's rule).
unsafe extern "C" fn host_handle(
    ctx: *mut RcWorkerCtx,
    request: *const RcRequest,
    table: *const RcHostTable,
    call_ctx: *mut RcCallCtx,
    error: *mut RcErrorBuf,
) -> i32 {
    let Some(host) = worker_host(ctx) else {
        return RC_ERROR;
    };
    // SAFETY: the worker passes a valid request (or null).
    let Some(request) = (unsafe { request.as_ref() }) else {
        return RC_ERROR;
    };
    if table.is_null() {
        return RC_ERROR;
    }
    let mut outcome: Option<Result<(), AppError>> = None;
    let mut serve = || {
        let served = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the worker keeps its table and context valid for this call.
            let mut foreign = unsafe { ForeignCall::new(request, table, call_ctx) };
            let mut tracked = Watched::new(&mut foreign as &mut dyn Call);
            let result = host.app().sync.call(&mut tracked);
            if let Err(err) = &result {
                host.log(
                    LogLevel::Error,
                    &format!("error handling request: {}", err.message),
                );
                if !tracked.asked {
                    let body = b"Internal Server Error";
                    let length = body.len().to_string();
                    let _ = tracked.start_response(
                        500,
                        &[
                            ("Content-Type", b"text/plain"),
                            ("Content-Length", length.as_bytes()),
                        ],
                    );
                    let _ = tracked.write(body);
                }
            }
            result
        }));
        outcome = Some(served.unwrap_or_else(|_| {
            Err(AppError {
                message: "host panicked".to_owned(),
                panicked: true,
            })
        }));
    };
    // SAFETY: the request's slices are valid for this call.
    let line = unsafe {
        format!(
            "{} {}",
            String::from_utf8_lossy(request.method.as_bytes()),
            String::from_utf8_lossy(request.target.as_bytes())
        )
    };
    let around = catch_unwind(AssertUnwindSafe(|| host.around_request(&line, &mut serve)));
    let outcome = match (around, outcome) {
        (Ok(()), Some(result)) => Ok(result),
        _ => Err(()),
    };
    match outcome {
        Ok(Ok(())) => RC_OK,
        Ok(Err(err)) if err.panicked => {
            // SAFETY: the worker passes a valid error buffer (or null).
            unsafe { fill_error(error, &err.message) };
            RC_PANIC
        }
        Ok(Err(_)) => RC_OK,
        Err(_) => RC_PANIC,
    }
}

// ---------------------------------------------------------------- library side

/// A worker class written in Rust, exported with `export_worker_class!`.
pub trait LibraryWorkerClass: Send + Sync + 'static {
    /// Run until the worker should exit; return the exit code.
    fn run(&self, worker: &WorkerContext<'_>) -> i32;
}

/// The library side's view of its worker: parameters and host services.
#[derive(Debug)]
pub struct WorkerContext<'a> {
    params: &'a RcWorkerParams,
    services: &'a RcWorkerServices,
    ctx: *mut RcWorkerCtx,
}

impl WorkerContext<'_> {
    /// The inherited listener fds (borrowed: do not close them).
    pub fn listener_fds(&self) -> &[i32] {
        if self.params.listener_fds.is_null() || self.params.listeners_len == 0 {
            return &[];
        }
        // SAFETY: the host passes `listeners_len` fds, valid during `run`.
        unsafe { std::slice::from_raw_parts(self.params.listener_fds, self.params.listeners_len) }
    }

    /// The raw parameters (timeouts, age, limits).
    pub fn params(&self) -> &RcWorkerParams {
        self.params
    }

    /// Beat the heartbeat.
    pub fn notify(&self) {
        // SAFETY: the context is valid during `run`.
        unsafe { (self.services.notify)(self.ctx) };
    }

    /// One of `RC_STOP_*`.
    pub fn should_stop(&self) -> u32 {
        // SAFETY: the host's context is valid for the whole `run` call, which
        // this `WorkerContext` cannot outlive.
        unsafe { (self.services.should_stop)(self.ctx) }
    }

    /// Log one line through the host.
    pub fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => 0,
            LogLevel::Info => 1,
            LogLevel::Warning => 2,
            LogLevel::Error => 3,
        };
        // SAFETY: as above; the message is borrowed for the call.
        unsafe { (self.services.log)(self.ctx, level, RcStr::new(message.as_bytes())) };
    }

    /// Serve one request with the host's app through `call`. `Err` with
    /// `panicked` set means the worker must exit after this request.
    pub fn serve(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let mut error = ErrorBuffer::new();
        let status = lend_call(call, None, |request, table, call_ctx| {
            // SAFETY: the request, table, context and buffer outlive the call.
            unsafe { (self.services.handle)(self.ctx, request, table, call_ctx, error.as_raw()) }
        });
        match status {
            RC_OK => Ok(()),
            RC_PANIC => Err(AppError {
                message: error.message("app panicked"),
                panicked: true,
            }),
            _ => Err(AppError::new(error.message("host refused the request"))),
        }
    }
}

/// The body of the `run` entry `export_worker_class!` writes.
///
/// # Safety
/// Called by the host with valid params, services and context.
pub unsafe fn run_shim<W: LibraryWorkerClass>(
    params: *const RcWorkerParams,
    services: *const RcWorkerServices,
    ctx: *mut RcWorkerCtx,
    make: fn() -> W,
) -> i32 {
    // SAFETY: the host passes valid tables (or null).
    let (Some(params), Some(services)) = (unsafe { params.as_ref() }, unsafe { services.as_ref() })
    else {
        return 3;
    };
    let worker = WorkerContext {
        params,
        services,
        ctx,
    };
    match catch_unwind(AssertUnwindSafe(|| make().run(&worker))) {
        Ok(code) => code,
        Err(payload) => {
            worker.log(
                LogLevel::Error,
                &format!(
                    "worker class panicked: {}",
                    super::errno::panic_message(&*payload)
                ),
            );
            1
        }
    }
}

/// Export a worker class: `export_worker_class!(Worker, "myworker", MyWorker::new)`
/// makes `-k ./libmyworker.so:Worker` run `MyWorker::run` in each worker.
#[macro_export]
macro_rules! export_worker_class {
    ($symbol:ident, $name:literal, $make:expr) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static $symbol: $crate::abi::worker_class::RcWorkerClass = {
            /// # Safety
            /// The host calls it once, in the forked worker, with params, services
            /// and ctx valid for the whole call (the ABI's rule).
            unsafe extern "C" fn run(
                params: *const $crate::abi::worker_class::RcWorkerParams,
                services: *const $crate::abi::worker_class::RcWorkerServices,
                ctx: *mut $crate::abi::worker_class::RcWorkerCtx,
            ) -> i32 {
                let make = $make;
                // SAFETY: forwarded from the host.
                unsafe { $crate::abi::worker_class::run_shim(params, services, ctx, make) }
            }
            $crate::abi::worker_class::RcWorkerClass {
                header: $crate::abi::RcObjectHeader::new::<$crate::abi::worker_class::RcWorkerClass>(
                    $crate::abi::RC_KIND_WORKER_CLASS,
                ),
                name: $crate::abi::RcStr { ptr: $name.as_ptr(), len: $name.len() },
                run,
            }
        };
    };
}
