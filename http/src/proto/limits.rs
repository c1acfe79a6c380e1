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

/// Gunicorn's most header fields (`MAX_HEADERS`): what
/// `limit_request_fields` 0 means.
pub const MAX_LIMIT_REQUEST_FIELDS: usize = 32768;
/// What an unlimited request line (`limit_request_line` 0) counts as when
/// the whole head is capped: 1 MiB, as Gunicorn's fast parser takes it.
pub const UNLIMITED_LINE_IN_HEAD: usize = 1 << 20;

/// The limits a request is parsed under. `usize::MAX` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `limit_request_line`: longest request line without CRLF (414 beyond).
    pub request_line: usize,
    /// `limit_request_fields`: most header fields (431 beyond).
    pub request_fields: usize,
    /// `limit_request_field_size`, counted as Gunicorn counts it: a field
    /// line *with* its CRLF (name, colon, whitespace, value) longer than
    /// this is a 431; so is a trailer line, and a chunk-size line (without
    /// its CRLF) longer than this is a 400.
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
    /// meaning of 0: an unlimited request line, 32768 fields, the default
    /// field size (8190). The head cap is `MIN_HEAD_CAP`, raised so one
    /// maximal line and field always fit.
    pub fn from_settings(
        limit_request_line: usize,
        limit_request_fields: usize,
        limit_request_field_size: usize,
        limit_request_body: u64,
    ) -> Limits {
        let request_line = if limit_request_line == 0 {
            usize::MAX
        } else {
            limit_request_line
        };
        let request_fields = match limit_request_fields {
            0 => MAX_LIMIT_REQUEST_FIELDS,
            fields => fields.min(MAX_LIMIT_REQUEST_FIELDS),
        };
        let request_field_size = if limit_request_field_size == 0 {
            DEFAULT_LIMIT_REQUEST_FIELD_SIZE
        } else {
            limit_request_field_size
        };
        let head = MIN_HEAD_CAP.max(
            request_line
                .min(UNLIMITED_LINE_IN_HEAD)
                .saturating_add(request_field_size)
                .saturating_add(8),
        );
        Limits {
            request_line,
            request_fields,
            request_field_size,
            head,
            body: limit_request_body,
        }
    }
}
