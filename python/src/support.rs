//! The embedded Python module `_runicorn` (`runicorn_support.py`) and the
//! plugin's process-wide state: the options it was started with and the
//! host's log function.

use std::sync::{Mutex, OnceLock, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

/// Where the host's log lines go: `log(level, message)`, levels 0..4
/// (debug, info, warning, error, critical).
pub type LogSink = Box<dyn Fn(u32, &str) + Send + Sync>;

static LOG: OnceLock<LogSink> = OnceLock::new();
static SETTINGS: Mutex<Option<serde_json::Value>> = Mutex::new(None);
static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Log level: debug.
pub const DEBUG: u32 = 0;
/// Log level: info.
pub const INFO: u32 = 1;
/// Log level: warning.
pub const WARNING: u32 = 2;
/// Log level: error.
pub const ERROR: u32 = 3;
/// Log level: critical.
pub const CRITICAL: u32 = 4;

/// Set the host's log function (the first one set stays).
pub fn set_log(sink: LogSink) {
    let _ = LOG.set(sink);
}

/// Write one line to the error log (stderr before a sink is set).
pub fn log(level: u32, message: &str) {
    match LOG.get() {
        Some(sink) => sink(level, message),
        None => eprintln!("{message}"),
    }
}

/// Remember the settings in force (JSON object, Gunicorn's names).
pub fn set_settings(settings: serde_json::Value) {
    *SETTINGS.lock().unwrap_or_else(PoisonError::into_inner) = Some(settings);
}

/// One setting's value.
pub fn setting(name: &str) -> Option<serde_json::Value> {
    SETTINGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|settings| settings.get(name).cloned())
}

#[pyfunction]
fn host_log(level: u32, message: &str) {
    log(level, message);
}

/// The `_runicorn` module, imported once per process.
pub fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    let module = MODULE.get_or_try_init(py, || -> PyResult<Py<PyModule>> {
        let module = PyModule::from_code(
            py,
            c_str(include_str!("runicorn_support.py")).as_c_str(),
            c"runicorn_support.py",
            c"_runicorn",
        )?;
        module.call_method1("set_log", (wrap_pyfunction!(host_log, &module)?,))?;
        py.import("sys")?
            .getattr("modules")?
            .set_item("_runicorn", &module)?;
        Ok(module.unbind())
    })?;
    Ok(module.bind(py))
}

fn c_str(text: &str) -> std::ffi::CString {
    std::ffi::CString::new(text).unwrap_or_default()
}

/// The text of a Python exception with its traceback, as Python prints it.
pub fn traceback_text(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_owned(),
        Err(_) => err.to_string(),
    }
}

/// `ExceptionType: message`, without the traceback.
pub fn exception_line(py: Python<'_>, err: &PyErr) -> String {
    let name = err
        .get_type(py)
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "Exception".to_owned());
    let message = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    }
}
