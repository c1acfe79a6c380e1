//! The half of [`ConnState`] the app meets while a request is served
//! (after `Action::Serve`, before [`ConnState::finish`]): the head, the
//! body read through the state, the response encoded into its output, and
//! the end of the request, which decides what the connection does next.

use std::io;

use std::time::Duration;

use super::{nonzero, BodyRead, Clock, ConnState, Phase, ReadWait, RequestEnd, FLUSH_THRESHOLD};
use crate::proto::error::{ParseError, ResponseError};
use crate::proto::head::{Header, RequestHead};
use crate::proto::kept::KeptFields;
use crate::proto::status::CONTINUE;

impl ConnState {
    /// The request line and header fields.
    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    /// Copy request body bytes into `buf`, or say what must be read first
    /// (within `body_timeout`, and the time `body_min_rate` leaves). The
    /// first call queues `100 Continue` when the client asked for it. A
    /// malformed or over-limit body fails with `InvalidData`, one too slow
    /// for `body_min_rate` with `TimedOut` (and their status is answered if
    /// no response started).
    pub fn read_body<C: Clock + ?Sized>(
        &mut self,
        buf: &mut [u8],
        clock: &C,
    ) -> io::Result<BodyRead> {
        if buf.is_empty() || self.cycle.body_done() {
            return Ok(BodyRead::Data(0));
        }
        if let Some(err) = &self.error {
            return Err(io::Error::new(io::ErrorKind::InvalidData, err.clone()));
        }
        if self.cycle.take_continue() {
            self.output.extend_from_slice(CONTINUE);
        }
        if !self.input.is_empty() {
            match self.cycle.decode_body(self.input.data(), buf.len()) {
                Ok((used, data)) => {
                    let count = data.len();
                    buf[..count].copy_from_slice(data);
                    self.input.consume(used);
                    if count > 0 || self.cycle.body_done() {
                        return Ok(BodyRead::Data(count));
                    }
                }
                Err(err) => {
                    self.error = Some(err.clone());
                    return Err(io::Error::new(io::ErrorKind::InvalidData, err));
                }
            }
        }
        if self.cycle.body_done() {
            return Ok(BodyRead::Data(0));
        }
        self.body_wait(clock).map(BodyRead::Read)
    }

    /// The wait for more body bytes: `body_timeout`, shortened to what the
    /// minimum rate leaves; `TimedOut` (answered 408) when nothing is left.
    fn body_wait<C: Clock + ?Sized>(&mut self, clock: &C) -> io::Result<ReadWait> {
        let idle = nonzero(self.config.body_timeout);
        let rate = self.config.body_min_rate;
        if rate == 0 {
            return Ok(ReadWait {
                timeout: idle,
                idle: false,
            });
        }
        // Waiting may take the grace plus a second per `rate` bytes in all.
        let earned = Duration::from_secs_f64(self.body_pace.received as f64 / rate as f64);
        let allowed = self.config.body_min_rate_grace.saturating_add(earned);
        let left = allowed.saturating_sub(self.body_pace.waited);
        if left.is_zero() {
            return Err(self.body_timed_out());
        }
        self.body_pace.since = Some(clock.now());
        Ok(ReadWait {
            timeout: Some(idle.map_or(left, |idle| idle.min(left))),
            idle: false,
        })
    }

    /// The body did not come in time: answered 408 if no response
    /// started, and the app's read fails with `TimedOut`.
    #[cold]
    fn body_timed_out(&mut self) -> io::Error {
        let err = ParseError::BodyTimeout;
        self.error = Some(err.clone());
        self.cycle.abort();
        io::Error::new(io::ErrorKind::TimedOut, err)
    }

    /// The result of the read asked for by [`BodyRead::Read`]. An error is
    /// the app's to see: a client that closed early is `UnexpectedEof`
    /// (answered 400), a slow one `TimedOut` (answered 408, if no response
    /// started); either ends the connection after this request.
    pub fn body_received<C: Clock + ?Sized>(
        &mut self,
        result: io::Result<usize>,
        clock: &C,
    ) -> io::Result<()> {
        if let Some(since) = self.body_pace.since.take() {
            let waited = clock.now().saturating_duration_since(since);
            self.body_pace.waited = self.body_pace.waited.saturating_add(waited);
            if let Ok(count) = result {
                self.body_pace.received = self.body_pace.received.saturating_add(count as u64);
            }
        }
        self.body_result(result)
    }

    /// A body read's result, judged.
    pub(super) fn body_result(&mut self, result: io::Result<usize>) -> io::Result<()> {
        match result {
            Ok(0) => {
                let err = ParseError::IncompleteBody;
                self.error = Some(err.clone());
                self.cycle.abort();
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, err))
            }
            Ok(count) => {
                self.input.filled(count);
                Ok(())
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(err) if super::is_timeout(&err) => Err(self.body_timed_out()),
            Err(err) => {
                self.cycle.abort();
                self.io_failed = true;
                Err(err)
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
        if self
            .retiring
            .as_ref()
            .is_some_and(|retiring| retiring.is_retiring())
        {
            self.cycle.set_last();
        }
        self.cycle
            .start_response(&mut self.output, status, headers, self.date.as_bytes())
            .map_err(invalid_input)?;
        if status >= 200 {
            if !self.config.kept_response_fields.is_empty() {
                self.kept.keep(self.config.kept_response_fields, headers);
            }
            if !self.request_id.is_empty() {
                self.echo_request_id(headers);
            }
        }
        Ok(())
    }

    /// Gives this request the id `value` (set by the worker before the app
    /// runs, under [`ConnConfig::request_id_header`](crate::ConnConfig)): the
    /// head's field of that name is set to it (the first one replaced, any
    /// other removed, or one added), so the app sees the id, and the
    /// response carries it unless the app sets that field itself. Without
    /// a configured field name this does nothing.
    pub fn set_request_id(&mut self, value: &[u8]) {
        let Some(name) = self.config.request_id_header else {
            return;
        };
        self.request_id.clear();
        self.request_id.extend_from_slice(value);
        let mut found = false;
        self.head.headers.retain_mut(|field| {
            if !field.name.eq_ignore_ascii_case(name) {
                return true;
            }
            if found {
                return false;
            }
            found = true;
            if field.value != value {
                field.value.clear();
                field.value.extend_from_slice(value);
            }
            true
        });
        if !found {
            self.head.headers.push(Header {
                name: name.to_owned(),
                value: value.to_vec(),
            });
        }
    }

    /// The response fields kept for the access log, once the response has
    /// started (see [`KeptFields`]).
    pub fn kept_response_fields(&self) -> &KeptFields {
        &self.kept
    }

    /// The head just encoded ends with its blank line: the request id's
    /// field goes in before it, unless the app named that field itself.
    fn echo_request_id(&mut self, headers: &[(&str, &[u8])]) {
        let Some(name) = self.config.request_id_header else {
            return;
        };
        if headers
            .iter()
            .any(|(field, _)| field.eq_ignore_ascii_case(name))
            || !self.output.ends_with(b"\r\n\r\n")
        {
            return;
        }
        let blank = self.output.len() - 2;
        self.output.truncate(blank);
        self.output.extend_from_slice(name.as_bytes());
        self.output.extend_from_slice(b": ");
        self.output.extend_from_slice(&self.request_id);
        self.output.extend_from_slice(b"\r\n\r\n");
    }

    /// The response `finish` made itself (a 500, a body error's status)
    /// starts at `start` of the output: the request id's field goes in
    /// before its head's blank line.
    #[cold]
    fn echo_request_id_in_error(&mut self, start: usize) {
        let Some(name) = self.config.request_id_header else {
            return;
        };
        let Some(blank) = self.output[start..]
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
        else {
            return;
        };
        let at = start + blank + 2;
        let mut field = Vec::with_capacity(name.len() + self.request_id.len() + 4);
        field.extend_from_slice(name.as_bytes());
        field.extend_from_slice(b": ");
        field.extend_from_slice(&self.request_id);
        field.extend_from_slice(b"\r\n");
        self.output.splice(at..at, field);
    }

    /// Encode response body bytes (after `start_response`); true when the
    /// output should be written out now.
    pub fn write_body(&mut self, data: &[u8]) -> io::Result<bool> {
        self.cycle
            .write_body(&mut self.output, data)
            .map_err(invalid_input)?;
        Ok(self.output.len() >= FLUSH_THRESHOLD)
    }

    /// True once a final response has been started.
    pub fn response_started(&self) -> bool {
        self.cycle.response_started()
    }

    /// True once the whole request body has been read (or there was none).
    pub fn body_done(&self) -> bool {
        self.cycle.body_done()
    }

    /// The app failed after its response started: the body is cut short,
    /// so it is not ended as if complete (no last chunk), and the connection
    /// closes after what was written. The client sees a truncated response,
    /// never a complete-looking one.
    pub fn fail_response(&mut self) {
        self.cycle.fail_response();
    }

    /// Answer this request with `err`'s status instead of calling the app
    /// (a front end's contradictory forwarding fields), then close.
    pub fn refuse(&mut self, err: ParseError) {
        self.error.get_or_insert(err);
    }

    /// Close the connection after this request (the app panicked, or the
    /// worker's bookkeeping says so). Effective until the response starts;
    /// a retiring worker needs no call (see [`super::Retiring`]).
    pub fn close_after(&mut self) {
        self.cycle.set_last();
    }

    /// The app returned: end the response (a 500 if none started, the body
    /// error's status if one came first) and decide what the connection
    /// does next: serve the next request, drain the unread body first, or
    /// close (lingering when the client may still be sending).
    #[inline]
    pub fn finish(&mut self) -> RequestEnd {
        let body_error = self.error.take();
        let answered_here = !self.cycle.response_started();
        let start = self.output.len();
        let finish = match &body_error {
            Some(err) => self.cycle.fail(&mut self.output, err, self.date.as_bytes()),
            None => self.cycle.finish(&mut self.output, self.date.as_bytes()),
        };
        if answered_here && !self.request_id.is_empty() {
            self.echo_request_id_in_error(start);
        }
        self.phase = if self.io_failed {
            Phase::Closed
        } else if !finish.keep_alive {
            Phase::Closing {
                linger: !self.cycle.body_done(),
            }
        } else if finish.drain {
            Phase::Drain
        } else {
            Phase::Head
        };
        RequestEnd {
            status: finish.status,
            body_bytes: finish.body_bytes,
            keep_alive: finish.keep_alive && !self.io_failed,
            body_error,
        }
    }
}

fn invalid_input(err: ResponseError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, err)
}
