//! Fuzz the chunked decoder: never panic, never return more than asked, and
//! decode the same body whether fed whole or one byte at a time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runicorn_http::{BodyDecoder, BodyKind, Limits};

fn decode(data: &[u8], step: usize) -> (Vec<u8>, bool, bool) {
    let limits = Limits::from_settings(256, 16, 256, 1 << 20);
    let mut decoder = BodyDecoder::new(BodyKind::Chunked, &limits);
    let mut body = Vec::new();
    let mut failed = false;
    for piece in data.chunks(step.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() && !decoder.is_done() {
            match decoder.decode(rest, 17) {
                Ok((used, out)) => {
                    assert!(out.len() <= 17);
                    body.extend_from_slice(out);
                    rest = &rest[used..];
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed || decoder.is_done() {
            break;
        }
    }
    (body, decoder.is_done(), failed)
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(data, data.len());
    let bytes = decode(data, 1);
    assert_eq!(whole.1, bytes.1);
    assert_eq!(whole.2, bytes.2);
    if !whole.2 {
        assert_eq!(whole.0, bytes.0);
    }
});
