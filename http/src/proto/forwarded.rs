//! Trust in a front end's forwarding fields, as Gunicorn's
//! `forwarded_allow_ips` and `secure_scheme_headers` define it, and the
//! standard `Forwarded` field (RFC 7239) under the same rule.
//!
//! Behind nginx the socket peer is the proxy; the client and whether it
//! spoke TLS travel in request fields any client can also send. So they are
//! believed only from a peer in the trust list (addresses, CIDR networks,
//! `*` for any; a unix-socket peer is always trusted, as in Gunicorn): then
//! a `secure_scheme_headers` field (`X-Forwarded-Proto: https`,
//! `X-Forwarded-Ssl: on`, `X-Forwarded-Protocol: ssl` by default) sets the
//! URL scheme, two of them that disagree are a 400 (Gunicorn's
//! `InvalidSchemeHeaders`), and `X-Forwarded-For` names the client: the
//! rightmost entry that is not itself a trusted proxy (the leftmost when
//! every hop is trusted).
//!
//! `Forwarded` (all its fields, in order, as one list of elements, parsed
//! by `element`) is walked the same way: from the right, the first element
//! whose `for=` is not a trusted proxy's address is the client's (the
//! leftmost when every one is trusted); a `for=unknown`, an obfuscated
//! `for=_id` or an element without `for=` ends the walk there, since
//! nothing says whether that hop may be believed. The chosen element gives
//! the client (its address, or `unknown` / the obfuscated identifier as
//! written: the proxy said it does not know, so the proxy is not passed off
//! as the client), its `proto=` the scheme (`https` or `http`) and its
//! `host=` the host the client asked for. The element's `for=` wins over
//! `X-Forwarded-For`; its `proto=` and the `secure_scheme_headers` must
//! agree or the request is a 400, like two scheme fields that disagree. A
//! `Forwarded` field a trusted peer sent outside RFC 7239's grammar is a
//! 400 ([`ParseError::BadForwarded`]): a front end that writes it wrong is
//! misconfigured, and guessing what it meant is how clients get believed.
//! From any other peer these fields reach the app untouched and change
//! nothing. Pure: no I/O, the caller passes the peer.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::proto::error::ParseError;
use crate::proto::framing::{list_items, trim_ows};
use crate::proto::head::RequestHead;

mod element;

use element::{Element, Node};

/// Gunicorn's default `forwarded_allow_ips`.
pub const DEFAULT_FORWARDED_ALLOW_IPS: &[&str] = &["127.0.0.1", "::1"];

/// Gunicorn's default `secure_scheme_headers`: a field and the exact value
/// that means the client used https.
/// In name order, as a TOML table lists them.
pub const DEFAULT_SECURE_SCHEME_HEADERS: &[(&str, &str)] = &[
    ("X-FORWARDED-PROTO", "https"),
    ("X-FORWARDED-PROTOCOL", "ssl"),
    ("X-FORWARDED-SSL", "on"),
];

/// The URL scheme an app sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `http`: no TLS, or no trusted proxy said otherwise.
    #[default]
    Http,
    /// `https`: the client used TLS, to this worker or (a trusted proxy
    /// says) to the front end.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What the forwarding fields of one request mean for the app.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarded {
    /// The URL scheme.
    pub scheme: Scheme,
    /// The client, when a trusted peer named one: a bare IP (from
    /// `Forwarded`'s `for=` or `X-Forwarded-For`), or `unknown` or an
    /// obfuscated identifier (`_hidden`) as a `Forwarded` element gave it.
    pub client: Option<String>,
    /// The host the client asked for (`host[:port]`), from a trusted
    /// `Forwarded` element's `host=`.
    pub host: Option<String>,
}

/// Whom to believe, built once per worker from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedPolicy {
    trust_all: bool,
    networks: Vec<IpNet>,
    /// `(field name, value meaning https)`, names compared case-insensitively.
    secure_scheme_headers: Vec<(String, Vec<u8>)>,
    /// The scheme when no trusted field says otherwise: `https` when the
    /// worker itself speaks TLS.
    own_scheme: Scheme,
}

/// [`DEFAULT_SECURE_SCHEME_HEADERS`] as owned pairs.
pub fn default_secure_scheme_headers() -> Vec<(String, String)> {
    DEFAULT_SECURE_SCHEME_HEADERS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

impl Default for ForwardedPolicy {
    fn default() -> Self {
        ForwardedPolicy::new(
            DEFAULT_FORWARDED_ALLOW_IPS,
            &default_secure_scheme_headers(),
        )
        .expect("the defaults are valid")
    }
}

impl ForwardedPolicy {
    /// The policy for `allow` (IP addresses, CIDR networks or `*`) and
    /// `secure_scheme_headers`; the first entry of `allow` that is none of
    /// those is the error.
    pub fn new<S: AsRef<str>>(
        allow: &[S],
        secure_scheme_headers: &[(String, String)],
    ) -> Result<ForwardedPolicy, String> {
        let mut policy = ForwardedPolicy {
            trust_all: false,
            networks: Vec::new(),
            secure_scheme_headers: secure_scheme_headers
                .iter()
                .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
                .collect(),
            own_scheme: Scheme::Http,
        };
        for item in allow {
            let item = item.as_ref().trim();
            if item == "*" {
                policy.trust_all = true;
            } else {
                policy.networks.push(parse_network(item)?);
            }
        }
        Ok(policy)
    }

    /// The same, for connections that arrive over `scheme` (`https` when
    /// the worker terminates TLS itself): the scheme an app sees unless a
    /// trusted front end's field says otherwise (as Gunicorn, whose
    /// `is_ssl` sets the scheme before the fields are read).
    pub fn with_own_scheme(mut self, scheme: Scheme) -> ForwardedPolicy {
        self.own_scheme = scheme;
        self
    }

    /// The scheme of the connections themselves (see [`ForwardedPolicy::with_own_scheme`]).
    pub fn own_scheme(&self) -> Scheme {
        self.own_scheme
    }

    /// Whether the socket peer (`ip:port`, or `""` for a unix socket) may
    /// set the forwarding fields.
    pub fn trusts_peer(&self, peer: &str) -> bool {
        if peer.is_empty() || self.trust_all {
            return true;
        }
        peer.parse::<SocketAddr>()
            .is_ok_and(|addr| self.trusts_ip(addr.ip()))
    }

    fn trusts_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trust_all || self.networks.iter().any(|network| network.contains(&ip))
    }

    /// What `head`'s forwarding fields mean, coming from `peer`. Fails with
    /// [`ParseError::ConflictingSchemeHeaders`] when a trusted peer sent
    /// scheme fields that disagree (`Forwarded`'s `proto=` among them), and
    /// with [`ParseError::BadForwarded`] when it sent a `Forwarded` field
    /// outside RFC 7239's grammar (both answered 400).
    pub fn resolve(&self, head: &RequestHead, peer: &str) -> Result<Forwarded, ParseError> {
        // Without a forwarding field the answer is the default whoever the
        // peer is: the peer's address (text, parsed per request) is looked
        // at only when there is something to believe or not.
        if !head
            .headers
            .iter()
            .any(|field| self.is_forwarding_field(&field.name))
        {
            return Ok(self.own());
        }
        if !self.trusts_peer(peer) {
            return Ok(self.own());
        }
        let mut scheme: Option<Scheme> = None;
        let mut forwarded_for = false;
        let mut elements: Vec<Element> = Vec::new();
        for field in &head.headers {
            if field.name.eq_ignore_ascii_case("x-forwarded-for") {
                forwarded_for = true;
            }
            if field.name.eq_ignore_ascii_case("forwarded") {
                element::parse_field(&field.value, &mut elements)
                    .map_err(|_| ParseError::BadForwarded)?;
            }
            let Some((_, secure_value)) = self
                .secure_scheme_headers
                .iter()
                .find(|(name, _)| field.name.eq_ignore_ascii_case(name))
            else {
                continue;
            };
            let this = if trim_ows(&field.value) == secure_value.as_slice() {
                Scheme::Https
            } else {
                Scheme::Http
            };
            match scheme {
                Some(seen) if seen != this => return Err(ParseError::ConflictingSchemeHeaders),
                _ => scheme = Some(this),
            }
        }
        let mut forwarded = Forwarded::default();
        if let Some(chosen) = self.client_element(&elements) {
            if let Some(proto) = &chosen.proto {
                let this = if proto == "https" {
                    Scheme::Https
                } else {
                    Scheme::Http
                };
                match scheme {
                    Some(seen) if seen != this => return Err(ParseError::ConflictingSchemeHeaders),
                    _ => scheme = Some(this),
                }
            }
            forwarded.client = chosen.node.as_ref().map(|node| match node {
                Node::Ip(ip) => ip.to_canonical().to_string(),
                Node::Unknown => "unknown".to_owned(),
                Node::Obfuscated(id) => id.clone(),
            });
            forwarded.host.clone_from(&chosen.host);
        }
        if forwarded.client.is_none() && forwarded_for {
            forwarded.client = self.client_from(head);
        }
        forwarded.scheme = scheme.unwrap_or(self.own_scheme);
        Ok(forwarded)
    }

    /// The `Forwarded` element that speaks for the client: walking from
    /// the right, the first whose `for=` is not a trusted proxy's address;
    /// the leftmost when all are; an element whose `for=` is `unknown`,
    /// obfuscated or missing ends the walk at itself.
    fn client_element<'e>(&self, elements: &'e [Element]) -> Option<&'e Element> {
        let mut chosen = None;
        for element in elements.iter().rev() {
            chosen = Some(element);
            match &element.node {
                Some(Node::Ip(ip)) if self.trusts_ip(*ip) => {}
                _ => break,
            }
        }
        chosen
    }

    /// What a request without a believed forwarding field means.
    fn own(&self) -> Forwarded {
        Forwarded {
            scheme: self.own_scheme,
            ..Forwarded::default()
        }
    }

    /// Whether a field named `name` is one this policy reads:
    /// `Forwarded`, `X-Forwarded-For` or one of the secure scheme fields.
    fn is_forwarding_field(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("x-forwarded-for")
            || name.eq_ignore_ascii_case("forwarded")
            || self
                .secure_scheme_headers
                .iter()
                .any(|(secure, _)| name.eq_ignore_ascii_case(secure))
    }

    /// The client named by the `X-Forwarded-For` fields (all of them, in
    /// order, as one list): walking from the right, the first hop that is
    /// not a trusted proxy; the leftmost when all are trusted. An entry
    /// that is not an IP address (with or without a port) ends the walk at
    /// the hop before it, which was a trusted proxy speaking for it.
    fn client_from(&self, head: &RequestHead) -> Option<String> {
        let hops: Vec<&[u8]> = head
            .headers
            .iter()
            .filter(|field| field.name.eq_ignore_ascii_case("x-forwarded-for"))
            .flat_map(|field| list_items(&field.value))
            .collect();
        let mut client = None;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = Some(ip);
            if !self.trusts_ip(ip) {
                break;
            }
        }
        client.map(|ip| ip.to_canonical().to_string())
    }
}

/// An address or a CIDR network; a bare address is a one-address network.
fn parse_network(item: &str) -> Result<IpNet, String> {
    if let Ok(network) = item.parse::<IpNet>() {
        return Ok(network.trunc());
    }
    item.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("'{item}' is not an IP address, a CIDR network (10.0.0.0/8) or *"))
}

/// One `X-Forwarded-For` hop: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::head::Header;

    fn head(fields: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            headers: fields
                .iter()
                .map(|(name, value)| Header {
                    name: (*name).to_owned(),
                    value: value.as_bytes().to_vec(),
                })
                .collect(),
            ..RequestHead::default()
        }
    }

    fn policy(allow: &[&str]) -> ForwardedPolicy {
        ForwardedPolicy::new(allow, &default_secure_scheme_headers()).unwrap()
    }

    #[test]
    fn peers_are_trusted_by_address_network_star_or_unix_socket() {
        assert!(policy(&["*"]).trusts_peer("203.0.113.9:1"));
        let policy = policy(&["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"]);
        assert!(policy.trusts_peer("127.0.0.1:5000"));
        assert!(policy.trusts_peer("10.200.3.4:80"));
        assert!(policy.trusts_peer("[2001:db8::7]:443"));
        assert!(
            policy.trusts_peer("[::ffff:10.1.1.1]:80"),
            "v4-mapped v6 is v4"
        );
        assert!(policy.trusts_peer(""), "unix-socket peers are trusted");
        assert!(!policy.trusts_peer("127.0.0.2:5000"));
        assert!(!policy.trusts_peer("[::1]:5000"));
        assert!(!policy.trusts_peer("garbage"));
    }

    #[test]
    fn bad_entries_are_refused_with_the_forms_that_work() {
        let err = ForwardedPolicy::new(&["10.0.0.0/33"], &[]).unwrap_err();
        assert!(
            err.contains("'10.0.0.0/33'") && err.contains("CIDR"),
            "{err}"
        );
        assert!(ForwardedPolicy::new(&["nginx"], &[]).is_err());
        assert!(ForwardedPolicy::new(&[" 192.168.0.0/16 ", "::1"], &[]).is_ok());
    }

    #[test]
    fn a_trusted_proxy_sets_the_scheme_and_an_untrusted_one_does_not() {
        let policy = policy(&["127.0.0.1"]);
        let https = head(&[("X-Forwarded-Proto", "https")]);
        assert_eq!(
            policy.resolve(&https, "127.0.0.1:1").unwrap().scheme,
            Scheme::Https
        );
        assert_eq!(
            policy.resolve(&https, "192.0.2.1:1").unwrap().scheme,
            Scheme::Http
        );
        let ssl = head(&[("x-forwarded-ssl", "on"), ("X-Forwarded-Protocol", "ssl")]);
        assert_eq!(
            policy.resolve(&ssl, "").unwrap().scheme,
            Scheme::Https,
            "names compare case-insensitively; agreeing fields are fine"
        );
        let http = head(&[("X-Forwarded-Proto", "HTTPS")]);
        assert_eq!(
            policy.resolve(&http, "127.0.0.1:1").unwrap().scheme,
            Scheme::Http,
            "values compare exactly, as Gunicorn's"
        );
    }

    #[test]
    fn over_tls_the_scheme_is_https_unless_a_trusted_field_says_otherwise() {
        let policy = policy(&["127.0.0.1"]).with_own_scheme(Scheme::Https);
        let plain = head(&[]);
        assert_eq!(
            policy.resolve(&plain, "192.0.2.1:1").unwrap().scheme,
            Scheme::Https
        );
        let http = head(&[("X-Forwarded-Proto", "http")]);
        assert_eq!(
            policy.resolve(&http, "192.0.2.1:1").unwrap().scheme,
            Scheme::Https,
            "an untrusted peer's field changes nothing"
        );
        assert_eq!(
            policy.resolve(&http, "127.0.0.1:1").unwrap().scheme,
            Scheme::Http,
            "a trusted one's does, as in Gunicorn"
        );
        let other = head(&[("X-Forwarded-For", "192.0.2.9")]);
        assert_eq!(
            policy.resolve(&other, "127.0.0.1:1").unwrap().scheme,
            Scheme::Https
        );
    }

    #[test]
    fn contradictory_scheme_fields_are_a_400_only_from_a_trusted_peer() {
        let policy = policy(&["127.0.0.1"]);
        let mixed = head(&[("X-Forwarded-Ssl", "on"), ("X-Forwarded-Proto", "http")]);
        let err = policy.resolve(&mixed, "127.0.0.1:1").unwrap_err();
        assert_eq!(err, ParseError::ConflictingSchemeHeaders);
        assert_eq!(err.status(), 400);
        assert!(policy.resolve(&mixed, "192.0.2.1:1").is_ok());
        let twice = head(&[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Proto", "http"),
        ]);
        assert!(policy.resolve(&twice, "127.0.0.1:1").is_err());
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let policy = policy(&["127.0.0.1", "10.0.0.0/8"]);
        let chain = head(&[
            ("X-Forwarded-For", "198.51.100.1, 203.0.113.7"),
            ("X-Forwarded-For", "10.0.0.2"),
        ]);
        let forwarded = policy.resolve(&chain, "127.0.0.1:9").unwrap();
        assert_eq!(forwarded.client.as_deref(), Some("203.0.113.7"));
        let all_trusted = head(&[("X-Forwarded-For", "10.0.0.9, 10.0.0.2")]);
        assert_eq!(
            policy.resolve(&all_trusted, "").unwrap().client.as_deref(),
            Some("10.0.0.9")
        );
        let ported = head(&[("X-Forwarded-For", "[2001:db8::5]:4711, 192.0.2.3:80")]);
        assert_eq!(
            policy.resolve(&ported, "").unwrap().client.as_deref(),
            Some("192.0.2.3")
        );
        let garbage = head(&[("X-Forwarded-For", "<script>, 10.0.0.3")]);
        assert_eq!(
            policy.resolve(&garbage, "").unwrap().client.as_deref(),
            Some("10.0.0.3"),
            "a hop that is no address ends the walk at the proxy after it"
        );
        assert_eq!(
            policy.resolve(&chain, "192.0.2.1:1").unwrap().client,
            None,
            "an untrusted peer's X-Forwarded-For is not believed"
        );
        assert_eq!(
            policy.resolve(&head(&[]), "").unwrap(),
            Forwarded::default()
        );
    }

    #[test]
    fn a_trusted_forwarded_names_the_client_scheme_and_host() {
        let policy = policy(&["127.0.0.1", "10.0.0.0/8"]);
        let chain = head(&[
            (
                "Forwarded",
                r#"for=198.51.100.1;proto=http, for="[2001:db8::7]:4711";proto=https;host=example.com"#,
            ),
            ("Forwarded", "for=10.0.0.2;proto=http;host=internal"),
        ]);
        let forwarded = policy.resolve(&chain, "127.0.0.1:9").unwrap();
        assert_eq!(forwarded.client.as_deref(), Some("2001:db8::7"));
        assert_eq!(forwarded.scheme, Scheme::Https);
        assert_eq!(forwarded.host.as_deref(), Some("example.com"));
        let all_trusted = head(&[("Forwarded", "for=10.0.0.9;proto=https, for=10.0.0.2")]);
        let forwarded = policy.resolve(&all_trusted, "").unwrap();
        assert_eq!(forwarded.client.as_deref(), Some("10.0.0.9"));
        assert_eq!(
            forwarded.scheme,
            Scheme::Https,
            "the leftmost element's proto"
        );
        assert_eq!(
            policy.resolve(&chain, "192.0.2.1:1").unwrap(),
            Forwarded::default(),
            "an untrusted peer's Forwarded changes nothing"
        );
        let garbage = head(&[("Forwarded", "for=<script>")]);
        assert!(
            policy.resolve(&garbage, "192.0.2.1:1").is_ok(),
            "nor is it parsed"
        );
    }

    #[test]
    fn unknown_and_obfuscated_hops_end_the_walk_as_themselves() {
        let policy = policy(&["127.0.0.1", "10.0.0.0/8"]);
        for (value, client) in [
            (
                "for=192.0.2.1, for=unknown;proto=https, for=10.0.0.1",
                "unknown",
            ),
            (
                r#"for=192.0.2.1, for="_hidden:_p", for=10.0.0.1"#,
                "_hidden",
            ),
        ] {
            let forwarded = policy.resolve(&head(&[("Forwarded", value)]), "").unwrap();
            assert_eq!(forwarded.client.as_deref(), Some(client), "{value}");
        }
        let no_for = head(&[
            ("Forwarded", "proto=https;host=shop.example"),
            ("X-Forwarded-For", "203.0.113.5"),
        ]);
        let forwarded = policy.resolve(&no_for, "").unwrap();
        assert_eq!(forwarded.scheme, Scheme::Https);
        assert_eq!(forwarded.host.as_deref(), Some("shop.example"));
        assert_eq!(
            forwarded.client.as_deref(),
            Some("203.0.113.5"),
            "without for=, X-Forwarded-For still names the client"
        );
        let both = head(&[
            ("Forwarded", "for=198.51.100.9"),
            ("X-Forwarded-For", "203.0.113.5"),
        ]);
        assert_eq!(
            policy.resolve(&both, "").unwrap().client.as_deref(),
            Some("198.51.100.9"),
            "Forwarded's for= wins over X-Forwarded-For"
        );
    }

    #[test]
    fn forwarded_proto_and_scheme_fields_must_agree() {
        let policy = policy(&["127.0.0.1"]);
        let mixed = head(&[
            ("Forwarded", "for=192.0.2.1;proto=https"),
            ("X-Forwarded-Proto", "http"),
        ]);
        assert_eq!(
            policy.resolve(&mixed, "127.0.0.1:1").unwrap_err(),
            ParseError::ConflictingSchemeHeaders
        );
        assert!(policy.resolve(&mixed, "192.0.2.1:1").is_ok());
        let agreeing = head(&[
            ("X-Forwarded-Proto", "https"),
            ("Forwarded", "for=192.0.2.1;proto=HTTPS"),
        ]);
        assert_eq!(
            policy.resolve(&agreeing, "127.0.0.1:1").unwrap().scheme,
            Scheme::Https
        );
    }

    #[test]
    fn a_malformed_forwarded_is_a_400_only_from_a_trusted_peer() {
        let policy = policy(&["127.0.0.1"]);
        for bad in [
            "for=[::1]",
            "for=1.2.3.4;for=1.2.3.5",
            "proto",
            "for=\"1.2.3.4",
        ] {
            let request = head(&[("Forwarded", bad)]);
            let err = policy.resolve(&request, "127.0.0.1:1").unwrap_err();
            assert_eq!(err, ParseError::BadForwarded, "{bad}");
            assert_eq!(err.status(), 400);
            assert_eq!(
                policy.resolve(&request, "192.0.2.1:1").unwrap(),
                Forwarded::default()
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn resolving_any_forwarded_never_panics(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            picked in proptest::collection::vec(
                proptest::sample::select(vec![
                    "for=", "by=", "proto=", "host=", "\"", "[", "]", ":", ";", ",", " ", "_x",
                    "unknown", "127.0.0.1", "10.0.0.1", "::1", "2001:db8::1", "https", "80", "\\",
                ]),
                0..16,
            ),
        ) {
            let policy = policy(&["127.0.0.1", "10.0.0.0/8"]);
            let text = picked.concat();
            for bytes in [value.as_slice(), text.as_bytes()] {
                let request = RequestHead {
                    headers: vec![Header { name: "Forwarded".to_owned(), value: bytes.to_vec() }],
                    ..RequestHead::default()
                };
                if let Ok(forwarded) = policy.resolve(&request, "") {
                    if let Some(client) = &forwarded.client {
                        proptest::prop_assert!(!client.is_empty());
                    }
                }
            }
        }
    }
}
