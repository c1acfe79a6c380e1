//! Response encoding, the `Date` cache, error responses, limits and
//! allocation reuse, through the public API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runicorn_http::{
    encode_response_head, error_response, parse_head_into, Cycle, CycleOptions, DateCache,
    HeadStatus, Limits, ParseError, RequestHead, RequestInfo, ResponseContext, ResponseError,
    Version,
};

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

fn context(version: Version, head_request: bool) -> ResponseContext<'static> {
    ResponseContext {
        version,
        head_request,
        keep_alive: true,
        date: DATE,
    }
}

fn encode(status: u16, headers: &[(&str, &[u8])], context: &ResponseContext<'_>) -> (String, bool) {
    let mut out = Vec::new();
    let head = encode_response_head(&mut out, status, headers, context).unwrap();
    (String::from_utf8(out).unwrap(), head.keep_alive)
}

#[test]
fn server_and_date_come_first_and_content_length_frames() {
    let (text, keep) = encode(
        200,
        &[("Content-Length", b"2"), ("X-A", b"1")],
        &context(Version::Http11, false),
    );
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nServer: runicorn\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n"
    );
    assert!(keep);
}

#[test]
fn no_length_is_chunked_on_11_and_close_delimited_on_10() {
    let (text, keep) = encode(200, &[], &context(Version::Http11, false));
    assert!(text.contains("Transfer-Encoding: chunked\r\n") && keep);
    let (text, keep) = encode(200, &[], &context(Version::Http10, false));
    assert!(!text.contains("Transfer-Encoding") && text.contains("Connection: close\r\n") && !keep);
}

#[test]
fn http10_keep_alive_is_announced() {
    let (text, keep) = encode(
        200,
        &[("Content-Length", b"0")],
        &context(Version::Http10, false),
    );
    assert!(text.contains("Connection: keep-alive\r\n") && keep);
}

#[test]
fn bodiless_statuses_and_head() {
    for status in [204u16, 304] {
        let (text, _) = encode(
            status,
            &[("Content-Length", b"10")],
            &context(Version::Http11, false),
        );
        assert!(!text.contains("Transfer-Encoding"), "{text}");
        assert_eq!(text.contains("Content-Length: 10"), status == 304, "{text}");
    }
    let (text, _) = encode(
        200,
        &[("Content-Length", b"10")],
        &context(Version::Http11, true),
    );
    assert!(text.contains("Content-Length: 10\r\n"));
    let (text, _) = encode(200, &[], &context(Version::Http11, true));
    assert!(!text.contains("Transfer-Encoding"));
}

#[test]
fn body_bytes_are_dropped_for_head_and_204() {
    let mut head = RequestHead::default();
    let HeadStatus::Complete(info) = parse_head_into(
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        &Limits::default(),
        &mut head,
    )
    .unwrap() else {
        panic!("partial")
    };
    let mut cycle = Cycle::new(info, &head, &Limits::default(), CycleOptions::default());
    let mut out = Vec::new();
    cycle
        .start_response(&mut out, 200, &[("Content-Length", b"5")], DATE)
        .unwrap();
    let head_len = out.len();
    cycle.write_body(&mut out, b"hello").unwrap();
    let finish = cycle.finish(&mut out, DATE);
    assert_eq!(out.len(), head_len);
    assert!(finish.keep_alive);
}

#[test]
fn hop_by_hop_fields_are_dropped_and_close_honoured() {
    let headers: [(&str, &[u8]); 4] = [
        ("Connection", b"close"),
        ("Keep-Alive", b"timeout=5"),
        ("Transfer-Encoding", b"gzip"),
        ("Upgrade", b"h2c"),
    ];
    let (text, keep) = encode(200, &headers, &context(Version::Http11, false));
    assert!(!text.contains("Keep-Alive") && !text.contains("gzip") && !text.contains("Upgrade"));
    assert!(text.contains("Connection: close\r\n") && !keep);
}

#[test]
fn app_server_and_date_replace_ours() {
    let (text, _) = encode(
        200,
        &[("Server", b"mine"), ("Date", b"today")],
        &context(Version::Http11, false),
    );
    assert!(
        !text.contains("runicorn") && text.contains("Server: mine") && text.contains("Date: today")
    );
}

#[test]
fn invalid_fields_and_statuses_are_refused() {
    let ctx = context(Version::Http11, false);
    let mut out = Vec::new();
    let cases: [(u16, &str, &[u8]); 6] = [
        (200, "X-Split", b"a\r\nSet-Cookie: evil=1"),
        (200, "X-Nul", b"a\0"),
        (200, "Bad Name", b"x"),
        (200, "", b"x"),
        (200, "Content-Length", b"-1"),
        (99, "X", b"x"),
    ];
    for (status, name, value) in cases {
        assert!(encode_response_head(&mut out, status, &[(name, value)], &ctx).is_err());
        assert!(out.is_empty());
    }
    assert_eq!(
        encode_response_head(&mut out, 101, &[], &ctx),
        Err(ResponseError::InvalidStatus(101))
    );
}

#[test]
fn chunked_body_and_last_chunk() {
    let mut head = RequestHead::default();
    let HeadStatus::Complete(info) = parse_head_into(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        &Limits::default(),
        &mut head,
    )
    .unwrap() else {
        panic!("partial")
    };
    let mut cycle = Cycle::new(info, &head, &Limits::default(), CycleOptions::default());
    let mut out = Vec::new();
    cycle.start_response(&mut out, 200, &[], DATE).unwrap();
    out.clear();
    cycle.write_body(&mut out, &[b'x'; 26]).unwrap();
    cycle.write_body(&mut out, b"").unwrap();
    let finish = cycle.finish(&mut out, DATE);
    assert_eq!(
        out,
        [&b"1a\r\n"[..], &[b'x'; 26], b"\r\n0\r\n\r\n"].concat()
    );
    assert!(finish.keep_alive);
    assert_eq!(
        cycle.start_response(&mut out, 200, &[], DATE),
        Err(ResponseError::AlreadyStarted)
    );
}

#[test]
fn last_request_and_interim_responses() {
    let mut head = RequestHead::default();
    let HeadStatus::Complete(info) = parse_head_into(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        &Limits::default(),
        &mut head,
    )
    .unwrap() else {
        panic!("partial")
    };
    let options = CycleOptions {
        last: true,
        ..CycleOptions::default()
    };
    let mut cycle = Cycle::new(info, &head, &Limits::default(), options);
    let mut out = Vec::new();
    cycle
        .start_response(&mut out, 103, &[("Link", b"</s.css>; rel=preload")], DATE)
        .unwrap();
    assert!(!cycle.response_started());
    cycle
        .start_response(&mut out, 200, &[("Content-Length", b"0")], DATE)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(
        "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
    ));
    assert!(text.ends_with("Connection: close\r\n\r\n"));
}

#[test]
fn date_cache_formats_once_per_second() {
    let base = UNIX_EPOCH + Duration::from_secs(784_111_777);
    let mut cache = DateCache::new(base);
    assert_eq!(cache.as_bytes(), DATE);
    cache.update(base + Duration::from_millis(999));
    assert_eq!(cache.as_bytes(), DATE);
    cache.update(base + Duration::from_secs(1));
    assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
    let now = DateCache::new(SystemTime::now());
    assert!(now.as_bytes().ends_with(b" GMT"));
}

#[test]
fn error_responses_are_minimal_and_close() {
    let text = String::from_utf8(error_response(431)).unwrap();
    assert_eq!(
        text,
        "HTTP/1.1 431 Request Header Fields Too Large\r\nServer: runicorn\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n\r\nRequest Header Fields Too Large\n"
    );
    let statuses = [
        ParseError::BadRequestLine.status(),
        ParseError::RequestLineTooLong { limit: 1 }.status(),
        ParseError::HeadTooLarge { limit: 1 }.status(),
        ParseError::BodyTooLarge { limit: 1 }.status(),
        ParseError::UnknownTransferCoding.status(),
        ParseError::UnsupportedExpect.status(),
        ParseError::UnsupportedVersion.status(),
    ];
    assert_eq!(statuses, [400, 414, 431, 413, 501, 417, 505]);
}

#[test]
fn head_cap_is_enforced() {
    let limits = Limits::from_settings(4094, 10_000, 8190, 1 << 30);
    let mut wire = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    while wire.len() <= limits.head {
        wire.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    let mut head = RequestHead::default();
    assert_eq!(
        parse_head_into(&wire, &limits, &mut head),
        Err(ParseError::HeadTooLarge { limit: limits.head })
    );
    wire.extend_from_slice(b"\r\n");
    assert_eq!(
        parse_head_into(&wire, &limits, &mut head),
        Err(ParseError::HeadTooLarge { limit: limits.head })
    );
}

#[test]
fn fields_beyond_the_stack_slots_are_parsed_under_a_larger_limit() {
    let limits = Limits::from_settings(4094, 300, 8190, 1 << 30);
    let mut wire = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for index in 0..200 {
        wire.extend_from_slice(format!("X-{index}: v\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    let mut head = RequestHead::default();
    assert!(matches!(
        parse_head_into(&wire, &limits, &mut head),
        Ok(HeadStatus::Complete(_))
    ));
    assert_eq!(head.headers.len(), 201);
    let strict = Limits::from_settings(4094, 150, 8190, 1 << 30);
    assert_eq!(
        parse_head_into(&wire, &strict, &mut head),
        Err(ParseError::TooManyFields { limit: 150 })
    );
}

#[test]
fn reparsing_into_a_head_reuses_its_allocations() {
    let limits = Limits::default();
    let mut head = RequestHead::default();
    let wire = b"GET /first HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    parse_head_into(wire, &limits, &mut head).unwrap();
    let pointers = (
        head.method.as_ptr(),
        head.target.as_ptr(),
        head.headers.as_ptr(),
        head.headers[0].name.as_ptr(),
        head.headers[1].value.as_ptr(),
    );
    let wire = b"PUT /other HTTP/1.1\r\nHost: example.org\r\nAccept: x/y\r\n\r\n";
    let status = parse_head_into(wire, &limits, &mut head).unwrap();
    assert!(matches!(status, HeadStatus::Complete(RequestInfo { .. })));
    assert_eq!(head.method, "PUT");
    assert_eq!(head.header("host"), Some(&b"example.org"[..]));
    let after = (
        head.method.as_ptr(),
        head.target.as_ptr(),
        head.headers.as_ptr(),
        head.headers[0].name.as_ptr(),
        head.headers[1].value.as_ptr(),
    );
    assert_eq!(pointers, after);
}
