//! The plugin's exported table ([`RcPythonPlugin`]) and its `extern "C"`
//! entries. Each entry catches panics and Python exceptions and reports
//! them through the host's error buffer; nothing Rust-typed crosses.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use pyo3::prelude::*;
use runicorn_app::abi::errno::{fill_error, panic_message};
use runicorn_app::abi::guest::leak_table_with;
use runicorn_app::abi::python::{
    RcLogFn, RcPythonPlugin, RcSinkFn, RC_KIND_PYTHON_PLUGIN, RC_NOT_FOUND,
};
use runicorn_app::abi::{
    RcApp, RcErrorBuf, RcObjectHeader, RcStr, RC_CAP_BLOCKS_THREAD, RC_CAP_THREAD_SAFE, RC_ERROR,
    RC_OK, RC_PANIC,
};

use crate::interp::{self, StartOptions};
use crate::support;
use crate::wsgi::WsgiApp;

/// Names the file in which a worker lists its imported modules' files for
/// the `--reload` watcher (set by the master when `--reload` is on).
const RELOAD_MODULES_ENV: &str = "RUNICORN_RELOAD_MODULES";

/// The table the host looks up by name.
#[no_mangle]
pub static runicorn_python_plugin: RcPythonPlugin = RcPythonPlugin {
    header: RcObjectHeader::new::<RcPythonPlugin>(RC_KIND_PYTHON_PLUGIN),
    init,
    load_app,
    load_config,
    call_hook,
    before_fork,
    after_fork_parent,
    after_fork_child,
};

/// An entry's failure: its status and message.
struct Failure(i32, String);

impl Failure {
    fn error(message: impl Into<String>) -> Self {
        Failure(RC_ERROR, message.into())
    }
}

/// Run an entry body: its failure or panic goes into `error`.
///
/// # Safety
/// `error` is null or a valid host-owned buffer.
unsafe fn guarded(error: *mut RcErrorBuf, body: impl FnOnce() -> Result<(), Failure>) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => RC_OK,
        Ok(Err(Failure(status, message))) => {
            // SAFETY: forwarded from the caller.
            unsafe { fill_error(error, &message) };
            status
        }
        Err(payload) => {
            // SAFETY: forwarded from the caller.
            unsafe { fill_error(error, &panic_message(&*payload)) };
            RC_PANIC
        }
    }
}

/// The text of a borrowed string argument.
///
/// # Safety
/// `text` borrows bytes valid for the call.
unsafe fn text_of(text: RcStr) -> String {
    // SAFETY: forwarded from the caller.
    String::from_utf8_lossy(unsafe { text.as_bytes() }).into_owned()
}

/// The options `init` takes (JSON).
#[derive(Debug, Default)]
struct InitOptions {
    virtual_env: Option<PathBuf>,
    pythonpath: Vec<String>,
    cwd: Option<String>,
    argv: Vec<String>,
    settings: Option<serde_json::Value>,
}

fn parse_options(text: &str) -> Result<InitOptions, Failure> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| Failure::error(format!("bad plugin options: {err}")))?;
    let strings = |key: &str| -> Vec<String> {
        value
            .get(key)
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(InitOptions {
        virtual_env: value
            .get("virtual_env")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        pythonpath: strings("pythonpath"),
        cwd: value.get("cwd").and_then(|v| v.as_str()).map(str::to_owned),
        argv: strings("argv"),
        settings: value.get("settings").cloned(),
    })
}

/// The host's log function as the plugin's log sink.
fn log_sink(log: RcLogFn) -> support::LogSink {
    Box::new(move |level, message| {
        // SAFETY: the host's log function lives for the rest of the process
        // (it is in the binary); the message is borrowed for the call.
        unsafe { log(level, RcStr::new(message.as_bytes())) }
    })
}

/// # Safety
/// The host calls it through the plugin table with valid strings, out
/// slot and error buffer (the table's rule).
unsafe extern "C" fn init(options: RcStr, log: RcLogFn, error: *mut RcErrorBuf) -> i32 {
    // SAFETY: the host passes a valid error buffer and options.
    unsafe {
        guarded(error, || {
            let options = parse_options(&text_of(options))?;
            support::set_log(log_sink(log));
            if let Some(settings) = options.settings.clone() {
                support::set_settings(settings);
            }
            interp::start(&StartOptions {
                virtual_env: options.virtual_env.clone(),
            })
            .map_err(Failure::error)?;
            interp::pin_thread();
            Python::attach(|py| -> PyResult<()> {
                let module = support::module(py)?;
                if let Some(settings) = &options.settings {
                    module.call_method1("set_settings", (settings.to_string(),))?;
                }
                let cwd = options.cwd.clone().unwrap_or_else(|| ".".to_owned());
                module.call_method1("add_paths", (options.pythonpath.clone(), cwd))?;
                if !options.argv.is_empty() {
                    py.import("sys")?.setattr("argv", options.argv.clone())?;
                }
                Ok(())
            })
            .map_err(|err| Python::attach(|py| Failure::error(support::traceback_text(py, &err))))
        })
    }
}

/// Run `body` attached to the interpreter with the `_runicorn` module:
/// the preamble every entry after `init` shares.
fn with_support<R>(
    body: impl FnOnce(Python<'_>, &Bound<'_, PyModule>) -> Result<R, Failure>,
) -> Result<R, Failure> {
    if !interp::started() {
        return Err(Failure::error(
            "the interpreter is not started (call init first)",
        ));
    }
    interp::pin_thread();
    Python::attach(|py| {
        let module =
            support::module(py).map_err(|err| Failure::error(support::traceback_text(py, &err)))?;
        body(py, module)
    })
}

/// # Safety
/// The host calls it through the plugin table with valid strings, out
/// slot and error buffer (the table's rule).
unsafe extern "C" fn load_app(spec: RcStr, out: *mut *const RcApp, error: *mut RcErrorBuf) -> i32 {
    // SAFETY: the host passes a valid error buffer, spec and out slot.
    unsafe {
        guarded(error, || {
            if out.is_null() {
                return Err(Failure::error("null out slot"));
            }
            let spec = text_of(spec);
            let app = with_support(|py, module| -> Result<WsgiApp, Failure> {
                let app = match module.call_method1("import_app", (spec.as_str(),)) {
                    Ok(callable) => WsgiApp::new(py, &spec, callable)
                        .map_err(|err| Failure::error(support::traceback_text(py, &err)))?,
                    Err(err) => return Err(import_failure(py, module, &spec, &err)),
                };
                // `--reload` watches the files of every module imported now.
                if let Some(list) = std::env::var_os(RELOAD_MODULES_ENV) {
                    let list = list.to_string_lossy().into_owned();
                    if let Err(err) = module.call_method1("write_module_files", (list,)) {
                        support::log(
                            support::WARNING,
                            &format!("--reload: cannot list the imported modules: {err}"),
                        );
                    }
                }
                Ok(app)
            })?;
            // Thread-safe (the GIL serialises Python, and I/O releases it),
            // and blocking: Python's own waits block the OS thread.
            *out = leak_table_with(Box::new(app), RC_CAP_THREAD_SAFE | RC_CAP_BLOCKS_THREAD);
            Ok(())
        })
    }
}

/// The failure for an exception raised while importing `spec`: the module
/// missing (with `sys.path`), Gunicorn's one-line app errors, or the
/// traceback of an exception the app's import raised.
fn import_failure(
    py: Python<'_>,
    module: &Bound<'_, PyModule>,
    spec: &str,
    err: &PyErr,
) -> Failure {
    let is = |name: &str| {
        module
            .getattr(name)
            .ok()
            .and_then(|class| err.get_type(py).is_subclass(&class).ok())
            .unwrap_or(false)
    };
    let message = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if is("ModuleMissing") {
        let path: Vec<String> = py
            .import("sys")
            .and_then(|sys| sys.getattr("path"))
            .and_then(|path| path.extract())
            .unwrap_or_default();
        let path: Vec<String> = path.into_iter().filter(|p| !p.is_empty()).collect();
        return Failure(
            RC_NOT_FOUND,
            format!("{message}; looked for a Python module on sys.path {path:?}"),
        );
    }
    if is("AppImportError") {
        return Failure::error(message);
    }
    Failure::error(format!(
        "Exception while loading the app '{spec}':\n{}",
        support::traceback_text(py, err)
    ))
}

/// # Safety
/// The host calls it through the plugin table with valid strings, out
/// slot and error buffer (the table's rule).
unsafe extern "C" fn load_config(
    path: RcStr,
    sink: RcSinkFn,
    ctx: *mut c_void,
    error: *mut RcErrorBuf,
) -> i32 {
    // SAFETY: the host passes a valid error buffer, path, sink and context.
    unsafe {
        guarded(error, || {
            let path = text_of(path);
            let json = with_support(|py, module| -> Result<String, Failure> {
                module
                    .call_method1("load_config", (path.as_str(),))
                    .and_then(|json| json.extract::<String>())
                    .map_err(|err| {
                        Failure::error(format!(
                            "Failed to read config file: {path}\n{}",
                            support::traceback_text(py, &err)
                        ))
                    })
            })?;
            // SAFETY: the host's sink and context are valid for this call.
            sink(ctx, RcStr::new(json.as_bytes()));
            Ok(())
        })
    }
}

/// # Safety
/// The host calls it through the plugin table with valid strings, out
/// slot and error buffer (the table's rule).
unsafe extern "C" fn call_hook(name: RcStr, context: RcStr, error: *mut RcErrorBuf) -> i32 {
    // SAFETY: the host passes a valid error buffer and strings.
    unsafe {
        guarded(error, || {
            if !interp::started() {
                return Ok(());
            }
            let (name, context) = (text_of(name), text_of(context));
            with_support(|py, module| {
                module
                    .call_method1("call_hook", (name.as_str(), context.as_str()))
                    .map(drop)
                    .map_err(|err| Failure::error(support::traceback_text(py, &err)))
            })
        })
    }
}

/// # Safety
/// No precondition beyond the table's: the host calls it around a fork,
/// from the master's only thread.
unsafe extern "C" fn before_fork() {
    let _ = catch_unwind(interp::before_fork);
}

/// # Safety
/// No precondition beyond the table's: the host calls it around a fork,
/// from the master's only thread.
unsafe extern "C" fn after_fork_parent() {
    let _ = catch_unwind(interp::after_fork_parent);
}

/// # Safety
/// No precondition beyond the table's: the host calls it around a fork,
/// from the master's only thread.
unsafe extern "C" fn after_fork_child() {
    let _ = catch_unwind(interp::after_fork_child);
}
