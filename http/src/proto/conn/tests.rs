//! The connection state machine on its own: bytes and a fake clock in,
//! actions and output bytes asserted. No stream, no thread, no real time.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;
use crate::proto::limits::Limits;
use crate::proto::status::CONTINUE;

/// A clock the test moves by hand.
struct FakeClock {
    now: Cell<Instant>,
}

impl FakeClock {
    fn new() -> FakeClock {
        FakeClock {
            now: Cell::new(Instant::now()),
        }
    }

    fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.now.get()
    }

    fn wall(&self) -> SystemTime {
        // Sun, 06 Nov 1994 08:49:37 GMT
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// The defaults, spelled out because the tests count on them.
fn config() -> ConnConfig {
    ConnConfig {
        keepalive_timeout: Duration::from_secs(2),
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
        body_min_rate: 0,
        write_timeout: Duration::from_secs(30),
        linger: Duration::from_secs(1),
        ..ConnConfig::default()
    }
}

/// Hands `bytes` to the state as one read would (they must fit its buffer).
fn feed(state: &mut ConnState, bytes: &[u8]) {
    let buf = state.read_buf().unwrap();
    assert!(buf.len() >= bytes.len(), "the read buffer has room");
    buf[..bytes.len()].copy_from_slice(bytes);
    state.received(Ok(bytes.len()));
}

/// Takes (and marks written) what the state wants to write.
fn take_output(state: &mut ConnState) -> String {
    let text = String::from_utf8_lossy(state.output()).into_owned();
    state.written();
    text
}

/// The app: a 5-byte response.
fn hello(state: &mut ConnState) {
    state
        .start_response(200, &[("Content-Length", b"5")])
        .unwrap();
    assert!(!state.write_body(b"hello").unwrap());
}

fn read_wait(timeout: Option<Duration>, idle: bool) -> Action {
    Action::Read(ReadWait { timeout, idle })
}

#[test]
fn a_request_is_served_written_and_then_the_connection_waits_idle() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    // A fresh connection waits for its first request within the head deadline.
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(30)), false)
    );
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    assert_eq!(state.head().target, "/");
    hello(&mut state);
    let end = state.finish();
    assert_eq!((end.status, end.body_bytes, end.keep_alive), (200, 5, true));
    assert_eq!(state.poll(&clock), Action::Write);
    let output = take_output(&mut state);
    assert!(output.starts_with("HTTP/1.1 200 OK\r\n"), "{output}");
    assert!(
        output.contains("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
        "the date comes from the clock: {output}"
    );
    assert!(output.ends_with("\r\n\r\nhello"), "{output}");
    // Between requests: the keep-alive wait, marked idle.
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(2)), true)
    );
    // The keep-alive timeout passes: closed without a word.
    state.received(Err(io::ErrorKind::WouldBlock.into()));
    assert_eq!(state.poll(&clock), Action::Close);
    assert!(state.output().is_empty());
    assert_eq!(state.requests(), 1);
}

#[test]
fn pipelined_requests_are_served_in_turn_and_written_in_one_batch() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(
        &mut state,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTT",
    );
    for target in ["/1", "/2"] {
        assert_eq!(state.poll(&clock), Action::Serve);
        assert_eq!(state.head().target, target);
        hello(&mut state);
        state.finish();
    }
    // The third head is partial: both answers go out before reading more.
    assert_eq!(state.poll(&clock), Action::Write);
    assert_eq!(take_output(&mut state).matches("200 OK").count(), 2);
    assert!(matches!(
        state.poll(&clock),
        Action::Read(ReadWait { idle: false, .. })
    ));
    feed(&mut state, b"P/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(state.poll(&clock), Action::Serve);
    assert_eq!(state.head().target, "/3");
}

#[test]
fn a_head_dripped_a_byte_at_a_time_is_parsed_a_linear_number_of_times() {
    // About 60 KiB of head in ten 6,000-byte fields (under the 8,190-byte
    // field limit and the 64 KiB head cap), sent one byte per read.
    let value = "v".repeat(6000);
    let mut request = String::from("GET /slow HTTP/1.1\r\nHost: x\r\n");
    for index in 0..10 {
        request.push_str(&format!("X-Field-{index}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let bytes = request.as_bytes();
    assert!(bytes.len() > 60_000);
    let lines = bytes.iter().filter(|&&byte| byte == b'\n').count();

    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    let mut actions = 0;
    for byte in bytes {
        assert!(
            matches!(state.poll(&clock), Action::Read(_)),
            "more bytes are asked for until the head ends"
        );
        feed(&mut state, std::slice::from_ref(byte));
        actions += 1;
    }
    assert_eq!(state.poll(&clock), Action::Serve);
    assert_eq!(state.head().headers.len(), 11);
    assert_eq!(actions, bytes.len());
    // One parse per line ended and one per REPARSE_STEP bytes without one:
    // about 75 here, where parsing on every read would be 60,000 parses of
    // up to 60 KiB each.
    let bound = (bytes.len() / REPARSE_STEP + lines + 1) as u64;
    assert!(
        state.parse_attempts() <= bound,
        "{} parses for {} bytes (bound {bound})",
        state.parse_attempts(),
        bytes.len()
    );
}

#[test]
fn a_flood_without_line_ends_is_refused_within_one_step_of_its_limit() {
    let limits = Limits::from_settings(4094, 100, 100, 1 << 20);
    let clock = FakeClock::new();
    let mut state = ConnState::new(ConnConfig::new(limits));
    let flood = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}", "v".repeat(4000));
    let mut fed = 0;
    let err = loop {
        match state.poll(&clock) {
            Action::Read(_) => {
                feed(&mut state, &flood.as_bytes()[fed..=fed]);
                fed += 1;
            }
            Action::BadRequest(err) => break err,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(err.status(), 431);
    assert!(fed <= 100 + 30 + REPARSE_STEP, "refused after {fed} bytes");
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).starts_with("HTTP/1.1 431 "));
}

#[test]
fn a_bad_request_is_reported_answered_and_closed_lingering() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(
        &mut state,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    );
    let Action::BadRequest(err) = state.poll(&clock) else {
        panic!("the request is rejected");
    };
    assert_eq!(err, ParseError::DuplicateContentLength);
    assert_eq!(state.poll(&clock), Action::Write);
    let output = take_output(&mut state);
    assert!(
        output.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{output}"
    );
    assert!(output.contains("Connection: close\r\n"), "{output}");
    // The lingering close: half-close, then read and drop for up to 1 s.
    assert_eq!(state.poll(&clock), Action::Shutdown);
    state.shut_down(Ok(()));
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(1)), false)
    );
    clock.advance(Duration::from_millis(600));
    feed(&mut state, b"more of what the client was sending");
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_millis(400)), false)
    );
    assert!(!state.has_buffered(), "lingering input is dropped");
    clock.advance(Duration::from_millis(400));
    assert_eq!(state.poll(&clock), Action::Close);
    assert!(state.is_closed());
    assert_eq!(state.requests(), 0, "no app saw it");
}

#[test]
fn a_lingering_close_ends_at_the_clients_end_of_stream() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(&mut state, b"\x01\r\n\r\n");
    assert!(matches!(state.poll(&clock), Action::BadRequest(_)));
    assert_eq!(state.poll(&clock), Action::Write);
    state.written();
    assert_eq!(state.poll(&clock), Action::Shutdown);
    state.shut_down(Ok(()));
    assert!(matches!(state.poll(&clock), Action::Read(_)));
    state.received(Ok(0));
    assert_eq!(state.poll(&clock), Action::Close);
}

#[test]
fn a_head_not_complete_by_its_deadline_gets_408() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(&mut state, b"GET / HTTP/1.1\r\n");
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(30)), false)
    );
    // The deadline runs from the head's first wait, across reads.
    clock.advance(Duration::from_secs(20));
    feed(&mut state, b"Host: x\r\n");
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(10)), false)
    );
    clock.advance(Duration::from_secs(10));
    feed(&mut state, b"X-Late: 1\r\n");
    // Found past: one read without waiting takes what the client sent by
    // now (none more here), then the head is judged.
    assert_eq!(state.poll(&clock), read_wait(Some(LATE_LOOK), false));
    state.received(Err(io::ErrorKind::TimedOut.into()));
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).starts_with("HTTP/1.1 408 "));
    assert_eq!(state.poll(&clock), Action::Shutdown);

    // A read that times out on a partial head says the same.
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(&mut state, b"GET / HTTP/1.1\r\n");
    state.poll(&clock);
    state.received(Err(io::ErrorKind::TimedOut.into()));
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).starts_with("HTTP/1.1 408 "));
}

#[test]
fn without_a_header_timeout_a_head_has_no_deadline() {
    let clock = FakeClock::new();
    let mut config = config();
    config.header_timeout = Duration::ZERO;
    config.write_timeout = Duration::ZERO;
    let mut state = ConnState::new(config);
    assert_eq!(state.poll(&clock), read_wait(None, false));
    feed(&mut state, b"GET / HTTP/1.1\r\n");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(state.poll(&clock), read_wait(None, false));
    assert_eq!(state.write_timeout(), None);
}

#[test]
fn a_small_unread_body_is_drained_and_the_next_request_served() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(
        &mut state,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234",
    );
    assert_eq!(state.poll(&clock), Action::Serve);
    hello(&mut state);
    let end = state.finish();
    assert!(end.keep_alive, "10 bytes can be drained");
    // The answer goes out, then the rest of the body is read and dropped.
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(!take_output(&mut state).contains("Connection: close"));
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(30)), false)
    );
    feed(&mut state, b"56789GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(state.poll(&clock), Action::Serve);
    assert_eq!(state.head().target, "/next");
}

#[test]
fn a_large_unread_body_closes_the_connection_lingering() {
    let clock = FakeClock::new();
    let mut config = config();
    config.max_drain = 2;
    let mut state = ConnState::new(config);
    state.poll(&clock);
    feed(
        &mut state,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbo",
    );
    assert_eq!(state.poll(&clock), Action::Serve);
    hello(&mut state);
    assert!(!state.finish().keep_alive);
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).contains("Connection: close\r\n"));
    assert_eq!(state.poll(&clock), Action::Shutdown);
}

#[test]
fn the_body_is_read_through_the_state_with_100_continue_first() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(
        &mut state,
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!(state.poll(&clock), Action::Serve);
    let mut buf = [0u8; 16];
    let BodyRead::Read(wait) = state.read_body(&mut buf, &clock).unwrap() else {
        panic!("nothing of the body is buffered yet");
    };
    assert_eq!(wait.timeout, Some(Duration::from_secs(30)));
    assert_eq!(state.output(), CONTINUE, "written before the read");
    state.written();
    let spare = state.read_buf().unwrap();
    spare[..5].copy_from_slice(b"hello");
    state.body_received(Ok(5), &clock).unwrap();
    assert_eq!(
        state.read_body(&mut buf, &clock).unwrap(),
        BodyRead::Data(5)
    );
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(
        state.read_body(&mut buf, &clock).unwrap(),
        BodyRead::Data(0)
    );
    assert!(state.body_done());
    hello(&mut state);
    assert!(state.finish().keep_alive);
}

#[test]
fn a_client_gone_mid_body_fails_the_read_and_the_request_gets_400() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(
        &mut state,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe",
    );
    assert_eq!(state.poll(&clock), Action::Serve);
    let mut buf = [0u8; 16];
    assert_eq!(
        state.read_body(&mut buf, &clock).unwrap(),
        BodyRead::Data(2)
    );
    assert!(matches!(
        state.read_body(&mut buf, &clock).unwrap(),
        BodyRead::Read(_)
    ));
    let err = state.body_received(Ok(0), &clock).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    let end = state.finish();
    assert_eq!(end.status, 400);
    assert_eq!(end.body_error, Some(ParseError::IncompleteBody));
    assert!(!end.keep_alive);
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).starts_with("HTTP/1.1 400 "));
}

#[test]
fn an_app_that_answers_nothing_gets_500_and_a_close() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    let end = state.finish();
    assert_eq!((end.status, end.keep_alive), (500, false));
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).starts_with("HTTP/1.1 500 "));
    assert_eq!(state.poll(&clock), Action::Close);
}

#[test]
fn a_failed_write_during_a_request_ends_the_connection_unflushed() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    hello(&mut state);
    state.write_failed();
    let end = state.finish();
    assert!(!end.keep_alive);
    assert_eq!(state.poll(&clock), Action::Close);
}

#[test]
fn the_last_request_says_close_and_keep_alive_zero_turns_it_off() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    state.close_after();
    hello(&mut state);
    assert!(!state.finish().keep_alive);
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).contains("Connection: close\r\n"));
    assert_eq!(state.poll(&clock), Action::Close);

    let mut config = config();
    config.keepalive_timeout = Duration::ZERO;
    let mut state = ConnState::new(config);
    state.poll(&clock);
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    hello(&mut state);
    assert!(!state.finish().keep_alive);
    assert!(String::from_utf8_lossy(state.output()).contains("Connection: close\r\n"));
}

/// A worker's retirement, set by hand.
#[derive(Debug, Default)]
struct Retirement(std::sync::atomic::AtomicBool);

impl Retiring for Retirement {
    fn is_retiring(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Retirement {
    fn retire(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_retiring_worker_waits_for_the_next_request_of_an_idle_connection_and_closes_after_it() {
    let clock = FakeClock::new();
    let retirement = Arc::new(Retirement::default());
    let mut state = ConnState::new(config());
    state.watch_retirement(retirement.clone());
    state.poll(&clock);
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    hello(&mut state);
    assert!(state.finish().keep_alive);
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(!take_output(&mut state).contains("close"));
    // Idle when the worker retires: the wait goes on as before.
    retirement.retire();
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(2)), true)
    );
    clock.advance(Duration::from_millis(1500));
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    hello(&mut state);
    assert!(!state.finish().keep_alive);
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).contains("Connection: close\r\n"));
    assert_eq!(state.poll(&clock), Action::Close);
}

#[test]
fn a_request_in_flight_when_the_worker_retires_is_answered_with_close() {
    let clock = FakeClock::new();
    let retirement = Arc::new(Retirement::default());
    let mut state = ConnState::new(config());
    state.watch_retirement(retirement.clone());
    state.poll(&clock);
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    // The app is running when the worker decides to retire.
    retirement.retire();
    hello(&mut state);
    assert!(!state.finish().keep_alive);
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).contains("Connection: close\r\n"));
    assert_eq!(state.poll(&clock), Action::Close);
}

#[test]
fn a_head_that_fills_the_buffer_gets_431() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    state.received(Err(io::ErrorKind::OutOfMemory.into()));
    let Action::BadRequest(err) = state.poll(&clock) else {
        panic!("a full buffer is a bad request");
    };
    assert_eq!(err.status(), 431);
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(take_output(&mut state).starts_with("HTTP/1.1 431 "));
}

#[test]
fn a_large_pipelined_batch_is_written_before_the_next_request() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(&mut state, &GET.repeat(2));
    assert_eq!(state.poll(&clock), Action::Serve);
    state.start_response(200, &[]).unwrap();
    let big = vec![b'x'; FLUSH_THRESHOLD];
    assert!(state.write_body(&big).unwrap(), "time to write out");
    state.finish();
    assert_eq!(state.poll(&clock), Action::Write);
    state.written();
    assert_eq!(state.poll(&clock), Action::Serve);
}

#[test]
fn a_response_the_app_failed_mid_body_is_cut_short_and_closed() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    state.start_response(200, &[]).unwrap();
    state.write_body(b"partial").unwrap();
    state.fail_response();
    let end = state.finish();
    assert!(!end.keep_alive);
    assert_eq!(state.poll(&clock), Action::Write);
    let output = take_output(&mut state);
    assert!(
        output.contains("Transfer-Encoding: chunked\r\n"),
        "{output}"
    );
    assert!(!output.ends_with("0\r\n\r\n"), "no last chunk: {output}");
    assert_eq!(state.poll(&clock), Action::Close);
}

#[test]
fn a_request_id_reaches_the_head_and_the_response_and_kept_fields_are_kept() {
    static KEPT: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let kept = KEPT.get_or_init(|| vec!["x-app".to_owned()]);
    let clock = FakeClock::new();
    let mut state = ConnState::new(ConnConfig {
        kept_response_fields: kept,
        request_id_header: Some("X-Request-ID"),
        ..config()
    });
    feed(
        &mut state,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\r\nX-Request-ID: b\r\n\r\n",
    );
    assert_eq!(state.poll(&clock), Action::Serve);
    state.set_request_id(b"abc");
    let ids: Vec<&[u8]> = state
        .head()
        .headers
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case("x-request-id"))
        .map(|field| field.value.as_slice())
        .collect();
    assert_eq!(ids, [&b"abc"[..]], "one field, the id");
    state
        .start_response(200, &[("Content-Length", b"0"), ("X-App", b"yes")])
        .unwrap();
    state.finish();
    assert_eq!(state.kept_response_fields().get(0), Some(&b"yes"[..]));
    assert_eq!(state.poll(&clock), Action::Write);
    let output = take_output(&mut state);
    assert!(
        output.contains("X-App: yes\r\n") && output.ends_with("\r\nX-Request-ID: abc\r\n\r\n"),
        "{output}"
    );

    // The next request has no id and its own kept fields.
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    assert_eq!(state.kept_response_fields().get(0), None);
    hello(&mut state);
    state.finish();
    assert_eq!(state.poll(&clock), Action::Write);
    assert!(!take_output(&mut state).contains("X-Request-ID"));
}

#[test]
fn an_app_that_sets_the_request_id_field_keeps_its_own() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(ConnConfig {
        request_id_header: Some("X-Request-ID"),
        ..config()
    });
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    state.set_request_id(b"ours");
    assert_eq!(state.head().header("x-request-id"), Some(&b"ours"[..]));
    state
        .start_response(200, &[("Content-Length", b"0"), ("x-request-id", b"app")])
        .unwrap();
    state.finish();
    assert_eq!(state.poll(&clock), Action::Write);
    let output = take_output(&mut state);
    assert!(output.contains("x-request-id: app\r\n"), "{output}");
    assert!(!output.contains("ours"), "{output}");
}

#[test]
fn a_response_the_state_makes_itself_carries_the_request_id() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(ConnConfig {
        request_id_header: Some("X-Request-ID"),
        ..config()
    });
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    state.set_request_id(b"id-500");
    // The app returns without a response: the state answers 500.
    assert_eq!(state.finish().status, 500);
    assert_eq!(state.poll(&clock), Action::Write);
    let output = take_output(&mut state);
    let (head, _) = output.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 500 "), "{output}");
    assert!(head.ends_with("\r\nX-Request-ID: id-500"), "{output}");
}

/// A config with the slow-client deadlines of these tests: a 10 s head
/// deadline, a 5 s body timeout, 100 B/s after 4 s of grace.
fn deadlines() -> ConnConfig {
    ConnConfig {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(5),
        body_min_rate: 100,
        body_min_rate_grace: Duration::from_secs(4),
        ..config()
    }
}

#[test]
fn a_new_connections_head_deadline_runs_from_its_accept_and_a_silent_one_is_closed_silently() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(deadlines());
    state.accepted_at(clock.now());
    assert_eq!(
        state.head_deadline(),
        Some(clock.now() + Duration::from_secs(10)),
        "known before the first poll (a PROXY header, a TLS handshake)"
    );
    // Time spent before the first poll (a handshake) counts.
    clock.advance(Duration::from_secs(4));
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(6)), false)
    );
    // A read that ends before the deadline with nothing leaves less time.
    clock.advance(Duration::from_secs(5));
    state.received(Err(io::ErrorKind::Interrupted.into()));
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(1)), false)
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(state.poll(&clock), read_wait(Some(LATE_LOOK), false));
    state.received(Err(io::ErrorKind::WouldBlock.into()));
    assert_eq!(state.poll(&clock), Action::Close, "nothing came: no answer");
    assert!(state.output().is_empty());
}

#[test]
fn a_head_dripped_byte_by_byte_gets_408_at_the_deadline_from_the_accept() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(deadlines());
    state.accepted_at(clock.now());
    clock.advance(Duration::from_secs(3));
    state.poll(&clock);
    let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for byte in &head[..7] {
        feed(&mut state, std::slice::from_ref(byte));
        assert!(matches!(state.poll(&clock), Action::Read(_)));
        clock.advance(Duration::from_secs(1));
    }
    // 3 + 7 seconds: the 10 s deadline from the accept.
    feed(&mut state, &head[7..8]);
    assert_eq!(state.poll(&clock), read_wait(Some(LATE_LOOK), false));
    feed(&mut state, &head[8..9]);
    assert_eq!(state.poll(&clock), Action::Write, "one late look only");
    assert!(take_output(&mut state).starts_with("HTTP/1.1 408 "));
    assert_eq!(state.poll(&clock), Action::Shutdown, "a lingering close");
}

#[test]
fn a_kept_alive_connection_waits_keep_alive_then_gets_a_head_deadline_from_its_first_byte() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(deadlines());
    state.accepted_at(clock.now());
    feed(&mut state, GET);
    assert_eq!(state.poll(&clock), Action::Serve);
    hello(&mut state);
    state.finish();
    assert_eq!(state.poll(&clock), Action::Write);
    state.written();
    assert_eq!(state.head_deadline(), None, "no deadline before a byte");
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(2)), true)
    );
    clock.advance(Duration::from_secs(1));
    feed(&mut state, b"G");
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(10)), false),
        "the whole header timeout from the first byte"
    );
    assert_eq!(
        state.head_deadline(),
        Some(clock.now() + Duration::from_secs(10))
    );
}

/// A POST of `length` bytes, served: the app is about to read its body.
fn posted(clock: &FakeClock, config: ConnConfig, length: usize) -> ConnState {
    let mut state = ConnState::new(config);
    state.accepted_at(clock.now());
    feed(
        &mut state,
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n").as_bytes(),
    );
    assert_eq!(state.poll(clock), Action::Serve);
    state
}

/// What the app's next body read gets: the wait it needs, or its error.
fn next_wait(state: &mut ConnState, clock: &FakeClock) -> io::Result<Option<Duration>> {
    let mut buf = [0u8; 64];
    match state.read_body(&mut buf, clock)? {
        BodyRead::Read(wait) => Ok(wait.timeout),
        BodyRead::Data(count) => panic!("{count} bytes buffered"),
    }
}

/// Hands `bytes` of body to the state as the read asked for brought them,
/// after `waited`, and lets the app take them.
fn body_bytes(state: &mut ConnState, clock: &FakeClock, bytes: &[u8], waited: Duration) {
    clock.advance(waited);
    let buf = state.read_buf().unwrap();
    buf[..bytes.len()].copy_from_slice(bytes);
    state.body_received(Ok(bytes.len()), clock).unwrap();
    let mut out = [0u8; 64];
    assert_eq!(
        state.read_body(&mut out, clock).unwrap(),
        BodyRead::Data(bytes.len())
    );
}

#[test]
fn a_body_read_that_times_out_fails_the_app_and_answers_408_never_a_short_body() {
    let clock = FakeClock::new();
    let config = ConnConfig {
        body_min_rate: 0,
        ..deadlines()
    };
    let mut state = posted(&clock, config, 10);
    assert_eq!(
        next_wait(&mut state, &clock).unwrap(),
        Some(Duration::from_secs(5)),
        "--body-timeout"
    );
    body_bytes(&mut state, &clock, b"01234", Duration::from_secs(1));
    assert!(next_wait(&mut state, &clock).is_ok());
    let err = state
        .body_received(Err(io::ErrorKind::WouldBlock.into()), &clock)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    // Every later read fails too: the body never looks complete.
    let mut buf = [0u8; 8];
    assert!(state.read_body(&mut buf, &clock).is_err());
    assert!(!state.body_done());
    let end = state.finish();
    assert_eq!(end.status, 408);
    assert_eq!(end.body_error, Some(ParseError::BodyTimeout));
    assert!(!end.keep_alive);
    assert_eq!(state.poll(&clock), Action::Write);
    let output = take_output(&mut state);
    assert!(output.starts_with("HTTP/1.1 408 "), "{output}");
    assert_eq!(state.poll(&clock), Action::Shutdown, "a lingering close");
}

#[test]
fn a_body_slower_than_the_minimum_rate_after_its_grace_is_cut_with_408() {
    let clock = FakeClock::new();
    let mut state = posted(&clock, deadlines(), 1000);
    // Within the grace (4 s) the idle timeout (5 s) is not the bound.
    assert_eq!(
        next_wait(&mut state, &clock).unwrap(),
        Some(Duration::from_secs(4))
    );
    // 50 bytes after 3 s: 4 s + 0.5 s allowed, 3 s used.
    body_bytes(&mut state, &clock, &[b'x'; 50], Duration::from_secs(3));
    // Time the app spends between reads is not the client's.
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        next_wait(&mut state, &clock).unwrap(),
        Some(Duration::from_millis(1500))
    );
    body_bytes(&mut state, &clock, &[b'x'; 10], Duration::from_millis(1500));
    // 4 + 0.6 s allowed, 4.5 s used.
    assert_eq!(
        next_wait(&mut state, &clock).unwrap(),
        Some(Duration::from_millis(100))
    );
    body_bytes(&mut state, &clock, &[b'x'; 1], Duration::from_millis(100));
    // 4.61 s allowed, 4.6 s used; then the read that waits it out.
    assert_eq!(
        next_wait(&mut state, &clock).unwrap(),
        Some(Duration::from_millis(10))
    );
    clock.advance(Duration::from_millis(10));
    let err = state
        .body_received(Err(io::ErrorKind::TimedOut.into()), &clock)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    let end = state.finish();
    assert_eq!(end.status, 408);
    assert!(take_output(&mut state).starts_with("HTTP/1.1 408 "));
}

#[test]
fn a_body_at_the_minimum_rate_is_read_whole() {
    let clock = FakeClock::new();
    let mut state = posted(&clock, deadlines(), 600);
    for _ in 0..6 {
        assert!(next_wait(&mut state, &clock).unwrap().is_some());
        // 100 B/s exactly, after the grace too.
        body_bytes(&mut state, &clock, &[b'x'; 50], Duration::from_millis(500));
        body_bytes(&mut state, &clock, &[b'x'; 50], Duration::from_millis(500));
    }
    assert!(state.body_done());
    hello(&mut state);
    assert_eq!(state.finish().status, 200);
}

#[test]
fn a_response_already_started_is_cut_not_replaced_when_the_body_times_out() {
    let clock = FakeClock::new();
    let mut state = posted(&clock, deadlines(), 10);
    hello(&mut state);
    assert!(next_wait(&mut state, &clock).is_ok());
    assert!(state
        .body_received(Err(io::ErrorKind::TimedOut.into()), &clock)
        .is_err());
    let end = state.finish();
    assert_eq!(end.status, 200, "the app's status stands");
    assert!(!end.keep_alive);
    let output = take_output(&mut state);
    assert!(!output.contains("408"), "{output}");
}

#[test]
fn the_write_timeout_and_the_drain_wait_are_their_settings() {
    let clock = FakeClock::new();
    let config = ConnConfig {
        write_timeout: Duration::from_secs(7),
        ..deadlines()
    };
    let mut state = posted(&clock, config, 10);
    assert_eq!(state.write_timeout(), Some(Duration::from_secs(7)));
    hello(&mut state);
    assert!(state.finish().keep_alive, "10 bytes can be drained");
    assert_eq!(state.poll(&clock), Action::Write);
    state.written();
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(5)), false),
        "the drain waits --body-timeout"
    );
}

#[test]
fn pipelined_responses_never_buffer_past_the_threshold_before_a_write() {
    let clock = FakeClock::new();
    let mut state = ConnState::new(config());
    state.poll(&clock);
    // As many pipelined requests as the buffer holds, each answered with
    // 16 KiB: the output is written out (the driver blocks there, reading
    // nothing) before it passes the threshold by more than one response.
    let head_room = state.read_buf().unwrap().len();
    let batch = GET.repeat(head_room / GET.len());
    feed(&mut state, &batch);
    let body = vec![b'x'; 16 * 1024];
    let mut served = 0;
    let mut writes = 0;
    loop {
        match state.poll(&clock) {
            Action::Serve => {
                served += 1;
                state.start_response(200, &[]).unwrap();
                state.write_body(&body).unwrap();
                state.finish();
                assert!(state.output().len() < FLUSH_THRESHOLD + body.len() + 512);
            }
            Action::Write => {
                writes += 1;
                state.written();
            }
            Action::Read(_) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(served > 100, "{served}");
    assert!(writes >= served / 4, "{writes} writes for {served}");
}

/// What a driver that parks connections (gthread) asks: which reads it may
/// leave to its poller, until when, and how the poller closes at that time.
#[test]
fn a_parked_head_or_linger_reports_its_deadline_and_expires_with_a_408_or_silently() {
    let clock = FakeClock::new();
    let accepted = clock.now();
    let mut state = ConnState::new(config());
    state.accepted_at(accepted);
    assert_eq!(
        state.poll(&clock),
        read_wait(Some(Duration::from_secs(30)), false)
    );
    assert!(state.read_may_park(), "a new connection's first bytes");
    assert_eq!(
        state.park_deadline(),
        Some(accepted + Duration::from_secs(30))
    );
    // Part of a head: the same deadline, from the accept.
    clock.advance(Duration::from_secs(3));
    feed(&mut state, b"GET / HT");
    assert!(matches!(state.poll(&clock), Action::Read(_)));
    assert!(state.read_may_park());
    assert_eq!(
        state.park_deadline(),
        Some(accepted + Duration::from_secs(30))
    );
    // Past it, with the poller holding it: a 408, and closed.
    assert!(state.head_expired(&clock));
    let output = take_output(&mut state);
    assert!(output.starts_with("HTTP/1.1 408 "), "{output}");
    assert!(state.is_closed());
    assert_eq!(state.poll(&clock), Action::Close);

    // Nothing received: closed without a word.
    let mut silent = ConnState::new(config());
    silent.accepted_at(clock.now());
    assert!(matches!(silent.poll(&clock), Action::Read(_)));
    assert!(!silent.head_expired(&clock));
    assert!(silent.output().is_empty());
    assert_eq!(silent.poll(&clock), Action::Close);

    // A request with the app: its body reads are the request's, never parked.
    let mut serving = ConnState::new(config());
    feed(
        &mut serving,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!(serving.poll(&clock), Action::Serve);
    assert!(!serving.read_may_park());
    assert_eq!(serving.park_deadline(), None);

    // A lingering close after a bad request: parked until the linger's end,
    // then closed silently.
    let mut bad = ConnState::new(config());
    feed(&mut bad, b"BAD\r\n\r\n");
    assert!(matches!(bad.poll(&clock), Action::BadRequest(_)));
    assert_eq!(bad.poll(&clock), Action::Write);
    assert!(take_output(&mut bad).starts_with("HTTP/1.1 400 "));
    assert_eq!(bad.poll(&clock), Action::Shutdown);
    bad.shut_down(Ok(()));
    assert_eq!(
        bad.poll(&clock),
        read_wait(Some(Duration::from_secs(1)), false)
    );
    assert!(bad.read_may_park());
    assert_eq!(
        bad.park_deadline(),
        Some(clock.now() + Duration::from_secs(1))
    );
    assert!(!bad.head_expired(&clock));
    assert!(bad.output().is_empty());
    assert_eq!(bad.poll(&clock), Action::Close);
}

#[test]
fn a_head_whose_deadline_passed_unread_is_read_once_and_served_if_whole() {
    // The worker was busy past the deadline while the whole request sat in
    // the socket: the wait was the server's, and the request is served.
    let clock = FakeClock::new();
    let mut state = ConnState::new(deadlines());
    state.accepted_at(clock.now());
    clock.advance(Duration::from_secs(60));
    assert_eq!(state.poll(&clock), read_wait(Some(LATE_LOOK), false));
    feed(&mut state, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(state.poll(&clock), Action::Serve);
    hello(&mut state);
    assert!(state.finish().keep_alive);
    take_output(&mut state);
    // The next head has a deadline of its own, and its own late look.
    feed(&mut state, b"GET /next HTTP/1.1\r\n");
    assert!(matches!(state.poll(&clock), Action::Read(_)));
    clock.advance(Duration::from_secs(60));
    assert_eq!(state.poll(&clock), read_wait(Some(LATE_LOOK), false));
    feed(&mut state, b"Host: x\r\n\r\n");
    assert_eq!(state.poll(&clock), Action::Serve);
}
