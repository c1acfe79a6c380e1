//! Property tests of the PROXY protocol parser: arbitrary bytes (and bytes
//! that start like a header) never panic, never claim more bytes than were
//! given, and are judged the same whole as after any split; a header
//! encoded by `ppp`'s builder (v2) or by the specification's format (v1),
//! followed by anything, parses back to its source address and exact
//! length.

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use runicorn_http::{parse_proxy_header, ProxyMode, ProxyParse, V1_SIGNATURE, V2_SIGNATURE};

fn modes() -> impl Strategy<Value = ProxyMode> {
    prop::sample::select(vec![ProxyMode::V1, ProxyMode::V2, ProxyMode::Auto])
}

/// Bytes that start with a signature often enough to reach the fields.
fn header_ish() -> impl Strategy<Value = Vec<u8>> {
    let start = prop::sample::select(vec![
        V1_SIGNATURE.to_vec(),
        V2_SIGNATURE.to_vec(),
        b"PROXY TCP4 ".to_vec(),
        b"PROXY TCP6 ".to_vec(),
        b"PROXY UNKNOWN".to_vec(),
        Vec::new(),
    ]);
    (start, prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(mut start, rest)| {
        start.extend(rest);
        start
    })
}

fn v1_line(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

fn v2_header(source: SocketAddr, destination: SocketAddr, tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let family = if source.is_ipv4() { 0x11 } else { 0x21 };
    let mut builder =
        ppp::v2::Builder::with_addresses(0x21, ppp::v2::Protocol::Stream, (source, destination));
    for (kind, value) in tlvs {
        builder = builder.write_tlv(*kind, value).expect("in memory");
    }
    let bytes = builder.build().expect("in memory");
    assert_eq!(bytes[13], family);
    bytes
}

/// Two addresses of one family.
fn address_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<u16>()
        )
            .prop_map(|(a, b, p, q)| (
                SocketAddr::new(IpAddr::from(a), p),
                SocketAddr::new(IpAddr::from(b), q)
            )),
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<u16>()
        )
            .prop_map(|(a, b, p, q)| (
                SocketAddr::new(IpAddr::from(a), p),
                SocketAddr::new(IpAddr::from(b), q)
            )),
    ]
}

fn judged(parse: &ProxyParse) -> u8 {
    match parse {
        ProxyParse::Incomplete => 0,
        ProxyParse::Absent => 1,
        ProxyParse::Header(_) => 2,
        ProxyParse::Invalid(_) => 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in header_ish(), mode in modes()) {
        let whole = parse_proxy_header(&bytes, mode);
        if let ProxyParse::Header(header) = &whole {
            prop_assert!(header.len <= bytes.len());
            // The header alone says the same.
            prop_assert_eq!(parse_proxy_header(&bytes[..header.len], mode), whole.clone());
        }
        // A prefix is never judged complete-and-valid when the whole is
        // malformed, and never malformed when the whole is a header.
        for end in 0..bytes.len() {
            let part = parse_proxy_header(&bytes[..end], mode);
            match (&whole, &part) {
                (ProxyParse::Header(header), ProxyParse::Invalid(err)) if end < header.len => {
                    prop_assert!(false, "prefix {end} invalid ({err}) of a valid header");
                }
                (ProxyParse::Invalid(_), ProxyParse::Header(header)) => {
                    prop_assert!(false, "prefix {end} parsed ({header:?}) of an invalid header");
                }
                _ => {}
            }
            if judged(&part) != 0 {
                // Once decided, more bytes do not change the verdict.
                prop_assert_eq!(judged(&part), judged(&whole), "prefix {}", end);
            }
        }
    }

    #[test]
    fn v1_round_trips((source, destination) in address_pair(), rest in prop::collection::vec(any::<u8>(), 0..40)) {
        let mut bytes = v1_line(source, destination);
        let len = bytes.len();
        bytes.extend(rest);
        for mode in [ProxyMode::V1, ProxyMode::Auto] {
            match parse_proxy_header(&bytes, mode) {
                ProxyParse::Header(header) => {
                    prop_assert_eq!(header.len, len);
                    prop_assert_eq!(header.source, Some(source));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }

    #[test]
    fn v2_round_trips(
        (source, destination) in address_pair(),
        tlvs in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..64)), 0..5),
        rest in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut bytes = v2_header(source, destination, &tlvs);
        let len = bytes.len();
        bytes.extend(rest);
        for mode in [ProxyMode::V2, ProxyMode::Auto] {
            match parse_proxy_header(&bytes, mode) {
                ProxyParse::Header(header) => {
                    prop_assert_eq!(header.len, len);
                    prop_assert_eq!(header.source, Some(source));
                }
                other => prop_assert!(false, "{:?}", other),
            }
            for end in 0..len {
                prop_assert_eq!(parse_proxy_header(&bytes[..end], mode), ProxyParse::Incomplete);
            }
        }
    }
}
