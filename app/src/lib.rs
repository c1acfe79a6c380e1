//! The app contract: what WSGI and ASGI are to Gunicorn, runicorn's apps are to it.
//!
//! This crate owns the traits an app implements ([`App`], [`AsyncApp`]), the
//! traits a worker class implements for it ([`Call`], [`AsyncCall`], [`Host`]),
//! the built-in apps, and (issue 7) the versioned C ABI through which apps in
//! shared libraries are loaded. The host does all I/O: an app never touches a
//! socket or a runtime of its own, so the same app blocks a thread under
//! `sync`/`gthread`, yields a coroutine under `green` and awaits under `async`.
//! This crate never starts a thread or a runtime.
//!
//! `unsafe` is denied here except in `abi`, the fence where the C ABI is
//! crossed (the loader's open of a library included); each block there
//! says why it is sound.

#![deny(unsafe_code)]

#[allow(unsafe_code)] // the fence: the C ABI, both sides
pub mod abi;
pub mod blocking;
pub mod builtin;
pub mod contract;
pub mod hooks;
pub mod loader;
mod watched;

pub use contract::{
    App, AppError, Application, AsyncApp, AsyncCall, BoxFuture, Call, Host, LoadError, LogLevel,
    Upstream, WorkerInfo,
};
pub use runicorn_http::{Header, RequestHead, Version};
