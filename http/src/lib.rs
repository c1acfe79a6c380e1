//! HTTP/1.1 for every runicorn worker class, sans-IO: bytes in, values out.
//!
//! This crate owns the request-head parser (on `httparse`) and its limits,
//! body framing (Content-Length, chunked) and the request-smuggling rules,
//! response encoding, and the keep-alive decision, so that the blocking,
//! threaded, coroutine and async workers share one parser and one set of
//! defences. It does no I/O and reads no clock, except in `conn` (with
//! `exchange`), the one blocking driver generic over a [`Transport`] that
//! the sync, gthread and green workers share; the async worker drives the
//! same sans-IO [`Cycle`] itself. It must never depend on `master` or `app`.
//!
//! The pieces, in the order a request meets them: [`Limits`] (from the
//! settings), [`parse_head_into`] into a reused [`RequestHead`] giving a
//! [`RequestInfo`] (framing, keep-alive, `100-continue`), a [`Cycle`] per
//! request with its [`BodyDecoder`] and [`BodyEncoder`], a [`DateCache`],
//! and [`error_response`] for requests rejected with a [`ParseError`].
#![forbid(unsafe_code)]

mod body;
mod buffer;
mod config;
mod conn;
mod cycle;
mod date;
mod encode;
mod error;
mod exchange;
mod framing;
pub mod head;
mod hooks;
mod limits;
mod parse;
mod status;
mod transport;

pub use body::BodyDecoder;
pub use buffer::ReadBuffer;
pub use config::{ConnConfig, Outcome, ServeMode};
pub use conn::{Connection, FLUSH_THRESHOLD};
pub use cycle::{Cycle, CycleOptions, Finish};
pub use date::DateCache;
pub use encode::{encode_response_head, BodyEncoder, EncodedHead, ResponseContext};
pub use error::{ParseError, ResponseError};
pub use exchange::Exchange;
pub use framing::{BodyKind, RequestInfo};
pub use head::{Header, RequestHead, Version};
pub use hooks::{Handler, Hooks, NoHooks, RequestDone};
pub use limits::{
    Limits, DEFAULT_LIMIT_REQUEST_BODY, DEFAULT_LIMIT_REQUEST_FIELDS,
    DEFAULT_LIMIT_REQUEST_FIELD_SIZE, DEFAULT_LIMIT_REQUEST_LINE, MAX_CHUNK_LINE, MIN_HEAD_CAP,
};
pub use parse::{parse_head, parse_head_into, HeadStatus};
pub use status::{encode_error, error_response, reason, CONTINUE};
pub use transport::Transport;
