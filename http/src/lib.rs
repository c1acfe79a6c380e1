//! HTTP/1.1 for every runicorn worker class, sans-IO: bytes in, values out.
//!
//! This crate owns the request-head parser (on `httparse`) and its limits,
//! body framing (Content-Length, chunked) and the request-smuggling rules,
//! response encoding, and the keep-alive decision. It does no I/O and reads
//! no clock, except in `conn`, the one blocking driver generic over
//! `Read + Write` that the sync, gthread and green workers share.
#![forbid(unsafe_code)]

pub mod head;

pub use head::{Header, RequestHead, Version};
