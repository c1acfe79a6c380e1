//! The control socket's protocol: one request line from the client, one
//! JSON document (and a newline) back, then the master closes the
//! connection. A line, not a framed message, so that a script can speak it
//! with `socat` (`echo status | socat - UNIX-CONNECT:/run/app.ctl`); JSON
//! back, so that a script can read it with `jq`. The requests:
//!
//! | line | does | as the signal |
//! |---|---|---|
//! | `status` | every worker and the requests it runs now | |
//! | `workers add N` | N workers more | N x TTIN |
//! | `workers remove N` | N workers fewer, never below one | N x TTOU |
//! | `reload` | new workers with the re-read configuration | HUP |
//! | `stop` | graceful stop | TERM |

use serde::{Deserialize, Serialize};

/// The longest request line the master reads.
pub const MAX_REQUEST: usize = 1024;

/// A request, as its line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `status`.
    Status,
    /// `workers add N`.
    WorkersAdd(usize),
    /// `workers remove N`.
    WorkersRemove(usize),
    /// `reload`.
    Reload,
    /// `stop`.
    Stop,
}

impl Request {
    /// Parses one request line (without its newline).
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["status"] => Ok(Request::Status),
            ["reload"] => Ok(Request::Reload),
            ["stop"] => Ok(Request::Stop),
            ["workers", verb @ ("add" | "remove"), count] => {
                let count: usize = count
                    .parse()
                    .ok()
                    .filter(|count| *count > 0)
                    .ok_or_else(|| format!("`workers {verb} N`: N must be a positive integer, not {count:?}"))?;
                Ok(if *verb == "add" {
                    Request::WorkersAdd(count)
                } else {
                    Request::WorkersRemove(count)
                })
            }
            _ => Err(format!(
                "unknown request {line:?}: one of `status`, `workers add N`, `workers remove N`, `reload`, `stop`"
            )),
        }
    }

    /// The line that asks for it.
    pub fn line(&self) -> String {
        match self {
            Request::Status => "status".to_owned(),
            Request::WorkersAdd(count) => format!("workers add {count}"),
            Request::WorkersRemove(count) => format!("workers remove {count}"),
            Request::Reload => "reload".to_owned(),
            Request::Stop => "stop".to_owned(),
        }
    }
}

/// The master's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was done, for an action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Response {
    /// A refusal or a failure.
    pub fn error(error: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(error.into()),
            message: None,
            status: None,
        }
    }

    /// An action carried out.
    pub fn done(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            error: None,
            message: Some(message.into()),
            status: None,
        }
    }

    /// The answer to `status`.
    pub fn status(status: Status) -> Response {
        Response {
            ok: true,
            error: None,
            message: None,
            status: Some(status),
        }
    }

    /// The bytes sent: the JSON document and a newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).unwrap_or_else(|err| {
            format!("{{\"ok\":false,\"error\":\"cannot encode the answer: {err}\"}}").into_bytes()
        });
        bytes.push(b'\n');
        bytes
    }
}

/// What `status` answers: the master and every worker it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The master.
    pub master: MasterStatus,
    /// Every worker, oldest spawn first.
    pub workers: Vec<WorkerStatus>,
}

/// The master, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterStatus {
    /// Its pid.
    pub pid: u32,
    /// runicorn's version.
    pub version: String,
    /// The worker class (`-k`).
    pub class: String,
    /// How many workers it keeps (`-w`, moved by TTIN/TTOU).
    pub workers_target: usize,
    /// The configuration generation (HUP increments it).
    pub generation: u64,
    /// Seconds since it started.
    pub uptime_secs: f64,
    /// The listeners, as logged at start.
    pub listeners: Vec<String>,
}

/// One worker, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Its pid.
    pub pid: i32,
    /// Its worker class.
    pub class: String,
    /// Its spawn order (Gunicorn's `worker.age`).
    pub age: u64,
    /// The configuration generation it was spawned with.
    pub generation: u64,
    /// Seconds since it was forked.
    pub uptime_secs: f64,
    /// Requests it finished.
    pub requests: u64,
    /// Requests it runs now (those below, and any beyond its lanes).
    pub in_flight: u64,
    /// Its resident memory, bytes (as the master sampled it, about once a
    /// second, from `/proc/<pid>/statm`).
    pub rss_bytes: Option<u64>,
    /// `booting`, `idle`, `busy` or `retiring`.
    pub state: String,
    /// The requests it runs now, oldest first.
    pub requests_now: Vec<RequestNow>,
}

/// A request in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestNow {
    /// Its request line (cut at 120 bytes).
    pub request: String,
    /// Seconds since it started.
    pub secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_parses_from_its_line() {
        for request in [
            Request::Status,
            Request::WorkersAdd(3),
            Request::WorkersRemove(1),
            Request::Reload,
            Request::Stop,
        ] {
            assert_eq!(Request::parse(&request.line()), Ok(request));
        }
        assert_eq!(
            Request::parse("  workers   add 2 "),
            Ok(Request::WorkersAdd(2))
        );
    }

    #[test]
    fn a_bad_line_says_what_is_understood() {
        let err = Request::parse("restart").unwrap_err();
        assert!(err.contains("`workers add N`"), "{err}");
        for bad in [
            "workers add 0",
            "workers add -1",
            "workers add x",
            "workers remove",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_response_is_one_line_of_json() {
        let line = Response::error("refused").to_line();
        assert_eq!(line.iter().filter(|byte| **byte == b'\n').count(), 1);
        let back: Response = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, Response::error("refused"));
    }
}
