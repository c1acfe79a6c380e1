//! [`Exchange`]: the I/O state of one connection, with the async operations
//! every way of calling an app shares: read the body, start and write the
//! response, flush, read more. It drives the `http` crate's sans-IO
//! [`Cycle`]; nothing here parses or encodes HTTP itself.
//!
//! An `Exchange` is boxed once per connection and `Send`, so the connection
//! task can hand it whole to a blocking-pool thread for a sync app and get
//! it back when the app returns.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use runicorn_app::blocking::ClientFault;
use runicorn_http::{
    Cycle, DateCache, Forwarded, Limits, ParseError, ReadBuffer, RequestHead, ResponseError,
    CONTINUE,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

/// Output bytes buffered before a response body is written out mid-request.
pub(crate) const FLUSH_THRESHOLD: usize = runicorn_http::FLUSH_THRESHOLD;

/// The knobs of every connection of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DriverConfig {
    /// Request limits.
    pub(crate) limits: Limits,
    /// `--keep-alive`: how long an idle connection waits for its next request.
    pub(crate) keepalive: Duration,
    /// Each read and write within a request, and the deadline for a whole head.
    pub(crate) io_timeout: Duration,
    /// Unread request-body bytes read and discarded to keep a connection.
    pub(crate) max_drain: u64,
    /// How long a lingering close waits for the client's unread input.
    pub(crate) linger: Duration,
}

impl DriverConfig {
    /// Defaults as the blocking driver's: 2 s keep-alive, 30 s I/O, 64 KiB
    /// drain, 1 s linger.
    pub(crate) fn new(limits: Limits) -> DriverConfig {
        DriverConfig {
            limits,
            keepalive: Duration::from_secs(2),
            io_timeout: Duration::from_secs(30),
            max_drain: 64 * 1024,
            linger: Duration::from_secs(1),
        }
    }
}

/// One connection's stream, buffers and per-request state.
#[derive(Debug)]
pub(crate) struct Exchange<S> {
    pub(crate) stream: S,
    pub(crate) input: ReadBuffer,
    pub(crate) output: Vec<u8>,
    pub(crate) head: RequestHead,
    pub(crate) cycle: Cycle,
    pub(crate) date: DateCache,
    pub(crate) peer: String,
    pub(crate) config: DriverConfig,
    /// A body error to answer (its status) if no response started.
    pub(crate) body_error: Option<ParseError>,
    /// A read or write failed: the connection is unusable.
    pub(crate) io_failed: bool,
    /// The listener's address the app is told (`Call::server_addr`).
    pub(crate) server_addr: Arc<str>,
    /// What this request's forwarding fields mean (set per request).
    pub(crate) forwarded: Forwarded,
    /// A read or write of this request failed through the client's doing.
    pub(crate) client_fault: Option<ClientFault>,
    head_cap: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Exchange<S> {
    /// A fresh connection; `peer` is `""` for unix sockets.
    pub(crate) fn new(stream: S, peer: String, config: DriverConfig) -> Exchange<S> {
        Exchange {
            stream,
            input: ReadBuffer::new(),
            output: Vec::with_capacity(1024),
            head: RequestHead::default(),
            cycle: Cycle::default(),
            date: DateCache::default(),
            peer,
            config,
            body_error: None,
            io_failed: false,
            server_addr: Arc::from(""),
            forwarded: Forwarded::default(),
            client_fault: None,
            head_cap: config.limits.head.saturating_add(1024),
        }
    }

    /// One read into the input buffer, by `deadline`; `TimedOut` after it.
    pub(crate) async fn read_more(&mut self, deadline: Instant) -> io::Result<usize> {
        match timeout_at(deadline, self.read_some()).await {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// One read into the input buffer, unbounded (the caller times it).
    pub(crate) async fn read_some(&mut self) -> io::Result<usize> {
        let spare = self.input.spare(self.head_cap)?;
        let count = self.stream.read(spare).await?;
        self.input.filled(count);
        Ok(count)
    }

    /// Writes out and clears the output buffer, within the I/O timeout.
    /// (TCP and unix streams need no `flush` after `write_all`.)
    ///
    /// One write is tried first without a timer: a batch of responses
    /// almost always fits the socket buffer, so the common case costs one
    /// syscall and no timer entry.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let mut written = 0;
        let first = poll_fn(|cx| {
            Poll::Ready(
                match Pin::new(&mut self.stream).poll_write(cx, &self.output) {
                    Poll::Ready(result) => Some(result),
                    Poll::Pending => None,
                },
            )
        })
        .await;
        let result = match first {
            Some(Ok(0)) => Err(io::ErrorKind::WriteZero.into()),
            Some(Ok(count)) => {
                written = count;
                Ok(())
            }
            Some(Err(err)) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
            Some(Err(err)) => Err(err),
            None => Ok(()),
        };
        let result = match result {
            Ok(()) if written < self.output.len() => {
                let deadline = Instant::now() + self.config.io_timeout;
                let rest = &self.output[written..];
                match timeout_at(deadline, self.stream.write_all(rest)).await {
                    Ok(result) => result,
                    Err(_) => Err(io::ErrorKind::TimedOut.into()),
                }
            }
            other => other,
        };
        self.output.clear();
        if result.is_err() {
            self.io_failed = true;
        }
        result
    }

    /// A flush on the app's behalf: a failure also ends the request.
    pub(crate) async fn flush_for_app(&mut self) -> io::Result<()> {
        let result = self.flush().await;
        if result.is_err() {
            self.cycle.abort();
        }
        result
    }

    /// Reads request body bytes into `buf`; `Ok(0)` at the end of the body.
    /// The first call sends `100 Continue` when the client asked for it. A
    /// malformed or over-limit body fails with `InvalidData`, a client that
    /// closes early with `UnexpectedEof`, a slow one with `TimedOut`.
    pub(crate) async fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.cycle.body_done() {
            return Ok(0);
        }
        if let Some(err) = &self.body_error {
            return Err(io::Error::new(io::ErrorKind::InvalidData, err.clone()));
        }
        if self.cycle.take_continue() {
            self.output.extend_from_slice(CONTINUE);
            self.flush_for_app().await?;
        }
        loop {
            if let Some(count) = self.decode_buffered(buf)? {
                return Ok(count);
            }
            self.flush_for_app().await?;
            let deadline = Instant::now() + self.config.io_timeout;
            match self.read_more(deadline).await {
                Ok(0) => {
                    let err = ParseError::IncompleteBody;
                    self.body_error = Some(err.clone());
                    self.cycle.abort();
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, err));
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.cycle.abort();
                    self.io_failed = true;
                    return Err(err);
                }
            }
        }
    }

    /// Body bytes from what is already buffered: `Some(count)` when the
    /// caller has its answer (bytes, or the end), `None` when more input
    /// is needed.
    pub(crate) fn decode_buffered(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if !self.input.is_empty() {
            match self.cycle.decode_body(self.input.data(), buf.len()) {
                Ok((used, data)) => {
                    let count = data.len();
                    buf[..count].copy_from_slice(data);
                    self.input.consume(used);
                    if count > 0 || self.cycle.body_done() {
                        return Ok(Some(count));
                    }
                }
                Err(err) => {
                    self.body_error = Some(err.clone());
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                }
            }
        }
        if self.cycle.body_done() {
            return Ok(Some(0));
        }
        Ok(None)
    }

    /// Starts the response (encoded into the output buffer).
    pub(crate) fn start_response(
        &mut self,
        status: u16,
        headers: &[(&str, &[u8])],
    ) -> io::Result<()> {
        let date = *self.date.fixed();
        self.cycle
            .start_response(&mut self.output, status, headers, &date)
            .map_err(invalid_input)
    }

    /// Encodes response body bytes; true when the buffer should be flushed.
    pub(crate) fn write_buffered(&mut self, data: &[u8]) -> io::Result<bool> {
        self.cycle
            .write_body(&mut self.output, data)
            .map_err(invalid_input)?;
        Ok(self.output.len() >= FLUSH_THRESHOLD)
    }
}

fn invalid_input(err: ResponseError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, err)
}
