//! The library side of a hook: the raw event made safe, and the shim that
//! `export_hook!` writes around the author's function.

use crate::abi::guest::guarded;
use crate::abi::types::RcErrorBuf;
use crate::AppError;

use super::{ArbiterInfo, HookEvent, HookName, RcHookEvent, WorkerInfoView};

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

/// Export a server hook: `export_hook!(post_fork, my_post_fork)` where
/// `my_post_fork: fn(&HookEvent) -> Result<(), String>`, then
/// `post_fork = "mylib:post_fork"` in the config.
#[macro_export]
macro_rules! export_hook {
    ($symbol:ident, $body:expr) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(no_mangle)]
        pub static $symbol: $crate::hooks::RcHook = {
            unsafe extern "C" fn call(
                event: *const $crate::hooks::RcHookEvent,
                error: *mut $crate::abi::RcErrorBuf,
            ) -> i32 {
                let body: fn(
                    &$crate::hooks::HookEvent,
                ) -> ::std::result::Result<(), ::std::string::String> = $body;
                // SAFETY: forwarded from the host.
                unsafe { $crate::hooks::hook_shim(event, error, body) }
            }
            $crate::hooks::RcHook {
                header: $crate::abi::RcObjectHeader::new::<$crate::hooks::RcHook>(
                    $crate::abi::RC_KIND_HOOK,
                ),
                call,
            }
        };
    };
}
