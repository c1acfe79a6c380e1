//! The workloads: the built-in ones (an app of `builtin:` and the request
//! that exercises it), and `app`, the user's own app or `--url` with the
//! request the command line describes.

use std::path::PathBuf;

use runicorn_loadgen::{LoadError, Request};

/// The built-in workloads, in the order `--help` and errors list them.
pub const NAMES: [&str; 6] = ["hello", "io", "cpu", "mixed", "upload", "stream"];

/// The body `upload` posts.
pub const UPLOAD_BYTES: usize = 64 * 1024;

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestSpec {
    /// One request, sent again and again.
    One {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `--requests FILE`: raw requests sent in turn.
    File { path: PathBuf, bytes: Vec<u8> },
}

/// How a workload's Little's-law limit is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Waits more than it computes, by construction (`io`, `mixed`).
    IoBound,
    /// Computes, or is too short for the limit to mean anything.
    NotIoBound,
    /// The user's: IO-bound when the measured CPU per request is under
    /// half its wall time.
    Measured,
}

/// One workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// `hello`, ..., or `app`.
    pub name: String,
    /// What the server serves (`builtin:sleep`, the APP), or the --url.
    pub app: String,
    pub request: RequestSpec,
    pub shape: Shape,
}

impl Workload {
    /// The user's app (or `--url`), with the request described.
    pub fn app(app: String, request: RequestSpec) -> Workload {
        Workload {
            name: "app".to_owned(),
            app,
            request,
            shape: Shape::Measured,
        }
    }

    /// The request as the report names it (`GET /?ms=50`, `file FILE`).
    pub fn label(&self) -> String {
        match &self.request {
            RequestSpec::One { method, path, .. } => format!("{method} {path}"),
            RequestSpec::File { path, .. } => format!("file {}", path.display()),
        }
    }

    /// The bytes to send to a server reached as `host`.
    pub fn requests(&self, host: &str, keep_alive: bool) -> Result<Vec<Request>, LoadError> {
        match &self.request {
            RequestSpec::One {
                method,
                path,
                headers,
                body,
            } => Ok(vec![Request::build(
                method, path, host, headers, body, keep_alive,
            )]),
            RequestSpec::File { bytes, .. } => {
                runicorn_loadgen::parse_request_file(bytes, keep_alive)
            }
        }
    }
}

/// The built-in workload `name`, or None.
pub fn builtin(name: &str) -> Option<Workload> {
    let get = |path: &str| RequestSpec::One {
        method: "GET".to_owned(),
        path: path.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    };
    let (app, request, shape) = match name {
        "hello" => ("hello", get("/"), Shape::NotIoBound),
        "io" => ("sleep", get("/?ms=50"), Shape::IoBound),
        "cpu" => ("cpu", get("/?n=1000"), Shape::NotIoBound),
        "mixed" => ("mixed", get("/?ms=20&n=200"), Shape::IoBound),
        "upload" => (
            "upload",
            RequestSpec::One {
                method: "POST".to_owned(),
                path: "/".to_owned(),
                headers: vec![(
                    "Content-Type".to_owned(),
                    "application/octet-stream".to_owned(),
                )],
                body: vec![b'x'; UPLOAD_BYTES],
            },
            Shape::NotIoBound,
        ),
        "stream" => ("stream", get("/?kb=64"), Shape::NotIoBound),
        _ => return None,
    };
    Some(Workload {
        name: name.to_owned(),
        app: format!("builtin:{app}"),
        request,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_workload() {
        for name in NAMES {
            let workload = builtin(name).unwrap();
            assert!(workload.app.starts_with("builtin:"), "{name}");
        }
        assert_eq!(builtin("io").unwrap().label(), "GET /?ms=50");
        assert!(builtin("nope").is_none());
    }
}
