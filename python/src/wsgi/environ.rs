//! The WSGI `environ`, filled as Gunicorn's `wsgi.create` fills it, so
//! that an app sees the same keys and values under both servers for the
//! same request (only `SERVER_SOFTWARE` names the server).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use runicorn_app::{Call, Version};

use super::{Keys, WsgiApp};

/// Gunicorn's `util.unquote_to_wsgi_str`: percent-decode to bytes (a bad
/// escape stays as written), then read the bytes as latin-1.
pub fn unquote_to_wsgi_str(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    latin1(&out)
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
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
fn split_target(py: Python<'_>, target: &str) -> PyResult<(String, String)> {
    if let Some((path, query)) = split_origin_form(target) {
        return Ok((path.to_owned(), query.to_owned()));
    }
    let parts = py
        .import("urllib.parse")?
        .call_method1("urlsplit", (target,))?;
    let path: String = parts.getattr("path")?.extract()?;
    let query: String = parts.getattr("query")?.extract()?;
    Ok((path, query))
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
    let mut key = String::with_capacity(64);
    for field in &head.headers {
        let name = field.name.as_str();
        if name.contains('_') {
            let upper = name.to_ascii_uppercase();
            if !(trusted && app.forwarder_headers.contains(&upper)) {
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
        key.clear();
        key.push_str("HTTP_");
        key.extend(name.chars().map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        }));
        let value = py_latin1(py, &field.value);
        match environ.get_item(&key)? {
            Some(previous) => {
                let joined = format!("{},{}", previous.extract::<String>()?, value.to_str()?);
                environ.set_item(&key, joined)?;
            }
            None => environ.set_item(&key, value)?,
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

    let server = call.server_addr();
    let (server_name, server_port) = match split_host_port(server) {
        Some((name, port)) => (name.to_owned(), port.to_owned()),
        None => match host {
            Some(host) => {
                let host = latin1(host);
                match host.split_once(':') {
                    Some((name, port)) => (name.to_owned(), port.to_owned()),
                    None if scheme == "https" => (host, "443".to_owned()),
                    None => (host, "80".to_owned()),
                }
            }
            None => (server.to_owned(), String::new()),
        },
    };
    environ.set_item(keys.server_name.bind(py), server_name)?;
    environ.set_item(keys.server_port.bind(py), server_port)?;

    let script_name = script_name.unwrap_or_default();
    let path_info = if script_name.is_empty() {
        path.as_str()
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
    environ.set_item(keys.path_info.bind(py), unquote_to_wsgi_str(path_info))?;
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
    fn host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:80"), Some(("127.0.0.1", "80")));
        assert_eq!(split_host_port("[::1]:8000"), Some(("::1", "8000")));
        assert_eq!(split_host_port("/tmp/x.sock"), None);
        assert_eq!(split_host_port(""), None);
    }
}
