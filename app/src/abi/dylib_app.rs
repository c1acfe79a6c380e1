//! The host side of a library app: an [`RcApp`] table wrapped as an
//! `Arc<dyn App>`, so every worker class serves it through the same
//! `App::call` as a built-in app.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::time::Duration;

use super::errno::ErrorBuffer;
use super::host_services::lend_call;
use super::types::{
    RcApp, RcStr, RcWorkerInfo, RC_CAP_BLOCKS_THREAD, RC_CAP_THREAD_SAFE, RC_ERROR, RC_OK, RC_PANIC,
};
use crate::{App, AppError, Call, Host, WorkerInfo};

/// An app loaded from a library. The library is never unloaded, so the
/// table is `'static`.
#[derive(Debug)]
pub struct DylibApp {
    table: &'static RcApp,
    info: OnceLock<WorkerInfo>,
    /// Held around every entry when the app does not declare itself
    /// thread-safe, so a C app written for one thread stays correct under
    /// `gthread` and `green`.
    serial: Option<Mutex<()>>,
}

impl DylibApp {
    /// Wrap a checked table.
    pub fn new(table: &'static RcApp) -> Self {
        let thread_safe = table.capabilities & RC_CAP_THREAD_SAFE != 0;
        DylibApp {
            table,
            info: OnceLock::new(),
            serial: (!thread_safe).then(|| Mutex::new(())),
        }
    }

    /// The capabilities the library declared.
    pub fn capabilities(&self) -> u64 {
        self.table.capabilities
    }

    /// Run `body` holding the serial lock, if any, blocking the thread.
    /// Only for `init_worker` and `shutdown_worker`, which run alone.
    fn serialized<R>(&self, body: impl FnOnce() -> R) -> R {
        match &self.serial {
            Some(lock) => {
                let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
                body()
            }
            None => body(),
        }
    }

    /// Take the serial lock, if any, waiting for it the worker class's
    /// way: a request that holds it may be parked in a host call (a yielded
    /// coroutine under `green`), so blocking the thread on the lock could
    /// deadlock; instead the waiter sleeps through the host.
    fn lock_for_request(&self, host: &dyn Host) -> Option<MutexGuard<'_, ()>> {
        let lock = self.serial.as_ref()?;
        let mut pause = Duration::from_micros(200);
        loop {
            match lock.try_lock() {
                Ok(guard) => return Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {
                    host.sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
            }
        }
    }
}

/// The `AppError` for an entry's status code.
pub(crate) fn status_result(status: i32, error: &ErrorBuffer, what: &str) -> Result<(), AppError> {
    match status {
        RC_OK => Ok(()),
        RC_PANIC => Err(AppError {
            message: format!("{what} panicked: {}", error.message("no message")),
            panicked: true,
        }),
        _ => Err(AppError::new(format!(
            "{what} failed: {}",
            error.message("no message")
        ))),
    }
}

impl App for DylibApp {
    fn blocks_thread(&self) -> bool {
        self.table.capabilities & RC_CAP_BLOCKS_THREAD != 0
    }

    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let mut error = ErrorBuffer::new();
        let _serial = self.lock_for_request(call.host());
        let status = lend_call(call, self.info.get(), |request, table, ctx| {
            let Some(handle) = self.table.handle else {
                return RC_ERROR;
            };
            // SAFETY: the table was checked at load; the request, host
            // table, context and error buffer outlive this call, and the
            // library is never unloaded.
            unsafe { handle(self.table.data, request, table, ctx, error.as_raw()) }
        });
        status_result(status, &error, "request handler")
    }

    fn init_worker(&self, info: &WorkerInfo) -> Result<(), AppError> {
        let info = self.info.get_or_init(|| info.clone());
        let raw = RcWorkerInfo {
            pid: info.pid,
            age: info.age,
            worker_class: RcStr::new(info.worker_class.as_bytes()),
        };
        let mut error = ErrorBuffer::new();
        let status = self.serialized(|| {
            let Some(init_worker) = self.table.init_worker else {
                return RC_OK;
            };
            // SAFETY: as in `call`; `raw` borrows `info`, alive for the call.
            unsafe { init_worker(self.table.data, &raw, error.as_raw()) }
        });
        status_result(status, &error, "the app")
    }

    fn shutdown_worker(&self) {
        self.serialized(|| {
            if let Some(shutdown_worker) = self.table.shutdown_worker {
                // SAFETY: the table was checked at load, `data` is its own, the
                // library is never unloaded, and `serialized` keeps a
                // non-thread-safe app to one call at a time.
                unsafe { shutdown_worker(self.table.data) }
            }
        });
    }
}
