//! Property tests: arbitrary bytes never panic and never yield a request
//! with ambiguous framing; a generated request survives encode-then-parse,
//! whole and split; response heads never carry an injected line.

use proptest::prelude::*;
use runicorn_http::{
    encode_response_head, parse_head_into, BodyDecoder, BodyKind, Cycle, CycleOptions, DateCache,
    HeadStatus, Limits, RequestHead, ResponseContext, Version,
};

fn small_limits() -> impl Strategy<Value = Limits> {
    (0usize..200, 0usize..20, 0usize..200, 0u64..1000)
        .prop_map(|(line, fields, size, body)| Limits::from_settings(line, fields, size, body))
}

/// Bytes that look HTTP-ish often enough to get past the request line.
fn http_ish() -> impl Strategy<Value = Vec<u8>> {
    let atoms = prop::sample::select(vec![
        &b"GET / HTTP/1.1\r\n"[..],
        b"POST /x HTTP/1.0\r\n",
        b"Host: a\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: 05\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Expect: 100-continue\r\n",
        b"Connection: close\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b":",
        b"\0",
        b"5\r\nhello\r\n",
        b"0\r\n\r\n",
        b"X-A: b\r\n",
    ]);
    prop::collection::vec(
        prop_oneof![
            atoms.prop_map(<[u8]>::to_vec),
            prop::collection::vec(any::<u8>(), 0..4)
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// Check that a parsed head's framing is unambiguous.
fn assert_unambiguous(head: &RequestHead, kind: BodyKind) {
    let lengths = head
        .headers
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case("content-length"))
        .count();
    let encodings = head
        .headers
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case("transfer-encoding"))
        .count();
    assert!(lengths <= 1, "two content-lengths accepted");
    assert!(
        lengths == 0 || encodings == 0,
        "content-length with transfer-encoding accepted"
    );
    if encodings > 0 {
        assert_eq!(kind, BodyKind::Chunked);
        assert_eq!(head.version, Version::Http11);
    }
    let hosts = head
        .headers
        .iter()
        .filter(|field| field.name.eq_ignore_ascii_case("host"))
        .count();
    assert!(hosts <= 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_or_smuggle(bytes in prop::collection::vec(any::<u8>(), 0..512), limits in small_limits()) {
        let mut head = RequestHead::default();
        if let Ok(HeadStatus::Complete(info)) = parse_head_into(&bytes, &limits, &mut head) {
            assert_unambiguous(&head, info.body);
            prop_assert!(info.head_len <= bytes.len());
        }
    }

    #[test]
    fn http_ish_bytes_never_panic_or_smuggle(bytes in http_ish()) {
        let limits = Limits::default();
        let mut head = RequestHead::default();
        if let Ok(HeadStatus::Complete(info)) = parse_head_into(&bytes, &limits, &mut head) {
            assert_unambiguous(&head, info.body);
            let mut decoder = BodyDecoder::new(info.body, &limits);
            let mut rest = &bytes[info.head_len..];
            while let Ok((used, _)) = decoder.decode(rest, 7) {
                if used == 0 { break; }
                rest = &rest[used..];
            }
        }
    }

    #[test]
    fn chunked_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), max in 1usize..64) {
        let mut decoder = BodyDecoder::new(BodyKind::Chunked, &Limits::default());
        let mut rest = &bytes[..];
        while let Ok((used, data)) = decoder.decode(rest, max) {
            prop_assert!(data.len() <= max);
            if used == 0 { break; }
            rest = &rest[used..];
        }
    }

    #[test]
    fn generated_request_round_trips(
        method in "[A-Z]{1,8}",
        path in "/[a-zA-Z0-9._~%!$&'()*+,;=:@/-]{0,40}(\\?[a-zA-Z0-9=&]{0,20})?",
        fields in prop::collection::vec(("X-[A-Za-z0-9-]{1,12}", "[!-~]([ !-~]{0,30}[!-~])?"), 0..12),
        body in prop::collection::vec(any::<u8>(), 0..200),
        chunked in any::<bool>(),
        split in any::<prop::sample::Index>(),
    ) {
        let mut wire = format!("{method} {path} HTTP/1.1\r\nHost: example.test\r\n").into_bytes();
        for (name, value) in &fields {
            wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if chunked {
            wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for piece in body.chunks(37) {
                wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                wire.extend_from_slice(piece);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        } else {
            wire.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            wire.extend_from_slice(&body);
        }
        let limits = Limits::default();
        let mut head = RequestHead::default();
        // A prefix is partial, never an error.
        let cut = split.index(wire.len());
        let prefix = parse_head_into(&wire[..cut], &limits, &mut head);
        prop_assert!(prefix.is_ok(), "prefix error: {prefix:?}");
        let HeadStatus::Complete(info) = parse_head_into(&wire, &limits, &mut head).unwrap() else {
            panic!("complete request parsed as partial");
        };
        prop_assert_eq!(&head.method, &method);
        prop_assert_eq!(&head.target, &path);
        prop_assert_eq!(head.headers.len(), fields.len() + 2);
        for (field, (name, value)) in head.headers[1..].iter().zip(&fields) {
            prop_assert_eq!(&field.name, name);
            prop_assert_eq!(&field.value, value.as_bytes());
        }
        let mut decoder = BodyDecoder::new(info.body, &limits);
        let mut rest = &wire[info.head_len..];
        let mut got = Vec::new();
        while !decoder.is_done() {
            let (used, data) = decoder.decode(rest, 13).unwrap();
            got.extend_from_slice(data);
            rest = &rest[used..];
        }
        prop_assert_eq!(got, body);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn response_heads_never_carry_injected_lines(name in "[ -~]{1,12}", value in prop::collection::vec(any::<u8>(), 0..40)) {
        let date = DateCache::default();
        let context = ResponseContext { version: Version::Http11, head_request: false, keep_alive: true, date: date.as_bytes() };
        let mut out = Vec::new();
        let headers: [(&str, &[u8]); 1] = [(&name, &value)];
        if encode_response_head(&mut out, 200, &headers, &context).is_ok() {
            // The head has exactly one empty line, at its end, and no bare CR or LF.
            let text = &out[..];
            let end = text.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            prop_assert_eq!(end + 4, text.len());
            for (index, &byte) in text.iter().enumerate() {
                if byte == b'\n' { prop_assert_eq!(text[index - 1], b'\r'); }
                if byte == b'\r' { prop_assert_eq!(text[index + 1], b'\n'); }
            }
        } else {
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn cycle_content_length_never_overruns(declared in 0u64..50, writes in prop::collection::vec(0usize..20, 0..6)) {
        let mut head = RequestHead::default();
        let info = match parse_head_into(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &Limits::default(), &mut head).unwrap() {
            HeadStatus::Complete(info) => info,
            HeadStatus::Partial => unreachable!(),
        };
        let mut cycle = Cycle::new(info, &head, &Limits::default(), CycleOptions::default());
        let mut out = Vec::new();
        let length = declared.to_string();
        cycle.start_response(&mut out, 200, &[("Content-Length", length.as_bytes())], b"Thu, 01 Jan 1970 00:00:00 GMT").unwrap();
        let head_len = out.len();
        let mut written = 0u64;
        for size in writes {
            let data = vec![b'x'; size];
            if cycle.write_body(&mut out, &data).is_ok() { written += size as u64; }
        }
        let finish = cycle.finish(&mut out, b"Thu, 01 Jan 1970 00:00:00 GMT");
        prop_assert!(written <= declared);
        prop_assert_eq!((out.len() - head_len) as u64, written);
        prop_assert_eq!(finish.keep_alive, written == declared);
    }
}
