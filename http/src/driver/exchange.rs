//! [`Exchange`]: one request as the app callback ([`Handler`]) sees it, on the blocking
//! driver. Its methods mirror the app contract's `Call` so the `app` crate
//! can implement `Call` on top of it in a few lines. Every decision is the
//! connection state's; an exchange only moves bytes for it.

use std::io;

use crate::driver::transport::{SystemClock, Transport, Wire};
use crate::proto::conn::{BodyRead, ConnState};
use crate::proto::head::{Header, RequestHead};
use crate::proto::proxy::Proxied;

/// One request/response exchange on a blocking connection.
pub struct Exchange<'a> {
    wire: &'a mut Wire<dyn Transport + 'a>,
    state: &'a mut ConnState,
    peer: &'a str,
    proxied: Option<&'a Proxied>,
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("head", self.state.head())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl<'a> Exchange<'a> {
    pub(crate) fn new(
        wire: &'a mut Wire<dyn Transport + 'a>,
        state: &'a mut ConnState,
        peer: &'a str,
        proxied: Option<&'a Proxied>,
    ) -> Exchange<'a> {
        Exchange {
            wire,
            state,
            peer,
            proxied,
        }
    }

    /// The request line and header fields.
    pub fn head(&self) -> &RequestHead {
        self.state.head()
    }

    /// The client address (`""` for unix sockets).
    pub fn peer(&self) -> &str {
        self.peer
    }

    /// What the connection's PROXY header said, when it had one.
    pub fn proxied(&self) -> Option<&Proxied> {
        self.proxied
    }

    /// Read request body bytes into `buf`; `Ok(0)` at the end of the body.
    /// The first call sends `100 Continue` when the client asked for it.
    /// A malformed or over-limit body fails with `InvalidData` (and the
    /// driver answers its status if no response started); a client that
    /// closes early fails with `UnexpectedEof`; a slow one (`--body-timeout`,
    /// `--body-min-rate`) with `TimedOut`, answered 408.
    pub fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state.read_body(buf, &SystemClock)? {
                BodyRead::Data(count) => return Ok(count),
                BodyRead::Read(wait) => {
                    self.wire.write(self.state)?;
                    let result = self.wire.read(self.state, wait.timeout);
                    self.state.body_received(result, &SystemClock)?;
                }
            }
        }
    }

    /// Trailer fields of a chunked body, once the body has been read to its end.
    pub fn trailers(&self) -> &[Header] {
        self.state.trailers()
    }

    /// Start the response. `Content-Length` among `headers` fixes the
    /// framing; without it a 1.1 response is chunked. Hop-by-hop fields are
    /// dropped; invalid names or values are refused with `InvalidInput`.
    pub fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
        self.state.start_response(status, headers)
    }

    /// Write response body bytes (after `start_response`). Bytes are
    /// buffered and written out in batches.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.state.write_body(data)? {
            self.flush()?;
        }
        Ok(())
    }

    /// Write out what is buffered now (for streaming responses).
    pub fn flush(&mut self) -> io::Result<()> {
        self.wire.write(self.state)
    }

    /// True once a final response has been started.
    pub fn response_started(&self) -> bool {
        self.state.response_started()
    }

    /// True once the whole request body has been read (or there was none).
    pub fn body_done(&self) -> bool {
        self.state.body_done()
    }

    /// The app failed after starting its response: end it cut short and
    /// close (see [`ConnState::fail_response`]).
    pub fn fail_response(&mut self) {
        self.state.fail_response();
    }

    /// Close the connection after this request (e.g. the app panicked and
    /// the worker will be recycled). Effective until the response starts.
    pub fn close_after(&mut self) {
        self.state.close_after();
    }
}

/// The app callback: serve one request through its [`Exchange`].
/// Returning without starting a response sends 500; a started response is
/// finished by the driver (last chunk).
pub trait Handler {
    /// Serve one request.
    fn handle(&mut self, exchange: &mut Exchange<'_>);
}

impl<F: FnMut(&mut Exchange<'_>)> Handler for F {
    fn handle(&mut self, exchange: &mut Exchange<'_>) {
        self(exchange);
    }
}
