//! The requests a run sends: built from a method, path, headers and body,
//! or read from a file of raw HTTP/1.1 requests. Each is serialized once,
//! complete, and its bytes are written as they are for every send.

use crate::LoadError;

/// One request's bytes, complete (head and body), with Host and
/// Content-Length already in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What is written to the connection, unchanged, for every send.
    pub bytes: Vec<u8>,
    /// How reports name it: the method and the target ("GET /?ms=50").
    pub label: String,
}

/// Methods whose requests carry a body by definition: they always get a
/// Content-Length, 0 when the body is empty (servers may answer 411 otherwise).
const BODY_METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];

impl Request {
    /// Serializes a request: the request line, `Host`, the given headers
    /// (a given `Host` replaces the default one; a given `Content-Length`
    /// or `Transfer-Encoding` is dropped, the body's real length is
    /// written instead; a given `Connection` is dropped when `keep_alive`
    /// is false), `Content-Length` when there is a body or the method has
    /// one, and `Connection: close` when `keep_alive` is false.
    pub fn build(
        method: &str,
        path: &str,
        host: &str,
        headers: &[(String, String)],
        body: &[u8],
        keep_alive: bool,
    ) -> Request {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        let has_host = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"));
        if !has_host {
            head.push_str(&format!("Host: {host}\r\n"));
        }
        for (name, value) in headers {
            let dropped = name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
                || (!keep_alive && name.eq_ignore_ascii_case("connection"));
            if !dropped {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if !body.is_empty() || BODY_METHODS.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        Request {
            bytes,
            label: format!("{method} {path}"),
        }
    }

    /// Whether the response to this request has no body whatever its
    /// headers say (a HEAD request).
    pub(crate) fn is_head(&self) -> bool {
        self.bytes.starts_with(b"HEAD ")
    }
}

/// The most headers one request of a requests file may have.
const MAX_HEADERS: usize = 128;

/// Parses a requests file (`runicorn bench --requests FILE`): raw HTTP/1.1
/// requests one after another, each a head then as many body bytes as its
/// Content-Length says; blank lines between requests are skipped. Each is
/// re-serialized with CRLF line ends; `keep_alive` false replaces any
/// `Connection` header with `Connection: close`. Errors name the request
/// (counted from 1) and what is wrong with it.
pub fn parse_request_file(bytes: &[u8], keep_alive: bool) -> Result<Vec<Request>, LoadError> {
    let mut requests = Vec::new();
    let mut rest = bytes;
    loop {
        while let Some(after) = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
        {
            rest = after;
        }
        if rest.is_empty() {
            break;
        }
        let number = requests.len() + 1;
        let problem = |problem: String| LoadError::RequestFile { number, problem };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let head_len = match parsed.parse(rest) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                return Err(problem(
                    "the head is not complete (it must end with an empty line)".into(),
                ))
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(problem(format!("more than {MAX_HEADERS} headers")))
            }
            Err(error) => return Err(problem(format!("not an HTTP/1.1 request head ({error})"))),
        };
        let (Some(method), Some(path), Some(version)) =
            (parsed.method, parsed.path, parsed.version)
        else {
            return Err(problem("not an HTTP/1.1 request head".into()));
        };
        let mut content_length: Option<usize> = None;
        let mut has_host = false;
        let mut head = format!("{method} {path} HTTP/1.{version}\r\n");
        for header in parsed.headers.iter() {
            let value = String::from_utf8_lossy(header.value);
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(problem(format!(
                    "Transfer-Encoding: {value} is not supported; give the body with a Content-Length"
                )));
            }
            if header.name.eq_ignore_ascii_case("content-length") {
                let length = value.trim().parse::<usize>().map_err(|_| {
                    problem(format!("Content-Length {value:?} is not a number of bytes"))
                })?;
                if content_length.is_some_and(|earlier| earlier != length) {
                    return Err(problem("two different Content-Length headers".into()));
                }
                content_length = Some(length);
            }
            has_host |= header.name.eq_ignore_ascii_case("host");
            if !keep_alive && header.name.eq_ignore_ascii_case("connection") {
                continue;
            }
            head.push_str(&format!("{}: {value}\r\n", header.name));
        }
        if !has_host && version == 1 {
            return Err(problem(
                "no Host header (HTTP/1.1 requires one; add e.g. `Host: localhost`)".into(),
            ));
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let body_len = content_length.unwrap_or(0);
        let body = &rest[head_len..];
        if body.len() < body_len {
            return Err(problem(format!(
                "the body is shorter than its Content-Length ({} of {body_len} bytes; the file ends)",
                body.len()
            )));
        }
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body[..body_len]);
        requests.push(Request {
            bytes,
            label: format!("{method} {path}"),
        });
        rest = &body[body_len..];
    }
    if requests.is_empty() {
        return Err(LoadError::NoRequests);
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(request: &Request) -> &str {
        std::str::from_utf8(&request.bytes).unwrap()
    }

    #[test]
    fn build_get_keep_alive() {
        let request = Request::build("GET", "/?ms=5", "127.0.0.1:8000", &[], b"", true);
        assert_eq!(
            text(&request),
            "GET /?ms=5 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
        );
        assert_eq!(request.label, "GET /?ms=5");
        assert!(!request.is_head());
    }

    #[test]
    fn build_post_with_headers_and_close() {
        let headers = vec![
            ("X-Token".to_string(), "a b".to_string()),
            ("Content-Length".to_string(), "99".to_string()),
            ("Connection".to_string(), "keep-alive".to_string()),
        ];
        let request = Request::build("POST", "/up", "h", &headers, b"hello", false);
        assert_eq!(
            text(&request),
            "POST /up HTTP/1.1\r\nHost: h\r\nX-Token: a b\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        // An empty POST still says its length; a user's Host wins.
        let headers = vec![("Host".to_string(), "example".to_string())];
        let request = Request::build("PUT", "/", "h", &headers, b"", true);
        assert_eq!(
            text(&request),
            "PUT / HTTP/1.1\r\nHost: example\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(Request::build("HEAD", "/", "h", &[], b"", true).is_head());
    }

    #[test]
    fn file_of_requests() {
        let file = b"GET /a HTTP/1.1\nHost: x\n\n\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc\r\nHEAD /c HTTP/1.1\r\nHost: x\r\n\r\n";
        let requests = parse_request_file(file, true).unwrap();
        let labels: Vec<_> = requests.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["GET /a", "POST /b", "HEAD /c"]);
        assert_eq!(text(&requests[0]), "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            text(&requests[1]),
            "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
        );
        let closing = parse_request_file(file, false).unwrap();
        assert_eq!(
            text(&closing[1]),
            "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        assert_eq!(
            text(&closing[0]),
            "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
    }

    fn error(file: &[u8]) -> String {
        parse_request_file(file, true).unwrap_err().to_string()
    }

    #[test]
    fn file_errors_name_the_request() {
        let ok = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            error(b"\n\n"),
            "the requests file has no request in it; write raw HTTP/1.1 requests, each a head and its Content-Length body"
        );
        let message = error(format!("{ok}GET / HTTP/1.1\r\nHost: x\r\n").as_bytes());
        assert!(
            message.starts_with("request 2 in the requests file:"),
            "{message}"
        );
        assert!(message.contains("not complete"), "{message}");
        let message = error(format!("{ok}{ok}GET / HTTP/9\r\n\r\n").as_bytes());
        assert!(message.starts_with("request 3 "), "{message}");
        assert!(
            message.contains("not an HTTP/1.1 request head"),
            "{message}"
        );
        let message =
            error(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        assert!(message.starts_with("request 1 "), "{message}");
        assert!(
            message.contains("Transfer-Encoding: chunked is not supported"),
            "{message}"
        );
        let message = error(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n");
        assert!(message.contains("\"ten\" is not a number"), "{message}");
        let message = error(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
        assert!(
            message.contains("shorter than its Content-Length (3 of 10"),
            "{message}"
        );
        let message = error(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
        assert!(message.contains("no Host header"), "{message}");
        let message = error(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        );
        assert!(
            message.contains("two different Content-Length"),
            "{message}"
        );
    }
}
