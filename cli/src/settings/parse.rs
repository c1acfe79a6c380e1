//! Validators: each turns a [`Raw`] into a typed value or says what is allowed.
//!
//! An `Err` is the "allowed" half of a one-line message; the caller adds the
//! setting's name and the value.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::Raw;

/// What a validator says when a value is refused: what would be allowed.
pub type Allowed = String;

/// A whole number of at least `min`.
pub fn count(raw: &Raw, min: u64) -> Result<usize, Allowed> {
    let number = unsigned(raw, min)?;
    usize::try_from(number).map_err(|_| format!("a whole number from {min} to {}", usize::MAX))
}

/// A whole number of at least `min`, as `u64`.
pub fn unsigned(raw: &Raw, min: u64) -> Result<u64, Allowed> {
    let allowed = || format!("a whole number of at least {min}");
    let number = match raw {
        Raw::Int(number) => u64::try_from(*number).map_err(|_| allowed())?,
        Raw::Text(text) => text.trim().parse::<u64>().map_err(|_| allowed())?,
        _ => return Err(allowed()),
    };
    if number < min {
        return Err(allowed());
    }
    Ok(number)
}

/// A whole number between `min` and `max`, inclusive.
pub fn bounded(raw: &Raw, min: u64, max: u64) -> Result<u64, Allowed> {
    let allowed = || format!("a whole number from {min} to {max}");
    let number = unsigned(raw, min).map_err(|_| allowed())?;
    if number > max {
        return Err(allowed());
    }
    Ok(number)
}

/// A number of seconds, zero or more, whole or fractional.
pub fn seconds(raw: &Raw) -> Result<Duration, Allowed> {
    let allowed = || "a number of seconds, 0 or more (such as 30 or 0.5)".to_owned();
    let number = match raw {
        Raw::Int(number) => *number as f64,
        Raw::Float(number) => *number,
        Raw::Text(text) => text.trim().parse::<f64>().map_err(|_| allowed())?,
        _ => return Err(allowed()),
    };
    // A year is far beyond any sensible timeout and keeps `Duration` happy.
    if !number.is_finite() || !(0.0..=31_536_000.0).contains(&number) {
        return Err(allowed());
    }
    Ok(Duration::from_secs_f64(number))
}

/// `true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off` from text).
pub fn flag(raw: &Raw) -> Result<bool, Allowed> {
    let allowed = || "true or false".to_owned();
    match raw {
        Raw::Bool(value) => Ok(*value),
        Raw::Int(0) => Ok(false),
        Raw::Int(1) => Ok(true),
        Raw::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(allowed()),
        },
        _ => Err(allowed()),
    }
}

/// Any non-empty text.
pub fn text(raw: &Raw) -> Result<String, Allowed> {
    match raw {
        Raw::Text(text) if !text.is_empty() && !text.contains('\0') => Ok(text.clone()),
        Raw::Int(number) => Ok(number.to_string()),
        _ => Err("a non-empty string".to_owned()),
    }
}

/// Text, where the empty string means "unset".
pub fn optional_text(raw: &Raw) -> Result<Option<String>, Allowed> {
    match raw {
        Raw::Text(text) if text.is_empty() => Ok(None),
        _ => text(raw).map(Some),
    }
}

/// A filesystem path; the empty string means "unset".
pub fn optional_path(raw: &Raw) -> Result<Option<PathBuf>, Allowed> {
    match raw {
        Raw::Text(text) if text.is_empty() => Ok(None),
        Raw::Text(text) if !text.contains('\0') => Ok(Some(PathBuf::from(text))),
        _ => Err("a path".to_owned()),
    }
}

/// Whether `name` is an HTTP field name (an RFC 9110 token).
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// One value or a list of them, each checked by `item`.
pub fn list<T>(raw: &Raw, item: impl Fn(&Raw) -> Result<T, Allowed>) -> Result<Vec<T>, Allowed> {
    match raw {
        Raw::List(items) => items.iter().map(item).collect(),
        single => Ok(vec![item(single)?]),
    }
}

/// A file mode mask: octal (`0o022`, `022`), hex (`0x12`) or decimal (`18`),
/// as Gunicorn's `int(value, 0)` with its leading-zero octal.
pub fn umask(raw: &Raw) -> Result<u32, Allowed> {
    let allowed = || "a mask from 0 to 0o777, such as 0o022, 022 or 18".to_owned();
    let number = match raw {
        Raw::Int(number) => u32::try_from(*number).map_err(|_| allowed())?,
        Raw::Text(text) => {
            let text = text.trim();
            let parsed = if let Some(octal) =
                text.strip_prefix("0o").or_else(|| text.strip_prefix("0O"))
            {
                u32::from_str_radix(octal, 8)
            } else if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                u32::from_str_radix(hex, 16)
            } else if text.len() > 1 && text.starts_with('0') {
                u32::from_str_radix(&text[1..], 8)
            } else {
                text.parse::<u32>()
            };
            parsed.map_err(|_| allowed())?
        }
        _ => return Err(allowed()),
    };
    if number > 0o777 {
        return Err(allowed());
    }
    Ok(number)
}

/// The log levels, as Gunicorn names them.
pub const LOG_LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "critical"];

/// One of [`LOG_LEVELS`], any case.
pub fn log_level(raw: &Raw) -> Result<String, Allowed> {
    let allowed = || format!("one of {}", LOG_LEVELS.join(", "));
    let Raw::Text(text) = raw else {
        return Err(allowed());
    };
    let lower = text.trim().to_ascii_lowercase();
    LOG_LEVELS
        .contains(&lower.as_str())
        .then_some(lower)
        .ok_or_else(allowed)
}

/// Gunicorn's `access_log_format`: `%(name)s` atoms, `%%` and text.
pub fn access_log_format(raw: &Raw) -> Result<String, Allowed> {
    let format = text(raw)?;
    runicorn_worker::access::AccessFormat::parse(&format)
        .map_err(|err| format!("a Gunicorn access log format: {err}"))?;
    Ok(format)
}

/// A header field name (an RFC 9110 token); the empty string means "unset".
pub fn optional_field_name(raw: &Raw) -> Result<Option<String>, Allowed> {
    let name = optional_text(raw)?;
    let token = |byte: u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
    match name {
        Some(name) if !name.bytes().all(token) => {
            Err("a header field name such as X-Request-ID (letters, digits, '-')".to_owned())
        }
        name => Ok(name),
    }
}

/// What `--bind` accepts, for messages.
pub const BIND_FORMS: &str =
    "HOST:PORT, [IPV6]:PORT, a host alone (port 8000), unix:PATH or fd://N";

/// A listener address: `HOST:PORT`, `[v6]:PORT`, a host alone, `unix:PATH`,
/// `fd://N`. The master's own parser must accept it too; on top of that the
/// host must look like an IP address or a DNS name, so a typo is refused
/// here in one line rather than by a failed name lookup at bind time.
pub fn bind(raw: &Raw) -> Result<String, Allowed> {
    let allowed = || BIND_FORMS.to_owned();
    let Raw::Text(text) = raw else {
        return Err(allowed());
    };
    let address = text.trim();
    let spec = runicorn_master::listener::BindSpec::parse(address).map_err(|_| allowed())?;
    let runicorn_master::listener::BindSpec::Tcp(hostport) = spec else {
        return Ok(address.to_owned());
    };
    let (host, _) = hostport.rsplit_once(':').ok_or_else(allowed)?;
    let host_ok = match host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            host.parse::<std::net::Ipv4Addr>().is_ok()
                || (host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|byte| {
                            byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
                        })
                }) && (address.contains(':') || host == "localhost"))
        }
    };
    if host_ok {
        Ok(address.to_owned())
    } else {
        Err(allowed())
    }
}

/// `--metrics-bind`: a TCP `HOST:PORT` (`[IPV6]:PORT`), the empty string
/// for off. Not a unix socket: Prometheus scrapes over TCP.
pub fn metrics_bind(raw: &Raw) -> Result<Option<String>, Allowed> {
    let allowed = || {
        "HOST:PORT or [IPV6]:PORT of a TCP listener, such as 127.0.0.1:9100 \
         (not a unix socket or fd://)"
            .to_owned()
    };
    let Raw::Text(text) = raw else {
        return Err(allowed());
    };
    let address = text.trim();
    if address.is_empty() {
        return Ok(None);
    }
    if address.starts_with("unix:") || address.starts_with("fd://") || address.starts_with('/') {
        return Err(allowed());
    }
    let (_, port) = address.rsplit_once(':').ok_or_else(allowed)?;
    if port.parse::<u16>().is_err() {
        return Err(allowed());
    }
    bind(raw).map(Some).map_err(|_| allowed())
}

/// `--statsd-host`: `HOST:PORT` (UDP; `HOST` alone: port 8125) or
/// `unix://PATH`, as Gunicorn takes it; the empty string for off.
pub fn statsd_host(raw: &Raw) -> Result<Option<String>, Allowed> {
    let Some(text) = optional_text(raw).map_err(|_| "HOST:PORT or unix://PATH".to_owned())? else {
        return Ok(None);
    };
    runicorn_worker::statsd::Target::parse(&text)?;
    Ok(Some(text.trim().to_owned()))
}

/// `KEY=VALUE` for `-e/--env`.
pub fn env_pair(raw: &Raw) -> Result<(String, String), Allowed> {
    let allowed = || "KEY=VALUE with a non-empty KEY".to_owned();
    let Raw::Text(text) = raw else {
        return Err(allowed());
    };
    let (key, value) = text.split_once('=').ok_or_else(allowed)?;
    if key.is_empty() || key.contains('\0') || value.contains('\0') {
        return Err(allowed());
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// `module:function` for a server hook.
pub fn hook(raw: &Raw) -> Result<String, Allowed> {
    let allowed = || "module:function, such as myapp:post_fork".to_owned();
    let Raw::Text(text) = raw else {
        return Err(allowed());
    };
    match text.split_once(':') {
        Some((module, function)) if !module.is_empty() && !function.is_empty() => Ok(text.clone()),
        _ => Err(allowed()),
    }
}

/// A user or group: a name or a numeric id.
pub fn principal(raw: &Raw) -> Result<Option<String>, Allowed> {
    match raw {
        Raw::Int(number) if *number >= 0 => Ok(Some(number.to_string())),
        Raw::Text(text) if text.is_empty() => Ok(None),
        Raw::Text(text) if !text.contains(['\0', ':', '\n']) => Ok(Some(text.clone())),
        _ => Err("a name or a numeric id".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_raw(value: &str) -> Raw {
        Raw::Text(value.to_owned())
    }

    #[test]
    fn counts_refuse_negatives_and_words() {
        assert_eq!(count(&text_raw("4"), 1), Ok(4));
        assert_eq!(count(&Raw::Int(4), 1), Ok(4));
        assert!(count(&text_raw("-3"), 1).is_err());
        assert!(count(&Raw::Int(-3), 1).is_err());
        assert!(count(&text_raw("0"), 1).is_err());
        assert!(count(&text_raw("four"), 1).is_err());
    }

    #[test]
    fn seconds_take_fractions_and_refuse_words() {
        assert_eq!(seconds(&text_raw("0.5")), Ok(Duration::from_millis(500)));
        assert_eq!(seconds(&Raw::Int(30)), Ok(Duration::from_secs(30)));
        assert!(seconds(&text_raw("abc")).is_err());
        assert!(seconds(&text_raw("-1")).is_err());
        assert!(seconds(&text_raw("inf")).is_err());
        assert!(seconds(&text_raw("NaN")).is_err());
    }

    #[test]
    fn umask_reads_gunicorn_forms() {
        assert_eq!(umask(&text_raw("0o022")), Ok(0o22));
        assert_eq!(umask(&text_raw("022")), Ok(0o22));
        assert_eq!(umask(&text_raw("0x12")), Ok(0o22));
        assert_eq!(umask(&text_raw("18")), Ok(0o22));
        assert_eq!(umask(&text_raw("0")), Ok(0));
        assert!(umask(&text_raw("0o1777")).is_err());
        assert!(umask(&text_raw("abc")).is_err());
    }

    #[test]
    fn bind_forms() {
        for good in [
            "127.0.0.1:8000",
            "0.0.0.0:0",
            "localhost:80",
            "localhost",
            "[::1]:8000",
            "127.0.0.1",
            "unix:/tmp/x.sock",
            "unix:///tmp/x.sock",
            "fd://3",
            "my-host.example:443",
        ] {
            assert!(bind(&text_raw(good)).is_ok(), "{good}");
        }
        for bad in [
            "nonsense",
            ":8000",
            "::1",
            "tcp://127.0.0.1:9",
            "",
            "unix:",
            "fd://x",
            "127.0.0.1:99999",
            "[::1",
            "[nope]:80",
            "a b:80",
            "host:",
        ] {
            assert!(bind(&text_raw(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_levels_and_env_pairs() {
        assert_eq!(log_level(&text_raw("DEBUG")), Ok("debug".to_owned()));
        assert!(log_level(&text_raw("verbose")).is_err());
        assert_eq!(
            env_pair(&text_raw("A=b=c")),
            Ok(("A".to_owned(), "b=c".to_owned()))
        );
        assert!(env_pair(&text_raw("=x")).is_err());
        assert!(env_pair(&text_raw("novalue")).is_err());
    }
}
