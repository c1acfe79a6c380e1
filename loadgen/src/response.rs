//! Reading one response off a connection as its bytes arrive: the head
//! (httparse), then the body by its framing (Content-Length, chunked with
//! extensions and trailers skipped, or until the server closes), 1xx
//! interim responses skipped. Bodies are counted, never kept.

/// The most headers a response may have.
const MAX_HEADERS: usize = 64;

/// Where the reader is in the current response.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Head,
    /// This many body bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// The body ends when the server closes the connection.
    UntilClose,
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Reading the chunk size's hex digits (`digits` seen so far).
    Size {
        value: u64,
        digits: u32,
    },
    /// Skipping a chunk extension up to the line's end.
    Extension {
        value: u64,
    },
    /// After the size line's CR.
    SizeLf {
        value: u64,
    },
    /// This many bytes of chunk data are still to come.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// After the final empty line's CR.
    FinalLf,
}

/// What feeding bytes to the reader found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The response is not complete yet; every byte given was used.
    More,
    /// The response is complete; `used` bytes of those given were its last.
    Done { used: usize },
    /// Not a valid HTTP/1.1 response (the reason, for tests and debugging).
    Bad(&'static str),
}

/// The response being read on one connection, reset for each request.
#[derive(Debug, Clone)]
pub(crate) struct ResponseReader {
    phase: Phase,
    /// The final (non-1xx) status, once its head is read.
    pub(crate) status: u16,
    /// Whether the server will close the connection after this response
    /// (`Connection: close`, HTTP/1.0 without keep-alive, or a body that
    /// ends at the close).
    pub(crate) close: bool,
}

impl ResponseReader {
    pub(crate) fn new() -> ResponseReader {
        ResponseReader {
            phase: Phase::Head,
            status: 0,
            close: false,
        }
    }

    /// Prepares for the next response.
    pub(crate) fn reset(&mut self) {
        *self = ResponseReader::new();
    }

    /// Whether the response is complete when the server closes now.
    pub(crate) fn done_at_close(&self) -> bool {
        matches!(self.phase, Phase::UntilClose)
    }

    /// Feeds the bytes received so far and not yet used. A head is only
    /// consumed once complete: `More` with a head pending leaves the
    /// bytes to the caller, who keeps them and adds what comes next
    /// (`consumed` says how many were used).
    pub(crate) fn feed(&mut self, bytes: &[u8], head_request: bool) -> (Parsed, usize) {
        let mut at = 0;
        loop {
            match self.phase {
                Phase::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut head = httparse::Response::new(&mut headers);
                    let len = match head.parse(&bytes[at..]) {
                        Ok(httparse::Status::Complete(len)) => len,
                        Ok(httparse::Status::Partial) => return (Parsed::More, at),
                        Err(_) => return (Parsed::Bad("invalid response head"), at),
                    };
                    at += len;
                    let Some(status) = head.code else {
                        return (Parsed::Bad("no status"), at);
                    };
                    if status == 101 {
                        return (
                            Parsed::Bad("101 Switching Protocols to an HTTP/1.1 request"),
                            at,
                        );
                    }
                    if (100..200).contains(&status) {
                        continue;
                    }
                    self.status = status;
                    match framing(&head, status, head_request) {
                        Ok((phase, close)) => {
                            self.phase = phase;
                            self.close = close;
                        }
                        Err(why) => return (Parsed::Bad(why), at),
                    }
                }
                Phase::Length(0) => return (Parsed::Done { used: at }, at),
                Phase::Length(left) => {
                    let take = left.min((bytes.len() - at) as u64);
                    at += take as usize;
                    self.phase = Phase::Length(left - take);
                    if left > take {
                        return (Parsed::More, at);
                    }
                }
                Phase::UntilClose => return (Parsed::More, bytes.len()),
                Phase::Chunked(chunk) => match chunked(chunk, &bytes[at..]) {
                    Ok((Some(next), used)) => {
                        self.phase = Phase::Chunked(next);
                        return (Parsed::More, at + used);
                    }
                    Ok((None, used)) => {
                        at += used;
                        self.phase = Phase::Length(0);
                    }
                    Err(why) => return (Parsed::Bad(why), at),
                },
            }
        }
    }
}

/// How the body of a response with this head is delimited, and whether
/// the connection closes after it (RFC 9112, section 6.3).
fn framing(
    head: &httparse::Response<'_, '_>,
    status: u16,
    head_request: bool,
) -> Result<(Phase, bool), &'static str> {
    let mut close = head.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for header in head.headers.iter() {
        if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && head.version == Some(0) {
                    close = false;
                }
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            if length.is_some_and(|earlier| earlier != value) {
                return Err("two different Content-Length headers");
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    if head_request || status == 204 || status == 304 {
        return Ok((Phase::Length(0), close));
    }
    Ok(match (chunked, length) {
        (Some(true), _) => (
            Phase::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
            }),
            close,
        ),
        (Some(false), _) => (Phase::UntilClose, true),
        (None, Some(length)) => (Phase::Length(length), close),
        (None, None) => (Phase::UntilClose, true),
    })
}

/// Runs the chunked decoder over `bytes`: the state it is left in (None
/// once the body, trailers included, ended) and how many bytes it used.
fn chunked(mut chunk: Chunk, bytes: &[u8]) -> Result<(Option<Chunk>, usize), &'static str> {
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        chunk = match chunk {
            Chunk::Data(left) => {
                let take = left.min((bytes.len() - at) as u64);
                at += take as usize;
                chunk = if left == take {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - take)
                };
                continue;
            }
            Chunk::Size { value, digits } => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 15 {
                        return Err("chunk size too large");
                    }
                    let digit = (byte as char).to_digit(16).unwrap_or(0);
                    Chunk::Size {
                        value: value * 16 + u64::from(digit),
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err("invalid chunk size"),
                b';' | b' ' | b'\t' => Chunk::Extension { value },
                b'\r' => Chunk::SizeLf { value },
                b'\n' => size_line_end(value),
                _ => return Err("invalid chunk size"),
            },
            Chunk::Extension { value } => match byte {
                b'\r' => Chunk::SizeLf { value },
                b'\n' => size_line_end(value),
                _ => Chunk::Extension { value },
            },
            Chunk::SizeLf { value } => match byte {
                b'\n' => size_line_end(value),
                _ => return Err("invalid chunk size line end"),
            },
            Chunk::DataCr => match byte {
                b'\r' => Chunk::DataLf,
                b'\n' => Chunk::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err("chunk data longer than its size"),
            },
            Chunk::DataLf => match byte {
                b'\n' => Chunk::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return Err("chunk data longer than its size"),
            },
            Chunk::TrailerStart => match byte {
                b'\r' => Chunk::FinalLf,
                b'\n' => return Ok((None, at + 1)),
                _ => Chunk::Trailer,
            },
            Chunk::Trailer => match byte {
                b'\n' => Chunk::TrailerStart,
                _ => Chunk::Trailer,
            },
            Chunk::FinalLf => match byte {
                b'\n' => return Ok((None, at + 1)),
                _ => return Err("invalid end of chunked body"),
            },
        };
        at += 1;
    }
    Ok((Some(chunk), at))
}

fn size_line_end(value: u64) -> Chunk {
    if value == 0 {
        Chunk::TrailerStart
    } else {
        Chunk::Data(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `response` in pieces of `step` bytes the way the engine does
    /// (unused head bytes kept and given again with the next piece).
    fn read(response: &[u8], step: usize, head_request: bool) -> (Parsed, ResponseReader) {
        let mut reader = ResponseReader::new();
        let mut pending: Vec<u8> = Vec::new();
        for piece in response.chunks(step) {
            pending.extend_from_slice(piece);
            let (parsed, used) = reader.feed(&pending, head_request);
            match parsed {
                Parsed::More => {
                    pending.drain(..used);
                }
                done_or_bad => {
                    if let Parsed::Done { used: last } = done_or_bad {
                        assert_eq!(last, used);
                        // Everything after the response is what the caller sees as extra.
                        pending.drain(..used);
                        assert!(pending.is_empty(), "extra bytes after the response");
                    }
                    return (done_or_bad, reader);
                }
            }
        }
        (Parsed::More, reader)
    }

    fn every_step(response: &[u8], head_request: bool) -> Vec<(Parsed, u16, bool, bool)> {
        (1..=response.len())
            .map(|step| {
                let (parsed, reader) = read(response, step, head_request);
                let parsed = match parsed {
                    Parsed::Done { .. } => Parsed::Done { used: 0 },
                    other => other,
                };
                (parsed, reader.status, reader.close, reader.done_at_close())
            })
            .collect()
    }

    fn assert_done(response: &[u8], status: u16, close: bool) {
        for (step, outcome) in every_step(response, false).into_iter().enumerate() {
            assert_eq!(
                outcome,
                (Parsed::Done { used: 0 }, status, close, false),
                "in pieces of {}",
                step + 1
            );
        }
    }

    #[test]
    fn content_length() {
        assert_done(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            200,
            false,
        );
        assert_done(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            404,
            false,
        );
        assert_done(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nhi",
            200,
            true,
        );
        assert_done(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, true);
        assert_done(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi",
            200,
            false,
        );
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        assert_done(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
            200,
            false,
        );
        assert_done(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            200,
            false,
        );
        let (parsed, _) = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            4,
            false,
        );
        assert_eq!(parsed, Parsed::Bad("chunk data longer than its size"));
        let (parsed, _) = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            100,
            false,
        );
        assert_eq!(parsed, Parsed::Bad("invalid chunk size"));
    }

    #[test]
    fn informational_responses_are_skipped() {
        assert_done(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
            201,
            false,
        );
    }

    #[test]
    fn no_body_for_head_204_304() {
        for (step, outcome) in every_step(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                outcome,
                (Parsed::Done { used: 0 }, 200, false, false),
                "{step}"
            );
        }
        assert_done(b"HTTP/1.1 204 No Content\r\n\r\n", 204, false);
        assert_done(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            304,
            false,
        );
    }

    #[test]
    fn close_delimited() {
        for outcome in every_step(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", false) {
            assert_eq!(outcome, (Parsed::More, 200, true, true));
        }
        for outcome in every_step(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nuntil the end",
            false,
        ) {
            assert_eq!(outcome, (Parsed::More, 200, true, true));
        }
    }

    #[test]
    fn bad_heads() {
        assert_eq!(
            read(b"SSH-2.0-OpenSSH\r\n\r\n", 100, false).0,
            Parsed::Bad("invalid response head")
        );
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 100, false).0,
            Parsed::Bad("invalid Content-Length")
        );
        assert_eq!(
            read(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                100,
                false
            )
            .0,
            Parsed::Bad("two different Content-Length headers")
        );
        assert_eq!(
            read(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 100, false).0,
            Parsed::Bad("101 Switching Protocols to an HTTP/1.1 request")
        );
    }
}
