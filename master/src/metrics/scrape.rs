//! One scrape connection, driven without blocking: read the request head
//! into a small bounded buffer, answer once, close. A client that sends too
//! much, too slowly, or does not read its answer is dropped at its
//! deadline; nothing here waits for it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The longest request head read; a longer one is dropped.
pub const HEAD_LIMIT: usize = 4096;

/// How long a client has, from its accept, to send its request and read
/// the answer.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// What a complete request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `GET /metrics` (`head`: a HEAD request, answered without the body).
    Metrics { head: bool },
    /// Another path.
    NotFound,
    /// Another method on `/metrics`.
    MethodNotAllowed,
    /// Not an HTTP request head.
    Bad,
}

/// Where the connection is.
#[derive(Debug)]
enum Phase {
    Reading { head: Vec<u8> },
    Writing { response: Vec<u8>, written: usize },
    Done,
}

/// One client.
#[derive(Debug)]
pub struct Scrape {
    pub stream: TcpStream,
    /// When it is dropped, on the monotonic clock.
    pub deadline: Duration,
    phase: Phase,
}

impl Scrape {
    /// A client just accepted (its stream already non-blocking).
    pub fn new(stream: TcpStream, now: Duration) -> Scrape {
        Scrape {
            stream,
            deadline: now + DEADLINE,
            phase: Phase::Reading {
                head: Vec::with_capacity(512),
            },
        }
    }

    /// It waits to write (its answer is ready).
    pub fn writing(&self) -> bool {
        matches!(self.phase, Phase::Writing { .. })
    }

    /// It is finished, or broken: drop it.
    pub fn done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Reads what arrived; returns what the request asks once its head is
    /// complete (then [`Scrape::answer`] it).
    pub fn read(&mut self) -> Option<Ask> {
        let Phase::Reading { head } = &mut self.phase else {
            return None;
        };
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.phase = Phase::Done;
                    return None;
                }
                Ok(count) => {
                    if head.len() + count > HEAD_LIMIT {
                        self.phase = Phase::Done;
                        return None;
                    }
                    head.extend_from_slice(&chunk[..count]);
                    if let Some(ask) = parse(head) {
                        return Some(ask);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
                Err(_) => {
                    self.phase = Phase::Done;
                    return None;
                }
            }
        }
    }

    /// Sets the answer and writes what the socket takes now.
    pub fn answer(&mut self, response: Vec<u8>) {
        self.phase = Phase::Writing {
            response,
            written: 0,
        };
        self.write();
    }

    /// Writes what the socket takes now; closes once all is written.
    pub fn write(&mut self) {
        let Phase::Writing { response, written } = &mut self.phase else {
            return;
        };
        while *written < response.len() {
            match self.stream.write(&response[*written..]) {
                Ok(0) => break,
                Ok(count) => *written += count,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        self.phase = Phase::Done;
    }
}

/// What a complete head asks; `None` while it is incomplete.
pub fn parse(head: &[u8]) -> Option<Ask> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) | Err(_) => Some(Ask::Bad),
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(path, _)| path);
            Some(match (request.method.unwrap_or(""), path) {
                ("GET", "/metrics") => Ask::Metrics { head: false },
                ("HEAD", "/metrics") => Ask::Metrics { head: true },
                (_, "/metrics") => Ask::MethodNotAllowed,
                _ => Ask::NotFound,
            })
        }
    }
}

/// A whole response: status line, headers, body (left out for HEAD).
pub fn response(status: &str, content_type: &str, body: &str, head: bool) -> Vec<u8> {
    let mut bytes = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_told_apart() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Ask::Metrics { head: false })
        );
        assert_eq!(
            parse(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(Ask::Metrics { head: true })
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Some(Ask::NotFound));
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Ask::MethodNotAllowed)
        );
        assert_eq!(parse(b"\x16\x03\x01 hello\r\n\r\n"), Some(Ask::Bad));
    }

    #[test]
    fn a_head_answer_has_no_body() {
        let full = response("200 OK", "text/plain", "abc", false);
        assert!(full.ends_with(b"Content-Length: 3\r\nConnection: close\r\n\r\nabc"));
        let head = response("200 OK", "text/plain", "abc", true);
        assert!(head.ends_with(b"Content-Length: 3\r\nConnection: close\r\n\r\n"));
    }
}
