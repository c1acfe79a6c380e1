//! The C ABI of server hooks (`crate::hooks` is the safe side): the
//! `#[repr(C)]` event and views a hook receives, the exported [`RcHook`]
//! table, the host's call across, and the library side's shim that
//! `export_hook!` writes around the author's function.

use crate::abi::errno::ErrorBuffer;
use crate::abi::guest::guarded;
use crate::abi::types::{RcErrorBuf, RcField, RcObjectHeader, RcRequest, RcStr};
use crate::hooks::{ArbiterInfo, HookEvent, HookName, WorkerInfoView};
use crate::{AppError, Version};

/// What a hook sees of the arbiter.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RcArbiterView {
    /// The master's pid.
    pub pid: u32,
    /// The target number of workers.
    pub num_workers: u32,
    /// The worker class name.
    pub worker_class: RcStr,
    /// The app spec.
    pub app: RcStr,
}

/// What a hook sees of a worker.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RcWorkerView {
    /// The worker's pid (0 in `pre_fork`).
    pub pid: u32,
    /// Its exit status (`child_exit`, `worker_exit`), or -1.
    pub exit_status: i32,
    /// Its spawn order.
    pub age: u64,
}

/// One hook call. Pointers are null when the view does not apply.
#[repr(C)]
#[derive(Debug)]
pub struct RcHookEvent {
    /// `size_of::<RcHookEvent>()`.
    pub struct_size: usize,
    /// The `HookName` as a number (1..=14).
    pub hook: u32,
    /// The response status (`post_request`), else 0.
    pub status: u32,
    /// Gunicorn's hook name.
    pub name: RcStr,
    /// The arbiter, for master-side hooks and `post_fork`/`worker_exit`.
    pub arbiter: *const RcArbiterView,
    /// The worker, for worker hooks, `pre_fork` and `child_exit`.
    pub worker: *const RcWorkerView,
    /// The request, for `pre_request` and `post_request`.
    pub request: *const RcRequest,
    /// `nworkers_changed`: the new count.
    pub new_value: u64,
    /// `nworkers_changed`: the old count, or -1 at start.
    pub old_value: i64,
}

/// An exported hook.
#[repr(C)]
#[derive(Debug)]
pub struct RcHook {
    /// Magic, version, kind `RC_KIND_HOOK`, size.
    pub header: RcObjectHeader,
    /// The hook function.
    pub call: unsafe extern "C" fn(*const RcHookEvent, *mut RcErrorBuf) -> i32,
}

/// Call the hook `table` (loaded from `spec`) with `event`.
pub(crate) fn call(table: &'static RcHook, event: &HookEvent, spec: &str) -> Result<(), AppError> {
    let arbiter = event.arbiter.as_ref().map(|info| RcArbiterView {
        pid: info.pid,
        num_workers: info.num_workers,
        worker_class: RcStr::new(info.worker_class.as_bytes()),
        app: RcStr::new(info.app.as_bytes()),
    });
    let worker = event.worker.map(|info| RcWorkerView {
        pid: info.pid,
        exit_status: info.exit_status.unwrap_or(-1),
        age: info.age,
    });
    let fields: Vec<RcField> = event
        .request
        .iter()
        .flat_map(|head| head.headers.iter())
        .map(|field| RcField {
            name: RcStr::new(field.name.as_bytes()),
            value: RcStr::new(&field.value),
        })
        .collect();
    let request = event.request.as_ref().map(|head| RcRequest {
        method: RcStr::new(head.method.as_bytes()),
        target: RcStr::new(head.target.as_bytes()),
        version: if head.version == Version::Http10 {
            10
        } else {
            11
        },
        headers: fields.as_ptr(),
        headers_len: fields.len(),
        peer: RcStr::EMPTY,
    });
    let name = event.hook.as_str();
    let raw = RcHookEvent {
        struct_size: size_of::<RcHookEvent>(),
        hook: event.hook as u32,
        status: u32::from(event.status),
        name: RcStr::new(name.as_bytes()),
        arbiter: arbiter
            .as_ref()
            .map_or(std::ptr::null(), |view| view as *const RcArbiterView),
        worker: worker
            .as_ref()
            .map_or(std::ptr::null(), |view| view as *const RcWorkerView),
        request: request
            .as_ref()
            .map_or(std::ptr::null(), |view| view as *const RcRequest),
        new_value: event.new_value,
        old_value: event
            .old_value
            .map_or(-1, |old| i64::try_from(old).unwrap_or(i64::MAX)),
    };
    let mut error = ErrorBuffer::new();
    // SAFETY: the table was checked at load; the event and its views
    // outlive the call; the library is never unloaded.
    let status = unsafe { (table.call)(&raw, error.as_raw()) };
    crate::abi::dylib_app::status_result(status, &error, &format!("hook {} ({})", event.hook, spec))
}

/// Convert a raw event into the safe one.
///
/// # Safety
/// `raw` and its views are valid for this call.
pub unsafe fn event_from_raw(raw: &RcHookEvent) -> Option<HookEvent> {
    let hook = HookName::from_raw(raw.hook)?;
    // SAFETY: the host keeps every view valid during the call.
    unsafe {
        Some(HookEvent {
            hook,
            arbiter: raw.arbiter.as_ref().map(|view| ArbiterInfo {
                pid: view.pid,
                num_workers: view.num_workers,
                worker_class: String::from_utf8_lossy(view.worker_class.as_bytes()).into_owned(),
                app: String::from_utf8_lossy(view.app.as_bytes()).into_owned(),
            }),
            worker: raw.worker.as_ref().map(|view| WorkerInfoView {
                pid: view.pid,
                age: view.age,
                exit_status: (view.exit_status >= 0).then_some(view.exit_status),
            }),
            request: raw
                .request
                .as_ref()
                .map(|request| crate::abi::foreign_call::request_head(request).0),
            status: u16::try_from(raw.status).unwrap_or(0),
            new_value: raw.new_value,
            old_value: u64::try_from(raw.old_value).ok(),
        })
    }
}

/// The body of a hook entry written by `export_hook!`.
///
/// # Safety
/// Called by the host with a valid event and error buffer.
pub unsafe fn hook_shim(
    event: *const RcHookEvent,
    error: *mut RcErrorBuf,
    body: fn(&HookEvent) -> Result<(), String>,
) -> i32 {
    // SAFETY: forwarded from the host.
    unsafe {
        guarded(error, || {
            let Some(event) = event.as_ref().and_then(|raw| event_from_raw(raw)) else {
                return Err(AppError::new("host passed an unknown hook event"));
            };
            body(&event).map_err(AppError::new)
        })
    }
}
