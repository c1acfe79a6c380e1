//! runicorn's Python support: an embedded CPython (pyo3) that serves WSGI
//! apps unchanged, executes Gunicorn config files and calls their hooks.
//!
//! Built as `librunicorn_python.so`, a plugin the `runicorn` binary opens
//! only when a Python app or config file is asked for, so that the binary
//! itself never links libpython (see `runicorn_app::abi::python` for the
//! table it exports and the host's side). The binary `pip install` builds
//! links this crate instead (`runicorn-cli`'s `embedded-python` feature) and
//! uses the same table in process. Code map:
//!
//! - `exports`: the exported [`runicorn_app::abi::python::RcPythonPlugin`]
//!   table and its `extern "C"` entries;
//! - `interp`: starting the interpreter (virtual environment, no Python
//!   signal handlers), pinned thread states, the fork protocol;
//! - `support` + `runicorn_support.py`: Gunicorn's app import rules,
//!   config files and hook objects, written in Python (off the request path);
//! - `wsgi`: the request path in Rust: `environ` as Gunicorn fills it,
//!   `wsgi.input`, `start_response`/`write`, the response loop, sendfile;
//! - `callref`: lending the request's `Call` to Python objects for exactly
//!   one request, and calling it with the GIL released.
//!
//! `unsafe` is denied except in `exports`, `interp` and `callref`, each
//! block with its reason.

#![deny(unsafe_code)]

#[allow(unsafe_code)] // a fence: lending a `Call` to Python for one request
mod callref;
#[allow(unsafe_code)] // a fence: the plugin table's `extern "C"` entries
pub mod exports;
#[allow(unsafe_code)] // a fence: CPython's C API (start-up, thread states, fork)
pub mod interp;
pub mod support;
pub mod wsgi;

#[cfg(test)]
mod tests;
