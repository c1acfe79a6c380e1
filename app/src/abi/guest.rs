//! The library side of an app: generic C shims over the safe [`App`] trait.
//! `export_app!` and `export_factory!` instantiate them; authors never write
//! `extern "C"` themselves. Every shim catches panics: a panicking request
//! returns [`RC_PANIC`] and the host recycles the worker after it.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::errno::{fill_error, panic_message};
use super::foreign_call::ForeignCall;
use super::types::{
    RcApp, RcCallCtx, RcErrorBuf, RcField, RcHostTable, RcObjectHeader, RcRequest, RcWorkerInfo,
    RC_CAP_THREAD_SAFE, RC_ERROR, RC_KIND_APP, RC_OK, RC_PANIC,
};
use crate::{App, AppError, WorkerInfo};

/// Where a shim finds its app: a lazily built static (`export_app!`) or a
/// leaked box made by a factory.
pub trait AppSource: 'static {
    /// The app behind the table's `data` pointer.
    fn app(data: *const c_void) -> &'static dyn App;
}

/// The source of apps made by factories: `data` is a leaked `Box<dyn App>`.
#[derive(Debug)]
pub struct BoxedApp;

impl AppSource for BoxedApp {
    fn app(data: *const c_void) -> &'static dyn App {
        // SAFETY: `leak_table` made `data` from a leaked `Box<Box<dyn App>>`,
        // and it is never freed.
        unsafe { &**data.cast::<Box<dyn App>>() }
    }
}

/// Run an entry body, turning errors and panics into status codes.
///
/// # Safety
/// `error` is null or a valid caller-owned buffer.
pub unsafe fn guarded(error: *mut RcErrorBuf, body: impl FnOnce() -> Result<(), AppError>) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => RC_OK,
        Ok(Err(err)) => {
            // SAFETY: forwarded from the caller.
            unsafe { fill_error(error, &err.message) };
            if err.panicked {
                RC_PANIC
            } else {
                RC_ERROR
            }
        }
        Err(payload) => {
            // SAFETY: forwarded from the caller.
            unsafe { fill_error(error, &panic_message(&*payload)) };
            RC_PANIC
        }
    }
}

/// The `init_worker` shim.
///
/// # Safety
/// Called by the host with a valid worker info and error buffer.
pub unsafe extern "C" fn init_worker<S: AppSource>(
    data: *const c_void,
    info: *const RcWorkerInfo,
    error: *mut RcErrorBuf,
) -> i32 {
    // SAFETY: the host passes a valid error buffer.
    unsafe {
        guarded(error, || {
            // SAFETY: the host passes a valid info (or null).
            let info = match info.as_ref() {
                Some(raw) => WorkerInfo {
                    pid: raw.pid,
                    age: raw.age,
                    worker_class: String::from_utf8_lossy(raw.worker_class.as_bytes()).into_owned(),
                },
                None => WorkerInfo {
                    pid: std::process::id(),
                    age: 0,
                    worker_class: String::new(),
                },
            };
            S::app(data).init_worker(&info)
        })
    }
}

/// The `handle` shim.
///
/// # Safety
/// Called by the host with a valid request, host table and context.
pub unsafe extern "C" fn handle<S: AppSource>(
    data: *const c_void,
    request: *const RcRequest,
    table: *const RcHostTable,
    ctx: *mut RcCallCtx,
    error: *mut RcErrorBuf,
) -> i32 {
    // SAFETY: the host passes a valid error buffer.
    unsafe {
        guarded(error, || {
            let (Some(request), false) = (request.as_ref(), table.is_null()) else {
                return Err(AppError::new("host passed a null request or table"));
            };
            // SAFETY: the host keeps the request, table and context valid for
            // this call, and `call` does not outlive it.
            let mut call = ForeignCall::new(request, table, ctx);
            S::app(data).call(&mut call)
        })
    }
}

/// The `shutdown_worker` shim.
///
/// # Safety
/// Called by the host once per worker.
pub unsafe extern "C" fn shutdown_worker<S: AppSource>(data: *const c_void) {
    let _ = catch_unwind(|| S::app(data).shutdown_worker());
}

/// The table of an app whose data is `data`, for a `static` initializer.
pub const fn app_table<S: AppSource>(data: *const c_void) -> RcApp {
    RcApp {
        header: RcObjectHeader::new::<RcApp>(RC_KIND_APP),
        capabilities: RC_CAP_THREAD_SAFE,
        data,
        init_worker: Some(init_worker::<S>),
        handle: Some(handle::<S>),
        poll: None,
        shutdown_worker: Some(shutdown_worker::<S>),
    }
}

/// Leak an app and a table for it: the library owns both for the rest of
/// the process (libraries are never unloaded, tables never freed).
pub fn leak_table(app: Box<dyn App>) -> &'static RcApp {
    leak_table_with(app, RC_CAP_THREAD_SAFE)
}

/// [`leak_table`] with the given `RC_CAP_*` capability bits.
pub fn leak_table_with(app: Box<dyn App>, capabilities: u64) -> &'static RcApp {
    let data: *const Box<dyn App> = Box::leak(Box::new(app));
    let mut table = app_table::<BoxedApp>(data.cast());
    table.capabilities = capabilities;
    Box::leak(Box::new(table))
}

/// The string arguments of a factory call, `create_app(key=value, ...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactoryArgs {
    /// The pairs in the order written.
    pub pairs: Vec<(String, String)>,
}

impl FactoryArgs {
    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// Copy borrowed fields.
    ///
    /// # Safety
    /// `fields` points to `len` valid fields (or is null with `len` 0).
    pub unsafe fn from_raw(fields: *const RcField, len: usize) -> Self {
        if fields.is_null() || len == 0 {
            return FactoryArgs::default();
        }
        // SAFETY: the caller promises `len` valid fields.
        let fields = unsafe { std::slice::from_raw_parts(fields, len) };
        let pairs = fields
            .iter()
            .map(|field| {
                // SAFETY: each field borrows host memory valid for this call.
                let (name, value) = unsafe { (field.name.as_bytes(), field.value.as_bytes()) };
                (
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                )
            })
            .collect();
        FactoryArgs { pairs }
    }
}

/// A factory's constructor, as `export_factory!` wraps it.
pub trait FactorySource: 'static {
    /// Make the app from the arguments, or say why not.
    fn create(args: &FactoryArgs) -> Result<Box<dyn App>, String>;
}

/// The factory `create` shim.
///
/// # Safety
/// Called by the host with valid fields, out slot and error buffer.
pub unsafe extern "C" fn factory_create<F: FactorySource>(
    fields: *const RcField,
    len: usize,
    out: *mut *const RcApp,
    error: *mut RcErrorBuf,
) -> i32 {
    // SAFETY: the host passes a valid error buffer.
    unsafe {
        guarded(error, || {
            if out.is_null() {
                return Err(AppError::new("host passed a null out slot"));
            }
            // SAFETY: the host passes `len` valid fields.
            let args = FactoryArgs::from_raw(fields, len);
            let app = F::create(&args).map_err(AppError::new)?;
            // SAFETY: checked non-null above.
            *out = leak_table(app);
            Ok(())
        })
    }
}
