//! Incremental, bounded request-body decoding: Content-Length and chunked
//! (RFC 9112 7.1), with trailers collected. Chunk extensions are parsed by
//! their grammar and then ignored:
//!
//! ```text
//! chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-name = token; chunk-ext-val = token / quoted-string
//! ```
//!
//! A quoted-string runs to its closing quote and may not hold a CR, LF or
//! other control byte, so an extension either matches the grammar within its
//! line or the body is rejected: a line end can never hide inside quotes,
//! and no front end can read the chunk (or what follows it) differently.
//! The line (size and extensions) is bounded by `limit_request_field_size`,
//! as Gunicorn bounds it.
//!
//! The decoder is sans-IO and zero-copy: [`BodyDecoder::decode`] takes the
//! buffered input and returns how much of it was consumed and the body bytes
//! found, as a sub-slice of the input. Call it again with the rest.

use crate::proto::error::ParseError;
use crate::proto::framing::{is_token_byte, trim_ows, BodyKind};
use crate::proto::head::Header;
use crate::proto::limits::Limits;

/// Fields a trailer may not carry (RFC 9110 6.5.1): framing, routing,
/// connection control, request modifiers, authentication and content
/// processing. A trailer naming one is rejected with 400.
const FORBIDDEN_TRAILERS: &[&str] = &[
    "transfer-encoding",
    "content-length",
    "host",
    "trailer",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "upgrade",
    "expect",
    "max-forwards",
    "cache-control",
    "pragma",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-encoding",
    "content-type",
    "content-range",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Reading hex digits of a chunk size.
    Size,
    /// Whitespace after the size, before `;`.
    SizeSpace,
    /// After `;`: whitespace, then an extension name.
    ExtBeforeName,
    /// Inside an extension name (a token).
    ExtName,
    /// Whitespace after a name: `=` or `;` must follow.
    ExtAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtBeforeValue,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash inside a quoted string.
    ExtQuotedEscape,
    /// Just after the closing quote.
    ExtAfterQuoted,
    /// Whitespace after a value: `;` must follow.
    ExtAfterValue,
    /// After the CR of a chunk-size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After chunk data: CR expected.
    DataCr,
    /// After chunk data and CR: LF expected.
    DataLf,
    /// Reading trailer lines (into `line`).
    Trailers,
    /// The body and its trailers are complete.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Length { remaining: u64 },
    Chunked(Chunked),
}

/// Decodes one request body. Reuse with [`BodyDecoder::reset`] to keep the
/// trailer allocations.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: State,
    /// The current chunk's size, then its bytes still to come.
    chunk: u64,
    /// Digits seen in the current chunk size.
    digits: u32,
    /// Bytes of the current chunk-size line.
    line_len: usize,
    /// Body bytes so far, against `limit`.
    total: u64,
    limit: u64,
    field_size: usize,
    max_fields: usize,
    head_cap: usize,
    /// The trailer line being received.
    line: Vec<u8>,
    trailer_bytes: usize,
    trailers: Vec<Header>,
}

impl Default for BodyDecoder {
    fn default() -> Self {
        BodyDecoder::new(BodyKind::Empty, &Limits::default())
    }
}

impl BodyDecoder {
    /// A decoder for a body framed as `kind`, under `limits`.
    pub fn new(kind: BodyKind, limits: &Limits) -> BodyDecoder {
        let mut decoder = BodyDecoder {
            state: State::Length { remaining: 0 },
            chunk: 0,
            digits: 0,
            line_len: 0,
            total: 0,
            limit: limits.body,
            field_size: limits.request_field_size,
            max_fields: limits.request_fields,
            head_cap: limits.head,
            line: Vec::new(),
            trailer_bytes: 0,
            trailers: Vec::new(),
        };
        decoder.reset(kind, limits);
        decoder
    }

    /// Start over for a new body, keeping allocations.
    pub fn reset(&mut self, kind: BodyKind, limits: &Limits) {
        self.state = match kind {
            BodyKind::Empty => State::Length { remaining: 0 },
            BodyKind::Length(length) => State::Length { remaining: length },
            BodyKind::Chunked => State::Chunked(Chunked::Size),
        };
        self.chunk = 0;
        self.digits = 0;
        self.line_len = 0;
        self.total = 0;
        self.limit = limits.body;
        self.field_size = limits.request_field_size;
        self.max_fields = limits.request_fields;
        self.head_cap = limits.head;
        self.line.clear();
        self.trailer_bytes = 0;
        self.trailers.clear();
    }

    /// True once the whole body (and its trailers) has been decoded.
    pub fn is_done(&self) -> bool {
        matches!(
            self.state,
            State::Length { remaining: 0 } | State::Chunked(Chunked::Done)
        )
    }

    /// Body bytes still to come, when the framing says (Content-Length).
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length { remaining } => Some(remaining),
            State::Chunked(Chunked::Done) => Some(0),
            State::Chunked(_) => None,
        }
    }

    /// Body bytes decoded so far.
    pub fn decoded(&self) -> u64 {
        self.total
    }

    /// The trailer fields of a chunked body, complete once [`is_done`](Self::is_done).
    pub fn trailers(&self) -> &[Header] {
        &self.trailers
    }

    /// Decode from `input`: returns `(consumed, data)` where `data` (at most
    /// `max` bytes) is body content found in `input` and counted in
    /// `consumed`. Stops after the first run of data. When `data` is empty
    /// and the body is not done, all of `input` was consumed: read more.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
        max: usize,
    ) -> Result<(usize, &'a [u8]), ParseError> {
        match self.state {
            State::Length { remaining } => {
                let take = clamp(remaining, input.len().min(max));
                self.state = State::Length {
                    remaining: remaining - take as u64,
                };
                self.total += take as u64;
                Ok((take, &input[..take]))
            }
            State::Chunked(_) => self.decode_chunked(input, max),
        }
    }

    fn decode_chunked<'a>(
        &mut self,
        input: &'a [u8],
        max: usize,
    ) -> Result<(usize, &'a [u8]), ParseError> {
        let mut pos = 0;
        while pos < input.len() {
            let State::Chunked(step) = self.state else {
                unreachable!("decode_chunked on a length body")
            };
            match step {
                Chunked::Data => {
                    let take = clamp(self.chunk, (input.len() - pos).min(max));
                    self.chunk -= take as u64;
                    self.total += take as u64;
                    if self.chunk == 0 {
                        self.state = State::Chunked(Chunked::DataCr);
                    }
                    return Ok((pos + take, &input[pos..pos + take]));
                }
                Chunked::Done => break,
                Chunked::Trailers => {
                    pos += self.trailer_bytes_from(&input[pos..])?;
                }
                _ => {
                    self.chunk_framing_byte(input[pos])?;
                    pos += 1;
                }
            }
        }
        Ok((pos, &input[pos..pos]))
    }

    /// One byte of chunk-size line or of the CRLF after data.
    fn chunk_framing_byte(&mut self, byte: u8) -> Result<(), ParseError> {
        let State::Chunked(step) = self.state else {
            return Ok(());
        };
        if !matches!(step, Chunked::SizeLf | Chunked::DataCr | Chunked::DataLf) && byte != b'\r' {
            // The line without its CRLF, against `limit_request_field_size`.
            self.line_len += 1;
            if self.line_len > self.field_size {
                return Err(ParseError::BadChunkExtension);
            }
        }
        let next = match step {
            Chunked::Size => match hex_value(byte) {
                Some(digit) => {
                    if self.chunk > (u64::MAX >> 4) {
                        return Err(ParseError::BadChunkSize);
                    }
                    self.chunk = (self.chunk << 4) | u64::from(digit);
                    self.digits += 1;
                    Chunked::Size
                }
                None if self.digits == 0 => return Err(ParseError::BadChunkSize),
                None => match byte {
                    b'\r' => Chunked::SizeLf,
                    b';' => Chunked::ExtBeforeName,
                    b' ' | b'\t' => Chunked::SizeSpace,
                    _ => return Err(ParseError::BadChunkSize),
                },
            },
            Chunked::SizeSpace => match byte {
                b' ' | b'\t' => Chunked::SizeSpace,
                b';' => Chunked::ExtBeforeName,
                _ => return Err(ParseError::BadChunkSize),
            },
            Chunked::ExtBeforeName
            | Chunked::ExtName
            | Chunked::ExtAfterName
            | Chunked::ExtBeforeValue
            | Chunked::ExtToken
            | Chunked::ExtQuoted
            | Chunked::ExtQuotedEscape
            | Chunked::ExtAfterQuoted
            | Chunked::ExtAfterValue => {
                extension_byte(step, byte).ok_or(ParseError::BadChunkExtension)?
            }
            Chunked::SizeLf => {
                if byte != b'\n' {
                    return Err(ParseError::BadChunkExtension);
                }
                self.line_len = 0;
                self.digits = 0;
                if self.chunk == 0 {
                    Chunked::Trailers
                } else {
                    if self.total.saturating_add(self.chunk) > self.limit {
                        return Err(ParseError::BodyTooLarge { limit: self.limit });
                    }
                    Chunked::Data
                }
            }
            Chunked::DataCr => {
                if byte != b'\r' {
                    return Err(ParseError::BadChunkEnd);
                }
                Chunked::DataLf
            }
            Chunked::DataLf => {
                if byte != b'\n' {
                    return Err(ParseError::BadChunkEnd);
                }
                Chunked::Size
            }
            Chunked::Data | Chunked::Trailers | Chunked::Done => step,
        };
        self.state = State::Chunked(next);
        Ok(())
    }

    /// Consume trailer-section bytes; returns how many were used.
    fn trailer_bytes_from(&mut self, input: &[u8]) -> Result<usize, ParseError> {
        let mut used = 0;
        for &byte in input {
            used += 1;
            self.trailer_bytes += 1;
            if self.trailer_bytes > self.head_cap {
                return Err(ParseError::TrailersTooLarge);
            }
            if byte != b'\n' {
                self.line.push(byte);
                // As a header line: with its CRLF at most the field size,
                // which a line of this many bytes before its LF exceeds.
                if self.line.len() >= self.field_size {
                    return Err(ParseError::TrailersTooLarge);
                }
                continue;
            }
            // A line ends: it must end in CRLF.
            if self.line.pop() != Some(b'\r') {
                return Err(ParseError::BadTrailer);
            }
            if self.line.is_empty() {
                self.state = State::Chunked(Chunked::Done);
                return Ok(used);
            }
            self.take_trailer_line()?;
            self.line.clear();
        }
        Ok(used)
    }

    fn take_trailer_line(&mut self) -> Result<(), ParseError> {
        let line = &self.line;
        let colon = line
            .iter()
            .position(|&byte| byte == b':')
            .ok_or(ParseError::BadTrailer)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&byte| is_token_byte(byte)) {
            return Err(ParseError::BadTrailer);
        }
        let value = trim_ows(value);
        if value
            .iter()
            .any(|&byte| (byte < 0x20 && byte != b'\t') || byte == 0x7f)
        {
            return Err(ParseError::BadTrailer);
        }
        let name = std::str::from_utf8(name).map_err(|_| ParseError::BadTrailer)?;
        if FORBIDDEN_TRAILERS
            .iter()
            .any(|forbidden| name.eq_ignore_ascii_case(forbidden))
        {
            return Err(ParseError::ForbiddenTrailer);
        }
        if self.trailers.len() >= self.max_fields {
            return Err(ParseError::TrailersTooLarge);
        }
        self.trailers.push(Header {
            name: name.to_owned(),
            value: value.to_vec(),
        });
        Ok(())
    }
}

/// The next state of the chunk-extension grammar after `byte`, or `None`
/// when the byte cannot continue it. A CR ends the line only where the
/// grammar may end: after a name, a token or a closing quote.
fn extension_byte(step: Chunked, byte: u8) -> Option<Chunked> {
    let blank = byte == b' ' || byte == b'\t';
    let token = is_token_byte(byte);
    Some(match step {
        Chunked::ExtBeforeName if blank => Chunked::ExtBeforeName,
        Chunked::ExtBeforeName | Chunked::ExtName if token => Chunked::ExtName,
        Chunked::ExtName | Chunked::ExtAfterName if blank => Chunked::ExtAfterName,
        Chunked::ExtName | Chunked::ExtAfterName if byte == b'=' => Chunked::ExtBeforeValue,
        Chunked::ExtBeforeValue if blank => Chunked::ExtBeforeValue,
        Chunked::ExtBeforeValue if byte == b'"' => Chunked::ExtQuoted,
        Chunked::ExtBeforeValue | Chunked::ExtToken if token => Chunked::ExtToken,
        // qdtext (RFC 9110 5.6.4): HTAB, SP, visible ASCII but `"` and `\`,
        // obs-text. Never CR, LF, NUL, another control byte or DEL.
        Chunked::ExtQuoted => match byte {
            b'"' => Chunked::ExtAfterQuoted,
            b'\\' => Chunked::ExtQuotedEscape,
            b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => Chunked::ExtQuoted,
            _ => return None,
        },
        // quoted-pair: `\` then HTAB, SP, VCHAR or obs-text.
        Chunked::ExtQuotedEscape => match byte {
            b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => Chunked::ExtQuoted,
            _ => return None,
        },
        Chunked::ExtToken | Chunked::ExtAfterQuoted | Chunked::ExtAfterValue if blank => {
            Chunked::ExtAfterValue
        }
        Chunked::ExtName
        | Chunked::ExtAfterName
        | Chunked::ExtToken
        | Chunked::ExtAfterQuoted
        | Chunked::ExtAfterValue
            if byte == b';' =>
        {
            Chunked::ExtBeforeName
        }
        Chunked::ExtName | Chunked::ExtToken | Chunked::ExtAfterQuoted if byte == b'\r' => {
            Chunked::SizeLf
        }
        _ => return None,
    })
}

/// `min(limit, available)` as a `usize`.
fn clamp(limit: u64, available: usize) -> usize {
    usize::try_from(limit).map_or(available, |limit| limit.min(available))
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}
