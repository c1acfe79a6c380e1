//! HTTP/1.1 for every runicorn worker class, sans-IO: bytes in, values out.
//!
//! This crate owns the request-head parser (on `httparse`) and its limits,
//! body framing (Content-Length, chunked) and the request-smuggling rules,
//! response encoding, and the keep-alive decision, so that the blocking,
//! threaded, coroutine and async workers share one parser and one set of
//! defences. The protocol lives in `proto/` and does no I/O and reads no
//! clock: at its top, [`ConnState`], the connection state machine that is
//! fed bytes and time and says what to do next ([`Action`]), owning every
//! rule of a connection's life (keep-alive, pipelining, timeouts, bad
//! requests, drain or close, lingering close, the limits). Two loops drive
//! it and decide nothing: `driver/` holds the blocking one, generic over a
//! [`Transport`], that the sync, gthread and green workers share; the async
//! worker has the other. It must never depend on `master` or `app`.
//!
//! The pieces, in the order a request meets them: [`Limits`] (from the
//! settings, in a [`ConnConfig`]), [`parse_head_into`] into a reused
//! [`RequestHead`] giving a [`RequestInfo`] (framing, keep-alive,
//! `100-continue`), a [`Cycle`] per request with its [`BodyDecoder`] and
//! [`BodyEncoder`], a [`DateCache`], and [`error_response`] for requests
//! rejected with a [`ParseError`].
#![forbid(unsafe_code)]

mod driver;
mod proto;

pub use proto::head;

pub use driver::bookkeeping::{Bookkeeping, NoBookkeeping, RequestDone};
pub use driver::connection::{Connection, Outcome, ServeMode};
pub use driver::exchange::{Exchange, Handler};
pub use driver::transport::{SystemClock, Transport};
pub use proto::body::BodyDecoder;
pub use proto::buffer::ReadBuffer;
pub use proto::config::ConnConfig;
pub use proto::conn::{
    Action, BodyRead, Clock, ConnState, ReadWait, RequestEnd, Retiring, FLUSH_THRESHOLD, LATE_LOOK,
    LINGER_BYTES, REPARSE_STEP,
};
pub use proto::cycle::{Cycle, CycleOptions, Finish};
pub use proto::date::DateCache;
pub use proto::encode::{encode_response_head, BodyEncoder, EncodedHead, ResponseContext};
pub use proto::error::{ParseError, ResponseError};
pub use proto::forwarded::{
    default_secure_scheme_headers, Forwarded, ForwardedPolicy, Scheme, DEFAULT_FORWARDED_ALLOW_IPS,
    DEFAULT_SECURE_SCHEME_HEADERS,
};
pub use proto::framing::{BodyKind, RequestInfo};
pub use proto::head::{Header, RequestHead, Version};
pub use proto::kept::KeptFields;
pub use proto::limits::{
    Limits, DEFAULT_LIMIT_REQUEST_BODY, DEFAULT_LIMIT_REQUEST_FIELDS,
    DEFAULT_LIMIT_REQUEST_FIELD_SIZE, DEFAULT_LIMIT_REQUEST_LINE, MIN_HEAD_CAP,
};
pub use proto::parse::{parse_head, parse_head_into, HeadStatus};
pub use proto::proxy::{
    parse as parse_proxy_header, Proxied, ProxyError, ProxyHeader, ProxyMode, ProxyParse,
    ProxyPolicy, ProxyStep, ProxyVersion, MAX_HEADER_LENGTH as MAX_PROXY_HEADER_LENGTH,
    MAX_V1_LENGTH, MAX_V2_LENGTH, V1_SIGNATURE, V2_SIGNATURE,
};
pub use proto::status::{encode_error, error_response, reason, CONTINUE};
