//! The WSGI `environ`, filled as Gunicorn's `wsgi.create` fills it, so
//! that an app sees the same keys and values under both servers for the
//! same request (only `SERVER_SOFTWARE` names the server).

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use runicorn_app::{Call, Version};

use super::{Keys, WsgiApp};

/// Gunicorn's `util.unquote_to_wsgi_str`: percent-decode to bytes (a bad
/// escape stays as written), then read the bytes as latin-1.
pub fn unquote_to_wsgi_str(path: &str) -> String {
    let out: Vec<u8> = runicorn_http::head::percent_decoded(path).collect();
    latin1(&out)
}

/// Bytes read as latin-1 (every byte is the code point of the same value).
pub fn latin1(bytes: &[u8]) -> String {
    if bytes.is_ascii() {
        // ASCII is valid UTF-8 and the same text in latin-1.
        return String::from_utf8_lossy(bytes).into_owned();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A latin-1 Python string for `bytes`.
fn py_latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(text) if bytes.is_ascii() => PyString::new(py, text),
        _ => PyString::new(py, &latin1(bytes)),
    }
}

/// `(path, query)` of an origin-form target as `urllib.parse.urlsplit`
/// gives them: the fragment dropped, the query after the first `?`.
/// `None` for other forms, which go through urlsplit itself.
fn split_origin_form(target: &str) -> Option<(&str, &str)> {
    if !target.starts_with('/') {
        return None;
    }
    let without_fragment = target.split_once('#').map_or(target, |(before, _)| before);
    Some(
        without_fragment
            .split_once('?')
            .unwrap_or((without_fragment, "")),
    )
}

/// `(path, query)` of any target, by Gunicorn's `split_request_uri`.
fn split_target<'t>(py: Python<'_>, target: &'t str) -> PyResult<(Cow<'t, str>, Cow<'t, str>)> {
    if let Some((path, query)) = split_origin_form(target) {
        return Ok((Cow::Borrowed(path), Cow::Borrowed(query)));
    }
    let parts = py
        .import("urllib.parse")?
        .call_method1("urlsplit", (target,))?;
    let path: String = parts.getattr("path")?.extract()?;
    let query: String = parts.getattr("query")?.extract()?;
    Ok((Cow::Owned(path), Cow::Owned(query)))
}

/// `(host, port)` of a `host:port` or `[v6]:port` address; `None` for a
/// unix socket (no port).
fn split_host_port(addr: &str) -> Option<(&str, &str)> {
    let (host, port) = addr.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port))
}

/// Header names browsers, clients and proxies send on most requests; their
/// `HTTP_*` keys are made once, interned, instead of for every request.
const COMMON_HEADERS: [&str; 40] = [
    "Host",
    "User-Agent",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Charset",
    "Connection",
    "Keep-Alive",
    "Cookie",
    "Referer",
    "Origin",
    "Authorization",
    "Cache-Control",
    "Pragma",
    "Upgrade",
    "Upgrade-Insecure-Requests",
    "TE",
    "Expect",
    "DNT",
    "Priority",
    "Range",
    "If-Range",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "Forwarded",
    "Via",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Real-IP",
    "X-Request-ID",
    "X-Requested-With",
    "Sec-Fetch-Site",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Dest",
    "Sec-Fetch-User",
    "Sec-CH-UA",
];

/// The environ key of a header field name: `HTTP_` and the name in upper
/// case with `-` as `_`.
fn header_key(name: &str, key: &mut String) {
    key.clear();
    key.push_str("HTTP_");
    key.extend(name.chars().map(|c| match c {
        '-' => '_',
        c => c.to_ascii_uppercase(),
    }));
}

/// Whether two field names have the same environ key.
fn same_key(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'-' => b'_',
        c => c.to_ascii_uppercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// The interned keys of [`COMMON_HEADERS`], by name length.
#[derive(Debug)]
pub struct HeaderKeys {
    by_len: Vec<Vec<(&'static str, Py<PyString>)>>,
}

impl HeaderKeys {
    pub fn new(py: Python<'_>) -> Self {
        let mut by_len: Vec<Vec<(&'static str, Py<PyString>)>> = Vec::new();
        let mut key = String::new();
        for name in COMMON_HEADERS {
            if by_len.len() <= name.len() {
                by_len.resize_with(name.len() + 1, Vec::new);
            }
            header_key(name, &mut key);
            by_len[name.len()].push((name, PyString::intern(py, &key).unbind()));
        }
        HeaderKeys { by_len }
    }

    /// The key of `name` if it is a common header.
    fn get<'a>(&'a self, name: &str) -> Option<&'a Py<PyString>> {
        self.by_len
            .get(name.len())?
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, key)| key)
    }
}

/// The environ for the request of `call`, without `wsgi.input`.
pub fn build<'py>(py: Python<'py>, app: &WsgiApp, call: &dyn Call) -> PyResult<Bound<'py, PyDict>> {
    let keys: &Keys = &app.keys;
    let environ = app.base.bind(py).copy()?;
    let head = call.head();

    let method = match head.method.as_str() {
        "GET" => keys.get.bind(py).clone(),
        "POST" => keys.post.bind(py).clone(),
        "HEAD" => keys.head_method.bind(py).clone(),
        other => PyString::new(py, other),
    };
    environ.set_item(keys.request_method.bind(py), method)?;
    environ.set_item(keys.raw_uri.bind(py), PyString::new(py, &head.target))?;
    let protocol = if head.version == Version::Http10 {
        keys.http10.bind(py)
    } else {
        keys.http11.bind(py)
    };
    environ.set_item(keys.server_protocol.bind(py), protocol)?;
    let (path, query) = split_target(py, &head.target)?;
    environ.set_item(keys.query_string.bind(py), PyString::new(py, &query))?;

    let peer = call.peer();
    let trusted = app.forwarded.trusts_peer(peer);
    let mut host: Option<&[u8]> = None;
    let mut script_name: Option<String> = app.script_name.clone();
    let mut key = String::new();
    // The names already given an `HTTP_*` key: a repeated field is joined.
    let mut named: Vec<&str> = Vec::with_capacity(head.headers.len());
    for field in &head.headers {
        let name = field.name.as_str();
        if name.contains('_') {
            let upper = name.to_ascii_uppercase();
            let listed = app
                .forwarder_headers
                .iter()
                .any(|allowed| *allowed == upper || allowed == "*");
            if !(trusted && listed) {
                continue;
            }
        }
        if name.eq_ignore_ascii_case("host") {
            host = Some(&field.value);
        } else if name.eq_ignore_ascii_case("script_name") {
            script_name = Some(latin1(&field.value));
        } else if name.eq_ignore_ascii_case("content-type") {
            environ.set_item(keys.content_type.bind(py), py_latin1(py, &field.value))?;
            continue;
        } else if name.eq_ignore_ascii_case("content-length") {
            environ.set_item(keys.content_length.bind(py), py_latin1(py, &field.value))?;
            continue;
        }
        let value = py_latin1(py, &field.value);
        let repeated = named.iter().any(|earlier| same_key(earlier, name));
        named.push(name);
        let key = match keys.headers.get(name) {
            Some(common) => common.bind(py).clone(),
            None => {
                header_key(name, &mut key);
                PyString::new(py, &key)
            }
        };
        match repeated {
            true => {
                let previous: String = environ
                    .get_item(&key)?
                    .map(|previous| previous.extract())
                    .transpose()?
                    .unwrap_or_default();
                let joined = format!("{previous},{}", value.to_str()?);
                environ.set_item(&key, joined)?;
            }
            false => environ.set_item(&key, value)?,
        }
    }

    // A trusted front end's `Forwarded: host=` is the host the client
    // asked for: it replaces `HTTP_HOST` (the field itself stays in
    // `HTTP_FORWARDED`), as the scheme it gave replaces `wsgi.url_scheme`.
    if let Some(forwarded_host) = call.forwarded_host() {
        host = Some(forwarded_host.as_bytes());
        match keys.headers.get("Host") {
            Some(key) => environ.set_item(key.bind(py), forwarded_host)?,
            None => environ.set_item("HTTP_HOST", forwarded_host)?,
        }
    }

    let scheme = call.url_scheme();
    if scheme == "http" {
        environ.set_item(keys.url_scheme.bind(py), keys.http.bind(py))?;
    } else {
        environ.set_item(keys.url_scheme.bind(py), scheme)?;
    }

    match split_host_port(peer) {
        Some((ip, port)) => {
            environ.set_item(keys.remote_addr.bind(py), ip)?;
            environ.set_item(keys.remote_port.bind(py), port)?;
        }
        None => environ.set_item(keys.remote_addr.bind(py), peer)?,
    }

    // What a PROXY protocol header said, as Gunicorn gives it: the
    // protocol, and the proxy's own address and port when the header named
    // them (Gunicorn sets `PROXY_ADDR` to None and `PROXY_PORT` to "None"
    // for LOCAL and UNSPEC; here they are left out).
    if let Some(protocol) = call.proxy_protocol() {
        environ.set_item("PROXY_PROTOCOL", protocol)?;
        if let Some((ip, port)) = call.proxy_addr().and_then(split_host_port) {
            environ.set_item("PROXY_ADDR", ip)?;
            environ.set_item("PROXY_PORT", port)?;
        }
    }

    let server = call.server_addr();
    let host_text;
    let (server_name, server_port): (&str, &str) = match split_host_port(server) {
        Some((name, port)) => (name, port),
        None => match host {
            Some(host) => {
                host_text = latin1(host);
                match host_text.split_once(':') {
                    Some((name, port)) => (name, port),
                    None if scheme == "https" => (&host_text, "443"),
                    None => (&host_text, "80"),
                }
            }
            None => (server, ""),
        },
    };
    environ.set_item(keys.server_name.bind(py), server_name)?;
    environ.set_item(keys.server_port.bind(py), server_port)?;

    let script_name = script_name.unwrap_or_default();
    let path_info = if script_name.is_empty() {
        &*path
    } else {
        match path.strip_prefix(script_name.as_str()) {
            Some(rest) => rest,
            None => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "Request path {path:?} does not start with SCRIPT_NAME {script_name:?}"
                )))
            }
        }
    };
    let path_info = if path_info.contains('%') {
        PyString::new(py, &unquote_to_wsgi_str(path_info))
    } else {
        // Nothing to decode: the bytes read as latin-1, as unquoting gives.
        py_latin1(py, path_info.as_bytes())
    };
    environ.set_item(keys.path_info.bind(py), path_info)?;
    environ.set_item(keys.script_name.bind(py), script_name)?;
    Ok(environ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_matches_urllib() {
        assert_eq!(unquote_to_wsgi_str("/a%20b"), "/a b");
        assert_eq!(unquote_to_wsgi_str("/%e2%82%ac"), "/\u{e2}\u{82}\u{ac}");
        assert_eq!(unquote_to_wsgi_str("/bad%zz%4"), "/bad%zz%4");
        assert_eq!(unquote_to_wsgi_str("/%2F%"), "//%");
    }

    #[test]
    fn origin_form_splits_like_urlsplit() {
        assert_eq!(split_origin_form("/a?b=1#f"), Some(("/a", "b=1")));
        assert_eq!(split_origin_form("/a#f?x"), Some(("/a", "")));
        assert_eq!(split_origin_form("//x?y"), Some(("//x", "y")));
        assert_eq!(split_origin_form("*"), None);
    }

    #[test]
    fn header_keys() {
        let mut key = String::new();
        header_key("X-Forwarded-For", &mut key);
        assert_eq!(key, "HTTP_X_FORWARDED_FOR");
        assert!(same_key("x-forwarded-for", "X-FORWARDED-FOR"));
        assert!(same_key("a-b", "A_B"));
        assert!(!same_key("a-b", "a-bc"));
        assert!(!same_key("a-b", "a-c"));
    }

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", "80")));
        assert_eq!(split_host_port("[::1]:8000"), Some(("::1", "8000")));
        assert_eq!(split_host_port("/tmp/x.sock"), None);
        assert_eq!(split_host_port(""), None);
    }
}
