//! Status codes: reason phrases, and the minimal error responses sent when a
//! request is rejected before any app sees it.

/// The reason phrase of a status code (`""` for codes without one).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// The interim response sent before reading a body the client held back
/// with `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Append a minimal error response for `status` to `out`: status line,
/// `Server`, `Date` (when given), `Connection: close`, `Content-Type`,
/// `Content-Length` and the reason phrase as a one-line body.
pub fn encode_error(out: &mut Vec<u8>, status: u16, date: Option<&[u8]>) {
    let reason = reason(status);
    let mut digits = itoa_buf();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(format_u64(u64::from(status), &mut digits));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nServer: runicorn\r\n");
    if let Some(date) = date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\nContent-Type: text/plain\r\nContent-Length: ");
    out.extend_from_slice(format_u64(reason.len() as u64 + 1, &mut digits));
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(reason.as_bytes());
    out.push(b'\n');
}

/// The bytes of a minimal error response for `status` (see [`encode_error`]),
/// without a `Date`.
pub fn error_response(status: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_error(&mut out, status, None);
    out
}

/// A scratch buffer for [`format_u64`].
pub(crate) fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `number` in decimal, written into the end of `buf`.
pub(crate) fn format_u64(mut number: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    &buf[pos..]
}
