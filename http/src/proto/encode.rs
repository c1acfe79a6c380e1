//! Response encoding into a caller's reused `Vec<u8>`: the status line,
//! `Server: runicorn`, `Date`, the app's fields (validated, hop-by-hop ones
//! dropped), the framing we choose, and the body as it is written.

use crate::proto::error::ResponseError;
use crate::proto::framing::{is_token_byte, list_items, parse_decimal};
use crate::proto::head::Version;
use crate::proto::status::{format_u64, itoa_buf, reason};

/// Hop-by-hop fields an app may not set: the connection is ours.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// What the encoder needs to know about the request being answered.
#[derive(Debug, Clone, Copy)]
pub struct ResponseContext<'a> {
    /// The request's version (1.0 gets no chunked encoding).
    pub version: Version,
    /// The request was `HEAD`: no body bytes are sent.
    pub head_request: bool,
    /// Whether the connection may stay open after this response.
    pub keep_alive: bool,
    /// The `Date` value (from a [`DateCache`](crate::DateCache)).
    pub date: &'a [u8],
}

/// The result of encoding a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedHead {
    /// How the body must be written.
    pub body: BodyEncoder,
    /// The connection stays open after this response (the head says so).
    pub keep_alive: bool,
    /// The status sent.
    pub status: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No body may be sent (HEAD, 1xx, 204, 304): writes are dropped.
    NoBody,
    /// Exactly this many bytes remain to be written.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0 without length).
    CloseDelimited,
}

/// Writes response body bytes in the framing the head announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyEncoder {
    mode: Mode,
    declared: u64,
    finished: bool,
}

impl BodyEncoder {
    fn new(mode: Mode) -> BodyEncoder {
        let declared = match mode {
            Mode::Length(length) => length,
            _ => 0,
        };
        BodyEncoder {
            mode,
            declared,
            finished: false,
        }
    }

    /// Append `data` in this framing. Empty writes are no-ops (an empty
    /// chunk would end a chunked body).
    pub fn encode(&mut self, out: &mut Vec<u8>, data: &[u8]) -> Result<(), ResponseError> {
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.mode {
            Mode::NoBody => {}
            Mode::Length(remaining) => {
                if data.len() as u64 > *remaining {
                    return Err(ResponseError::BodyTooLong {
                        declared: self.declared,
                    });
                }
                *remaining -= data.len() as u64;
                out.extend_from_slice(data);
            }
            Mode::Chunked => {
                encode_hex(out, data.len());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Mode::CloseDelimited => out.extend_from_slice(data),
        }
        Ok(())
    }

    /// End the body (the last chunk for chunked). Returns true when the
    /// body is complete as framed, so the connection may be reused; false
    /// when fewer bytes than the Content-Length were written, or the body is
    /// close-delimited.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        if self.finished {
            return self.is_complete();
        }
        self.finished = true;
        if self.mode == Mode::Chunked {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        self.is_complete()
    }

    fn is_complete(&self) -> bool {
        matches!(self.mode, Mode::NoBody | Mode::Chunked | Mode::Length(0))
    }

    /// True when the body is chunked.
    pub fn is_chunked(&self) -> bool {
        self.mode == Mode::Chunked
    }
}

/// Encode a response head into `out`.
///
/// `headers` are the app's fields: invalid names or values are refused
/// (nothing is appended then), hop-by-hop fields dropped (`Connection:
/// close` among them is honoured), and `Content-Length` fixes the framing;
/// without it a 1.1 response is chunked and a 1.0 response close-delimited.
/// `Server` and `Date` are added unless the app set them. A 1xx status
/// (other than 101) encodes an interim head with no framing.
pub fn encode_response_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &[u8])],
    context: &ResponseContext<'_>,
) -> Result<EncodedHead, ResponseError> {
    if !(100..=999).contains(&status) || status == 101 {
        return Err(ResponseError::InvalidStatus(status));
    }
    // First pass: validate and learn the framing, appending nothing yet.
    let mut content_length: Option<(u64, &[u8])> = None;
    let mut has_date = false;
    let mut has_server = false;
    let mut app_close = false;
    let mut app_bytes = 0;
    // Bit i: the app's field i is ours to write or drop (fields past the
    // 64th are classified again instead).
    let mut skipped: u64 = 0;
    for (index, (name, value)) in headers.iter().enumerate() {
        // Folds, not `all`: no branch per byte on the hot path.
        if name.is_empty() || !name.bytes().fold(true, |ok, byte| ok & is_token_byte(byte)) {
            return Err(ResponseError::InvalidHeaderName((*name).to_owned()));
        }
        // Visible ASCII, space, tab and obs-text: no other control, no DEL.
        if !value.iter().fold(true, |ok, &byte| {
            ok & ((byte == b'\t') | ((byte >= 0x20) & (byte != 0x7f)))
        }) {
            return Err(ResponseError::InvalidHeaderValue((*name).to_owned()));
        }
        match classify(name) {
            Field::ContentLength => {
                let length = parse_decimal(value).ok_or(ResponseError::InvalidContentLength)?;
                if content_length.is_some_and(|(seen, _)| seen != length) {
                    return Err(ResponseError::InvalidContentLength);
                }
                content_length = Some((length, value));
                skip(&mut skipped, index);
                continue;
            }
            Field::Date => has_date = true,
            Field::Server => has_server = true,
            Field::Connection => {
                app_close |= list_items(value).any(|token| token.eq_ignore_ascii_case(b"close"));
                skip(&mut skipped, index);
                continue;
            }
            Field::HopByHop => {
                skip(&mut skipped, index);
                continue;
            }
            Field::Other => {}
        }
        app_bytes += name.len() + value.len() + 4;
    }

    let interim = status < 200;
    let no_body = interim || status == 204 || status == 304 || context.head_request;
    let mut keep_alive = context.keep_alive && !app_close;
    let mode = if no_body {
        Mode::NoBody
    } else if let Some((length, _)) = content_length {
        Mode::Length(length)
    } else if context.version == Version::Http11 {
        Mode::Chunked
    } else {
        keep_alive = false;
        Mode::CloseDelimited
    };

    // One reservation for the whole head (the framing fields and our
    // `Server` and `Date` fit in the slack), then plain appends.
    out.reserve(app_bytes + 160);
    let mut digits = itoa_buf();
    match status_line(status) {
        Some(line) => out.extend_from_slice(line),
        None => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(format_u64(u64::from(status), &mut digits));
            out.push(b' ');
            out.extend_from_slice(reason(status).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if !interim {
        match (has_server, has_date) {
            (false, false) => out.extend_from_slice(b"Server: runicorn\r\nDate: "),
            (false, true) => out.extend_from_slice(b"Server: runicorn\r\n"),
            (true, false) => out.extend_from_slice(b"Date: "),
            (true, true) => {}
        }
        if !has_date {
            out.extend_from_slice(context.date);
            out.extend_from_slice(b"\r\n");
        }
    }
    for (index, (name, value)) in headers.iter().enumerate() {
        let ours = match index {
            0..64 => skipped & (1 << index) != 0,
            _ => matches!(
                classify(name),
                Field::ContentLength | Field::Connection | Field::HopByHop
            ),
        };
        if ours {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !interim {
        match (mode, content_length) {
            (Mode::Chunked, _) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            // 204 never carries a length; HEAD and 304 repeat the app's.
            (_, Some((length, value))) if status != 204 => {
                out.extend_from_slice(b"Content-Length: ");
                if is_canonical_decimal(value) {
                    out.extend_from_slice(value);
                } else {
                    out.extend_from_slice(format_u64(length, &mut digits));
                }
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if context.version == Version::Http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(EncodedHead {
        body: BodyEncoder::new(mode),
        keep_alive,
        status,
    })
}

/// What an app's response field is to the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    Date,
    Server,
    /// `Connection`: dropped, but a `close` in it is honoured.
    Connection,
    /// Another hop-by-hop field: dropped.
    HopByHop,
    Other,
}

/// Marks the app's field `index` as not to be copied.
fn skip(skipped: &mut u64, index: usize) {
    if index < 64 {
        *skipped |= 1 << index;
    }
}

/// Classifies a validated field name (token characters only) by its length
/// first, so an ordinary field such as `Content-Type` costs one comparison
/// of lengths, not one per name.
fn classify(name: &str) -> Field {
    let is = |known: &str| token_eq_lower(name.as_bytes(), known.as_bytes());
    match name.len() {
        14 if is("content-length") => Field::ContentLength,
        4 if is("date") => Field::Date,
        6 if is("server") => Field::Server,
        10 if is("connection") => Field::Connection,
        _ if is_hop_by_hop(name) => Field::HopByHop,
        _ => Field::Other,
    }
}

/// A status line for the common statuses, ready to copy.
fn status_line(status: u16) -> Option<&'static [u8]> {
    Some(match status {
        200 => b"HTTP/1.1 200 OK\r\n",
        201 => b"HTTP/1.1 201 Created\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        302 => b"HTTP/1.1 302 Found\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        400 => b"HTTP/1.1 400 Bad Request\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        500 => b"HTTP/1.1 500 Internal Server Error\r\n",
        _ => return None,
    })
}

/// Digits (already parsed) as we would format them ourselves: no leading
/// zero. Such a value is copied as the app wrote it.
fn is_canonical_decimal(value: &[u8]) -> bool {
    value.len() == 1 || value.first() != Some(&b'0')
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| name.len() == hop.len() && token_eq_lower(name.as_bytes(), hop.as_bytes()))
}

/// `token` equals `lower` (lowercase letters and `-`) ignoring ASCII case.
/// Setting bit 0x20 lowercases a letter; among token characters only a
/// letter maps onto a lowercase letter that way, and only `-` onto `-`, so
/// the comparison is exact for token input, and branch-free.
fn token_eq_lower(token: &[u8], lower: &[u8]) -> bool {
    token.len() == lower.len()
        && token.iter().zip(lower).fold(0, |differ, (&byte, &known)| {
            differ | ((byte | 0x20) ^ known)
        }) == 0
}

/// `value` in lowercase hex, as a chunk size.
fn encode_hex(out: &mut Vec<u8>, value: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut pos = buf.len();
    let mut rest = value;
    loop {
        pos -= 1;
        buf[pos] = DIGITS[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[pos..]);
}
