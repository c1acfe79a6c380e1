//! One request's access log line: the [`Record`] of a finished request
//! rendered through an [`AccessFormat`] into a caller's buffer, each atom
//! computed as Gunicorn's `glogging.Logger.atoms` computes it from the WSGI
//! environ, and escaped as its `SafeAtoms` escapes it (`"` as `\"`, nothing
//! else). Request bytes are read as latin-1, as Gunicorn decodes them, and
//! written as UTF-8, as Python's log handler encodes its line. Nothing here
//! allocates: the line grows in a buffer the writer reuses.

use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use runicorn_http::{RequestDone, RequestHead};

use crate::access::format::{AccessFormat, Atom, Step};
use crate::log::local_time;

/// What the line of one finished request is made of.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The request as the driver ended it.
    pub done: &'a RequestDone<'a>,
    /// From the head's arrival to the response's end (zero when the
    /// format shows no duration: see [`AccessFormat::needs_elapsed`]).
    pub elapsed: Duration,
    /// The worker's pid.
    pub pid: u32,
    /// `wsgi.url_scheme` (worked out only when the format logs it).
    pub scheme: &'a str,
}

impl Record<'_> {
    /// Appends this request's line, `\n` included, to `out`.
    pub fn render(&self, format: &AccessFormat, out: &mut Vec<u8>) {
        // Once per thread's buffer in practice: it keeps its capacity.
        out.reserve(512);
        for piece in format.rendered() {
            match piece {
                Step::Short(text, len) => {
                    let end = out.len() + len;
                    out.extend_from_slice(text);
                    out.truncate(end);
                }
                Step::Text(text) => out.extend_from_slice(text.as_bytes()),
                Step::Atom(atom) => self.atom(atom, out),
            }
        }
        out.push(b'\n');
    }

    fn head(&self) -> &RequestHead {
        self.done.head
    }

    fn atom(&self, atom: &Atom, out: &mut Vec<u8>) {
        let head = self.head();
        match atom {
            Atom::RemoteAddr => escaped(out, split_peer(self.done.peer).0.as_bytes()),
            Atom::Logname | Atom::Missing => out.push(b'-'),
            Atom::User => match basic_user(head) {
                Some(user) if !user.is_empty() => escaped_utf8(out, &user),
                _ => out.push(b'-'),
            },
            Atom::Time => access_time(now_secs(), out),
            Atom::RequestLine => {
                escaped(out, head.method.as_bytes());
                out.push(b' ');
                escaped(out, head.target.as_bytes());
                out.push(b' ');
                out.extend_from_slice(head.version.as_str().as_bytes());
            }
            Atom::Status => status(out, self.done.status),
            Atom::Method => escaped(out, head.method.as_bytes()),
            Atom::Path => path_info(out, split_target(&head.target).0),
            Atom::Query => escaped(out, split_target(&head.target).1.as_bytes()),
            Atom::Protocol => out.extend_from_slice(head.version.as_str().as_bytes()),
            Atom::Bytes | Atom::BytesNumber => number(out, self.body_sent()),
            Atom::Referer => joined_or_dash(out, head, "referer"),
            Atom::UserAgent => joined_or_dash(out, head, "user-agent"),
            Atom::Seconds => number(out, self.seconds()),
            Atom::Millis => number(
                out,
                self.seconds() * 1000 + u64::from(self.elapsed.subsec_millis()),
            ),
            Atom::Micros => number(
                out,
                self.seconds() * 1_000_000 + u64::from(self.elapsed.subsec_micros()),
            ),
            Atom::Decimal => {
                number(out, self.seconds());
                out.push(b'.');
                out.extend_from_slice(&number_padded(self.elapsed.subsec_micros()));
            }
            Atom::Pid => {
                out.push(b'<');
                number(out, u64::from(self.pid));
                out.push(b'>');
            }
            Atom::RequestField(name) => match last_field(head, name) {
                Some(value) => escaped(out, value),
                None => out.push(b'-'),
            },
            Atom::ResponseField(index) => match self.done.response_fields.get(*index) {
                Some(value) => escaped(out, value),
                None => out.push(b'-'),
            },
            Atom::Environ(key) => self.environ(key, out),
        }
    }

    /// `timedelta.seconds`: whole seconds within the day.
    fn seconds(&self) -> u64 {
        self.elapsed.as_secs() % 86_400
    }

    /// Gunicorn's `resp.sent`: body bytes sent, none for a response that
    /// carries no body (HEAD, 1xx, 204, 304), whatever the app wrote.
    pub(crate) fn body_sent(&self) -> u64 {
        let status = self.done.status;
        if self.head().method == "HEAD" || status < 200 || status == 204 || status == 304 {
            0
        } else {
            self.done.body_bytes
        }
    }

    /// The environ keys Gunicorn fills from the request itself (`{key}e`,
    /// the key lower case); a key only an app could add is `-`.
    fn environ(&self, key: &str, out: &mut Vec<u8>) {
        let head = self.head();
        let (host, port) = split_peer(self.done.peer);
        match key {
            "request_method" => escaped(out, head.method.as_bytes()),
            "raw_uri" => escaped(out, head.target.as_bytes()),
            "server_protocol" => out.extend_from_slice(head.version.as_str().as_bytes()),
            "query_string" => escaped(out, split_target(&head.target).1.as_bytes()),
            "path_info" => path_info(out, split_target(&head.target).0),
            "script_name" => {}
            "remote_addr" => escaped(out, host.as_bytes()),
            "remote_port" => match port {
                Some(port) => out.extend_from_slice(port.as_bytes()),
                None => out.push(b'-'),
            },
            "wsgi.url_scheme" => out.extend_from_slice(self.scheme.as_bytes()),
            "content_type" => first_or_dash(out, head, "content-type"),
            "content_length" => first_or_dash(out, head, "content-length"),
            _ => match key.strip_prefix("http_") {
                Some(name) => environ_field(out, head, name),
                None => out.push(b'-'),
            },
        }
    }
}

/// `(REMOTE_ADDR, REMOTE_PORT)` of a peer written `ip:port` or
/// `[v6]:port`; a unix socket's `""` has no port.
pub(crate) fn split_peer(peer: &str) -> (&str, Option<&str>) {
    // One backward pass over the port's digits to its `:` (not
    // `rsplit_once`, whose `memrchr` costs more on a few bytes).
    let bytes = peer.as_bytes();
    let mut colon = bytes.len();
    while colon > 0 && bytes[colon - 1].is_ascii_digit() {
        colon -= 1;
    }
    if colon == 0 || colon == bytes.len() || bytes[colon - 1] != b':' {
        return (peer, None);
    }
    let (host, port) = (&peer[..colon - 1], &peer[colon..]);
    let host = match host.as_bytes() {
        [b'[', .., b']'] => &host[1..host.len() - 1],
        _ => host,
    };
    (host, Some(port))
}

/// `(path, query)` as Gunicorn splits the target: the fragment dropped,
/// the query after the first `?`; an absolute-form target's path.
pub(crate) fn split_target(target: &str) -> (&str, &str) {
    let without_fragment = target.split_once('#').map_or(target, |(before, _)| before);
    let (path, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    if path.starts_with('/') || path == "*" {
        return (path, query);
    }
    match path.find("://") {
        Some(scheme_end) => {
            let rest = &path[scheme_end + 3..];
            (rest.find('/').map_or("", |slash| &rest[slash..]), query)
        }
        None => (path, query),
    }
}

/// `PATH_INFO`: the path percent-decoded to bytes (a bad escape stays as
/// written), read as latin-1, escaped.
fn path_info(out: &mut Vec<u8>, path: &str) {
    for byte in runicorn_http::head::percent_decoded(path) {
        escaped_byte(out, byte);
    }
}

/// Bytes read as latin-1, written as UTF-8, `"` escaped as `\"`.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    // One pass without a branch per byte: most values need no escaping.
    if bytes
        .iter()
        .fold(true, |plain, &byte| plain & (byte < 0x80) & (byte != b'"'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    for &byte in bytes {
        escaped_byte(out, byte);
    }
}

fn escaped_byte(out: &mut Vec<u8>, byte: u8) {
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        0..=0x7f => out.push(byte),
        _ => {
            // The latin-1 character of this byte, in UTF-8.
            out.push(0xc0 | byte >> 6);
            out.push(0x80 | (byte & 0x3f));
        }
    }
}

/// Text already decoded (the Basic user), `"` escaped.
fn escaped_utf8(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            _ => out.push(byte),
        }
    }
}

/// `value` in decimal (`itoa`, without `fmt`'s machinery: this runs
/// several times per line).
fn number(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// The status: three digits as one fixed-size copy (no `memcpy` call).
fn status(out: &mut Vec<u8>, status: u16) {
    if (100..1000).contains(&status) {
        let digit = |value: u16| b'0' + (value % 10) as u8;
        out.extend_from_slice(&[digit(status / 100), digit(status / 10), digit(status)]);
    } else {
        number(out, u64::from(status));
    }
}

/// Six digits, zero-padded (the microseconds of `L`).
fn number_padded(mut value: u32) -> [u8; 6] {
    let mut digits = [b'0'; 6];
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    digits
}

/// The last field named `name` (Gunicorn's dict of request headers keeps
/// the last). A name with `_` is never a field Gunicorn keeps: it drops
/// such fields (`header_map`), so it is `-` here too.
fn last_field<'h>(head: &'h RequestHead, name: &str) -> Option<&'h [u8]> {
    if name.contains('_') {
        return None;
    }
    head.headers
        .iter()
        .rev()
        .find(|field| field.name.eq_ignore_ascii_case(name))
        .map(|field| field.value.as_slice())
}

/// The first field named `name`, or `-` (`CONTENT_TYPE`, `CONTENT_LENGTH`).
fn first_or_dash(out: &mut Vec<u8>, head: &RequestHead, name: &str) {
    match head.header(name) {
        Some(value) => escaped(out, value),
        None => out.push(b'-'),
    }
}

/// An `HTTP_*` environ value: every field of that name joined with `,`,
/// or `-` without one.
fn joined_or_dash(out: &mut Vec<u8>, head: &RequestHead, name: &str) {
    let mut first = true;
    for field in &head.headers {
        if field.name.len() != name.len() || !field.name.eq_ignore_ascii_case(name) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        escaped(out, &field.value);
    }
    if first {
        out.push(b'-');
    }
}

/// `{http_x_y}e`: the fields whose environ key is `HTTP_X_Y` (`-` as `_`),
/// joined; fields with `_` in their name are dropped, as Gunicorn does.
fn environ_field(out: &mut Vec<u8>, head: &RequestHead, key: &str) {
    let same = |name: &str| {
        !name.contains('_')
            && name.len() == key.len()
            && name
                .bytes()
                .zip(key.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'-' && b == b'_'))
    };
    if matches!(key, "content_type" | "content_length") {
        out.push(b'-');
        return;
    }
    let mut first = true;
    for field in head.headers.iter().filter(|field| same(&field.name)) {
        if !first {
            out.push(b',');
        }
        first = false;
        escaped(out, &field.value);
    }
    if first {
        out.push(b'-');
    }
}

/// Gunicorn's `_get_user`: the user of `Authorization: Basic ...`, decoded
/// as Python's `b64decode` decodes (characters outside the alphabet
/// dropped, padding required), the part before the first `:`, UTF-8.
fn basic_user(head: &RequestHead) -> Option<String> {
    let value = head.header("authorization")?;
    if value.len() < 5 || !value[..5].eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let space = value.iter().position(|&byte| byte == b' ')?;
    let encoded: Vec<u8> = value[space + 1..]
        .iter()
        .copied()
        .filter(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='))
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let user = decoded
        .split(|&byte| byte == b':')
        .next()
        .unwrap_or_default();
    String::from_utf8(user.to_vec()).ok()
}

/// The wall clock's whole seconds since the epoch: `clock_gettime`
/// alone, without `SystemTime`'s `Duration` arithmetic (this runs for
/// every line; the text of a second is cached below).
fn now_secs() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map_or(0, |now| u64::try_from(now.tv_sec()).unwrap_or(0))
}

/// Room for `[%d/%b/%Y:%H:%M:%S %z]` (28 bytes with a four-digit year).
const TIME_LEN: usize = 32;

thread_local! {
    /// The last second formatted on this thread, its text and the text's
    /// length: a second's lines share one formatting, copied as a whole
    /// array (no `memcpy` call) and cut back to its length.
    static TIME: RefCell<(u64, [u8; TIME_LEN], usize)> =
        const { RefCell::new((u64::MAX, [0; TIME_LEN], 0)) };
}

/// Gunicorn's `t`, `[%d/%b/%Y:%H:%M:%S %z]`, in local time with its real
/// UTC offset (the error log's clock, `crate::log::local_time`), of the
/// second `secs` since the epoch.
fn access_time(secs: u64, out: &mut Vec<u8>) {
    TIME.with_borrow_mut(|(cached, text, len)| {
        if *cached != secs {
            let fresh = format!(
                "[{}]",
                local_time(UNIX_EPOCH + Duration::from_secs(secs)).access()
            );
            if fresh.len() > TIME_LEN {
                // A year past 9999: written as it is, not cached.
                *cached = u64::MAX;
                out.extend_from_slice(fresh.as_bytes());
                return;
            }
            *cached = secs;
            *len = fresh.len();
            text[..*len].copy_from_slice(fresh.as_bytes());
        }
        let end = out.len() + *len;
        out.extend_from_slice(text);
        out.truncate(end);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::format::GUNICORN_DEFAULT;
    use runicorn_http::{Header, KeptFields, Version};

    fn head(method: &str, target: &str, fields: &[(&str, &[u8])]) -> RequestHead {
        RequestHead {
            method: method.to_owned(),
            target: target.to_owned(),
            version: Version::Http11,
            headers: fields
                .iter()
                .map(|(name, value)| Header {
                    name: (*name).to_owned(),
                    value: value.to_vec(),
                })
                .collect(),
        }
    }

    fn line(format: &str, head: &RequestHead, status: u16, body: u64, kept: &KeptFields) -> String {
        let done = RequestDone {
            head,
            peer: "10.1.2.3:5555",
            response_fields: kept,
            status,
            body_bytes: body,
            keep_alive: true,
        };
        let record = Record {
            done: &done,
            elapsed: Duration::from_micros(1_234_567),
            pid: 42,
            scheme: "http",
        };
        let mut out = Vec::new();
        record.render(&AccessFormat::parse(format).unwrap(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_atom_but_the_time() {
        let request = head(
            "POST",
            "/a%20b/c?x=1&y=%22#frag",
            &[
                ("Host", b"example.com"),
                ("Referer", b"http://ref/"),
                ("User-Agent", b"curl/8"),
                ("Authorization", b"Basic dXNlcjpwYXNz"),
                ("X-Thing", b"one"),
                ("x-thing", b"two"),
            ],
        );
        let mut kept = KeptFields::default();
        let names = vec!["content-type".to_owned()];
        kept.keep(&names, &[("Content-Type", b"text/plain")]);
        let format =
            "%(h)s|%(l)s|%(u)s|%(r)s|%(s)s|%(m)s|%(U)s|%(q)s|%(H)s|%(b)s|%(B)s|%(f)s|%(a)s|\
                      %(T)s|%(M)s|%(D)s|%(L)s|%(p)s|%({X-THING}i)s|%({content-type}o)s|\
                      %({REMOTE_PORT}e)s|%({http_x_thing}e)s|%({nope}i)s|%(zz)s";
        assert_eq!(
            line(format, &request, 201, 17, &kept),
            "10.1.2.3|-|user|POST /a%20b/c?x=1&y=%22#frag HTTP/1.1|201|POST|/a b/c|x=1&y=%22|\
             HTTP/1.1|17|17|http://ref/|curl/8|1|1234|1234567|1.234567|<42>|two|text/plain|\
             5555|one,two|-|-\n"
        );
    }

    #[test]
    fn the_default_format_with_nothing_optional() {
        let request = head("HEAD", "/", &[]);
        let text = line(GUNICORN_DEFAULT, &request, 200, 5, &KeptFields::default());
        let (before, after) = text.split_once(" [").unwrap();
        assert_eq!(before, "10.1.2.3 - -");
        let after = after.split_once("] ").unwrap().1;
        assert_eq!(after, "\"HEAD / HTTP/1.1\" 200 0 \"-\" \"-\"\n");
    }

    #[test]
    fn long_text_and_constant_atoms_folded_into_it_come_out_as_written() {
        let request = head("GET", "/", &[]);
        assert_eq!(
            line(
                "status: %(s)s, and then %(l)s%(zz)s%({x}y)s, a long tail of text",
                &request,
                200,
                0,
                &KeptFields::default()
            ),
            "status: 200, and then ---, a long tail of text\n"
        );
    }

    #[test]
    fn quotes_are_escaped_and_latin1_bytes_become_utf8() {
        let request = head("GET", "/", &[("User-Agent", b"evil\" \"injected\\ \xe9")]);
        assert_eq!(
            line("%(a)s", &request, 200, 0, &KeptFields::default()),
            "evil\\\" \\\"injected\\ \u{e9}\n"
        );
    }

    #[test]
    fn a_bad_basic_header_has_no_user() {
        for value in [
            &b"Basic !!!"[..],
            b"Bearer dXNlcjpwYXNz",
            b"Basic dXNlcjpwYXN",
            b"Basic Og==",
        ] {
            let request = head("GET", "/", &[("Authorization", value)]);
            assert_eq!(
                line("%(u)s", &request, 200, 0, &KeptFields::default()),
                "-\n"
            );
        }
    }

    #[test]
    fn the_time_is_apache_common_log_format_in_the_local_zone() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_618_800);
        let mut out = Vec::new();
        access_time(1_795_618_800, &mut out);
        access_time(1_795_618_801, &mut out);
        let expected = format!(
            "[{}][{}]",
            local_time(at).access(),
            local_time(at + Duration::from_secs(1)).access()
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert_eq!(expected.len(), 56, "{expected}");
    }

    #[test]
    fn unix_peers_and_v6_peers() {
        assert_eq!(split_peer(""), ("", None));
        assert_eq!(split_peer("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split_peer("10.0.0.1:8080"), ("10.0.0.1", Some("8080")));
        assert_eq!(split_peer("host:"), ("host:", None));
        assert_eq!(split_peer("1234"), ("1234", None));
        assert_eq!(split_peer("[::1]"), ("[::1]", None));
    }
}
