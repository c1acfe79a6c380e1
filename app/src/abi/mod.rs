//! The versioned C ABI through which apps, hooks and worker classes in
//! shared libraries are served (issue 7; DESIGN.md "The app contract").
//!
//! Theory of operation: a library exports `#[no_mangle]` statics, each
//! starting with an [`RcObjectHeader`] (magic, ABI version, kind, size) that
//! the loader checks before calling anything. An app table ([`RcApp`]) has
//! blocking `handle`, `init_worker` and `shutdown_worker` entries; the host
//! passes every `handle` a table of host services ([`RcHostTable`]) that
//! forwards to the worker class's [`crate::Call`] and [`crate::Host`], so
//! the worker class decides what blocking means. Only `#[repr(C)]` data and
//! borrowed slices cross; the side that allocates frees; every entry on both
//! sides catches panics; libraries are never unloaded.
//!
//! Code map: `types` (the data), `host_services` (a `Call` as a table),
//! `foreign_call` (a table as a `Call`), `dylib_app` (a loaded table as an
//! `App`), `guest` and `macros` (the library side for Rust authors),
//! `worker_class` (third-party worker classes), `hook` (server hooks
//! across), `library` (opening a library and checking an exported object,
//! for `crate::loader`), `errno` (errors across), `python` (the
//! embedded-CPython plugin's table and the host's handle on it).
//!
//! This module is the crate's `unsafe` fence: the crate root denies
//! `unsafe_code` and allows it here only. Every `unsafe` block says why it
//! is sound.

pub mod dylib_app;
pub mod errno;
pub mod foreign_call;
pub mod guest;
pub mod hook;
pub mod host_services;
pub(crate) mod library;
mod macros;
pub mod python;
pub mod types;
pub mod worker_class;

#[cfg(test)]
mod header_tests;
#[cfg(test)]
mod tests;

pub use dylib_app::DylibApp;
pub use guest::FactoryArgs;
pub use types::*;
