//! The two error kinds of the protocol layer: what a client did wrong
//! ([`ParseError`], each with the status code it is answered with) and what
//! an app did wrong when it started or wrote a response ([`ResponseError`]).

/// Why a request (head, body framing or body) was rejected. Every variant
/// knows its status code ([`ParseError::status`]); after answering it the
/// connection is closed, never reused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The request line is not `method SP target SP version CRLF`.
    #[error("malformed request line")]
    BadRequestLine,
    /// The method is not an RFC 9110 token.
    #[error("request method is not a token")]
    BadMethod,
    /// The target is not in origin, absolute, authority (CONNECT) or
    /// asterisk (OPTIONS) form, or holds bytes outside visible ASCII.
    #[error("invalid request target")]
    BadTarget,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1.
    #[error("unsupported http version (only HTTP/1.0 and HTTP/1.1 are served)")]
    UnsupportedVersion,
    /// A header name that is not a token, whitespace before the colon,
    /// obs-fold, or a line that is not `name: value`.
    #[error("malformed header field")]
    BadHeader,
    /// NUL, bare CR or another control character in a header value.
    #[error("invalid byte in a header value")]
    BadHeaderValue,
    /// A line ended by LF alone; only CRLF ends a line.
    #[error("line ended by a bare line feed")]
    BareLineFeed,
    /// The request line is longer than `limit_request_line`.
    #[error(
        "request line longer than limit_request_line ({limit} bytes); raise --limit-request-line if clients need longer urls"
    )]
    RequestLineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// More header fields than `limit_request_fields`.
    #[error(
        "more than limit_request_fields ({limit}) header fields; raise --limit-request-fields if clients need more"
    )]
    TooManyFields {
        /// The limit in force.
        limit: usize,
    },
    /// One header field line is longer than `limit_request_field_size`.
    #[error(
        "header field line longer than limit_request_field_size ({limit} bytes, its CRLF counted); raise --limit-request-field_size if clients need longer fields"
    )]
    FieldTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The whole head is larger than the head cap.
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// A Content-Length that is not a plain decimal number that fits in 64 bits.
    #[error("invalid content-length")]
    BadContentLength,
    /// More than one Content-Length field (equal or not).
    #[error("more than one content-length field")]
    DuplicateContentLength,
    /// Content-Length and Transfer-Encoding in one request (smuggling).
    #[error("content-length together with transfer-encoding")]
    LengthWithTransferEncoding,
    /// A transfer coding list whose final coding is not `chunked`, or a
    /// malformed list.
    #[error("final transfer coding is not chunked")]
    ChunkedNotFinal,
    /// A transfer coding other than `chunked`.
    #[error("unsupported transfer coding")]
    UnknownTransferCoding,
    /// Transfer-Encoding in an HTTP/1.0 request.
    #[error("transfer-encoding in an http/1.0 request")]
    TransferEncodingOnHttp10,
    /// More than one Host field.
    #[error("more than one host field")]
    DuplicateHost,
    /// An HTTP/1.1 request without Host.
    #[error("http/1.1 request without a host field")]
    MissingHost,
    /// An Expect other than `100-continue`.
    #[error("unsupported expectation")]
    UnsupportedExpect,
    /// The body is larger than `limit_request_body`.
    #[error(
        "request body larger than limit_request_body ({limit} bytes); raise --limit-request-body if clients need larger uploads"
    )]
    BodyTooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// A chunk size that is empty, not hex, signed, or overflows.
    #[error("invalid chunk size")]
    BadChunkSize,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not followed by crlf")]
    BadChunkEnd,
    /// A malformed or over-long chunk extension, or a bare CR in one.
    #[error("invalid chunk extension")]
    BadChunkExtension,
    /// A malformed trailer field.
    #[error("invalid trailer field")]
    BadTrailer,
    /// A trailer that names a framing, routing or other forbidden field.
    #[error("trailer field names a framing or routing field")]
    ForbiddenTrailer,
    /// Trailers larger than the header limits allow.
    #[error("trailer section too large")]
    TrailersTooLarge,
    /// A trusted front end sent `secure_scheme_headers` fields that
    /// disagree about the scheme (Gunicorn's `InvalidSchemeHeaders`).
    #[error("contradictory scheme headers")]
    ConflictingSchemeHeaders,
    /// A trusted front end sent a `Forwarded` field outside RFC 7239's
    /// grammar.
    #[error("malformed forwarded header")]
    BadForwarded,
    /// Two `Content-Type` fields (RFC 9110 5.3: it takes one member only).
    #[error("more than one content-type field")]
    DuplicateContentType,
    /// The client closed the connection before the body ended.
    #[error("connection closed before the request body ended")]
    IncompleteBody,
    /// The body did not come in time: no bytes for `--body-timeout`, or
    /// slower on average than `--body-min-rate` after its grace.
    #[error(
        "request body too slow (no bytes within --body-timeout, or slower than --body-min-rate after --body-min-rate-grace)"
    )]
    BodyTimeout,
}

impl ParseError {
    /// The status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::RequestLineTooLong { .. } => 414,
            ParseError::TooManyFields { .. }
            | ParseError::FieldTooLarge { .. }
            | ParseError::HeadTooLarge { .. }
            | ParseError::TrailersTooLarge => 431,
            ParseError::BodyTooLarge { .. } => 413,
            ParseError::BodyTimeout => 408,
            ParseError::UnknownTransferCoding => 501,
            ParseError::UnsupportedExpect => 417,
            ParseError::UnsupportedVersion => 505,
            _ => 400,
        }
    }
}

/// Why an app's response was refused. The response is not sent as asked;
/// the driver answers 500 if nothing was sent yet, else closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// A status outside 100..=999, or 101 (upgrades are not supported).
    #[error("invalid response status {0}")]
    InvalidStatus(u16),
    /// A header name that is not a token.
    #[error("invalid response header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value with CR, LF, NUL or another control byte (response splitting).
    #[error("invalid value for response header {0:?}")]
    InvalidHeaderValue(String),
    /// A Content-Length that is not a decimal number, or two of them.
    #[error("invalid content-length in response")]
    InvalidContentLength,
    /// `start_response` called twice.
    #[error("response already started")]
    AlreadyStarted,
    /// `write` before `start_response`.
    #[error("response not started")]
    NotStarted,
    /// More body bytes than the declared Content-Length.
    #[error("response body longer than its content-length ({declared} bytes)")]
    BodyTooLong {
        /// The Content-Length the app declared.
        declared: u64,
    },
}
