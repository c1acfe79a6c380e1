//! Request-head parsing: `httparse` reads the syntax, this module enforces
//! the limits, the line endings, the target forms and the framing rules,
//! and copies the result into a reused [`RequestHead`].
//!
//! Parsing is incremental by re-parsing: call [`parse_head_into`] on the
//! whole buffered prefix each time more bytes arrive. It never allocates once
//! the head's vectors and strings have grown to the connection's usual sizes.

use std::mem::MaybeUninit;

use crate::proto::error::ParseError;
use crate::proto::framing::{self, RequestInfo};
use crate::proto::head::{Header, RequestHead, Version};
use crate::proto::limits::Limits;

/// Header slots on the stack (left uninitialised, so they cost nothing);
/// more come from the heap only when a request has more fields than this
/// (and `limit_request_fields` allows them). Kept small because the slots
/// sit in the caller's frame: on a green worker that frame is on every
/// connection's coroutine stack, and 128 slots (4 KiB) there cost a page of
/// resident memory per idle connection.
const STACK_FIELDS: usize = 32;

/// The result of parsing a buffered prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadStatus {
    /// A whole head was parsed and validated.
    Complete(RequestInfo),
    /// The head is not complete yet; read more and call again.
    Partial,
}

/// Parse a request head from `buf` into `head`, reusing its allocations.
///
/// On [`HeadStatus::Complete`] the head is filled and the returned
/// [`RequestInfo`] says how long the head was, how the body is framed and
/// what the client asked about keep-alive and `100-continue`. On
/// [`HeadStatus::Partial`] the head's contents are unspecified.
pub fn parse_head_into(
    buf: &[u8],
    limits: &Limits,
    head: &mut RequestHead,
) -> Result<HeadStatus, ParseError> {
    // RFC 9112 2.2: ignore empty lines (CRLF) before the request line.
    let mut start = 0;
    while buf.len() >= start + 2 && buf[start] == b'\r' && buf[start + 1] == b'\n' {
        start += 2;
    }
    if start > limits.head {
        return Err(ParseError::HeadTooLarge { limit: limits.head });
    }
    let input = &buf[start..];
    match input.first() {
        None => return Ok(HeadStatus::Partial),
        Some(b'\n') => return Err(ParseError::BareLineFeed),
        Some(b'\r') if input.len() == 1 => return Ok(HeadStatus::Partial),
        Some(b'\r') => return Err(ParseError::BareLineFeed),
        _ => {}
    }

    // One slot more than the limit, so that "too many" is seen as such.
    let wanted = limits.request_fields.saturating_add(1);
    let mut slots = [const { MaybeUninit::uninit() }; STACK_FIELDS];
    if wanted <= STACK_FIELDS {
        parse_with(input, start, limits, head, &mut slots[..wanted])
    } else {
        match parse_with(input, start, limits, head, &mut slots) {
            Err(ParseError::TooManyFields { .. }) => {
                let count = wanted.min(limits.head / 4 + 1);
                let mut heap: Vec<MaybeUninit<httparse::Header<'_>>> = Vec::with_capacity(count);
                heap.resize_with(count, MaybeUninit::uninit);
                parse_with(input, start, limits, head, &mut heap)
            }
            other => other,
        }
    }
}

/// Parse a head into a fresh [`RequestHead`]: `Ok(None)` when incomplete.
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, RequestInfo)>, ParseError> {
    let mut head = RequestHead::default();
    match parse_head_into(buf, limits, &mut head)? {
        HeadStatus::Complete(info) => Ok(Some((head, info))),
        HeadStatus::Partial => Ok(None),
    }
}

fn parse_with<'b>(
    input: &'b [u8],
    start: usize,
    limits: &Limits,
    head: &mut RequestHead,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<HeadStatus, ParseError> {
    let mut request = httparse::Request::new(&mut []);
    let parsed = request.parse_with_uninit_headers(input, slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            check_partial(input, limits)?;
            return Ok(HeadStatus::Partial);
        }
        Err(err) => {
            check_request_line_length(input, limits)?;
            return map_httparse_error(err, input, limits);
        }
    };
    if start + len > limits.head {
        return Err(ParseError::HeadTooLarge { limit: limits.head });
    }
    let method = request.method.unwrap_or_default();
    let target = request.path.unwrap_or_default();
    let version = match request.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(ParseError::UnsupportedVersion),
    };

    // Line endings: httparse accepts a bare LF; we do not. Every line must
    // end in CRLF, which we check at each line boundary httparse found.
    let base = input.as_ptr() as usize;
    let offset_of = |slice: &[u8]| slice.as_ptr() as usize - base;
    let first_line_end = match request.headers.first() {
        Some(first) => offset_of(first.name.as_bytes()),
        None => len - 2,
    };
    if !ends_in_crlf(input, first_line_end) {
        return Err(ParseError::BareLineFeed);
    }
    let request_line_len = first_line_end - 2;
    if request_line_len > limits.request_line {
        return Err(ParseError::RequestLineTooLong {
            limit: limits.request_line,
        });
    }
    if !ends_in_crlf(input, len) {
        return Err(ParseError::BareLineFeed);
    }

    check_target(method, target)?;

    head.method.clear();
    head.method.push_str(method);
    head.target.clear();
    head.target.push_str(target);
    head.version = version;

    let fields = request.headers.len();
    if fields > limits.request_fields {
        return Err(ParseError::TooManyFields {
            limit: limits.request_fields,
        });
    }
    let mut facts = framing::Facts::default();
    for (index, field) in request.headers.iter().enumerate() {
        let name_start = offset_of(field.name.as_bytes());
        let line_end = match request.headers.get(index + 1) {
            Some(next) => offset_of(next.name.as_bytes()),
            None => len - 2,
        };
        if !ends_in_crlf(input, line_end) {
            return Err(ParseError::BareLineFeed);
        }
        // Gunicorn counts the whole line with its CRLF.
        if line_end - name_start > limits.request_field_size {
            return Err(ParseError::FieldTooLarge {
                limit: limits.request_field_size,
            });
        }
        facts.observe(field.name, field.value)?;
        if index < head.headers.len() {
            let slot = &mut head.headers[index];
            slot.name.clear();
            slot.name.push_str(field.name);
            slot.value.clear();
            slot.value.extend_from_slice(field.value);
        } else {
            head.headers.push(Header {
                name: field.name.to_owned(),
                value: field.value.to_vec(),
            });
        }
    }
    head.headers.truncate(fields);

    let info = facts.decide(version, start + len, limits)?;
    Ok(HeadStatus::Complete(info))
}

/// True when the two bytes before `end` are CRLF.
fn ends_in_crlf(input: &[u8], end: usize) -> bool {
    end >= 2 && input[end - 2] == b'\r' && input[end - 1] == b'\n'
}

/// Limits that can be exceeded before the head is complete.
fn check_partial(input: &[u8], limits: &Limits) -> Result<(), ParseError> {
    if input.len() > limits.head {
        return Err(ParseError::HeadTooLarge { limit: limits.head });
    }
    let line_end = check_request_line_length(input, limits)?;
    if let Some(line_end) = line_end {
        // The line being received: from after the last LF to the end.
        let last_line = input[line_end..]
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(line_end, |pos| line_end + pos + 1);
        // `received` bytes of a line (perhaps its CR) make a line of at
        // least `received + 1` bytes with CRLF: over the limit once
        // `received` reaches it.
        let received = input.len() - last_line;
        if received >= limits.request_field_size {
            return Err(ParseError::FieldTooLarge {
                limit: limits.request_field_size,
            });
        }
    }
    Ok(())
}

/// 414 when the request line is already over its limit. Returns the offset
/// just past the request line's LF when it is complete.
fn check_request_line_length(input: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
    let window = input.len().min(limits.request_line.saturating_add(2));
    match input[..window].iter().position(|&byte| byte == b'\n') {
        Some(lf) => {
            let line_len = lf.saturating_sub(1);
            if line_len > limits.request_line {
                return Err(ParseError::RequestLineTooLong {
                    limit: limits.request_line,
                });
            }
            Ok(Some(lf + 1))
        }
        None if input.len() > limits.request_line.saturating_add(1) => {
            Err(ParseError::RequestLineTooLong {
                limit: limits.request_line,
            })
        }
        None => Ok(None),
    }
}

fn map_httparse_error(
    err: httparse::Error,
    input: &[u8],
    limits: &Limits,
) -> Result<HeadStatus, ParseError> {
    let line_end = input
        .iter()
        .position(|&byte| byte == b'\r' || byte == b'\n');
    let line = &input[..line_end.unwrap_or(input.len())];
    let parts = line.split(|&byte| byte == b' ').count();
    Err(match err {
        httparse::Error::Token => token_error(input),
        httparse::Error::Version => {
            // httparse rejects any version but 1.0 and 1.1 as soon as it
            // sees a byte that differs, so a well-formed other version may
            // still be arriving: wait for the line to tell 505 from 400.
            let version = line.rsplit(|&byte| byte == b' ').next().unwrap_or_default();
            match (parts, line_end) {
                (3, Some(_)) if is_version(version) => ParseError::UnsupportedVersion,
                (3, None) if is_version_prefix(version) => return Ok(HeadStatus::Partial),
                _ => ParseError::BadRequestLine,
            }
        }
        httparse::Error::HeaderName => ParseError::BadHeader,
        httparse::Error::HeaderValue => ParseError::BadHeaderValue,
        // A request line with something other than CRLF after the version.
        httparse::Error::NewLine => ParseError::BadRequestLine,
        // With fewer slots than the limit allows, the caller retries.
        httparse::Error::TooManyHeaders => ParseError::TooManyFields {
            limit: limits.request_fields,
        },
        httparse::Error::Status => ParseError::BadRequestLine,
    })
}

/// httparse's `Token` error is about the method or the target: a method
/// token not followed by one space is a bad method; a target cut short by
/// the end of the line is a bad request line; any other byte a bad target.
fn token_error(input: &[u8]) -> ParseError {
    let method_len = input
        .iter()
        .position(|&byte| !framing::is_token_byte(byte))
        .unwrap_or(input.len());
    if method_len == 0 || input.get(method_len) != Some(&b' ') {
        return ParseError::BadMethod;
    }
    let target = &input[method_len + 1..];
    let stop = target
        .iter()
        .find(|&&byte| !(0x21..=0x7e).contains(&byte) && byte < 0x80);
    match stop {
        Some(b'\r' | b'\n') => ParseError::BadRequestLine,
        _ => ParseError::BadTarget,
    }
}

/// `HTTP/d.d`.
fn is_version(version: &[u8]) -> bool {
    version.len() == 8 && is_version_prefix(version)
}

/// A prefix of `HTTP/d.d`.
fn is_version_prefix(version: &[u8]) -> bool {
    const PATTERN: &[u8] = b"HTTP/0.0";
    version.len() <= PATTERN.len()
        && version.iter().zip(PATTERN).all(|(&byte, &want)| {
            if want == b'0' {
                byte.is_ascii_digit()
            } else {
                byte == want
            }
        })
}

/// The target forms of RFC 9112 3.2, in visible ASCII only.
fn check_target(method: &str, target: &str) -> Result<(), ParseError> {
    let bytes = target.as_bytes();
    if bytes.is_empty()
        || !bytes
            .iter()
            .all(|&byte| (0x21..=0x7e).contains(&byte) && byte != b'#')
    {
        return Err(ParseError::BadTarget);
    }
    if method == "CONNECT" {
        // authority-form: host:port, nothing else.
        let valid = !bytes.contains(&b'/')
            && target.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            });
        return if valid {
            Ok(())
        } else {
            Err(ParseError::BadTarget)
        };
    }
    match bytes[0] {
        b'/' => Ok(()),
        b'*' if bytes.len() == 1 && method == "OPTIONS" => Ok(()),
        _ if is_absolute_form(target) => Ok(()),
        _ => Err(ParseError::BadTarget),
    }
}

/// `scheme "://" ...` with an RFC 3986 scheme.
fn is_absolute_form(target: &str) -> bool {
    let Some((scheme, rest)) = target.split_once("://") else {
        return false;
    };
    let mut chars = scheme.bytes();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !rest.starts_with('/')
}
