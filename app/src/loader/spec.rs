//! Parsing Gunicorn's `module:variable` spec, and its factory form
//! `module:factory(key=value, ...)`. Pure: no file is looked at here.

use crate::LoadError;

/// A parsed `module:object` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The module: a library name (`myapp`), a path, or `builtin`.
    pub module: String,
    /// The exported symbol.
    pub object: String,
    /// `Some` when the object is called as a factory, with its arguments.
    pub args: Option<Vec<(String, String)>>,
}

pub(crate) fn bad_spec(spec: &str, reason: impl Into<String>) -> LoadError {
    LoadError::BadSpec {
        spec: spec.to_owned(),
        reason: reason.into(),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse `module:object`, `module:factory()` or `module:factory(k=v, ...)`.
/// The module part ends at the first `:` after the last `/`, so paths and
/// argument values may contain colons.
pub fn parse_spec(spec: &str) -> Result<Spec, LoadError> {
    let spec_trimmed = spec.trim();
    let path_end = spec_trimmed
        .find('(')
        .map_or(spec_trimmed.len(), |open| open);
    let last_slash = spec_trimmed[..path_end]
        .rfind('/')
        .map_or(0, |slash| slash + 1);
    let Some(colon) = spec_trimmed[last_slash..]
        .find(':')
        .map(|offset| offset + last_slash)
    else {
        return Err(bad_spec(
            spec,
            "expected 'module:variable', for example 'myapp:app' or 'builtin:hello'",
        ));
    };
    let module = spec_trimmed[..colon].trim();
    let rest = spec_trimmed[colon + 1..].trim();
    if module.is_empty() {
        return Err(bad_spec(spec, "the module (before ':') is empty"));
    }
    let (object, args) = match rest.find('(') {
        None => (rest, None),
        Some(open) => {
            let Some(inner) = rest[open + 1..].strip_suffix(')') else {
                return Err(bad_spec(
                    spec,
                    "the factory call is missing its closing ')'",
                ));
            };
            (rest[..open].trim(), Some(parse_args(spec, inner)?))
        }
    };
    if !is_identifier(object) {
        return Err(bad_spec(
            spec,
            format!("'{object}' is not a symbol name; write 'module:variable' or 'module:factory(key=value)'"),
        ));
    }
    Ok(Spec {
        module: module.to_owned(),
        object: object.to_owned(),
        args,
    })
}

/// Split `k=v, k2="v, 2"` into pairs; values may be quoted with ' or ".
fn parse_args(spec: &str, inner: &str) -> Result<Vec<(String, String)>, LoadError> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (None, ',') => pieces.push(std::mem::take(&mut current)),
            (None, c) => current.push(c),
        }
    }
    if quote.is_some() {
        return Err(bad_spec(spec, "an argument's quote is not closed"));
    }
    pieces.push(current);
    let mut pairs = Vec::new();
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let Some((key, value)) = piece.split_once('=') else {
            return Err(bad_spec(
                spec,
                format!("factory arguments are key=value; '{piece}' has no '='"),
            ));
        };
        let key = key.trim();
        if !is_identifier(key) {
            return Err(bad_spec(spec, format!("'{key}' is not an argument name")));
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        pairs.push((key.to_owned(), unquoted.to_owned()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_module_and_variable() {
        let spec = parse_spec("myapp:app").unwrap();
        assert_eq!(
            (spec.module.as_str(), spec.object.as_str(), spec.args),
            ("myapp", "app", None)
        );
    }

    #[test]
    fn parses_paths_with_colons_in_directories() {
        let spec = parse_spec("./a:b/libmyapp.so:app").unwrap();
        assert_eq!(spec.module, "./a:b/libmyapp.so");
        assert_eq!(spec.object, "app");
    }

    #[test]
    fn parses_factory_calls() {
        let spec = parse_spec("myapp:create_app()").unwrap();
        assert_eq!(spec.args, Some(vec![]));
        let spec =
            parse_spec("myapp:create_app(greeting=\"hi, there\", port = 'a:b', n=3)").unwrap();
        assert_eq!(spec.object, "create_app");
        assert_eq!(
            spec.args.unwrap(),
            vec![
                ("greeting".to_owned(), "hi, there".to_owned()),
                ("port".to_owned(), "a:b".to_owned()),
                ("n".to_owned(), "3".to_owned())
            ]
        );
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "myapp",
            ":app",
            "myapp:",
            "myapp:create_app(",
            "myapp:f(x)",
            "myapp:f(a='b)",
            "myapp:1app",
        ] {
            assert!(
                matches!(parse_spec(bad), Err(LoadError::BadSpec { .. })),
                "{bad}"
            );
        }
    }
}
