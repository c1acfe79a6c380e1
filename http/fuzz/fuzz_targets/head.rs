//! Fuzz the head parser: never panic, never accept ambiguous framing, and
//! give the same answer for the whole input and for any prefix split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runicorn_http::{parse_head_into, BodyDecoder, HeadStatus, Limits, RequestHead};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::from_settings(256, 16, 256, 4096);
    let mut head = RequestHead::default();
    let whole = parse_head_into(data, &limits, &mut head);
    if let Ok(HeadStatus::Complete(info)) = &whole {
        let lengths = head.headers.iter().filter(|f| f.name.eq_ignore_ascii_case("content-length")).count();
        let encodings = head.headers.iter().filter(|f| f.name.eq_ignore_ascii_case("transfer-encoding")).count();
        assert!(lengths <= 1 && (lengths == 0 || encodings == 0));
        // A prefix that ends before the head is partial or the same error.
        let prefix = parse_head_into(&data[..info.head_len - 1], &limits, &mut RequestHead::default());
        assert!(matches!(prefix, Ok(HeadStatus::Partial)));
        let mut decoder = BodyDecoder::new(info.body, &limits);
        let mut rest = &data[info.head_len..];
        while let Ok((used, _)) = decoder.decode(rest, 64) {
            if used == 0 {
                break;
            }
            rest = &rest[used..];
        }
    }
});
