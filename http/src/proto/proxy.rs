//! The PROXY protocol (HAProxy's v1 text and v2 binary headers), sans-IO:
//! what a connection's first bytes say about the client a TCP proxy such
//! as haproxy (`send-proxy`) or nginx (`proxy_protocol on`) forwards.
//!
//! The header comes first on the raw connection, before any TLS and any
//! HTTP. [`parse`] reads it from the bytes received so far and says whether
//! more are needed ([`ProxyParse::Incomplete`]), that there is none (under
//! `auto` only: [`ProxyParse::Absent`]), what it said and how long it was,
//! or why it is malformed. [`ProxyPolicy::step`] adds the settings' rules
//! (the mode, and which peers may send a header) and answers what the
//! worker does: wait, serve (consuming exactly the header's bytes, so the
//! bytes after it are untouched for TLS or HTTP), or refuse (400 for a
//! malformed header, 403 for a peer not allowed to send one).
//!
//! The field parsing is the `ppp` crate's; this module adds what `ppp`
//! leaves to its caller or lets through: the incomplete-versus-invalid
//! decision on a partial header, the v1 107-byte bound before a CRLF is
//! seen, printable ASCII only and ports of digits only in v1 (`ppp` takes
//! `+80`), a bound on the v2 length (`MAX_V2_LENGTH`), the TLVs' framing
//! checked (their contents are skipped), and a v2 PROXY command for
//! anything but a stream refused.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::proto::forwarded::ForwardedPolicy;

/// The v1 signature: a v1 header starts with these bytes.
pub const V1_SIGNATURE: &[u8] = b"PROXY ";

/// The v2 signature: a v2 header starts with these twelve bytes.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 header, its CRLF included (the specification's bound).
pub const MAX_V1_LENGTH: usize = 107;

/// The longest v2 address block and TLVs runicorn reads (the length field
/// of the 16-byte fixed part); a longer one is refused as malformed. The
/// addresses take at most 216 bytes; the TLVs proxies send (ALPN, the
/// authority, a unique id, TLS facts, a cloud's endpoint id) fit well
/// within the rest.
pub const MAX_V2_LENGTH: usize = 4096;

/// The most bytes a header can take: what a reader peeks at most.
pub const MAX_HEADER_LENGTH: usize = 16 + MAX_V2_LENGTH;

/// `--proxy-protocol`: which header a connection must start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// No header is read: `PROXY ...` is an HTTP request line (a 400).
    #[default]
    Off,
    /// A v1 (text) header is required.
    V1,
    /// A v2 (binary) header is required.
    V2,
    /// A v1 or v2 header, or none (Gunicorn's `--proxy-protocol`).
    Auto,
}

impl ProxyMode {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Off => "off",
            ProxyMode::V1 => "v1",
            ProxyMode::V2 => "v2",
            ProxyMode::Auto => "auto",
        }
    }
}

impl FromStr for ProxyMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Gunicorn's spellings too: false, 0, none; true, 1.
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "none" => Ok(ProxyMode::Off),
            "v1" => Ok(ProxyMode::V1),
            "v2" => Ok(ProxyMode::V2),
            "auto" | "true" | "1" => Ok(ProxyMode::Auto),
            _ => Err(format!("'{text}' is not one of off, v1, v2, auto")),
        }
    }
}

/// Which version a header was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Text.
    V1,
    /// Binary.
    V2,
}

/// A complete, valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Its length in bytes: what to consume from the connection.
    pub len: usize,
    /// v1 or v2.
    pub version: ProxyVersion,
    /// The client the proxy speaks for (v1 `TCP4`/`TCP6`, v2 `PROXY` over
    /// IPv4/IPv6); `None` keeps the socket's peer (v1 `UNKNOWN`, v2
    /// `LOCAL`, v2 `UNSPEC` or unix addresses).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, the proxy's own (alongside
    /// [`ProxyHeader::source`]; `None` whenever that is).
    pub destination: Option<SocketAddr>,
    /// What the header says the connection is, as Gunicorn's
    /// `PROXY_PROTOCOL` gives it: `TCP4` or `TCP6` (v1 and v2), `UNKNOWN`
    /// (v1), `LOCAL`, `UNSPEC` or `UNIX` (v2).
    pub protocol: &'static str,
}

/// What a connection's PROXY header told it, kept for the app: Gunicorn's
/// `PROXY_PROTOCOL`, `PROXY_ADDR` and `PROXY_PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    /// [`ProxyHeader::protocol`].
    pub protocol: &'static str,
    /// [`ProxyHeader::destination`] as `ip:port` (`[v6]:port`), `""` when
    /// the header named none.
    pub proxy_addr: String,
}

impl From<&ProxyHeader> for Proxied {
    fn from(header: &ProxyHeader) -> Proxied {
        Proxied {
            protocol: header.protocol,
            proxy_addr: header
                .destination
                .map_or_else(String::new, |destination| destination.to_string()),
        }
    }
}

/// Why a header is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The first bytes are not the signature the mode requires.
    #[error("the connection does not start with a PROXY protocol {0} signature")]
    Signature(&'static str),
    /// No CRLF within 107 bytes.
    #[error("PROXY v1 header longer than 107 bytes")]
    V1TooLong,
    /// A v1 header that `ppp` or the checks here refuse.
    #[error("malformed PROXY v1 header: {0}")]
    V1(String),
    /// A v2 length field over [`MAX_V2_LENGTH`].
    #[error(
        "PROXY v2 header of {0} bytes after its fixed part, over the {MAX_V2_LENGTH}-byte bound"
    )]
    V2TooLong(usize),
    /// A v2 header that `ppp` or the checks here refuse.
    #[error("malformed PROXY v2 header: {0}")]
    V2(String),
}

/// What the bytes received so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyParse {
    /// A header (or, under `auto`, perhaps one) that is not complete yet.
    Incomplete,
    /// No header: under `auto`, bytes that start no signature (and under
    /// `off`, always).
    Absent,
    /// A complete header.
    Header(ProxyHeader),
    /// A malformed header (or, under `v1`/`v2`, not the one required).
    Invalid(ProxyError),
}

/// How `bytes` relate to `signature`.
#[derive(Debug, PartialEq, Eq)]
enum Match {
    /// They start with it.
    Full,
    /// They are a strict prefix of it (more bytes decide).
    Partial,
    /// They differ.
    No,
}

fn matches(bytes: &[u8], signature: &[u8]) -> Match {
    if bytes.starts_with(signature) {
        Match::Full
    } else if signature.starts_with(bytes) {
        Match::Partial
    } else {
        Match::No
    }
}

/// Parses the header at the start of `bytes` (every byte the connection
/// received so far) under `mode`.
pub fn parse(bytes: &[u8], mode: ProxyMode) -> ProxyParse {
    let v1 = matches(bytes, V1_SIGNATURE);
    let v2 = matches(bytes, V2_SIGNATURE);
    match mode {
        ProxyMode::Off => ProxyParse::Absent,
        ProxyMode::V1 => match v1 {
            Match::Full => parse_v1(bytes),
            Match::Partial => ProxyParse::Incomplete,
            Match::No => ProxyParse::Invalid(ProxyError::Signature("v1")),
        },
        ProxyMode::V2 => match v2 {
            Match::Full => parse_v2(bytes),
            Match::Partial => ProxyParse::Incomplete,
            Match::No => ProxyParse::Invalid(ProxyError::Signature("v2")),
        },
        ProxyMode::Auto => match (v1, v2) {
            (Match::Full, _) => parse_v1(bytes),
            (_, Match::Full) => parse_v2(bytes),
            (Match::Partial, _) | (_, Match::Partial) => ProxyParse::Incomplete,
            (Match::No, Match::No) => ProxyParse::Absent,
        },
    }
}

fn v1_invalid(reason: impl Into<String>) -> ProxyParse {
    ProxyParse::Invalid(ProxyError::V1(reason.into()))
}

/// A v1 header: `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` or
/// `PROXY UNKNOWN ...\r\n`, at most 107 bytes.
fn parse_v1(bytes: &[u8]) -> ProxyParse {
    let window = &bytes[..bytes.len().min(MAX_V1_LENGTH)];
    let Some(cr) = window.windows(2).position(|pair| pair == b"\r\n") else {
        if bytes.len() >= MAX_V1_LENGTH {
            return ProxyParse::Invalid(ProxyError::V1TooLong);
        }
        // Refuse early what no more bytes can mend: a control byte, or a
        // CR followed by anything but LF.
        let (last, body) = window.split_last().expect("starts with the signature");
        if let Some(bad) = body.iter().find(|byte| !is_v1_text(**byte)) {
            return v1_invalid(format!("byte 0x{bad:02x}"));
        }
        if !is_v1_text(*last) && *last != b'\r' {
            return v1_invalid(format!("byte 0x{last:02x}"));
        }
        return ProxyParse::Incomplete;
    };
    let line = &window[..cr];
    if let Some(bad) = line.iter().find(|byte| !is_v1_text(**byte)) {
        return v1_invalid(format!("byte 0x{bad:02x}"));
    }
    let header = &window[..cr + 2];
    let parsed = match ppp::v1::Header::try_from(header) {
        Ok(parsed) => parsed,
        Err(err) => return v1_invalid(err.to_string()),
    };
    let (protocol, source, destination) = match parsed.addresses {
        ppp::v1::Addresses::Unknown => ("UNKNOWN", None, None),
        ppp::v1::Addresses::Tcp4(ip) => (
            "TCP4",
            Some(SocketAddr::new(
                IpAddr::V4(ip.source_address),
                ip.source_port,
            )),
            Some(SocketAddr::new(
                IpAddr::V4(ip.destination_address),
                ip.destination_port,
            )),
        ),
        ppp::v1::Addresses::Tcp6(ip) => (
            "TCP6",
            Some(SocketAddr::new(
                IpAddr::V6(ip.source_address),
                ip.source_port,
            )),
            Some(SocketAddr::new(
                IpAddr::V6(ip.destination_address),
                ip.destination_port,
            )),
        ),
    };
    if source.is_some() {
        // `ppp` parses ports with `u16::from_str`, which takes a sign.
        let text = std::str::from_utf8(line).expect("checked ASCII");
        let fields: Vec<&str> = text.split(' ').collect();
        let ports_ok = fields.len() == 6
            && fields[4..]
                .iter()
                .all(|port| !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()));
        if !ports_ok {
            return v1_invalid("ports must be decimal digits");
        }
    }
    ProxyParse::Header(ProxyHeader {
        len: header.len(),
        version: ProxyVersion::V1,
        source,
        destination,
        protocol,
    })
}

/// Printable ASCII: what a v1 header's text may hold.
fn is_v1_text(byte: u8) -> bool {
    (0x20..=0x7e).contains(&byte)
}

fn v2_invalid(reason: impl Into<String>) -> ProxyParse {
    ProxyParse::Invalid(ProxyError::V2(reason.into()))
}

/// A v2 header: the signature, version and command, family and protocol,
/// a big-endian length, then that many bytes of addresses and TLVs.
fn parse_v2(bytes: &[u8]) -> ProxyParse {
    if bytes.len() < 16 {
        return ProxyParse::Incomplete;
    }
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if length > MAX_V2_LENGTH {
        return ProxyParse::Invalid(ProxyError::V2TooLong(length));
    }
    // The fixed part can be judged before the rest arrives.
    if bytes[12] >> 4 != 2 {
        return v2_invalid(format!("version {}, not 2", bytes[12] >> 4));
    }
    if bytes.len() < 16 + length {
        return match ppp::v2::Header::try_from(&bytes[..16]) {
            Err(ppp::v2::ParseError::Partial(..)) | Ok(_) => ProxyParse::Incomplete,
            Err(err) => v2_invalid(err.to_string()),
        };
    }
    let header = match ppp::v2::Header::try_from(&bytes[..16 + length]) {
        Ok(header) => header,
        Err(err) => return v2_invalid(err.to_string()),
    };
    if let Some(Err(err)) = header.tlvs().find(Result::is_err) {
        return v2_invalid(err.to_string());
    }
    let (protocol, source, destination) = match header.command {
        // The proxy's own connection (a health check): the addresses, if
        // any, are ignored, as the specification says.
        ppp::v2::Command::Local => ("LOCAL", None, None),
        ppp::v2::Command::Proxy => match (header.addresses, header.protocol) {
            (ppp::v2::Addresses::Unspecified, _) => ("UNSPEC", None, None),
            (_, protocol) if protocol != ppp::v2::Protocol::Stream => {
                return v2_invalid("a PROXY command for a protocol other than a stream");
            }
            (ppp::v2::Addresses::IPv4(ip), _) => (
                "TCP4",
                Some(SocketAddr::new(
                    IpAddr::V4(ip.source_address),
                    ip.source_port,
                )),
                Some(SocketAddr::new(
                    IpAddr::V4(ip.destination_address),
                    ip.destination_port,
                )),
            ),
            (ppp::v2::Addresses::IPv6(ip), _) => (
                "TCP6",
                Some(SocketAddr::new(
                    IpAddr::V6(ip.source_address),
                    ip.source_port,
                )),
                Some(SocketAddr::new(
                    IpAddr::V6(ip.destination_address),
                    ip.destination_port,
                )),
            ),
            (ppp::v2::Addresses::Unix(_), _) => ("UNIX", None, None),
        },
    };
    ProxyParse::Header(ProxyHeader {
        len: 16 + length,
        version: ProxyVersion::V2,
        source,
        destination,
        protocol,
    })
}

/// What a worker does next with a connection's first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyStep {
    /// Wait for more bytes (within the head deadline).
    NeedMore,
    /// Consume `consume` bytes (the header; 0 when there is none) and serve
    /// the connection, with the client `header` names as its peer (none:
    /// the socket's).
    Serve {
        /// The header's length.
        consume: usize,
        /// The header (`None` under `auto` when there was none).
        header: Option<ProxyHeader>,
    },
    /// Answer `status` (400 malformed, 403 not allowed) and close, or
    /// close without an answer (`None`: the peer closed mid-header).
    Refuse {
        /// The status to answer, if any.
        status: Option<u16>,
        /// Why, for the log.
        reason: String,
    },
}

/// `--proxy-protocol` and `--proxy-allow-from`, built once per worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPolicy {
    mode: ProxyMode,
    allow: ForwardedPolicy,
}

impl Default for ProxyPolicy {
    fn default() -> Self {
        ProxyPolicy::new(ProxyMode::Off, crate::DEFAULT_FORWARDED_ALLOW_IPS)
            .expect("the defaults are valid")
    }
}

impl ProxyPolicy {
    /// The policy for `mode`, with `allow` (IP addresses, CIDR networks or
    /// `*`) the peers that may send a header; the first entry that is none
    /// of those is the error.
    pub fn new<S: AsRef<str>>(mode: ProxyMode, allow: &[S]) -> Result<ProxyPolicy, String> {
        Ok(ProxyPolicy {
            mode,
            allow: ForwardedPolicy::new(allow, &[])?,
        })
    }

    /// The mode.
    pub fn mode(&self) -> ProxyMode {
        self.mode
    }

    /// Whether a connection's first bytes are read for a header at all.
    pub fn is_on(&self) -> bool {
        self.mode != ProxyMode::Off
    }

    /// Whether `peer` (`ip:port`, or `""` for a unix socket, always
    /// allowed: the socket file's permissions say who connects) may send
    /// a header.
    pub fn allows(&self, peer: &str) -> bool {
        self.allow.trusts_peer(peer)
    }

    /// What to do with a connection from `peer` whose received bytes so
    /// far are `peeked`; `closed`: the peer sent nothing more and closed.
    pub fn step(&self, peeked: &[u8], peer: &str, closed: bool) -> ProxyStep {
        let allowed = self.allows(peer);
        let forbidden = || ProxyStep::Refuse {
            status: Some(403),
            reason: "PROXY header from a peer not in --proxy-allow-from".to_owned(),
        };
        match parse(peeked, self.mode) {
            ProxyParse::Incomplete if closed => ProxyStep::Refuse {
                status: None,
                reason: "connection closed inside its PROXY header".to_owned(),
            },
            // A peer that must send a header and may not: refused on its
            // first bytes, whatever they are.
            ProxyParse::Incomplete
                if !allowed && self.mode != ProxyMode::Auto && !peeked.is_empty() =>
            {
                forbidden()
            }
            ProxyParse::Incomplete => ProxyStep::NeedMore,
            ProxyParse::Absent => ProxyStep::Serve {
                consume: 0,
                header: None,
            },
            ProxyParse::Header(_) | ProxyParse::Invalid(_) if !allowed => forbidden(),
            ProxyParse::Header(header) => ProxyStep::Serve {
                consume: header.len,
                header: Some(header),
            },
            ProxyParse::Invalid(err) => ProxyStep::Refuse {
                status: Some(400),
                reason: err.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(command);
        out.push(family);
        let len = (addresses.len() + tlvs.len()) as u16;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(addresses);
        out.extend_from_slice(tlvs);
        out
    }

    const V4: &[u8] = &[192, 0, 2, 1, 192, 0, 2, 2, 0x30, 0x39, 0, 80];

    fn header(bytes: &[u8], mode: ProxyMode) -> ProxyHeader {
        match parse(bytes, mode) {
            ProxyParse::Header(header) => header,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn invalid(bytes: &[u8], mode: ProxyMode) {
        assert!(
            matches!(parse(bytes, mode), ProxyParse::Invalid(_)),
            "{:?} under {mode:?}: {:?}",
            String::from_utf8_lossy(bytes),
            parse(bytes, mode)
        );
    }

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let line = b"PROXY TCP4 192.0.2.1 192.0.2.2 12345 80\r\nGET /";
        let got = header(line, ProxyMode::V1);
        assert_eq!(got.len, line.len() - 5);
        assert_eq!(got.source, Some("192.0.2.1:12345".parse().unwrap()));
        let got = header(
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
            ProxyMode::Auto,
        );
        assert_eq!(got.source, Some("[2001:db8::1]:1".parse().unwrap()));
        assert_eq!(
            (got.protocol, got.destination),
            ("TCP6", Some("[2001:db8::2]:65535".parse().unwrap()))
        );
        let got = header(b"PROXY UNKNOWN whatever here\r\n", ProxyMode::Auto);
        assert_eq!((got.source, got.len), (None, 29));
        assert_eq!((got.protocol, got.destination), ("UNKNOWN", None));
    }

    #[test]
    fn v2_proxy_and_local() {
        let bytes = v2(0x21, 0x11, V4, &[]);
        let got = header(&bytes, ProxyMode::V2);
        assert_eq!(got.source, Some("192.0.2.1:12345".parse().unwrap()));
        assert_eq!(got.len, 28);
        let mut six = [0u8; 36];
        six[15] = 1;
        six[31] = 2;
        six[32..34].copy_from_slice(&443u16.to_be_bytes());
        let got = header(&v2(0x21, 0x21, &six, &[0x04, 0, 2, 1, 2]), ProxyMode::Auto);
        assert_eq!(got.source, Some("[::1]:443".parse().unwrap()));
        assert_eq!(got.len, 16 + 36 + 5);
        assert_eq!(
            Proxied::from(&got),
            Proxied {
                protocol: "TCP6",
                proxy_addr: "[::2]:0".to_owned()
            }
        );
        let got = header(&v2(0x20, 0x00, &[], &[]), ProxyMode::V2);
        assert_eq!((got.source, got.len), (None, 16));
        assert_eq!(
            Proxied::from(&got),
            Proxied {
                protocol: "LOCAL",
                proxy_addr: String::new()
            }
        );
        assert_eq!(
            header(&v2(0x21, 0x00, &[], &[]), ProxyMode::V2).protocol,
            "UNSPEC"
        );
        // LOCAL ignores whatever addresses it carries.
        assert_eq!(header(&v2(0x20, 0x11, V4, &[]), ProxyMode::V2).source, None);
    }

    #[test]
    fn every_prefix_of_a_valid_header_is_incomplete() {
        for whole in [
            b"PROXY TCP4 192.0.2.1 192.0.2.2 12345 80\r\n".to_vec(),
            v2(0x21, 0x11, V4, &[1, 0, 1, 9]),
        ] {
            for end in 0..whole.len() {
                for mode in [ProxyMode::Auto, ProxyMode::V1, ProxyMode::V2] {
                    let got = parse(&whole[..end], mode);
                    assert!(
                        matches!(
                            got,
                            ProxyParse::Incomplete | ProxyParse::Invalid(ProxyError::Signature(_))
                        ),
                        "{end} {mode:?}: {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_headers_are_invalid() {
        let auto = ProxyMode::Auto;
        invalid(b"PROXY TCP4 192.0.2.1 192.0.2.2 12345 65536\r\n", auto); // port out of range
        invalid(b"PROXY TCP4 192.0.2.1 192.0.2.2 +1 80\r\n", auto); // a sign
        invalid(b"PROXY TCP4 192.0.2.1 192.0.2.2 1a 80\r\n", auto); // non-digit
        invalid(b"PROXY TCP4 192.0.2.1 192.0.2.2 080 80\r\n", auto); // leading zero
        invalid(b"PROXY TCP4 2001:db8::1 192.0.2.2 1 80\r\n", auto); // family mismatch
        invalid(b"PROXY TCP6 192.0.2.1 192.0.2.2 1 80\r\n", auto); // family mismatch
        invalid(b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", auto); // missing port
        invalid(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n", auto); // extra field
        invalid(b"PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n", auto); // double space
        invalid(b"PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n", auto); // protocol
        invalid(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", auto); // bare LF
        invalid(b"PROXY TCP4 192.0.2.1\x00", auto); // control byte
        invalid(b"PROXY TCP4 1.2.3.4\rX", auto); // CR without LF
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(106, b'a');
        long.extend_from_slice(b"\r\n");
        invalid(&long, auto); // 108 bytes
        long.truncate(105);
        long.extend_from_slice(b"\r\n");
        assert_eq!(header(&long, auto).len, 107);
        invalid(b"GET / HTTP/1.1\r\n\r\n", ProxyMode::V1); // no signature
        invalid(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n", ProxyMode::V2); // wrong version
        invalid(&v2(0x11, 0x11, V4, &[]), auto); // version nibble 1
        invalid(&v2(0x22, 0x11, V4, &[]), auto); // command nibble 2
        invalid(&v2(0x21, 0x41, V4, &[]), auto); // family 4
        invalid(&v2(0x21, 0x13, V4, &[]), auto); // protocol 3
        invalid(&v2(0x21, 0x12, V4, &[]), auto); // a datagram
        invalid(&v2(0x21, 0x21, V4, &[]), auto); // IPv6 with 12 bytes
        invalid(&v2(0x21, 0x11, V4, &[1, 0, 5, 1]), auto); // TLV past the end
        invalid(&v2(0x21, 0x11, V4, &[1, 0]), auto); // TLV leftovers
        let mut big = v2(0x21, 0x11, V4, &[]);
        big[14..16].copy_from_slice(&((MAX_V2_LENGTH + 1) as u16).to_be_bytes());
        invalid(&big[..16], auto); // over the bound, refused on 16 bytes
        let mut sig = v2(0x21, 0x11, V4, &[]);
        sig[11] = b'X';
        invalid(&sig, ProxyMode::V2); // bad signature
    }

    #[test]
    fn auto_passes_http_and_tls_through() {
        for bytes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01",
            b"POST",
            b"PROXZ",
        ] {
            assert_eq!(
                parse(bytes, ProxyMode::Auto),
                ProxyParse::Absent,
                "{bytes:?}"
            );
        }
        assert_eq!(parse(b"PRO", ProxyMode::Auto), ProxyParse::Incomplete);
        assert_eq!(parse(b"\r\n\r\n", ProxyMode::Auto), ProxyParse::Incomplete);
        assert_eq!(parse(b"PROXY", ProxyMode::Off), ProxyParse::Absent);
    }

    #[test]
    fn the_policy_refuses_peers_not_allowed() {
        let policy = ProxyPolicy::new(ProxyMode::Auto, &["10.0.0.0/8"]).unwrap();
        let line = b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n";
        let refused = |step: ProxyStep| {
            matches!(
                step,
                ProxyStep::Refuse {
                    status: Some(403),
                    ..
                }
            )
        };
        assert!(refused(policy.step(line, "127.0.0.1:5", false)));
        assert_eq!(
            policy.step(line, "10.1.2.3:5", false),
            ProxyStep::Serve {
                consume: line.len(),
                header: Some(ProxyHeader {
                    len: line.len(),
                    version: ProxyVersion::V1,
                    source: Some("192.0.2.1:1".parse().unwrap()),
                    destination: Some("192.0.2.2:2".parse().unwrap()),
                    protocol: "TCP4",
                })
            }
        );
        // A unix peer is allowed; plain HTTP under auto is served as is.
        assert!(matches!(
            policy.step(line, "", false),
            ProxyStep::Serve { .. }
        ));
        assert_eq!(
            policy.step(b"GET /", "127.0.0.1:5", false),
            ProxyStep::Serve {
                consume: 0,
                header: None
            }
        );
        let strict = ProxyPolicy::new(ProxyMode::V1, &["10.0.0.0/8"]).unwrap();
        assert!(refused(strict.step(b"P", "127.0.0.1:5", false)));
        assert_eq!(strict.step(b"", "127.0.0.1:5", false), ProxyStep::NeedMore);
        assert!(matches!(
            strict.step(b"PROXY TCP4", "10.0.0.1:5", true),
            ProxyStep::Refuse { status: None, .. }
        ));
        assert!(matches!(
            strict.step(b"PROXY TCP4 x\r\n", "10.0.0.1:5", false),
            ProxyStep::Refuse {
                status: Some(400),
                ..
            }
        ));
    }
}
