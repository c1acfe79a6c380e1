//! The client side of the control socket, for `runicorn ctl`: connect,
//! send one request line, read the one JSON answer. Each way it can fail
//! is an error that names the fix.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Request, Response};

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No file at the path.
    #[error(
        "no control socket at {0}: start runicorn with --control-socket {0} (it is off by \
         default), or pass the path the master was started with (--control-socket PATH)"
    )]
    Absent(PathBuf),
    /// A socket file nobody serves.
    #[error(
        "nothing serves {0}: the master that made it has exited (a stale socket file); \
         is runicorn running?"
    )]
    Refused(PathBuf),
    /// The file's mode keeps this user out.
    #[error(
        "permission denied on {0}: the control socket is mode 0600, owned by the user the \
         master runs as; run runicorn ctl as that user, or as root"
    )]
    Denied(PathBuf),
    /// Anything else on the way.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The master answered something that is not the protocol's JSON.
    #[error("control socket {path}: the answer is not runicorn's ({reason}): {answer:?}")]
    BadAnswer {
        /// The socket.
        path: PathBuf,
        /// Why it did not parse.
        reason: String,
        /// What came back.
        answer: String,
    },
}

/// Sends `request` to the master at `path`; its answer, parsed and as
/// received (the JSON line), within `timeout` for each step.
pub fn send(
    path: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<(Response, String), ClientError> {
    let io_error = |source: io::Error| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => ClientError::Absent(path.to_owned()),
        io::ErrorKind::ConnectionRefused => ClientError::Refused(path.to_owned()),
        io::ErrorKind::PermissionDenied => ClientError::Denied(path.to_owned()),
        _ => io_error(err),
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io_error)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
    let mut line = request.line();
    line.push('\n');
    // A refusal may already be waiting and the connection closed: read
    // whatever came back even if the write failed.
    let written = stream.write_all(line.as_bytes());
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    if answer.is_empty() {
        read.map_err(io_error)?;
        written.map_err(io_error)?;
    }
    let answer = String::from_utf8_lossy(&answer).trim_end().to_owned();
    match serde_json::from_str::<Response>(&answer) {
        Ok(response) => Ok((response, answer)),
        Err(err) => Err(ClientError::BadAnswer {
            path: path.to_owned(),
            reason: err.to_string(),
            answer,
        }),
    }
}
