//! One request's life, sans-IO: `100 Continue`, the body, the response and
//! the keep-alive decision. The connection state machine
//! ([`crate::ConnState`]) runs one [`Cycle`] per request.
//!
//! The order of calls: [`Cycle::new`] (or [`Cycle::reset`]) with the parsed
//! head; any number of [`Cycle::take_continue`] + [`Cycle::decode_body`]
//! while the app reads; [`Cycle::start_response`] then
//! [`Cycle::write_body`] as the app answers; [`Cycle::finish`] when the app
//! returns. Then, if [`Finish::drain`] says so, feed the rest of the body to
//! [`Cycle::drain`] before parsing the next head.

use crate::proto::body::BodyDecoder;
use crate::proto::encode::{encode_response_head, BodyEncoder, ResponseContext};
use crate::proto::error::{ParseError, ResponseError};
use crate::proto::framing::{BodyKind, RequestInfo};
use crate::proto::head::{Header, RequestHead};
use crate::proto::limits::Limits;
use crate::proto::status::encode_error;

/// What the connection allows this request, decided by its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleOptions {
    /// The server allows keep-alive at all (false for the sync class).
    pub keep_alive: bool,
    /// This must be the last request on the connection (graceful shutdown,
    /// max-requests): the response says `Connection: close`.
    pub last: bool,
    /// Unread body bytes the server will read and discard to keep the
    /// connection; a larger unread body closes it instead.
    pub max_drain: u64,
}

impl Default for CycleOptions {
    fn default() -> Self {
        CycleOptions {
            keep_alive: true,
            last: false,
            max_drain: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continue {
    NotExpected,
    Pending,
    Sent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    NotStarted,
    Started(BodyEncoder),
    Finished,
}

/// How a request ended, from [`Cycle::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// The status sent.
    pub status: u16,
    /// The connection may serve another request.
    pub keep_alive: bool,
    /// The rest of the request body must be drained (see [`Cycle::drain`])
    /// before the next head: only when `keep_alive`.
    pub drain: bool,
    /// Response body bytes the app wrote.
    pub body_bytes: u64,
}

/// One request's state machine. Reuse it across requests with
/// [`Cycle::reset`] to keep the decoder's allocations.
#[derive(Debug, Clone)]
pub struct Cycle {
    info: RequestInfo,
    head_request: bool,
    options: CycleOptions,
    decoder: BodyDecoder,
    expect: Continue,
    response: Response,
    keep_alive: bool,
    status: u16,
    body_failed: bool,
    body_bytes: u64,
    drained: u64,
}

impl Default for Cycle {
    fn default() -> Self {
        Cycle {
            info: RequestInfo {
                head_len: 0,
                body: BodyKind::Empty,
                keep_alive: false,
                expect_continue: false,
                version: crate::Version::Http11,
            },
            head_request: false,
            options: CycleOptions::default(),
            decoder: BodyDecoder::default(),
            expect: Continue::NotExpected,
            response: Response::NotStarted,
            keep_alive: false,
            status: 0,
            body_failed: false,
            body_bytes: 0,
            drained: 0,
        }
    }
}

impl Cycle {
    /// The cycle of a freshly parsed request.
    pub fn new(
        info: RequestInfo,
        head: &RequestHead,
        limits: &Limits,
        options: CycleOptions,
    ) -> Cycle {
        let mut cycle = Cycle::default();
        cycle.reset(info, head, limits, options);
        cycle
    }

    /// Start over for the next request, keeping allocations.
    pub fn reset(
        &mut self,
        info: RequestInfo,
        head: &RequestHead,
        limits: &Limits,
        options: CycleOptions,
    ) {
        self.info = info;
        self.head_request = head.method == "HEAD";
        self.options = options;
        self.decoder.reset(info.body, limits);
        self.expect = if info.expect_continue {
            Continue::Pending
        } else {
            Continue::NotExpected
        };
        self.response = Response::NotStarted;
        self.keep_alive = false;
        self.status = 0;
        self.body_failed = false;
        self.body_bytes = 0;
        self.drained = 0;
    }

    /// The facts parsed from the head.
    pub fn info(&self) -> &RequestInfo {
        &self.info
    }

    /// Make this the last request on its connection (graceful shutdown,
    /// max-requests). Effective until the response starts.
    pub fn set_last(&mut self) {
        self.options.last = true;
    }

    /// Call before reading body bytes: true exactly once, when the client
    /// is waiting for `100 Continue` (send [`crate::CONTINUE`] first).
    pub fn take_continue(&mut self) -> bool {
        if self.expect == Continue::Pending
            && self.response == Response::NotStarted
            && !self.decoder.is_done()
        {
            self.expect = Continue::Sent;
            return true;
        }
        false
    }

    /// Decode body bytes from `input` (see [`BodyDecoder::decode`]); `max`
    /// must be greater than zero. An error marks the connection for close.
    pub fn decode_body<'a>(
        &mut self,
        input: &'a [u8],
        max: usize,
    ) -> Result<(usize, &'a [u8]), ParseError> {
        let result = self.decoder.decode(input, max);
        if result.is_err() {
            self.body_failed = true;
        }
        result
    }

    /// The whole body has been read (or there was none).
    pub fn body_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// Trailer fields of a chunked body, once the body is done.
    pub fn trailers(&self) -> &[Header] {
        self.decoder.trailers()
    }

    /// True once `start_response` has succeeded with a final status.
    pub fn response_started(&self) -> bool {
        self.response != Response::NotStarted
    }

    /// Encode the response head into `out`. A 1xx status sends an interim
    /// head and leaves the response not started.
    pub fn start_response(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        headers: &[(&str, &[u8])],
        date: &[u8],
    ) -> Result<(), ResponseError> {
        if self.response != Response::NotStarted {
            return Err(ResponseError::AlreadyStarted);
        }
        let context = ResponseContext {
            version: self.info.version,
            head_request: self.head_request,
            keep_alive: self.may_keep_alive(),
            date,
        };
        let encoded = encode_response_head(out, status, headers, &context)?;
        if status >= 200 {
            self.response = Response::Started(encoded.body);
            self.keep_alive = encoded.keep_alive;
            self.status = status;
        }
        Ok(())
    }

    /// Encode response body bytes into `out`.
    pub fn write_body(&mut self, out: &mut Vec<u8>, data: &[u8]) -> Result<(), ResponseError> {
        match &mut self.response {
            Response::Started(encoder) => {
                encoder.encode(out, data)?;
                self.body_bytes += data.len() as u64;
                Ok(())
            }
            _ => Err(ResponseError::NotStarted),
        }
    }

    /// The app returned: end the response. With no response started, a 500
    /// is encoded (or, after a body error, that error's status, closing).
    pub fn finish(&mut self, out: &mut Vec<u8>, date: &[u8]) -> Finish {
        match self.response {
            Response::Finished => {}
            Response::NotStarted => {
                self.keep_alive = false;
                self.status = 500;
                encode_error(out, 500, Some(date));
                self.response = Response::Finished;
            }
            Response::Started(mut encoder) => {
                let complete = encoder.finish(out);
                self.keep_alive &= complete;
                self.response = Response::Finished;
            }
        }
        let keep_alive = self.keep_alive && !self.body_failed;
        Finish {
            status: self.status,
            keep_alive,
            drain: keep_alive && !self.decoder.is_done(),
            body_bytes: self.body_bytes,
        }
    }

    /// Answer a body error that happened before any response started:
    /// encodes the error's status with `Connection: close`.
    pub fn fail(&mut self, out: &mut Vec<u8>, err: &ParseError, date: &[u8]) -> Finish {
        self.body_failed = true;
        if self.response == Response::NotStarted {
            self.status = err.status();
            encode_error(out, self.status, Some(date));
            self.response = Response::Finished;
        }
        self.keep_alive = false;
        self.finish(out, date)
    }

    /// The app failed after its response started: the body is cut short, so
    /// it must not be ended as if complete (no last chunk), and the
    /// connection closes after what was written, as Gunicorn closes it. The
    /// client sees a truncated response, never a complete-looking one.
    pub fn fail_response(&mut self) {
        if let Response::Started(_) = self.response {
            self.response = Response::Finished;
            self.keep_alive = false;
            self.body_failed = true;
        }
    }

    /// Mark the connection unusable after this request (an I/O error).
    pub fn abort(&mut self) {
        self.keep_alive = false;
        self.body_failed = true;
    }

    /// Discard unread body bytes after the response. Returns the bytes of
    /// `input` consumed; `Ok` with `body_done()` true when finished. Fails
    /// when the body is bad or more than `max_drain` bytes were drained.
    pub fn drain(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        let mut consumed = 0;
        while consumed < input.len() && !self.decoder.is_done() {
            let (used, data) = self.decode_body(&input[consumed..], usize::MAX)?;
            self.drained += data.len() as u64;
            consumed += used;
            if used == 0 {
                break;
            }
        }
        if self.drained > self.options.max_drain {
            self.body_failed = true;
            return Err(ParseError::BodyTooLarge {
                limit: self.options.max_drain,
            });
        }
        Ok(consumed)
    }

    /// Whether a response started now could promise keep-alive: the server
    /// and client allow it, this is not the last request, and the unread
    /// body (if any) can be drained without waiting on `100 Continue`.
    fn may_keep_alive(&self) -> bool {
        if !self.options.keep_alive
            || self.options.last
            || !self.info.keep_alive
            || self.body_failed
        {
            return false;
        }
        if self.decoder.is_done() {
            return true;
        }
        if self.expect == Continue::Pending {
            return false;
        }
        self.decoder
            .remaining()
            .is_some_and(|remaining| remaining <= self.options.max_drain)
    }
}
