//! [`AccessFormat`]: Gunicorn's `--access-logformat`, parsed once when the
//! worker starts into a list of [`Piece`]s (literal text and [`Atom`]s), so
//! a request's line is written by walking the list: no format string is
//! parsed per request.
//!
//! The format is a Python `%`-format with a mapping, as Gunicorn's
//! `access_log.info(fmt, atoms)` applies it: `%(name)s` is an atom, `%%` a
//! percent sign. Names follow Gunicorn's `SafeAtoms`: a name starting with
//! `{` is looked up in lower case (`%({X-Forwarded-For}i)s`), any other
//! exactly as written, and a name that is no atom gives `-`. Python would
//! also take width, flags and other conversions (`%(s)5d`); Gunicorn's
//! formats do not use them, and here they are refused when the format is
//! read, naming the piece, rather than rendered differently.

use std::fmt;

/// Gunicorn's default `access_log_format`.
pub const GUNICORN_DEFAULT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// One value of a line, Gunicorn's atoms (`glogging.Logger.atoms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Atom {
    /// `h`: the client address (`REMOTE_ADDR`).
    RemoteAddr,
    /// `l`: always `-`.
    Logname,
    /// `u`: the user of a Basic `Authorization`, else `-`.
    User,
    /// `t`: `[%d/%b/%Y:%H:%M:%S %z]` when the line is written.
    Time,
    /// `r`: `METHOD RAW_URI PROTOCOL`.
    RequestLine,
    /// `s`: the status.
    Status,
    /// `m`: the method.
    Method,
    /// `U`: `PATH_INFO`, percent-decoded.
    Path,
    /// `q`: the query string.
    Query,
    /// `H`: the protocol, `HTTP/1.1`.
    Protocol,
    /// `b`: response body bytes sent.
    Bytes,
    /// `B`: the same (Gunicorn's `B` and `b` agree: both are `resp.sent`).
    BytesNumber,
    /// `f`: the `Referer`, else `-`.
    Referer,
    /// `a`: the `User-Agent`, else `-`.
    UserAgent,
    /// `T`: the request's time in whole seconds.
    Seconds,
    /// `M`: in milliseconds.
    Millis,
    /// `D`: in microseconds.
    Micros,
    /// `L`: in seconds with six decimals.
    Decimal,
    /// `p`: `<pid>` of the worker.
    Pid,
    /// `{name}i`: a request field (lower-case name).
    RequestField(String),
    /// `{name}o`: a response field, by its index in
    /// [`AccessFormat::response_fields`].
    ResponseField(usize),
    /// `{name}e`: a WSGI environ key, lower case (`{remote_port}e`).
    Environ(String),
    /// A name that is no atom: `-`.
    Missing,
}

/// A piece of the format: text written as is, or an atom's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// An atom.
    Atom(Atom),
}

/// A piece as a line is written from it ([`AccessFormat::rendered`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Literal text of at most 8 bytes, zero-padded: appended as 8 bytes
    /// (one store, no `memcpy` call) and cut back to its length.
    Short([u8; 8], usize),
    /// Longer literal text.
    Text(String),
    /// An atom.
    Atom(Atom),
}

/// A format Python would render differently from how it is read here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The offending piece, as written.
    pub piece: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' in the access log format: {} (write atoms as %(name)s and a percent sign as %%)",
            self.piece, self.reason
        )
    }
}

impl std::error::Error for FormatError {}

/// A parsed `--access-logformat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFormat {
    pieces: Vec<Piece>,
    /// [`AccessFormat::pieces`] as a line is written from them: atoms that
    /// are always `-` (`l`, unknown names) folded into the text around them,
    /// so the default format walks 16 pieces, not 18; short text as
    /// [`Step::Short`].
    rendered: Vec<Step>,
    response_fields: Vec<String>,
    /// Worked out once: asked at every request's end.
    needs_elapsed: bool,
    needs_scheme: bool,
}

impl AccessFormat {
    /// Parses `format` (see the module docs).
    pub fn parse(format: &str) -> Result<AccessFormat, FormatError> {
        let mut pieces = Vec::new();
        let mut response_fields: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(percent) = rest.find('%') {
            text.push_str(&rest[..percent]);
            let after = &rest[percent + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                text.push('%');
                rest = tail;
                continue;
            }
            let Some(open) = after.strip_prefix('(') else {
                let piece: String = rest[percent..].chars().take(2).collect();
                return Err(FormatError {
                    piece,
                    reason: "only named atoms are supported",
                });
            };
            // Python matches parentheses inside the name.
            let mut depth = 1;
            let close = open.char_indices().find_map(|(index, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(index)
            });
            let Some(close) = close else {
                return Err(FormatError {
                    piece: rest[percent..].to_owned(),
                    reason: "the atom's name is not closed",
                });
            };
            let name = &open[..close];
            let conversion = &open[close + 1..];
            if !conversion.starts_with('s') {
                let piece_end =
                    percent + 2 + close + 1 + conversion.chars().next().map_or(0, char::len_utf8);
                return Err(FormatError {
                    piece: rest[percent..piece_end.min(rest.len())].to_owned(),
                    reason: "only the %(name)s conversion, without width or flags, is supported",
                });
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Atom(atom(name, &mut response_fields)));
            rest = &conversion[1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let needs_elapsed = pieces.iter().any(|piece| {
            matches!(
                piece,
                Piece::Atom(Atom::Seconds | Atom::Millis | Atom::Micros | Atom::Decimal)
            )
        });
        let needs_scheme = pieces.iter().any(
            |piece| matches!(piece, Piece::Atom(Atom::Environ(key)) if key == "wsgi.url_scheme"),
        );
        let mut merged: Vec<Piece> = Vec::with_capacity(pieces.len());
        for piece in &pieces {
            let piece = match piece {
                Piece::Atom(Atom::Logname | Atom::Missing) => Piece::Text("-".to_owned()),
                other => other.clone(),
            };
            match (merged.last_mut(), piece) {
                (Some(Piece::Text(before)), Piece::Text(text)) => before.push_str(&text),
                (_, piece) => merged.push(piece),
            }
        }
        let rendered = merged
            .into_iter()
            .map(|piece| match piece {
                Piece::Text(text) if text.len() <= 8 => {
                    let mut short = [0u8; 8];
                    short[..text.len()].copy_from_slice(text.as_bytes());
                    Step::Short(short, text.len())
                }
                Piece::Text(text) => Step::Text(text),
                Piece::Atom(atom) => Step::Atom(atom),
            })
            .collect();
        Ok(AccessFormat {
            pieces,
            rendered,
            response_fields,
            needs_elapsed,
            needs_scheme,
        })
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The same line's pieces with the constant atoms folded into the
    /// text (what a line is rendered from).
    pub fn rendered(&self) -> &[Step] {
        &self.rendered
    }

    /// The response field names (lower case) the format logs, which each
    /// connection keeps for it (`http::ConnConfig::kept_response_fields`).
    pub fn response_fields(&self) -> &[String] {
        &self.response_fields
    }

    /// Whether an atom shows the request's duration (`T`, `M`, `D`, `L`):
    /// the clock is read for it only then.
    pub fn needs_elapsed(&self) -> bool {
        self.needs_elapsed
    }

    /// Whether an atom needs `wsgi.url_scheme` (worked out from the
    /// forwarding fields only then).
    pub fn needs_scheme(&self) -> bool {
        self.needs_scheme
    }
}

/// The atom a `%(name)s` names, as Gunicorn's `SafeAtoms` looks it up.
fn atom(name: &str, response_fields: &mut Vec<String>) -> Atom {
    if name.starts_with('{') {
        let lower = name.to_lowercase();
        let braced = |suffix: &str| {
            lower
                .strip_suffix(suffix)
                .and_then(|inner| inner.strip_prefix('{'))
                .map(str::to_owned)
        };
        if let Some(field) = braced("}i") {
            return Atom::RequestField(field);
        }
        if let Some(field) = braced("}o") {
            let index = match response_fields.iter().position(|known| *known == field) {
                Some(index) => index,
                None => {
                    response_fields.push(field);
                    response_fields.len() - 1
                }
            };
            return Atom::ResponseField(index);
        }
        if let Some(key) = braced("}e") {
            return Atom::Environ(key);
        }
        return Atom::Missing;
    }
    match name {
        "h" => Atom::RemoteAddr,
        "l" => Atom::Logname,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "s" => Atom::Status,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "b" => Atom::Bytes,
        "B" => Atom::BytesNumber,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "M" => Atom::Millis,
        "D" => Atom::Micros,
        "L" => Atom::Decimal,
        "p" => Atom::Pid,
        _ => Atom::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunicorns_default_format_parses_into_its_atoms() {
        let format = AccessFormat::parse(GUNICORN_DEFAULT).unwrap();
        let atoms: Vec<&Atom> = format
            .pieces()
            .iter()
            .filter_map(|piece| match piece {
                Piece::Atom(atom) => Some(atom),
                Piece::Text(_) => None,
            })
            .collect();
        assert_eq!(
            atoms,
            [
                &Atom::RemoteAddr,
                &Atom::Logname,
                &Atom::User,
                &Atom::Time,
                &Atom::RequestLine,
                &Atom::Status,
                &Atom::Bytes,
                &Atom::Referer,
                &Atom::UserAgent
            ]
        );
        assert_eq!(format.pieces()[1], Piece::Text(" ".to_owned()));
        assert_eq!(format.rendered()[1], Step::Short(*b" - \0\0\0\0\0", 3));
        assert_eq!(format.rendered().len(), 16);
    }

    #[test]
    fn braced_names_are_lower_cased_and_response_fields_listed_once() {
        let format =
            AccessFormat::parse("%({X-Trace}o)s %({x-trace}o)s %({Content-Type}o)s %({Host}i)s %({REMOTE_PORT}e)s %({nope}x)s %(zz)s")
                .unwrap();
        assert_eq!(format.response_fields(), ["x-trace", "content-type"]);
        let atoms: Vec<&Piece> = format.pieces().iter().step_by(2).collect();
        assert_eq!(
            atoms,
            [
                &Piece::Atom(Atom::ResponseField(0)),
                &Piece::Atom(Atom::ResponseField(0)),
                &Piece::Atom(Atom::ResponseField(1)),
                &Piece::Atom(Atom::RequestField("host".to_owned())),
                &Piece::Atom(Atom::Environ("remote_port".to_owned())),
                &Piece::Atom(Atom::Missing),
                &Piece::Atom(Atom::Missing),
            ]
        );
    }

    #[test]
    fn percent_signs_and_text_survive() {
        let format = AccessFormat::parse("100%% %(s)s done").unwrap();
        assert_eq!(
            format.pieces(),
            [
                Piece::Text("100% ".to_owned()),
                Piece::Atom(Atom::Status),
                Piece::Text(" done".to_owned())
            ]
        );
    }

    #[test]
    fn what_python_would_render_otherwise_is_refused_by_name() {
        for (format, piece) in [
            ("%(s)d", "%(s)d"),
            ("%(s)5s", "%(s)5"),
            ("x %s", "%s"),
            ("%(s", "%(s"),
            ("50%", "%"),
        ] {
            let err = AccessFormat::parse(format).unwrap_err();
            assert_eq!(err.piece, piece, "{format}");
            assert!(err.to_string().contains("%(name)s"));
        }
    }
}
