//! Trust in a front end's forwarding fields, as Gunicorn's
//! `forwarded_allow_ips` and `secure_scheme_headers` define it.
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
//! every hop is trusted). From any other peer these fields reach the app
//! untouched and change nothing. Pure: no I/O, the caller passes the peer.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::proto::error::ParseError;
use crate::proto::framing::{list_items, trim_ows};
use crate::proto::head::RequestHead;

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
    /// `https`: a trusted proxy said the client used TLS.
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
    /// The client's IP from `X-Forwarded-For`, when a trusted peer sent one.
    pub client: Option<String>,
}

/// Whom to believe, built once per worker from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedPolicy {
    trust_all: bool,
    networks: Vec<IpNet>,
    /// `(field name, value meaning https)`, names compared case-insensitively.
    secure_scheme_headers: Vec<(String, Vec<u8>)>,
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
    /// scheme fields that disagree (answered 400).
    pub fn resolve(&self, head: &RequestHead, peer: &str) -> Result<Forwarded, ParseError> {
        // Without a forwarding field the answer is the default whoever the
        // peer is: the peer's address (text, parsed per request) is looked
        // at only when there is something to believe or not.
        if !head
            .headers
            .iter()
            .any(|field| self.is_forwarding_field(&field.name))
        {
            return Ok(Forwarded::default());
        }
        if !self.trusts_peer(peer) {
            return Ok(Forwarded::default());
        }
        let mut scheme: Option<Scheme> = None;
        let mut forwarded_for = false;
        for field in &head.headers {
            if field.name.eq_ignore_ascii_case("x-forwarded-for") {
                forwarded_for = true;
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
        let client = if forwarded_for {
            self.client_from(head)
        } else {
            None
        };
        Ok(Forwarded {
            scheme: scheme.unwrap_or_default(),
            client,
        })
    }

    /// Whether a field named `name` is one this policy reads:
    /// `X-Forwarded-For` or one of the secure scheme fields.
    fn is_forwarding_field(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("x-forwarded-for")
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
}
