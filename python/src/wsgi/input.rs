//! `wsgi.input`: the request body, streamed from the connection through the
//! host (the worker class decides what waiting means; the GIL is released
//! around every read). Gunicorn's `Body` methods: `read`, `readline`,
//! `readlines`, iteration. Nothing is held but what a `readline` has read
//! ahead, so a 1 GB upload is never in memory. A client that disconnects
//! mid-body raises `OSError` in the app: a short body is never presented as
//! complete.

use std::rc::Rc;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::callref::CallRef;

/// How much one read from the connection asks for.
const CHUNK: usize = 64 * 1024;

/// The request body as a file-like object.
#[pyclass(unsendable, module = "runicorn")]
#[derive(Debug)]
pub struct Input {
    call: Rc<CallRef>,
    /// Bytes read ahead by `readline`, not yet returned.
    pending: Vec<u8>,
    /// Where `pending`'s unread part starts.
    start: usize,
    eof: bool,
}

impl Input {
    /// The body of the call lent through `call`.
    pub fn new(call: Rc<CallRef>) -> Self {
        Input {
            call,
            pending: Vec::new(),
            start: 0,
            eof: false,
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.pending[self.start..]
    }

    fn consume(&mut self, count: usize) -> Vec<u8> {
        let out = self.pending[self.start..self.start + count].to_vec();
        self.start += count;
        if self.start == self.pending.len() {
            self.pending.clear();
            self.start = 0;
        }
        out
    }

    /// Read up to `want` more bytes from the connection into `pending`;
    /// false at the end of the body.
    fn fill(&mut self, py: Python<'_>, want: usize) -> PyResult<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 && self.start == self.pending.len() {
            self.pending.clear();
            self.start = 0;
        }
        let old = self.pending.len();
        self.pending.resize(old + want.clamp(1, CHUNK), 0);
        let target = &mut self.pending[old..];
        let result = read_into(&self.call, py, target);
        match result {
            Ok(0) => {
                self.pending.truncate(old);
                self.eof = true;
                Ok(false)
            }
            Ok(read) => {
                self.pending.truncate(old + read);
                Ok(true)
            }
            Err(err) => {
                self.pending.truncate(old);
                Err(err)
            }
        }
    }

    fn read_all(&mut self, py: Python<'_>) -> PyResult<Vec<u8>> {
        while self.fill(py, CHUNK)? {}
        let len = self.buffered().len();
        Ok(self.consume(len))
    }

    fn read_some(&mut self, py: Python<'_>, size: usize) -> PyResult<Vec<u8>> {
        while self.buffered().len() < size {
            let missing = size - self.buffered().len();
            if !self.fill(py, missing)? {
                break;
            }
        }
        let len = self.buffered().len().min(size);
        Ok(self.consume(len))
    }

    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let mut scanned = 0;
        loop {
            let buffered = self.buffered();
            if let Some(newline) = buffered[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + newline + 1;
                let end = limit.map_or(end, |limit| end.min(limit));
                return Ok(self.consume(end));
            }
            scanned = buffered.len();
            if let Some(limit) = limit {
                if scanned >= limit {
                    return Ok(self.consume(limit));
                }
            }
            if !self.fill(py, CHUNK)? {
                let len = self.buffered().len();
                return Ok(self.consume(len));
            }
        }
    }
}

/// Read body bytes with the GIL released; a failure is the client's
/// (gone, or too slow): `OSError` in the app.
fn read_into(call: &CallRef, py: Python<'_>, buf: &mut [u8]) -> PyResult<usize> {
    call.read_body(py, buf)
        .map_err(|err| PyOSError::new_err(format!("error reading the request body: {err}")))
}

/// `size` as Python passes it: None or negative means "all".
fn wanted(size: Option<isize>) -> Option<usize> {
    size.and_then(|size| usize::try_from(size).ok())
}

#[pymethods]
impl Input {
    /// `read()`, `read(n)`.
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = match wanted(size) {
            None => self.read_all(py)?,
            Some(size) => self.read_some(py, size)?,
        };
        Ok(PyBytes::new(py, &data))
    }

    /// `readline()`, `readline(size)`.
    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_line(py, wanted(size))?;
        Ok(PyBytes::new(py, &line))
    }

    /// `readlines()`, `readlines(hint)`.
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = wanted(hint).filter(|&hint| hint > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.push(PyBytes::new(py, &line));
            if hint.is_some_and(|hint| total >= hint) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_line(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn readable(&self) -> bool {
        true
    }

    fn close(&self) {}

    #[getter]
    fn closed(&self) -> bool {
        false
    }

    fn seekable(&self) -> bool {
        false
    }

    fn seek(&self, _offset: isize, _whence: Option<isize>) -> PyResult<()> {
        Err(PyValueError::new_err("wsgi.input is not seekable"))
    }
}
