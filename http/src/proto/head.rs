//! The parsed request head: what every worker class and every app sees.
//!
//! Header fields are kept in received order with their names exactly as
//! received (Gunicorn keeps them so too); look-ups are case-insensitive.
//! A `RequestHead` is meant to be reused across the requests of one
//! connection (`clear` keeps the allocations), so steady-state parsing
//! allocates nothing.

/// The HTTP versions we speak. Anything else is answered with 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0: close by default, keep-alive on request.
    Http10,
    /// HTTP/1.1: keep-alive by default.
    Http11,
}

impl Version {
    /// The version as it appears on the wire, `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// One header field, name as received, value as raw bytes (obs-text allowed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// The field name exactly as the client sent it.
    pub name: String,
    /// The field value with surrounding whitespace trimmed.
    pub value: Vec<u8>,
}

/// A request line plus its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token, case as received (methods are case-sensitive).
    pub method: String,
    /// The request target as received (origin, absolute, authority or `*`).
    pub target: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Header fields in received order.
    pub headers: Vec<Header>,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            method: String::new(),
            target: String::new(),
            version: Version::Http11,
            headers: Vec::new(),
        }
    }
}

impl RequestHead {
    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
            .map(|field| field.value.as_slice())
    }

    /// The path part of the target: before `?`, and without the scheme and
    /// authority of an absolute-form target.
    pub fn path(&self) -> &str {
        let target = self.target.as_str();
        let without_query = target.split_once('?').map_or(target, |(path, _)| path);
        match without_query.find("://") {
            Some(scheme_end) => {
                let rest = &without_query[scheme_end + 3..];
                rest.find('/').map_or("/", |slash| &rest[slash..])
            }
            None => without_query,
        }
    }

    /// The query string after `?`, or `""`.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// Forget this request but keep the allocations for the next one.
    pub fn clear(&mut self) {
        self.method.clear();
        self.target.clear();
        self.version = Version::Http11;
        self.headers.clear();
    }
}

/// A request path's bytes with each `%XX` escape decoded, as Python's
/// `urllib.parse.unquote_to_bytes` does (a `%` not followed by two hex
/// digits stays as it is). For `PATH_INFO` and the access log's `U`.
pub fn percent_decoded(path: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = path.as_bytes();
    let mut index = 0;
    std::iter::from_fn(move || {
        let byte = *bytes.get(index)?;
        if byte == b'%' && index + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                index += 3;
                return Some(high << 4 | low);
            }
        }
        index += 1;
        Some(byte)
    })
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod percent_tests {
    use super::percent_decoded;

    fn decoded(path: &str) -> Vec<u8> {
        percent_decoded(path).collect()
    }

    #[test]
    fn escapes_are_decoded_and_bad_ones_kept() {
        assert_eq!(decoded("/a%20b"), b"/a b");
        assert_eq!(decoded("/%e2%82%AC"), [b'/', 0xe2, 0x82, 0xac]);
        assert_eq!(decoded("/bad%zz%4"), b"/bad%zz%4");
        assert_eq!(decoded("/%2F%"), b"//%");
        assert_eq!(decoded("%41"), b"A");
        assert_eq!(decoded(""), b"");
    }
}
