//! Fuzz the PROXY protocol parser: never panic, never claim more bytes than
//! given, the header alone parses the same, and every prefix of a valid
//! header is incomplete, never malformed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runicorn_http::{parse_proxy_header, ProxyMode, ProxyParse};

fuzz_target!(|data: &[u8]| {
    for mode in [ProxyMode::V1, ProxyMode::V2, ProxyMode::Auto] {
        let whole = parse_proxy_header(data, mode);
        if let ProxyParse::Header(header) = &whole {
            assert!(header.len <= data.len());
            assert_eq!(parse_proxy_header(&data[..header.len], mode), whole);
            for end in 0..header.len {
                assert!(!matches!(
                    parse_proxy_header(&data[..end], mode),
                    ProxyParse::Invalid(_) | ProxyParse::Header(_)
                ));
            }
        }
    }
});
