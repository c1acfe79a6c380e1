//! The request limits, named as Gunicorn names them, plus a cap on the whole
//! head. One [`Limits`] value is built once per worker from the settings
//! ([`Limits::from_settings`]) and shared by every connection.

/// Gunicorn's default `limit_request_line`.
pub const DEFAULT_LIMIT_REQUEST_LINE: usize = 4094;
/// Gunicorn's default `limit_request_fields`.
pub const DEFAULT_LIMIT_REQUEST_FIELDS: usize = 100;
/// Gunicorn's default `limit_request_field_size`.
pub const DEFAULT_LIMIT_REQUEST_FIELD_SIZE: usize = 8190;
/// Default `limit_request_body`: 1 GiB, large enough for uploads an app
/// would stream, small enough that a lying client cannot make a worker read
/// forever.
pub const DEFAULT_LIMIT_REQUEST_BODY: u64 = 1 << 30;
/// The smallest cap on a whole request head: 64 KiB (nginx allows 32 KiB by
/// default, node 16 KiB). It is raised when one request line plus one
/// maximal field would not fit.
pub const MIN_HEAD_CAP: usize = 64 * 1024;
/// Longest chunk-size line (size plus extensions) accepted in a chunked body.
pub const MAX_CHUNK_LINE: usize = 4096;

/// The limits a request is parsed under. `usize::MAX` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `limit_request_line`: longest request line without CRLF (414 beyond).
    pub request_line: usize,
    /// `limit_request_fields`: most header fields (431 beyond).
    pub request_fields: usize,
    /// `limit_request_field_size`: longest `name: value` line without CRLF (431 beyond).
    pub request_field_size: usize,
    /// The whole head, request line to the empty line (431 beyond).
    pub head: usize,
    /// `limit_request_body`: largest body, either framing (413 beyond).
    pub body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_settings(
            DEFAULT_LIMIT_REQUEST_LINE,
            DEFAULT_LIMIT_REQUEST_FIELDS,
            DEFAULT_LIMIT_REQUEST_FIELD_SIZE,
            DEFAULT_LIMIT_REQUEST_BODY,
        )
    }
}

impl Limits {
    /// The limits from the four numbers in `Settings`, with Gunicorn's
    /// meaning of 0 (unlimited) for the line and field size. The head cap is
    /// `MIN_HEAD_CAP`, raised so one maximal line and field always fit.
    pub fn from_settings(
        limit_request_line: usize,
        limit_request_fields: usize,
        limit_request_field_size: usize,
        limit_request_body: u64,
    ) -> Limits {
        let unlimited = |value: usize| if value == 0 { usize::MAX } else { value };
        let request_line = unlimited(limit_request_line);
        let request_field_size = unlimited(limit_request_field_size);
        let head = MIN_HEAD_CAP.max(
            request_line
                .saturating_add(request_field_size)
                .saturating_add(8),
        );
        Limits {
            request_line,
            request_fields: limit_request_fields,
            request_field_size,
            head,
            body: limit_request_body,
        }
    }
}
