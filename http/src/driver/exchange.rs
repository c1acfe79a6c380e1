//! [`Exchange`]: one request as the app callback sees it, on the blocking
//! driver. Its methods mirror the app contract's `Call` so the `app` crate
//! can implement `Call` on top of it in a few lines.

use std::io;

use crate::driver::connection::{ConnIo, FLUSH_THRESHOLD};
use crate::driver::transport::Transport;
use crate::proto::config::ConnConfig;
use crate::proto::cycle::Cycle;
use crate::proto::error::ResponseError;
use crate::proto::head::{Header, RequestHead};
use crate::proto::status::CONTINUE;

/// One request/response exchange on a blocking connection.
pub struct Exchange<'a> {
    stream: &'a mut dyn Transport,
    io: &'a mut ConnIo,
    head: &'a RequestHead,
    cycle: &'a mut Cycle,
    config: &'a ConnConfig,
    peer: &'a str,
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("head", self.head)
            .field("peer", &self.peer)
            .field("cycle", &self.cycle)
            .finish_non_exhaustive()
    }
}

impl<'a> Exchange<'a> {
    pub(crate) fn new(
        stream: &'a mut dyn Transport,
        io: &'a mut ConnIo,
        head: &'a RequestHead,
        cycle: &'a mut Cycle,
        config: &'a ConnConfig,
        peer: &'a str,
    ) -> Exchange<'a> {
        Exchange {
            stream,
            io,
            head,
            cycle,
            config,
            peer,
        }
    }

    /// The request line and header fields.
    pub fn head(&self) -> &RequestHead {
        self.head
    }

    /// The client address (`""` for unix sockets).
    pub fn peer(&self) -> &str {
        self.peer
    }

    /// Read request body bytes into `buf`; `Ok(0)` at the end of the body.
    /// The first call sends `100 Continue` when the client asked for it.
    /// A malformed or over-limit body fails with `InvalidData` (and the
    /// driver answers its status if no response started); a client that
    /// closes early fails with `UnexpectedEof`; a slow one with `TimedOut`.
    pub fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.cycle.body_done() {
            return Ok(0);
        }
        if let Some(err) = &self.io.body_error {
            return Err(io::Error::new(io::ErrorKind::InvalidData, err.clone()));
        }
        if self.cycle.take_continue() {
            self.io.output.extend_from_slice(CONTINUE);
            self.flush()?;
        }
        loop {
            if !self.io.input.is_empty() {
                match self.cycle.decode_body(self.io.input.data(), buf.len()) {
                    Ok((used, data)) => {
                        let count = data.len();
                        buf[..count].copy_from_slice(data);
                        self.io.input.consume(used);
                        if count > 0 || self.cycle.body_done() {
                            return Ok(count);
                        }
                    }
                    Err(err) => {
                        self.io.body_error = Some(err.clone());
                        return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                    }
                }
            }
            if self.cycle.body_done() {
                return Ok(0);
            }
            self.flush()?;
            match self.io.read_more(self.stream, self.config.io_timeout) {
                Ok(0) => {
                    let err = crate::ParseError::IncompleteBody;
                    self.io.body_error = Some(err.clone());
                    self.cycle.abort();
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, err));
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.cycle.abort();
                    self.io.io_failed = true;
                    return Err(err);
                }
            }
        }
    }

    /// Trailer fields of a chunked body, once the body has been read to its end.
    pub fn trailers(&self) -> &[Header] {
        self.cycle.trailers()
    }

    /// Start the response. `Content-Length` among `headers` fixes the
    /// framing; without it a 1.1 response is chunked. Hop-by-hop fields are
    /// dropped; invalid names or values are refused with `InvalidInput`.
    pub fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
        let date = *self.io.date_bytes();
        self.cycle
            .start_response(&mut self.io.output, status, headers, &date)
            .map_err(invalid_input)
    }

    /// Write response body bytes (after `start_response`). Bytes are
    /// buffered and written out in batches.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.cycle
            .write_body(&mut self.io.output, data)
            .map_err(invalid_input)?;
        if self.io.output.len() >= FLUSH_THRESHOLD {
            self.flush()?;
        }
        Ok(())
    }

    /// Write out what is buffered now (for streaming responses).
    pub fn flush(&mut self) -> io::Result<()> {
        let result = self.io.flush(self.stream);
        if result.is_err() {
            self.cycle.abort();
        }
        result
    }

    /// True once a final response has been started.
    pub fn response_started(&self) -> bool {
        self.cycle.response_started()
    }

    /// True once the whole request body has been read (or there was none).
    pub fn body_done(&self) -> bool {
        self.cycle.body_done()
    }

    /// The app failed after starting its response: end it cut short and
    /// close (see `Cycle::fail_response`).
    pub fn fail_response(&mut self) {
        self.cycle.fail_response();
    }

    /// Close the connection after this request (e.g. the app panicked and
    /// the worker will be recycled). Effective until the response starts.
    pub fn close_after(&mut self) {
        self.cycle.set_last();
    }
}

fn invalid_input(err: ResponseError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, err)
}
