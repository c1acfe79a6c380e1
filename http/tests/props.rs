//! Property tests: arbitrary bytes never panic and never yield a request
//! with ambiguous framing; a chunk line with a quote is accepted exactly when
//! it matches the chunk-extension grammar (Gunicorn's own regular
//! expression is the oracle), whole or split; a generated request survives
//! encode-then-parse, whole and split; response heads never carry an
//! injected line.

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
    for singleton in ["host", "content-type"] {
        let count = head
            .headers
            .iter()
            .filter(|field| field.name.eq_ignore_ascii_case(singleton))
            .count();
        assert!(count <= 1, "two {singleton} fields accepted");
    }
}

/// Gunicorn's chunk-extension expression (`gunicorn/http/body.py`,
/// `CHUNK_EXT_RE`), byte for byte, as the oracle: RFC 9112 7.1.1 with
/// RFC 9110's token and quoted-string.
fn chunk_ext_grammar() -> regex::bytes::Regex {
    let token = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+";
    let quoted = r#""(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*""#;
    let ext = format!(r"(?:[ \t]*;[ \t]*{token}(?:[ \t]*=[ \t]*(?:{token}|{quoted}))?)*");
    regex::bytes::Regex::new(&format!(r"(?-u)\A{ext}\z")).expect("the grammar compiles")
}

/// A chunk extension close to the grammar: parameters built from its parts
/// (blanks, `;`, names, `=`, tokens, quoted strings whose content may hold
/// anything: quotes, backslashes, CR, LF, NUL, DEL, obs-text), then perhaps
/// one stray byte put anywhere.
fn chunk_ext_bytes() -> impl Strategy<Value = Vec<u8>> {
    let blank = prop::sample::select(vec![&b""[..], b"", b" ", b"\t"]).prop_map(<[u8]>::to_vec);
    let name = prop::sample::select(vec![&b"a"[..], b"tok", b"x-y", b""]).prop_map(<[u8]>::to_vec);
    let content_byte = prop::sample::select(b"ab \t\\\"\\\r\n\0\x7f\xff\x01;=".to_vec());
    let quoted = prop::collection::vec(content_byte, 0..6).prop_map(|content| {
        let mut quoted = vec![b'"'];
        quoted.extend(content);
        quoted.push(b'"');
        quoted
    });
    let value = prop_oneof![
        1 => Just(Vec::new()),
        1 => name.clone().prop_map(|token| [&b"="[..], &token].concat()),
        3 => (blank.clone(), blank.clone(), quoted)
            .prop_map(|(before, after, quoted)| [before, b"=".to_vec(), after, quoted].concat()),
    ];
    let parameter = (blank.clone(), blank, name, value).prop_map(|(before, after, name, value)| {
        [before, b";".to_vec(), after, name, value].concat()
    });
    let stray = prop::option::weighted(
        0.3,
        (
            any::<prop::sample::Index>(),
            prop::sample::select(b"\"\\\r\n \x00\x7f;=".to_vec()),
        ),
    );
    (prop::collection::vec(parameter, 1..4), stray).prop_map(|(parameters, stray)| {
        // The first `;` is the caller's.
        let mut ext = parameters.concat();
        let first = ext.iter().position(|&byte| byte == b';').unwrap();
        ext.drain(..=first);
        if let Some((at, byte)) = stray {
            let at = at.index(ext.len() + 1);
            ext.insert(at, byte);
        }
        ext
    })
}

/// Decodes a chunked body fed in `pieces`: its bytes, or the first error.
fn decode_chunked(pieces: &[&[u8]], limits: &Limits) -> Result<Vec<u8>, runicorn_http::ParseError> {
    let mut decoder = BodyDecoder::new(BodyKind::Chunked, limits);
    let mut buffer = Vec::new();
    let mut body = Vec::new();
    for piece in pieces {
        buffer.extend_from_slice(piece);
        loop {
            let (used, data) = decoder.decode(&buffer, 64)?;
            body.extend_from_slice(data);
            buffer.drain(..used);
            if used == 0 || decoder.is_done() {
                break;
            }
        }
    }
    if decoder.is_done() {
        Ok(body)
    } else {
        Err(runicorn_http::ParseError::IncompleteBody)
    }
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

proptest! {
    // Small inputs, a grammar with many corners: many cases.
    #![proptest_config(ProptestConfig { cases: 4096, .. ProptestConfig::default() })]

    #[test]
    fn a_chunk_line_with_a_quote_matches_the_grammar_or_is_rejected(
        blank in prop::sample::select(vec![&b""[..], b" ", b"\t "]),
        mut ext in chunk_ext_bytes(),
        quote_at in any::<prop::sample::Index>(),
        split in any::<prop::sample::Index>(),
    ) {
        // `5` BWS `;` ext CRLF `hello` CRLF `0` CRLF CRLF, with a quote in ext.
        if !ext.contains(&b'"') {
            let at = quote_at.index(ext.len() + 1);
            ext.insert(at, b'"');
        }
        let mut wire = b"5".to_vec();
        wire.extend_from_slice(blank);
        wire.push(b';');
        wire.extend_from_slice(&ext);
        wire.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        // The line as a reader that honours only CRLF sees it (Gunicorn's split).
        let line_end = wire.windows(2).position(|pair| pair == b"\r\n").unwrap();
        let after_size = &wire[1..line_end];
        let semicolon = after_size.iter().position(|&byte| byte == b';').unwrap();
        let (bws, extension) = after_size.split_at(semicolon);
        let grammatical = bws.iter().all(|&byte| byte == b' ' || byte == b'\t')
            && chunk_ext_grammar().is_match(extension);
        let limits = Limits::default();
        let whole = decode_chunked(&[&wire], &limits);
        let cut = split.index(wire.len() + 1);
        let (left, right) = wire.split_at(cut);
        let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
        prop_assert_eq!(&decode_chunked(&[left, right], &limits), &whole);
        prop_assert_eq!(&decode_chunked(&bytewise, &limits), &whole);
        if !grammatical {
            prop_assert!(whole.is_err(), "accepted off the grammar: {:?}", String::from_utf8_lossy(&wire));
        }
        if !ext.contains(&b'\r') && !ext.contains(&b'\n') {
            // The line is the whole extension: accepted exactly when grammatical.
            prop_assert_eq!(whole.is_ok(), grammatical, "{:?}: {:?}", String::from_utf8_lossy(&wire), whole);
            if let Ok(body) = &whole {
                prop_assert_eq!(body.as_slice(), b"hello");
            }
        }
    }
}
