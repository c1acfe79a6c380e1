//! [`Connection`]: one connection of the async worker (the async twin of
//! `http::Connection`, the blocking driver's): its stream, the
//! `http` crate's [`ConnState`] (which decides everything), what the app is
//! told about the connection, and the async moves every way of calling an
//! app shares: one read into the state, writing its output out, reading
//! the body. Nothing here parses, encodes or decides HTTP.
//!
//! A `Connection` is boxed once and `Send`, so the connection
//! task can hand it whole to a blocking-pool thread for a sync app and get
//! it back when the app returns.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use runicorn_app::blocking::ClientFault;
use std::os::fd::RawFd;

use runicorn_http::{BodyRead, ConnConfig, ConnState, Forwarded, Proxied, SystemClock};
use runicorn_worker::Unanswered;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One connection's stream, protocol state and connection facts.
#[derive(Debug)]
pub(crate) struct Connection<S> {
    /// The current request, listed while its answer has not started, so a
    /// worker the master kills for a missed heartbeat still answers its
    /// client (`runicorn_worker::unanswered`). Declared before the stream:
    /// the lane is given back before the descriptor closes.
    pub(crate) unanswered: Unanswered,
    /// The stream's descriptor (-1: none, as a test's in-memory stream).
    pub(crate) fd: RawFd,
    pub(crate) stream: S,
    pub(crate) state: ConnState,
    pub(crate) peer: String,
    /// The listener's address the app is told (`Call::server_addr`).
    pub(crate) server_addr: Arc<str>,
    /// What this request's forwarding fields mean (set per request).
    pub(crate) forwarded: Forwarded,
    /// A read or write of this request failed through the client's doing.
    pub(crate) client_fault: Option<ClientFault>,
    /// The stream is TLS: its end is said (`close_notify`) before it closes.
    pub(crate) tls: bool,
    /// What its PROXY header said, when it had one.
    pub(crate) proxied: Option<Proxied>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// A connection accepted just now (its head deadline starts here);
    /// `peer` is `""` for unix sockets.
    pub(crate) fn new(stream: S, peer: String, config: ConnConfig) -> Connection<S> {
        let mut state = ConnState::new(config);
        state.accepted_at(std::time::Instant::now());
        Connection {
            unanswered: Unanswered::none(),
            fd: -1,
            stream,
            state,
            peer,
            server_addr: Arc::from(""),
            forwarded: Forwarded::default(),
            client_fault: None,
            tls: false,
            proxied: None,
        }
    }

    /// Says the end of a TLS stream to the client (`close_notify`) before
    /// the connection is dropped, within the write timeout; nothing for a
    /// plain one.
    pub(crate) async fn closing(&mut self) {
        if !self.tls {
            return;
        }
        let shutdown = self.stream.shutdown();
        match self.state.write_timeout() {
            Some(timeout) => {
                let _ = tokio::time::timeout(timeout, shutdown).await;
            }
            None => {
                let _ = shutdown.await;
            }
        }
    }

    /// One read into the state's buffer, unbounded (the caller times it).
    pub(crate) async fn read_some(&mut self) -> io::Result<usize> {
        let buf = self.state.read_buf()?;
        self.stream.read(buf).await
    }

    /// One read into the state's buffer within `timeout` (`None`: no
    /// limit); `TimedOut` after it.
    async fn read_within(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let Some(timeout) = timeout else {
            return self.read_some().await;
        };
        match tokio::time::timeout(timeout, self.read_some()).await {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Writes out the state's output, each write within the write timeout
    /// (progress restarts it: a client that reads slowly is not cut, one
    /// that stops reading is), and tells the state how that went. (TCP and
    /// unix streams need no `flush` after writing.)
    ///
    /// One write is tried first without a timer: a batch of responses
    /// almost always fits the socket buffer, so the common case costs one
    /// syscall and no timer entry.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        let output = self.state.output();
        if output.is_empty() {
            return Ok(());
        }
        if self.state.response_started() && !self.unanswered.claim() {
            self.state.write_failed();
            return Err(runicorn_worker::unanswered::answered_already());
        }
        let output = self.state.output();
        let stream = &mut self.stream;
        let first = poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut *stream).poll_write(cx, output) {
                Poll::Ready(result) => Some(result),
                Poll::Pending => None,
            })
        })
        .await;
        let mut written = 0;
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
        let timeout = self.state.write_timeout();
        let mut result = result;
        while result.is_ok() && written < output.len() {
            let write = stream.write(&output[written..]);
            let step = match timeout {
                Some(timeout) => match tokio::time::timeout(timeout, write).await {
                    Ok(step) => step,
                    Err(_) => Err(io::ErrorKind::TimedOut.into()),
                },
                None => write.await,
            };
            result = match step {
                Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                Ok(count) => {
                    written += count;
                    Ok(())
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
                Err(err) => Err(err),
            };
        }
        match result {
            Ok(()) => self.state.written(),
            Err(_) => self.state.write_failed(),
        }
        result
    }

    /// Reads request body bytes into `buf`; `Ok(0)` at the end of the body.
    /// The first call sends `100 Continue` when the client asked for it. A
    /// malformed or over-limit body fails with `InvalidData`, a client that
    /// closes early with `UnexpectedEof`, a slow one (`--body-timeout`,
    /// `--body-min-rate`) with `TimedOut`, answered 408.
    pub(crate) async fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state.read_body(buf, &SystemClock)? {
                BodyRead::Data(count) => return Ok(count),
                BodyRead::Read(wait) => {
                    self.flush().await?;
                    let result = self.read_within(wait.timeout).await;
                    self.state.body_received(result, &SystemClock)?;
                }
            }
        }
    }

    /// Starts the response (encoded into the output buffer).
    pub(crate) fn start_response(
        &mut self,
        status: u16,
        headers: &[(&str, &[u8])],
    ) -> io::Result<()> {
        self.state.start_response(status, headers)
    }

    /// Encodes response body bytes; true when the output should be written out now.
    pub(crate) fn write_buffered(&mut self, data: &[u8]) -> io::Result<bool> {
        self.state.write_body(data)
    }
}
