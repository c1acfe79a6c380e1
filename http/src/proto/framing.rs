//! What the header fields of a request mean for its connection: body framing
//! (RFC 9112 6), keep-alive (RFC 9112 9.3), `Expect: 100-continue`, and the
//! fields that admit one member only (`Host`, `Content-Type`: RFC 9110 5.3,
//! so a second one makes the message ambiguous). Ambiguous framing is
//! rejected, never guessed.

use crate::proto::error::ParseError;
use crate::proto::head::Version;
use crate::proto::limits::Limits;

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (no Content-Length, no Transfer-Encoding, or Content-Length: 0).
    Empty,
    /// Exactly this many bytes (greater than zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The facts about one parsed request that the connection acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    /// Bytes of the buffer the head took, including leading empty lines and
    /// the final empty line: the body (or the next request) starts here.
    pub head_len: usize,
    /// How the body is framed.
    pub body: BodyKind,
    /// The client allows the connection to stay open after this request
    /// (version default, then `Connection: close` / `keep-alive`).
    pub keep_alive: bool,
    /// HTTP/1.1 `Expect: 100-continue`: send `100 Continue` before reading the body.
    pub expect_continue: bool,
    /// The request's version.
    pub version: Version,
}

/// What the header loop has seen so far; turned into a [`RequestInfo`] by
/// [`Facts::decide`].
#[derive(Debug, Default)]
pub(crate) struct Facts {
    content_length: Option<u64>,
    content_length_fields: u32,
    bad_content_length: bool,
    transfer_encoding: bool,
    chunked_final: bool,
    chunked_count: u32,
    codings: u32,
    unknown_coding: bool,
    malformed_coding: bool,
    host_fields: u32,
    content_type_fields: u32,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    expect_other: bool,
}

impl Facts {
    /// Look at one header field.
    pub(crate) fn observe(&mut self, name: &str, value: &[u8]) -> Result<(), ParseError> {
        match name.len() {
            4 if name.eq_ignore_ascii_case("host") => self.host_fields += 1,
            6 if name.eq_ignore_ascii_case("expect") => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                } else {
                    self.expect_other = true;
                }
            }
            12 if name.eq_ignore_ascii_case("content-type") => self.content_type_fields += 1,
            10 if name.eq_ignore_ascii_case("connection") => {
                for token in list_items(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case("content-length") => {
                self.content_length_fields += 1;
                match parse_decimal(value) {
                    Some(length) => self.content_length = Some(length),
                    None => self.bad_content_length = true,
                }
            }
            17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                self.transfer_encoding = true;
                for coding in list_items(value) {
                    self.codings += 1;
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        self.chunked_count += 1;
                        self.chunked_final = true;
                        continue;
                    }
                    self.chunked_final = false;
                    if !coding.iter().all(|&byte| is_token_byte(byte)) {
                        self.malformed_coding = true;
                    } else if !is_known_coding(coding) {
                        self.unknown_coding = true;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Decide framing and keep-alive once every field was seen.
    pub(crate) fn decide(
        self,
        version: Version,
        head_len: usize,
        limits: &Limits,
    ) -> Result<RequestInfo, ParseError> {
        if self.host_fields > 1 {
            return Err(ParseError::DuplicateHost);
        }
        if version == Version::Http11 && self.host_fields == 0 {
            return Err(ParseError::MissingHost);
        }
        if self.content_type_fields > 1 {
            return Err(ParseError::DuplicateContentType);
        }
        if self.content_length_fields > 1 {
            return Err(ParseError::DuplicateContentLength);
        }
        if self.transfer_encoding && self.content_length_fields > 0 {
            return Err(ParseError::LengthWithTransferEncoding);
        }
        if self.bad_content_length {
            return Err(ParseError::BadContentLength);
        }
        let body = if self.transfer_encoding {
            if version == Version::Http10 {
                return Err(ParseError::TransferEncodingOnHttp10);
            }
            if self.unknown_coding {
                return Err(ParseError::UnknownTransferCoding);
            }
            if self.malformed_coding
                || self.codings == 0
                || !self.chunked_final
                || self.chunked_count > 1
            {
                return Err(ParseError::ChunkedNotFinal);
            }
            if self.codings > 1 {
                // gzip, deflate or compress before chunked: understood, not
                // implemented.
                return Err(ParseError::UnknownTransferCoding);
            }
            BodyKind::Chunked
        } else {
            match self.content_length {
                None | Some(0) => BodyKind::Empty,
                Some(length) if length > limits.body => {
                    return Err(ParseError::BodyTooLarge { limit: limits.body })
                }
                Some(length) => BodyKind::Length(length),
            }
        };
        // RFC 9110 10.1.1: a 1.0 client's Expect is ignored.
        let expect_continue = version == Version::Http11 && self.expect_continue;
        if version == Version::Http11 && self.expect_other {
            return Err(ParseError::UnsupportedExpect);
        }
        let keep_alive = match version {
            Version::Http11 => !self.close,
            Version::Http10 => self.keep_alive && !self.close,
        };
        Ok(RequestInfo {
            head_len,
            body,
            keep_alive,
            expect_continue: expect_continue && body != BodyKind::Empty,
            version,
        })
    }
}

/// The non-empty items of a comma-separated field value, trimmed of OWS.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// `value` without leading and trailing spaces and tabs.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&byte| byte != b' ' && byte != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&byte| byte != b' ' && byte != b'\t')
        .map_or(start, |pos| pos + 1);
    &value[start..end]
}

/// A plain decimal number: digits only, no sign, fits in 64 bits.
pub(crate) fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut number: u64 = 0;
    for &byte in value {
        if !byte.is_ascii_digit() {
            return None;
        }
        number = number
            .checked_mul(10)?
            .checked_add(u64::from(byte - b'0'))?;
    }
    Some(number)
}

/// An RFC 9110 token character.
#[inline]
pub(crate) fn is_token_byte(byte: u8) -> bool {
    TOKEN_BYTES[usize::from(byte)]
}

/// [`is_token_byte`] as a table: one load per byte, no branches, for the
/// header names validated on every request and response.
static TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        byte += 1;
    }
    table
};

/// Transfer codings registered with IANA that we understand but do not
/// implement (a request using one is answered 501, a malformed list 400).
fn is_known_coding(coding: &[u8]) -> bool {
    ["gzip", "x-gzip", "deflate", "compress", "x-compress"]
        .iter()
        .any(|known| coding.eq_ignore_ascii_case(known.as_bytes()))
}
