//! The protocol, sans-IO: bytes and values in, bytes and values out, no
//! I/O and no clock of its own. The request head ([`parse`] into a reused
//! [`head::RequestHead`] under [`limits`]), body framing and the smuggling
//! rules ([`framing`], [`body`]), whom to believe about forwarding fields
//! ([`forwarded`]), response encoding ([`encode`], [`status`], [`date`]),
//! one request's life ([`cycle`]), and the connection state machine that
//! owns every decision across requests ([`conn`]) with its buffer and
//! settings ([`buffer`], [`config`]), the response fields kept for the
//! worker's access log ([`kept`]), and the PROXY protocol header a
//! connection may start with ([`proxy`]).

pub(crate) mod body;
pub(crate) mod buffer;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod cycle;
pub(crate) mod date;
pub(crate) mod encode;
pub(crate) mod error;
pub(crate) mod forwarded;
pub(crate) mod framing;
pub mod head;
pub(crate) mod kept;
pub(crate) mod limits;
pub(crate) mod parse;
pub(crate) mod proxy;
pub(crate) mod status;
