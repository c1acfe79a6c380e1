//! The standard `Forwarded` field (RFC 7239): its elements, each a list of
//! `name=value` pairs, and the node syntax of `for=`.
//!
//! Strict, because the field is believed only from a trusted front end and
//! a front end that sends one the grammar does not allow is misconfigured:
//! anything outside RFC 7239's ABNF (a pair without `=`, a bare IPv6 or a
//! port outside a quoted string, a parameter twice in one element, an
//! unterminated quoted string, a `for=` that is no node, a `proto=` that is
//! no URI scheme, a `host=` that is no `uri-host[:port]`) is
//! [`Malformed`]. Whitespace is allowed around `,` and `;` (as senders
//! write it), never around `=`. Pure: no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The field broke RFC 7239's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// One `for=` (or `by=`) node without its port (ports are never used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// An IPv4 address, or an IPv6 address written `"[v6]"`.
    Ip(IpAddr),
    /// `unknown`: the proxy does not know (or will not say) who sent it.
    Unknown,
    /// An obfuscated identifier (`_hidden`, `_SEVKISEK`), as written.
    Obfuscated(String),
}

/// One element: what one proxy said about the request it received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Element {
    /// `for=`: who sent the request to that proxy.
    pub(crate) node: Option<Node>,
    /// `proto=`: the scheme that request used, lower case.
    pub(crate) proto: Option<String>,
    /// `host=`: the `Host` that request carried.
    pub(crate) host: Option<String>,
}

/// Appends the elements of one `Forwarded` field value to `out`, in order
/// (several fields are one list, in field order). Empty list members
/// (`a,,b`) are skipped as the list rule allows; a value with no pair at
/// all is malformed.
pub(crate) fn parse_field(value: &[u8], out: &mut Vec<Element>) -> Result<(), Malformed> {
    let mut cursor = Cursor {
        bytes: value,
        at: 0,
    };
    let mut element = Element::default();
    let mut seen = Seen::default();
    let mut any = false;
    loop {
        cursor.skip_ows();
        let Some(byte) = cursor.peek() else {
            break;
        };
        match byte {
            b',' => {
                cursor.at += 1;
                if seen.any() {
                    out.push(std::mem::take(&mut element));
                    seen = Seen::default();
                }
                continue;
            }
            b';' => {
                cursor.at += 1;
                continue;
            }
            _ => {}
        }
        let name = cursor.token().ok_or(Malformed)?;
        if cursor.peek() != Some(b'=') {
            return Err(Malformed);
        }
        cursor.at += 1;
        let raw = cursor.value()?;
        any = true;
        if name.eq_ignore_ascii_case(b"for") {
            seen.once(0)?;
            element.node = Some(parse_node(&raw)?);
        } else if name.eq_ignore_ascii_case(b"by") {
            seen.once(1)?;
            parse_node(&raw)?;
        } else if name.eq_ignore_ascii_case(b"proto") {
            seen.once(2)?;
            element.proto = Some(parse_scheme(&raw)?);
        } else if name.eq_ignore_ascii_case(b"host") {
            seen.once(3)?;
            element.host = Some(parse_host(&raw)?);
        } else {
            // An extension parameter: checked for syntax, not used.
            seen.extension();
        }
        cursor.skip_ows();
        match cursor.peek() {
            None | Some(b',' | b';') => {}
            Some(_) => return Err(Malformed),
        }
    }
    if seen.any() {
        out.push(element);
    }
    if any {
        Ok(())
    } else {
        Err(Malformed)
    }
}

/// Which of `for`, `by`, `proto`, `host` an element has had, and whether
/// it has any pair at all.
#[derive(Debug, Default)]
struct Seen {
    bits: u8,
    extensions: bool,
}

impl Seen {
    /// RFC 7239 section 4: a parameter MUST NOT occur twice in an element.
    fn once(&mut self, index: u8) -> Result<(), Malformed> {
        let bit = 1 << index;
        if self.bits & bit != 0 {
            return Err(Malformed);
        }
        self.bits |= bit;
        Ok(())
    }

    fn extension(&mut self) {
        self.extensions = true;
    }

    fn any(&self) -> bool {
        self.bits != 0 || self.extensions
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// A token (RFC 9110 tchar+), or `None` when there is none here.
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        let bytes: &'a [u8] = self.bytes;
        (self.at > start).then(|| &bytes[start..self.at])
    }

    /// A value: a token, or a quoted string (unquoted here).
    fn value(&mut self) -> Result<Vec<u8>, Malformed> {
        if self.peek() != Some(b'"') {
            return self.token().map(<[u8]>::to_vec).ok_or(Malformed);
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let byte = self.peek().ok_or(Malformed)?;
            self.at += 1;
            match byte {
                b'"' => return Ok(out),
                b'\\' => {
                    let escaped = self.peek().ok_or(Malformed)?;
                    if !is_qdtext(escaped) && escaped != b'"' && escaped != b'\\' {
                        return Err(Malformed);
                    }
                    self.at += 1;
                    out.push(escaped);
                }
                byte if is_qdtext(byte) => out.push(byte),
                _ => return Err(Malformed),
            }
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 9110 `qdtext` (HTAB, SP, visible ASCII but `"` and `\`, obs-text).
fn is_qdtext(byte: u8) -> bool {
    matches!(byte, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// `nodename [":" node-port]`: an IPv4 address, `[v6]`, `unknown` or an
/// obfuscated identifier; the port a number up to 65535 or obfuscated.
fn parse_node(raw: &[u8]) -> Result<Node, Malformed> {
    let text = std::str::from_utf8(raw).map_err(|_| Malformed)?;
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or(Malformed)?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| Malformed)?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':').ok_or(Malformed)?),
        };
        (Node::Ip(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        };
        let node = if name.eq_ignore_ascii_case("unknown") {
            Node::Unknown
        } else if is_obfuscated(name) {
            Node::Obfuscated(name.to_owned())
        } else {
            Node::Ip(IpAddr::V4(name.parse::<Ipv4Addr>().map_err(|_| Malformed)?))
        };
        (node, port)
    };
    match port {
        None => Ok(name),
        Some(port) if is_obfuscated(port) => Ok(name),
        Some(port)
            if (1..=5).contains(&port.len())
                && port.bytes().all(|byte| byte.is_ascii_digit())
                && port.parse::<u16>().is_ok() =>
        {
            Ok(name)
        }
        Some(_) => Err(Malformed),
    }
}

/// `"_" 1*(ALPHA / DIGIT / "." / "_" / "-")`.
fn is_obfuscated(text: &str) -> bool {
    text.len() > 1
        && text.starts_with('_')
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
}

/// A URI scheme (`ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")`), lower case.
fn parse_scheme(raw: &[u8]) -> Result<String, Malformed> {
    let valid = raw.first().is_some_and(u8::is_ascii_alphabetic)
        && raw
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"+-.".contains(byte));
    if !valid {
        return Err(Malformed);
    }
    Ok(String::from_utf8_lossy(raw).to_ascii_lowercase())
}

/// `uri-host [":" port]`, as a `Host` field holds it: a reg-name or IPv4
/// address (unreserved, percent-encoded and sub-delimiter bytes) or a
/// bracketed IP literal, then an optional decimal port.
fn parse_host(raw: &[u8]) -> Result<String, Malformed> {
    let text = std::str::from_utf8(raw).map_err(|_| Malformed)?;
    let (name, port) = if text.starts_with('[') {
        let end = text.find(']').ok_or(Malformed)?;
        let literal = &text[1..end];
        if literal.parse::<Ipv6Addr>().is_err() {
            return Err(Malformed);
        }
        match &text[end + 1..] {
            "" => (&text[..=end], None),
            after => (
                &text[..=end],
                Some(after.strip_prefix(':').ok_or(Malformed)?),
            ),
        }
    } else {
        match text.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        }
    };
    let reg_name = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&byte))
    };
    if !name.starts_with('[') && !reg_name(name) {
        return Err(Malformed);
    }
    if let Some(port) = port {
        if !port.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(Malformed);
        }
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Vec<Element>, Malformed> {
        let mut out = Vec::new();
        parse_field(value.as_bytes(), &mut out).map(|()| out)
    }

    fn ip(text: &str) -> Option<Node> {
        Some(Node::Ip(text.parse().unwrap()))
    }

    #[test]
    fn the_rfc_examples_parse() {
        let elements = parse(r#"for="_gazonk""#).unwrap();
        assert_eq!(elements[0].node, Some(Node::Obfuscated("_gazonk".into())));
        let elements = parse(r#"For="[2001:db8:cafe::17]:4711""#).unwrap();
        assert_eq!(elements[0].node, ip("2001:db8:cafe::17"));
        let elements = parse("for=192.0.2.60;proto=http;by=203.0.113.43").unwrap();
        assert_eq!(elements[0].node, ip("192.0.2.60"));
        assert_eq!(elements[0].proto.as_deref(), Some("http"));
        let elements = parse("for=192.0.2.43, for=198.51.100.17").unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[1].node, ip("198.51.100.17"));
        let elements =
            parse(r#"for=unknown, for="192.0.2.1:8080";host="example.com:8443""#).unwrap();
        assert_eq!(elements[0].node, Some(Node::Unknown));
        assert_eq!(elements[1].host.as_deref(), Some("example.com:8443"));
        let elements = parse(r#"for="_hidden:_port" ; proto=HTTPS"#).unwrap();
        assert_eq!(elements[0].proto.as_deref(), Some("https"));
        let elements = parse(r#"for=1.2.3.4,,for="[::1]""#).unwrap();
        assert_eq!(elements.len(), 2, "empty list members are skipped");
        let elements = parse(r#"secret="a\"b";for=10.0.0.1"#).unwrap();
        assert_eq!(elements[0].node, ip("10.0.0.1"), "extensions are allowed");
    }

    #[test]
    fn what_the_grammar_does_not_allow_is_malformed() {
        for bad in [
            "",
            " , ",
            "for",
            "for=",
            "for =1.2.3.4",
            "for= 1.2.3.4",
            "for=[2001:db8::1]",
            "for=2001:db8::1",
            r#"for="2001:db8::1""#,
            "for=1.2.3.4:80",
            r#"for="1.2.3.4:99999""#,
            r#"for="1.2.3.4:""#,
            r#"for="[::1]x""#,
            "for=1.2.3",
            "for=example.com",
            "for=_",
            r#"for="1.2.3.4"#,
            r#"for="1.2.3.4\"#,
            "for=1.2.3.4;for=5.6.7.8",
            "for=1.2.3.4 for=5.6.7.8",
            "proto=1http",
            r#"proto="ht tp""#,
            r#"host="a/b""#,
            r#"host="a:b""#,
            r#"host="[nothost]""#,
            "host=\"a\u{80}\"",
            "\"for\"=1.2.3.4",
        ] {
            assert_eq!(parse(bad), Err(Malformed), "{bad:?}");
        }
    }
}
