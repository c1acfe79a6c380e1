//! A WSGI callable served as a runicorn [`App`]: PEP 3333 as Gunicorn
//! fills it. One request: attach to the interpreter (this thread's pinned
//! thread state), build `environ`, call the app, send what it returns
//! (lists, generators, `wsgi.file_wrapper` through sendfile), always call
//! `close()`. The GIL is released around every read, write and sendfile,
//! so a slow client never holds it.

mod environ;
mod input;
mod response;

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PySequence, PyString, PyTuple};
use runicorn_app::{App, AppError, Call, WorkerInfo};
use runicorn_http::ForwardedPolicy;

pub use environ::{latin1, unquote_to_wsgi_str};
pub use input::Input;
pub use response::{EarlyHints, ResponseState, StartResponse};

use crate::callref::{dup_fd, CallRef};
use crate::{interp, support};

/// Interned environ keys and constant values, made once.
#[derive(Debug)]
pub struct Keys {
    request_method: Py<PyString>,
    raw_uri: Py<PyString>,
    server_protocol: Py<PyString>,
    query_string: Py<PyString>,
    content_type: Py<PyString>,
    content_length: Py<PyString>,
    url_scheme: Py<PyString>,
    remote_addr: Py<PyString>,
    remote_port: Py<PyString>,
    server_name: Py<PyString>,
    server_port: Py<PyString>,
    path_info: Py<PyString>,
    script_name: Py<PyString>,
    input: Py<PyString>,
    early_hints: Py<PyString>,
    get: Py<PyString>,
    post: Py<PyString>,
    head_method: Py<PyString>,
    http10: Py<PyString>,
    http11: Py<PyString>,
    http: Py<PyString>,
    /// `HTTP_*` keys of common header names.
    headers: environ::HeaderKeys,
}

impl Keys {
    fn new(py: Python<'_>) -> Self {
        let key = |text: &str| PyString::intern(py, text).unbind();
        Keys {
            request_method: key("REQUEST_METHOD"),
            raw_uri: key("RAW_URI"),
            server_protocol: key("SERVER_PROTOCOL"),
            query_string: key("QUERY_STRING"),
            content_type: key("CONTENT_TYPE"),
            content_length: key("CONTENT_LENGTH"),
            url_scheme: key("wsgi.url_scheme"),
            remote_addr: key("REMOTE_ADDR"),
            remote_port: key("REMOTE_PORT"),
            server_name: key("SERVER_NAME"),
            server_port: key("SERVER_PORT"),
            path_info: key("PATH_INFO"),
            script_name: key("SCRIPT_NAME"),
            input: key("wsgi.input"),
            early_hints: key("wsgi.early_hints"),
            get: key("GET"),
            post: key("POST"),
            head_method: key("HEAD"),
            http10: key("HTTP/1.0"),
            http11: key("HTTP/1.1"),
            http: key("http"),
            headers: environ::HeaderKeys::new(py),
        }
    }
}

/// A WSGI app.
pub struct WsgiApp {
    /// What the operator named.
    spec: String,
    callable: Py<PyAny>,
    /// The environ entries that are the same for every request.
    base: Py<PyDict>,
    file_wrapper: Py<PyAny>,
    keys: Keys,
    /// `SCRIPT_NAME` from the environment, as Gunicorn reads it.
    script_name: Option<String>,
    /// `forwarded_allow_ips`: peers trusted with forwarder headers.
    forwarded: ForwardedPolicy,
    /// Header names with `_` that trusted peers may send (Gunicorn's
    /// `forwarder_headers`), uppercase.
    forwarder_headers: Vec<String>,
    /// The config file's `pre_request` / `post_request` hooks.
    request_hooks: (Option<Py<PyAny>>, Option<Py<PyAny>>),
}

impl std::fmt::Debug for WsgiApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsgiApp")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// A setting as a list of strings (a list, or Gunicorn's comma-separated text).
fn string_list(value: Option<serde_json::Value>, default: &[&str]) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .collect(),
        Some(serde_json::Value::String(text)) => text
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => default.iter().map(|s| (*s).to_owned()).collect(),
    }
}

impl WsgiApp {
    /// Wrap `callable`, the app `spec` names.
    pub fn new(py: Python<'_>, spec: &str, callable: Bound<'_, PyAny>) -> PyResult<WsgiApp> {
        let support = support::module(py)?;
        let base = PyDict::new(py);
        let workers = support::setting("workers")
            .and_then(|value| value.as_u64())
            .unwrap_or(1);
        base.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        base.set_item("wsgi.multithread", false)?;
        base.set_item("wsgi.multiprocess", workers > 1)?;
        base.set_item("wsgi.run_once", false)?;
        let file_wrapper = support.getattr("FileWrapper")?;
        base.set_item("wsgi.file_wrapper", &file_wrapper)?;
        base.set_item("wsgi.input_terminated", true)?;
        base.set_item(
            "SERVER_SOFTWARE",
            concat!("runicorn/", env!("CARGO_PKG_VERSION")),
        )?;
        base.set_item("wsgi.errors", Py::new(py, Errors)?)?;
        let (pre, post): (Option<Py<PyAny>>, Option<Py<PyAny>>) =
            support.call_method0("request_hooks")?.extract()?;
        Ok(WsgiApp {
            spec: spec.to_owned(),
            callable: callable.unbind(),
            base: base.unbind(),
            file_wrapper: file_wrapper.unbind(),
            keys: Keys::new(py),
            script_name: std::env::var("SCRIPT_NAME").ok().filter(|s| !s.is_empty()),
            forwarded: ForwardedPolicy::new(
                &string_list(
                    support::setting("forwarded_allow_ips"),
                    &["127.0.0.1", "::1"],
                ),
                &[],
            )
            .map_err(pyo3::exceptions::PyValueError::new_err)?,
            forwarder_headers: string_list(
                support::setting("forwarder_headers"),
                &["SCRIPT_NAME", "PATH_INFO"],
            )
            .into_iter()
            // Compared with the field's name upper-cased, `-` kept, as
            // Gunicorn compares them (`X-Auth_User` lists `X-AUTH_USER`).
            .map(|name| name.to_ascii_uppercase())
            .collect(),
            request_hooks: (pre, post),
        })
    }

    /// One request, with the call lent through `slot`.
    fn serve(&self, py: Python<'_>, slot: &Rc<CallRef>) -> Result<(), AppError> {
        let environ = slot
            .with_gil(|call| environ::build(py, self, call))
            .unwrap_or_else(|| Err(pyo3::exceptions::PyOSError::new_err("no request")))
            .map_err(|err| self.error(py, slot, "building the environ", &err))?;
        let state: response::Shared = Rc::new(RefCell::new(ResponseState::default()));
        let setup = (|| -> PyResult<()> {
            environ.set_item(
                self.keys.input.bind(py),
                Py::new(py, Input::new(Rc::clone(slot)))?,
            )?;
            environ.set_item(
                self.keys.early_hints.bind(py),
                Py::new(py, EarlyHints::new(Rc::clone(&state), Rc::clone(slot)))?,
            )?;
            Ok(())
        })();
        setup.map_err(|err| self.error(py, slot, "building the environ", &err))?;

        if let Some(pre) = &self.request_hooks.0 {
            self.run_request_hook(py, pre, &environ, None);
        }
        let start_response = Py::new(py, StartResponse::new(Rc::clone(&state), Rc::clone(slot)))
            .map_err(|err| self.error(py, slot, "calling the app", &err))?;
        let outcome = match self.callable.bind(py).call1((&environ, start_response)) {
            Ok(result) => {
                let sent = self.send(py, slot, &state, &result);
                let closed = close(py, &result);
                sent.and(closed)
            }
            Err(err) => Err(err),
        };
        if let Some(post) = &self.request_hooks.1 {
            self.run_request_hook(py, post, &environ, Some(&state));
        }
        outcome.map_err(|err| self.error(py, slot, "", &err))
    }

    /// Send the app's result.
    fn send(
        &self,
        py: Python<'_>,
        slot: &Rc<CallRef>,
        state: &response::Shared,
        result: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if result.is_instance(self.file_wrapper.bind(py))?
            && self.sendfile(py, slot, state, result)?
        {
            return Ok(());
        }
        // A list or tuple is the whole body: its length can be sent.
        if let Ok(list) = result.cast::<PyList>() {
            return self.send_sequence(py, slot, state, list.as_sequence());
        }
        if let Ok(tuple) = result.cast::<PyTuple>() {
            return self.send_sequence(py, slot, state, tuple.as_sequence());
        }
        for item in result.try_iter()? {
            let item = item?;
            let chunk = bytes_of(&item)?;
            // A streamed body goes to the client as it is produced: written
            // and flushed with the GIL released once.
            response::write_body(py, state, slot, chunk.as_bytes(), true)?;
        }
        response::send_head(state, slot, None)
    }

    /// A list or tuple body: every item checked to be bytes and the total
    /// length sent as Content-Length (when the app gave none), then the items.
    fn send_sequence(
        &self,
        py: Python<'_>,
        slot: &Rc<CallRef>,
        state: &response::Shared,
        items: &Bound<'_, PySequence>,
    ) -> PyResult<()> {
        if items.len()? == 1 {
            // The usual `[body]`, without collecting.
            let chunk = bytes_of(&items.get_item(0)?)?;
            response::send_head(state, slot, Some(chunk.as_bytes().len() as u64))?;
            return response::write_body(py, state, slot, chunk.as_bytes(), false);
        }
        // Taken whole first: the GIL is released between writes, and the
        // length sent must be that of the items written.
        let chunks = items
            .try_iter()?
            .map(|item| bytes_of(&item?))
            .collect::<PyResult<Vec<Bound<'_, PyBytes>>>>()?;
        let total: u64 = chunks
            .iter()
            .map(|chunk| chunk.as_bytes().len() as u64)
            .sum();
        response::send_head(state, slot, Some(total))?;
        for chunk in &chunks {
            response::write_body(py, state, slot, chunk.as_bytes(), false)?;
        }
        Ok(())
    }

    /// `wsgi.file_wrapper` over a real file: sendfile from its position.
    /// False when the file has no descriptor (then it is iterated).
    fn sendfile(
        &self,
        py: Python<'_>,
        slot: &Rc<CallRef>,
        state: &response::Shared,
        wrapper: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let filelike = wrapper.getattr("filelike")?;
        let Ok(fd) = filelike
            .call_method0("fileno")
            .and_then(|fd| fd.extract::<i32>())
        else {
            return Ok(false);
        };
        let offset: u64 = filelike
            .call_method0("tell")
            .and_then(|pos| pos.extract())
            .unwrap_or(0);
        let file =
            dup_fd(fd).map_err(|err| pyo3::exceptions::PyOSError::new_err(err.to_string()))?;
        let size = file
            .metadata()
            .map_err(|err| pyo3::exceptions::PyOSError::new_err(err.to_string()))?
            .len();
        let mut count = size.saturating_sub(offset);
        let declared = {
            let state = state.borrow();
            state
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse::<u64>().ok())
        };
        if let Some(declared) = declared {
            count = count.min(declared);
        }
        response::send_head(state, slot, Some(count))?;
        slot.with(py, |call| call.sendfile(&file, offset, count))
            .map_err(|err| {
                pyo3::exceptions::PyOSError::new_err(format!("error sending the file: {err}"))
            })?;
        state.borrow_mut().written += count;
        Ok(true)
    }

    fn run_request_hook(
        &self,
        py: Python<'_>,
        hook: &Py<PyAny>,
        environ: &Bound<'_, PyDict>,
        state: Option<&response::Shared>,
    ) {
        let result = (|| -> PyResult<()> {
            let support = support::module(py)?;
            let worker = support.getattr("Worker")?.call1((PyDict::new(py),))?;
            let req = support.getattr("Request")?.call1((environ,))?;
            match state {
                None => {
                    hook.bind(py).call1((worker, req))?;
                }
                Some(state) => {
                    let (status, headers, sent) = {
                        let state = state.borrow();
                        let headers: Vec<(String, String)> = state
                            .headers
                            .iter()
                            .map(|(name, value)| (name.clone(), latin1(value)))
                            .collect();
                        (state.status.clone(), headers, state.written)
                    };
                    let resp = support
                        .getattr("Response")?
                        .call1((status, headers, sent))?;
                    hook.bind(py).call1((worker, req, environ, resp))?;
                }
            }
            Ok(())
        })();
        if let Err(err) = result {
            let which = if state.is_none() {
                "pre_request"
            } else {
                "post_request"
            };
            support::log(
                support::ERROR,
                &format!(
                    "Exception in {which} hook\n{}",
                    support::traceback_text(py, &err)
                ),
            );
        }
    }

    /// The app error for a Python exception: the traceback goes to the
    /// error log whole, here (an error message crossing the ABI is short),
    /// and the error carries the exception's line for the host's
    /// `Error handling request` line.
    /// When the connection failed under the app (a client gone mid-body),
    /// the traceback is logged at debug, as Gunicorn logs a client gone.
    fn error(&self, py: Python<'_>, slot: &CallRef, doing: &str, err: &PyErr) -> AppError {
        let level = if slot.client_failed() {
            support::DEBUG
        } else {
            support::ERROR
        };
        support::log(level, &support::traceback_text(py, err));
        let line = support::exception_line(py, err);
        if doing.is_empty() {
            AppError::new(line)
        } else {
            AppError::new(format!("{doing}: {line}"))
        }
    }
}

fn bytes_of<'py>(item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().cloned().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the app's response must be an iterable of bytes, not {}",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

/// PEP 3333: `close()` is called whenever the result has one, also when
/// sending failed.
fn close(py: Python<'_>, result: &Bound<'_, PyAny>) -> PyResult<()> {
    let _ = py;
    // A list or a tuple (exactly those types) has no `close`: asking
    // would raise and discard an AttributeError on every request.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if result.hasattr("close")? {
        result.call_method0("close")?;
    }
    Ok(())
}

impl App for WsgiApp {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        interp::pin_thread();
        Python::attach(|py| {
            let slot = Rc::new(CallRef::default());
            CallRef::lend(&slot, call, || self.serve(py, &slot))
        })
    }

    fn init_worker(&self, info: &WorkerInfo) -> Result<(), AppError> {
        // gthread, green and async run requests of one worker concurrently.
        let multithread = matches!(info.worker_class.as_str(), "gthread" | "green" | "async");
        interp::pin_thread();
        Python::attach(|py| self.base.bind(py).set_item("wsgi.multithread", multithread))
            .map_err(|err| AppError::new(format!("cannot set wsgi.multithread: {err}")))
    }
}

/// `wsgi.errors`: text written to it goes to the error log, a line at a time.
#[pyclass(module = "runicorn")]
#[derive(Debug)]
pub struct Errors;

#[pymethods]
impl Errors {
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let text = match data.cast::<PyBytes>() {
            Ok(bytes) => String::from_utf8_lossy(bytes.as_bytes()).into_owned(),
            Err(_) => data.str()?.to_string(),
        };
        for line in text.lines().filter(|line| !line.is_empty()) {
            support::log(support::ERROR, line);
        }
        Ok(text.len())
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    fn flush(&self) {}
}
