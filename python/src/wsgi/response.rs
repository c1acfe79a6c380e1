//! PEP 3333's response side: `start_response` (with `exc_info`), the
//! `write` callable, and the state they share with the response loop.
//! Headers are held until the first non-empty body bytes (or the end), as
//! the PEP asks, so an app may still replace them through `exc_info`.

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::callref::CallRef;

/// Gunicorn drops these from the app's headers (hop-by-hop: the server owns
/// the connection).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// What `start_response` set, and whether it went out.
#[derive(Debug, Default)]
pub struct ResponseState {
    /// The status code, once `start_response` ran.
    pub code: Option<u16>,
    /// The status line as the app gave it (`"200 OK"`).
    pub status: String,
    /// The header fields to send, hop-by-hop ones removed.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Whether the app gave a Content-Length.
    pub has_length: bool,
    /// Whether the head was handed to the connection.
    pub sent: bool,
    /// Body bytes written.
    pub written: u64,
}

/// The state shared by `start_response`, `write` and the response loop.
pub type Shared = Rc<RefCell<ResponseState>>;

/// A Python str as latin-1 bytes (PEP 3333: native strings hold latin-1).
fn latin1_bytes(text: &str, what: &str) -> PyResult<Vec<u8>> {
    if text.is_ascii() {
        return Ok(text.as_bytes().to_vec());
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| PyValueError::new_err(format!("{what} is not latin-1: {text:?}")))
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Gunicorn's status rule: three digits, then optionally a space and a
/// reason of visible characters.
fn parse_status(status: &str) -> PyResult<u16> {
    let bytes = status.as_bytes();
    let valid = bytes.len() >= 3
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && (bytes.len() == 3
            || (bytes[3] == b' '
                && status[4..].chars().all(|c| {
                    c == ' ' || c == '\t' || (c >= '\u{21}' && c != '\u{7f}' && c <= '\u{ff}')
                })));
    if !valid {
        return Err(PyValueError::new_err(format!(
            "Invalid HTTP status line: {status:?}"
        )));
    }
    let code: u16 = status[..3].parse().unwrap_or(0);
    if code < 100 {
        return Err(PyValueError::new_err(format!(
            "Invalid HTTP status code: {status:?}"
        )));
    }
    Ok(code)
}

/// Send the head if it has not gone out (with `extra_length` as the
/// Content-Length when the whole body is known and the app gave none).
pub fn send_head(state: &Shared, call: &CallRef, extra_length: Option<u64>) -> PyResult<()> {
    let mut state = state.borrow_mut();
    if state.sent {
        return Ok(());
    }
    let Some(code) = state.code else {
        return Err(PyAssertionError::new_err(
            "the app did not call start_response before returning or writing",
        ));
    };
    let length = match extra_length {
        Some(length) if !state.has_length => Some(length.to_string()),
        _ => None,
    };
    let mut fields: Vec<(&str, &[u8])> = state
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_slice()))
        .collect();
    if let Some(length) = &length {
        fields.push(("Content-Length", length.as_bytes()));
    }
    let result = call.with_gil(|call| call.start_response(code, &fields));
    drop(fields);
    match result {
        Some(Ok(())) => {
            state.sent = true;
            Ok(())
        }
        Some(Err(err)) => Err(PyValueError::new_err(format!(
            "cannot send the response head: {err}"
        ))),
        None => Err(pyo3::exceptions::PyOSError::new_err(
            "the request has ended",
        )),
    }
}

/// Write body bytes (sending the head first), then push them to the client
/// when `flush`, with the GIL released once for both.
pub fn write_body(
    py: Python<'_>,
    state: &Shared,
    call: &CallRef,
    data: &[u8],
    flush: bool,
) -> PyResult<()> {
    if data.is_empty() {
        if flush && state.borrow().sent {
            return call.with(py, |call| call.flush()).map_err(write_error);
        }
        return Ok(());
    }
    send_head(state, call, None)?;
    call.write_bytes(py, data, flush).map_err(write_error)?;
    state.borrow_mut().written += data.len() as u64;
    Ok(())
}

fn write_error(err: std::io::Error) -> PyErr {
    pyo3::exceptions::PyOSError::new_err(format!("error writing the response: {err}"))
}

/// The `start_response` callable of one request.
#[pyclass(unsendable, module = "runicorn")]
#[derive(Debug)]
pub struct StartResponse {
    state: Shared,
    call: Rc<CallRef>,
}

impl StartResponse {
    /// For the request whose call is `call`.
    pub fn new(state: Shared, call: Rc<CallRef>) -> Self {
        StartResponse { state, call }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = exc_info.filter(|info| !info.is_none());
        {
            let state = self.state.borrow();
            if let Some(info) = exc_info {
                if state.sent {
                    // PEP 3333: too late to change the response; re-raise.
                    let info = info.cast::<PyTuple>()?;
                    let value = info.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
            } else if state.code.is_some() {
                return Err(PyAssertionError::new_err("Response headers already set!"));
            }
        }
        let status = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("the status must be a str, like '200 OK'"))?
            .to_str()?
            .to_owned();
        let code = parse_status(&status)?;
        let mut fields = Vec::new();
        let mut has_length = false;
        for item in headers.try_iter()? {
            let item = item?;
            let pair = item.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err("each header must be a (name, value) tuple of str")
            })?;
            if pair.len() != 2 {
                return Err(PyTypeError::new_err(
                    "each header must be a (name, value) tuple of str",
                ));
            }
            let name_item = pair.get_item(0)?;
            let value_item = pair.get_item(1)?;
            let name = name_item
                .cast::<PyString>()
                .map_err(|_| {
                    PyTypeError::new_err(format!("header name must be a str: {name_item:?}"))
                })?
                .to_str()?;
            let value = value_item
                .cast::<PyString>()
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "header value must be a str: {name}: {value_item:?}"
                    ))
                })?
                .to_str()?;
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(PyValueError::new_err(format!(
                    "Invalid response header name: {name:?}"
                )));
            }
            if value
                .chars()
                .any(|c| (c < ' ' && c != '\t') || c == '\u{7f}')
            {
                // Gunicorn's rule too: CR, LF and other controls would split
                // the response; the value is not echoed (it may be secret).
                return Err(PyValueError::new_err(format!(
                    "Invalid response header value for {name:?}: it contains a control character"
                )));
            }
            if HOP_BY_HOP.iter().any(|hop| hop.eq_ignore_ascii_case(name)) {
                continue;
            }
            if name.eq_ignore_ascii_case("content-length") {
                has_length = true;
            }
            fields.push((
                name.to_owned(),
                latin1_bytes(value.trim_matches([' ', '\t']), "header value")?,
            ));
        }
        let _ = py;
        let mut state = self.state.borrow_mut();
        state.code = Some(code);
        state.status = status;
        state.headers = fields;
        state.has_length = has_length;
        Ok(Write {
            state: Rc::clone(&self.state),
            call: Rc::clone(&self.call),
        })
    }
}

/// The `write` callable `start_response` returns (PEP 3333's legacy
/// imperative API).
#[pyclass(unsendable, module = "runicorn")]
#[derive(Debug)]
pub struct Write {
    state: Shared,
    call: Rc<CallRef>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        write_body(py, &self.state, &self.call, data.as_bytes(), true)
    }
}

/// `wsgi.early_hints` (Gunicorn's callback): `early_hints([(name, value),
/// ...])` sends a `103 Early Hints` head with those fields at once, as
/// often as it is called. Ignored once the response head went out, and for
/// an HTTP/1.0 client (which has no interim responses); names and values
/// may be str or latin-1 bytes, and invalid ones raise `ValueError`.
#[pyclass(unsendable, module = "runicorn")]
#[derive(Debug)]
pub struct EarlyHints {
    state: Shared,
    call: Rc<CallRef>,
}

impl EarlyHints {
    /// For the request whose call is `call`.
    pub fn new(state: Shared, call: Rc<CallRef>) -> Self {
        EarlyHints { state, call }
    }
}

/// A header name or value given as str or bytes, as latin-1 text.
fn latin1_text(item: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if let Ok(bytes) = item.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().iter().map(|&b| char::from(b)).collect());
    }
    item.cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a str or bytes: {item:?}")))?
        .to_str()
        .map(str::to_owned)
}

#[pymethods]
impl EarlyHints {
    fn __call__(&self, py: Python<'_>, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.state.borrow().sent {
            return Ok(());
        }
        let http10 = self
            .call
            .with_gil(|call| call.head().version == runicorn_app::Version::Http10)
            .ok_or_else(|| pyo3::exceptions::PyOSError::new_err("the request has ended"))?;
        if http10 {
            return Ok(());
        }
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        for item in headers.try_iter()? {
            let item = item?;
            let pair = item
                .cast::<PyTuple>()
                .ok()
                .filter(|pair| pair.len() == 2)
                .ok_or_else(|| {
                    PyTypeError::new_err("each early hint must be a (name, value) tuple")
                })?;
            let name = latin1_text(&pair.get_item(0)?, "header name")?;
            let value = latin1_text(&pair.get_item(1)?, "header value")?;
            fields.push((
                name,
                latin1_bytes(value.trim_matches([' ', '\t']), "header value")?,
            ));
        }
        let refs: Vec<(&str, &[u8])> = fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect();
        match self.call.with_gil(|call| call.start_response(103, &refs)) {
            Some(Ok(())) => {}
            Some(Err(err)) => {
                return Err(PyValueError::new_err(format!(
                    "cannot send the early hints: {err}"
                )))
            }
            None => {
                return Err(pyo3::exceptions::PyOSError::new_err(
                    "the request has ended",
                ))
            }
        }
        self.call.with(py, |call| call.flush()).map_err(|err| {
            pyo3::exceptions::PyOSError::new_err(format!("error writing the early hints: {err}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("200 OK").ok(), Some(200));
        assert_eq!(parse_status("404").ok(), Some(404));
        assert_eq!(parse_status("299 Fine\tthing").ok(), Some(299));
        assert!(parse_status("20 OK").is_err());
        assert!(parse_status("200OK").is_err());
        assert!(parse_status("200 OK\r\nX: y").is_err());
        assert!(parse_status("099 x").is_err());
    }
}
