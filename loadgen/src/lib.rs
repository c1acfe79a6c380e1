//! runicorn's load generator: drives an HTTP/1.1 server over TCP or a unix
//! socket, closed-loop (a fixed number of connections, each sending its
//! next request when the last one is answered) or open-loop (a fixed rate,
//! each request's latency measured from the time it was scheduled to be
//! sent, so a slow server cannot hide its queue: no coordinated omission),
//! and records every latency in an HDR histogram.
//!
//! It is a library so that `runicorn bench` (the `runicorn-bench` crate)
//! and the tests share one engine; it knows nothing of worker classes.
#![forbid(unsafe_code)]
