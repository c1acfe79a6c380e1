//! The built-in apps against a fake `Call` and a fake `Host`.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use runicorn_http::{Header, RequestHead, Version};

use super::*;
use crate::contract::{AppError, Call, Host, LogLevel, Upstream};

#[derive(Default)]
struct FakeHost {
    slept: Mutex<Vec<Duration>>,
}

struct FakeUpstream {
    sent: Vec<u8>,
}

impl Upstream for FakeUpstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let reply = format!("pong to {}", String::from_utf8_lossy(&self.sent));
        let bytes = reply.as_bytes();
        let len = bytes.len().min(buf.len());
        buf[..len].copy_from_slice(&bytes[..len]);
        Ok(len)
    }
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.sent.extend_from_slice(data);
        Ok(())
    }
}

impl Host for FakeHost {
    fn sleep(&self, duration: Duration) {
        self.slept.lock().unwrap().push(duration);
    }
    fn connect(&self, addr: &str) -> io::Result<Box<dyn Upstream>> {
        if addr == "127.0.0.1:1" {
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        }
        Ok(Box::new(FakeUpstream { sent: Vec::new() }))
    }
    fn log(&self, _level: LogLevel, _message: &str) {}
}

struct FakeCall {
    head: RequestHead,
    body: io::Cursor<Vec<u8>>,
    trailers: Vec<Header>,
    host: FakeHost,
    status: Option<u16>,
    headers: Vec<(String, Vec<u8>)>,
    written: Vec<u8>,
    writes: usize,
}

impl FakeCall {
    fn new(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> FakeCall {
        FakeCall {
            head: RequestHead {
                method: method.to_owned(),
                target: target.to_owned(),
                version: Version::Http11,
                headers: headers
                    .iter()
                    .map(|(name, value)| Header {
                        name: (*name).to_owned(),
                        value: value.as_bytes().to_vec(),
                    })
                    .collect(),
            },
            body: io::Cursor::new(body.to_vec()),
            trailers: Vec::new(),
            host: FakeHost::default(),
            status: None,
            headers: Vec::new(),
            written: Vec::new(),
            writes: 0,
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.written).into_owned()
    }
}

impl Call for FakeCall {
    fn head(&self) -> &RequestHead {
        &self.head
    }
    fn peer(&self) -> &str {
        "127.0.0.1:5678"
    }
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut self.body, buf)
    }
    fn trailers(&self) -> &[Header] {
        &self.trailers
    }
    fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
        assert!(self.status.is_none(), "response started twice");
        self.status = Some(status);
        self.headers = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
            .collect();
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        assert!(self.status.is_some(), "write before start_response");
        self.written.extend_from_slice(data);
        self.writes += 1;
        Ok(())
    }
    fn host(&self) -> &dyn Host {
        &self.host
    }
}

fn run(name: &str, call: &mut FakeCall) -> Result<(), AppError> {
    lookup(name).unwrap().sync.call(call)
}

#[test]
fn every_listed_name_loads_and_the_ones_that_wait_or_read_are_async() {
    for name in NAMES {
        let app = lookup(name).unwrap();
        assert_eq!(app.name, format!("builtin:{name}"));
        assert_eq!(
            app.asynch.is_some(),
            matches!(name, "hello" | "sleep" | "mixed" | "upload"),
            "{name}"
        );
    }
}

#[test]
fn an_unknown_name_gets_gunicorns_words_as_a_load_error() {
    let err = lookup("nope").unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("Failed to find application object 'nope' in 'builtin'"),
        "{message}"
    );
    assert!(
        message.contains("hello, echo, sleep, cpu, mixed, stream, upload, upstream"),
        "{message}"
    );
    assert!(
        !matches!(err, LoadError::Boot(_)),
        "a load error (exit 4): {err}"
    );
}

#[test]
fn hello_says_hello() {
    let mut call = FakeCall::new("GET", "/", &[], b"");
    run("hello", &mut call).unwrap();
    assert_eq!(call.status, Some(200));
    assert_eq!(call.text(), "Hello, World!");
    assert_eq!(call.header("content-length").as_deref(), Some("13"));
    assert_eq!(call.header("content-type").as_deref(), Some("text/plain"));
}

#[test]
fn echo_describes_the_request_as_received() {
    let mut call = FakeCall::new(
        "POST",
        "/a/b?x=1&y",
        &[
            ("X-Mixed-Case", "v1"),
            ("host", "h"),
            ("X-Mixed-Case", "v2"),
        ],
        b"\x00body\xff",
    );
    call.trailers = vec![Header {
        name: "T-One".to_owned(),
        value: b"t".to_vec(),
    }];
    run("echo", &mut call).unwrap();
    assert_eq!(call.status, Some(200));
    assert_eq!(
        call.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        call.header("content-length"),
        Some(call.written.len().to_string())
    );
    let json: serde_json::Value = serde_json::from_slice(&call.written).unwrap();
    assert_eq!(json["method"], "POST");
    assert_eq!(json["target"], "/a/b?x=1&y");
    assert_eq!(json["path"], "/a/b");
    assert_eq!(json["query"], "x=1&y");
    assert_eq!(json["version"], "HTTP/1.1");
    assert_eq!(
        json["headers"],
        serde_json::json!([
            ["X-Mixed-Case", "v1"],
            ["host", "h"],
            ["X-Mixed-Case", "v2"]
        ])
    );
    assert_eq!(json["body_b64"], "AGJvZHn/");
    assert_eq!(json["trailers"], serde_json::json!([["T-One", "t"]]));
}

#[test]
fn sleep_waits_through_the_host() {
    let mut call = FakeCall::new("GET", "/?ms=250", &[], b"");
    run("sleep", &mut call).unwrap();
    assert_eq!(
        *call.host.slept.lock().unwrap(),
        vec![Duration::from_millis(250)]
    );
    assert_eq!(call.text(), "slept 250 ms\n");

    let mut call = FakeCall::new("GET", "/", &[], b"");
    run("sleep", &mut call).unwrap();
    assert_eq!(
        *call.host.slept.lock().unwrap(),
        vec![Duration::from_millis(100)]
    );
}

#[test]
fn a_bad_parameter_is_a_400_not_a_panic() {
    for (name, target) in [
        ("sleep", "/?ms=abc"),
        ("cpu", "/?n=-1"),
        ("stream", "/?kb=x"),
        ("mixed", "/?ms=x"),
        ("mixed", "/?ms=1&n=1.5"),
    ] {
        let mut call = FakeCall::new("GET", target, &[], b"");
        run(name, &mut call).unwrap();
        assert_eq!(call.status, Some(400), "{name}");
        assert!(call.host.slept.lock().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn cpu_is_deterministic_and_depends_on_n() {
    assert_eq!(cpu::burn(3), cpu::burn(3));
    assert_ne!(cpu::burn(3), cpu::burn(4));
    let mut call = FakeCall::new("GET", "/?n=5", &[], b"");
    run("cpu", &mut call).unwrap();
    assert_eq!(
        call.text(),
        format!("cpu 5 rounds: {:016x}\n", cpu::burn(5))
    );
}

#[test]
fn mixed_waits_through_the_host_then_burns_cpus_rounds() {
    let mut call = FakeCall::new("GET", "/?ms=7&n=5", &[], b"");
    run("mixed", &mut call).unwrap();
    assert_eq!(call.status, Some(200));
    assert_eq!(
        *call.host.slept.lock().unwrap(),
        vec![Duration::from_millis(7)]
    );
    assert_eq!(
        call.text(),
        format!("mixed 7 ms, 5 rounds: {:016x}\n", cpu::burn(5))
    );
    assert_eq!(
        call.header("content-length"),
        Some(call.written.len().to_string())
    );

    let mut call = FakeCall::new("GET", "/", &[], b"");
    run("mixed", &mut call).unwrap();
    assert_eq!(
        *call.host.slept.lock().unwrap(),
        vec![Duration::from_millis(20)]
    );
    assert_eq!(
        call.text(),
        format!("mixed 20 ms, 200 rounds: {:016x}\n", cpu::burn(200))
    );
}

#[test]
fn upload_counts_the_whole_body_without_keeping_it() {
    let body: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let mut call = FakeCall::new("POST", "/", &[], &body);
    run("upload", &mut call).unwrap();
    assert_eq!(call.status, Some(200));
    assert_eq!(call.text(), "received 300000 bytes\n");
    assert_eq!(call.body.position(), 300_000, "the body read to its end");

    let mut call = FakeCall::new("POST", "/", &[], b"");
    run("upload", &mut call).unwrap();
    assert_eq!(call.text(), "received 0 bytes\n");
}

#[test]
fn stream_sends_n_one_kib_chunks_without_a_length() {
    let mut call = FakeCall::new("GET", "/?kb=3", &[], b"");
    run("stream", &mut call).unwrap();
    assert_eq!(call.status, Some(200));
    assert_eq!(call.header("content-length"), None);
    assert_eq!(call.written.len(), 3 * 1024);
    assert_eq!(call.writes, 3);
}

#[test]
fn upstream_relays_one_line_or_answers_502() {
    let mut call = FakeCall::new("GET", "/?addr=127.0.0.1:9", &[], b"");
    run("upstream", &mut call).unwrap();
    assert_eq!(call.status, Some(200));
    assert_eq!(call.text(), "pong to ping from runicorn\n");

    let mut call = FakeCall::new("GET", "/?addr=127.0.0.1:1", &[], b"");
    run("upstream", &mut call).unwrap();
    assert_eq!(call.status, Some(502));
    assert!(call.text().contains("127.0.0.1:1"));

    let mut call = FakeCall::new("GET", "/", &[], b"");
    run("upstream", &mut call).unwrap();
    assert_eq!(call.status, Some(400));
}

#[test]
fn query_params_are_found_by_exact_name() {
    assert_eq!(query::param("a=1&ms=20&b", "ms"), Some("20"));
    assert_eq!(query::param("a=1&b", "b"), Some(""));
    assert_eq!(query::param("msx=1", "ms"), None);
}
