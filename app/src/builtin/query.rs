//! Reading the one or two query parameters the built-in apps take.

use std::str::FromStr;

/// The raw value of `key` in a query string (`a=1&b=2`), undecoded.
pub(crate) fn param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value)
}

/// `key` parsed as a number, `default` when absent; an error message (for a
/// 400) when present but not a number.
pub(crate) fn number<T: FromStr>(query: &str, key: &str, default: T) -> Result<T, String> {
    match param(query, key) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("query parameter {key}={text:?} is not a non-negative integer\n")),
    }
}
