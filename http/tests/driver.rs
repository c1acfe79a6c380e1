//! The blocking driver over an in-memory transport: keep-alive, pipelining,
//! bodies, 100-continue, drain-or-close, errors, and the bookkeeping.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Duration;

use runicorn_http::{
    Bookkeeping, ConnConfig, ConnState, Connection, Exchange, Limits, Outcome, ParseError,
    RequestDone, ServeMode, Transport,
};

/// A scripted client: each read returns the next chunk; then end of stream
/// (or a timeout, when `idle_timeout` is set).
#[derive(Debug, Default)]
struct Script {
    chunks: VecDeque<Vec<u8>>,
    written: Vec<u8>,
    /// Output written before each read, to check flush-before-read.
    written_at_read: Vec<usize>,
    idle_timeout: bool,
    shut: bool,
}

impl Script {
    fn new(chunks: &[&[u8]]) -> Script {
        Script {
            chunks: chunks.iter().map(|chunk| chunk.to_vec()).collect(),
            ..Script::default()
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.written).into_owned()
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.written_at_read.push(self.written.len());
        let Some(mut chunk) = self.chunks.pop_front() else {
            if self.idle_timeout && !self.shut {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            return Ok(0);
        };
        let count = chunk.len().min(buf.len());
        buf[..count].copy_from_slice(&chunk[..count]);
        if count < chunk.len() {
            self.chunks.push_front(chunk.split_off(count));
        }
        Ok(count)
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Script {
    fn set_read_timeout(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Record {
    started: Vec<String>,
    finished: Vec<(u16, bool)>,
    bad: Vec<u16>,
    close_after: Option<usize>,
}

impl Bookkeeping for Record {
    fn should_close(&mut self) -> bool {
        self.close_after
            .is_some_and(|limit| self.started.len() + 1 >= limit)
    }
    fn request_started(&mut self, state: &mut ConnState, _peer: &str) {
        let head = state.head();
        self.started
            .push(format!("{} {}", head.method, head.target));
    }
    fn request_finished(&mut self, done: &RequestDone<'_>) {
        self.finished.push((done.status, done.keep_alive));
    }
    fn bad_request(&mut self, _peer: &str, err: &ParseError) {
        self.bad.push(err.status());
    }
}

fn hello(exchange: &mut Exchange<'_>) {
    exchange
        .start_response(
            200,
            &[("Content-Type", b"text/plain"), ("Content-Length", b"5")],
        )
        .unwrap();
    exchange.write(b"hello").unwrap();
}

fn echo(exchange: &mut Exchange<'_>) {
    let mut body = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        match exchange.read_body(&mut buf) {
            Ok(0) => break,
            Ok(count) => body.extend_from_slice(&buf[..count]),
            Err(_) => return,
        }
    }
    for trailer in exchange.trailers() {
        body.extend_from_slice(format!("|{}", trailer.name).as_bytes());
    }
    exchange.start_response(200, &[]).unwrap();
    exchange.write(&body).unwrap();
}

fn serve(
    script: Script,
    config: ConnConfig,
    handler: fn(&mut Exchange<'_>),
) -> (Script, Record, Outcome) {
    let mut bookkeeping = Record::default();
    let mut conn = Connection::new(script, "127.0.0.1:1", config);
    let mut handler = handler;
    let outcome = conn.serve(&mut handler, &mut bookkeeping, ServeMode::Blocking);
    (conn.into_inner(), bookkeeping, outcome)
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn keep_alive_serves_pipelined_requests_in_order_in_one_write() {
    let script = Script::new(&[b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n"]);
    let (script, bookkeeping, outcome) = serve(script, ConnConfig::default(), hello);
    assert_eq!(outcome, Outcome::Close);
    assert_eq!(bookkeeping.started, ["GET /a", "GET /b", "GET /c"]);
    let output = script.output();
    assert_eq!(count(&output, "HTTP/1.1 200 OK\r\n"), 3);
    assert!(!output.contains("Connection: close"));
    // All three responses went out before the driver read again.
    assert_eq!(script.written_at_read, [0, script.written.len()]);
}

#[test]
fn sync_mode_closes_after_every_response() {
    let config = ConnConfig {
        keep_alive: false,
        ..ConnConfig::default()
    };
    let script =
        Script::new(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"]);
    let (script, bookkeeping, _) = serve(script, config, hello);
    assert_eq!(bookkeeping.started.len(), 1);
    assert_eq!(count(&script.output(), "Connection: close\r\n"), 1);
}

#[test]
fn chunked_body_read_in_pieces_with_trailers() {
    let script = Script::new(&[
        b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
        b"lo\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n",
    ]);
    let (script, bookkeeping, _) = serve(script, ConnConfig::default(), echo);
    let output = script.output();
    assert!(
        output.contains("Transfer-Encoding: chunked\r\n"),
        "{output}"
    );
    assert!(
        output.contains("11\r\nhello world|X-Sum\r\n0\r\n\r\n"),
        "{output}"
    );
    assert_eq!(bookkeeping.finished, [(200, true)]);
}

#[test]
fn continue_is_sent_only_when_the_body_is_read() {
    let request =
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    let script = Script::new(&[request, b"abc"]);
    let (script, _, _) = serve(script, ConnConfig::default(), echo);
    assert!(script
        .output()
        .starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));

    let script = Script::new(&[request]);
    let (script, _, _) = serve(script, ConnConfig::default(), hello);
    let output = script.output();
    assert!(!output.contains("100 Continue"), "{output}");
    // The body was never asked for: the connection cannot be reused.
    assert!(output.contains("Connection: close\r\n"), "{output}");
}

#[test]
fn small_unread_body_is_drained_and_the_connection_kept() {
    let script = Script::new(&[b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbodyGET /n HTTP/1.1\r\nHost: x\r\n\r\n"]);
    let (script, bookkeeping, _) = serve(script, ConnConfig::default(), hello);
    assert_eq!(bookkeeping.started, ["POST /", "GET /n"]);
    assert!(!script.output().contains("Connection: close"));
}

#[test]
fn large_unread_body_closes_with_connection_close_and_lingers() {
    let config = ConnConfig {
        max_drain: 2,
        ..ConnConfig::default()
    };
    let script = Script::new(&[b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbo"]);
    let (script, bookkeeping, _) = serve(script, config, hello);
    assert!(script.output().contains("Connection: close\r\n"));
    assert_eq!(bookkeeping.finished, [(200, false)]);
    assert!(script.shut, "a lingering close half-closes first");
}

#[test]
fn malformed_request_gets_400_and_close() {
    let script = Script::new(&[
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    ]);
    let (script, bookkeeping, _) = serve(script, ConnConfig::default(), hello);
    assert!(script.output().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(script.output().contains("Connection: close\r\n"));
    assert_eq!(bookkeeping.bad, [400]);
    assert!(bookkeeping.started.is_empty());
}

#[test]
fn app_without_response_gets_500() {
    let script = Script::new(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
    let (script, bookkeeping, _) = serve(script, ConnConfig::default(), |_exchange| {});
    assert!(script
        .output()
        .starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
    assert_eq!(bookkeeping.finished, [(500, false)]);
}

#[test]
fn last_request_says_connection_close() {
    let script = Script::new(&[b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n"]);
    let mut bookkeeping = Record {
        close_after: Some(2),
        ..Record::default()
    };
    let mut conn = Connection::new(script, "", ConnConfig::default());
    let mut handler = hello;
    conn.serve(&mut handler, &mut bookkeeping, ServeMode::Blocking);
    let output = conn.into_inner().output();
    assert_eq!(bookkeeping.started.len(), 2);
    assert_eq!(count(&output, "Connection: close\r\n"), 1);
    assert!(output.ends_with("Connection: close\r\n\r\nhello"));
}

#[test]
fn until_idle_parks_with_nothing_buffered() {
    let mut script = Script::new(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
    script.idle_timeout = true;
    let mut conn = Connection::new(script, "", ConnConfig::default());
    let mut handler = hello;
    let outcome = conn.serve(
        &mut handler,
        &mut runicorn_http::NoBookkeeping,
        ServeMode::UntilIdle,
    );
    assert_eq!(outcome, Outcome::Idle);
    assert!(!conn.has_buffered());
    assert!(conn.stream().output().contains("hello"));
    conn.stream_mut()
        .chunks
        .push_back(b"GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec());
    let outcome = conn.serve(
        &mut handler,
        &mut runicorn_http::NoBookkeeping,
        ServeMode::UntilIdle,
    );
    assert_eq!(outcome, Outcome::Close);
}

#[test]
fn http10_keep_alive_and_close_delimited() {
    let script =
        Script::new(&[b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n"]);
    let (script, bookkeeping, _) = serve(script, ConnConfig::default(), hello);
    let output = script.output();
    assert_eq!(bookkeeping.started.len(), 2);
    assert!(output.contains("Connection: keep-alive\r\n"));
    assert!(output.contains("Connection: close\r\n"));
}

#[test]
fn limits_from_settings_give_zero_gunicorns_meaning() {
    // Gunicorn: a request line of 0 is unlimited, 0 fields is its maximum
    // (32768), a field size of 0 is the default (8190).
    let limits = Limits::from_settings(0, 0, 0, 10);
    assert_eq!(limits.request_line, usize::MAX);
    assert_eq!(limits.request_fields, 32768);
    assert_eq!(limits.request_field_size, 8190);
    assert_eq!(limits.body, 10);
    assert!(
        limits.head < 2 << 20,
        "an unlimited line still leaves the head capped: {}",
        limits.head
    );
}

#[test]
fn output_is_the_same_however_the_input_is_split() {
    let input: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let whole = serve(Script::new(&[input]), ConnConfig::default(), echo)
        .0
        .written;
    assert_eq!(String::from_utf8_lossy(&whole).matches("200 OK").count(), 4);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20 {
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let take = 1 + (seed % 23) as usize;
            let take = take.min(rest.len());
            pieces.push(&rest[..take]);
            rest = &rest[take..];
        }
        let split = serve(Script::new(&pieces), ConnConfig::default(), echo)
            .0
            .written;
        // The Date may tick between runs; compare without it.
        let strip = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter(|line| !line.starts_with("Date: "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&split), strip(&whole));
    }
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_served_and_limits_still_apply() {
    let value = "v".repeat(3000);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Long: {value}\r\n\r\n");
    let bytes: Vec<&[u8]> = request.as_bytes().chunks(1).collect();
    let (script, bookkeeping, _) = serve(Script::new(&bytes), ConnConfig::default(), hello);
    assert!(script.output().starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(bookkeeping.started.len(), 1);

    // An unterminated field past limit_request_field_size is refused
    // without waiting for its end.
    let config = ConnConfig::new(Limits::from_settings(4094, 100, 100, 1 << 20));
    let flood = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Long: {value}");
    let bytes: Vec<&[u8]> = flood.as_bytes().chunks(1).collect();
    let (script, bookkeeping, _) = serve(Script::new(&bytes), config, hello);
    assert!(
        script.output().starts_with("HTTP/1.1 431 "),
        "{}",
        script.output()
    );
    assert_eq!(bookkeeping.bad, [431]);
}

#[test]
fn zero_keep_alive_timeout_turns_keep_alive_off() {
    let config = ConnConfig {
        keepalive_timeout: Duration::ZERO,
        ..ConnConfig::default()
    };
    let script =
        Script::new(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"]);
    let (script, bookkeeping, _) = serve(script, config, hello);
    assert_eq!(bookkeeping.started.len(), 1);
    assert!(script.output().contains("Connection: close\r\n"));
}

#[test]
fn zero_header_timeout_means_no_head_deadline() {
    let config = ConnConfig {
        header_timeout: Duration::ZERO,
        ..ConnConfig::default()
    };
    let script = Script::new(&[b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"]);
    let (script, bookkeeping, _) = serve(script, config, hello);
    assert!(
        script.output().starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        script.output()
    );
    assert_eq!(bookkeeping.started.len(), 1);
}
