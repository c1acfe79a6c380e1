//! The control socket (`--control-socket PATH`): a unix stream socket the
//! master serves from its own loop (`arbiter/sources.rs`), for
//! `runicorn ctl` and scripts (the protocol: `protocol.rs`; the client:
//! `client.rs`).
//!
//! Who may use it: the socket file is created under a umask that never
//! exposes it and then set to mode 0600, owned by the user the master runs
//! as; and each client's uid is checked with `SO_PEERCRED`, so a socket
//! whose mode was widened still answers only its owner (and root).
//!
//! Without a thread and without blocking: the listener and every client
//! are non-blocking and polled with the signal pipe; a client has
//! [`CLIENT_DEADLINE`] to send its line and take the answer, and
//! [`MAX_CLIENTS`] are served at once. A client that stalls is dropped at
//! its deadline; it never holds a signal, a reap or a heartbeat check.
//!
//! Everything it does is also a signal: an action is handed to the loop as
//! the signals that ask for it (`workers add 2` is TTIN twice), and runs
//! through the same `handle_<signal>` code.
//!
//! Whose file it is: a master binds the path at start unless another
//! process serves it (that is refused, as a bound port is); a socket file
//! nobody serves (a master killed with SIGKILL) is replaced. The new master
//! of a USR2 upgrade leaves the path to the old one and binds it once
//! promoted (the old master removes the file as it exits, before the new
//! one takes over). A master removes the file at exit only while it is
//! still the one it made.

pub mod client;
pub mod protocol;

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;
use nix::sys::socket::{getsockopt, send, sockopt::PeerCredentials, MsgFlags};
use nix::sys::stat::{umask, Mode};
use nix::unistd::Uid;
use runicorn_worker::clock::monotonic_now;

use crate::arbiter::sources::LoopSource;
use crate::arbiter::Arbiter;
use crate::error::MasterError;
use protocol::{Request, Response, MAX_REQUEST};

/// How long a client has to send its line and take the whole answer.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
/// Clients served at once; more are turned away until one is done.
pub const MAX_CLIENTS: usize = 8;

/// The control socket and its clients.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    listener: UnixListener,
    /// The socket file's (device, inode) as made: removed at exit only
    /// while it is still this one.
    made: (u64, u64),
    clients: Vec<Client>,
    requested: Vec<Signal>,
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    deadline: Duration,
}

impl Client {
    fn answering(&self) -> bool {
        !self.output.is_empty()
    }
}

/// Why the control socket cannot be made.
fn failed(path: &Path, reason: impl std::fmt::Display) -> MasterError {
    MasterError::ControlSocket {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl ControlServer {
    /// Binds `path` (see the module's notes on whose file it is).
    pub fn bind(path: &Path) -> Result<ControlServer, MasterError> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(failed(
                    path,
                    "the path exists and is not a socket; remove it or pick another path",
                ))
            }
            Ok(_) => match UnixStream::connect(path) {
                Ok(_) => {
                    return Err(failed(
                        path,
                        "another process serves this socket (a runicorn already running?); \
                         stop it or pick another path",
                    ))
                }
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    // Nobody serves it: left by a master that was killed.
                    std::fs::remove_file(path).map_err(|err| {
                        failed(path, format!("cannot replace the stale socket: {err}"))
                    })?;
                }
                Err(err) => {
                    return Err(failed(
                        path,
                        format!("cannot check the existing socket: {err}"),
                    ))
                }
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(failed(path, err)),
        }
        // Never exposed, not even between bind and chmod: the master is
        // single-threaded, so the umask changes for this bind alone.
        let old = umask(Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        umask(old);
        let listener = bound.map_err(|err| {
            let hint = if err.kind() == io::ErrorKind::NotFound {
                " (does its directory exist?)"
            } else {
                ""
            };
            failed(path, format!("cannot bind: {err}{hint}"))
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| failed(path, format!("cannot set mode 0600: {err}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|err| failed(path, format!("cannot make it non-blocking: {err}")))?;
        let meta = std::fs::symlink_metadata(path).map_err(|err| failed(path, err))?;
        Ok(ControlServer {
            path: path.to_owned(),
            listener,
            made: (meta.dev(), meta.ino()),
            clients: Vec::new(),
            requested: Vec::new(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// At the master's exit: closes the socket and removes its file, if it
    /// is still the one this master made.
    pub fn remove(self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.made);
        drop(self.listener);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    tracing::warn!(
                        "control socket {}: accept failed: {err}",
                        self.path.display()
                    );
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let refusal = if self.clients.len() >= MAX_CLIENTS {
                Some(format!(
                    "busy: {MAX_CLIENTS} clients are being served; try again"
                ))
            } else {
                refuse_stranger(&stream)
            };
            let client = Client {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                written: 0,
                deadline: monotonic_now() + CLIENT_DEADLINE,
            };
            if let Some(refusal) = refusal {
                // Best effort, without waiting: a short line fits in the
                // socket's buffer; then the client is closed.
                let _ = send_now(&client.stream, &Response::error(refusal).to_line());
                continue;
            }
            self.clients.push(client);
        }
    }

    /// Reads, answers and writes what is ready; drops a client that is
    /// done, gone, or past its deadline.
    fn serve_client(&mut self, index: usize, events: PollFlags, arbiter: &Arbiter) -> bool {
        let client = &mut self.clients[index];
        if monotonic_now() >= client.deadline {
            tracing::warn!(
                "control socket {}: a client took longer than {}s to send its request and take the answer; dropped",
                self.path.display(),
                CLIENT_DEADLINE.as_secs()
            );
            return false;
        }
        if !client.answering() {
            if !events.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                return true;
            }
            let mut buf = [0u8; 512];
            loop {
                match client.stream.read(&mut buf) {
                    Ok(0) => {
                        if client.input.is_empty() {
                            return false;
                        }
                        // A line without its newline, then EOF: take it.
                        client.input.push(b'\n');
                        break;
                    }
                    Ok(count) => {
                        client.input.extend_from_slice(&buf[..count]);
                        if client.input.contains(&b'\n') || client.input.len() > MAX_REQUEST {
                            break;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
            }
            let Some(end) = client.input.iter().position(|byte| *byte == b'\n') else {
                if client.input.len() > MAX_REQUEST {
                    client.output = Response::error(format!(
                        "the request line is longer than {MAX_REQUEST} bytes"
                    ))
                    .to_line();
                } else {
                    return true;
                }
                return self.write_client(index);
            };
            let line = String::from_utf8_lossy(&client.input[..end])
                .trim()
                .to_owned();
            let (response, signals) = answer(&line, arbiter);
            client.output = response.to_line();
            self.requested.extend(signals);
        }
        self.write_client(index)
    }

    /// Writes what the socket takes; false once the answer is out (or the
    /// client is gone): the connection is then closed.
    fn write_client(&mut self, index: usize) -> bool {
        let client = &mut self.clients[index];
        while client.written < client.output.len() {
            match send_now(&client.stream, &client.output[client.written..]) {
                Ok(0) => return false,
                Ok(count) => client.written += count,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return true,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        false
    }
}

/// Writes what the socket takes now, without waiting and without SIGPIPE
/// if the client has gone (`MSG_NOSIGNAL`).
fn send_now(stream: &UnixStream, bytes: &[u8]) -> io::Result<usize> {
    send(
        stream.as_raw_fd(),
        bytes,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)
}

/// `None` if the peer is this socket's owner (the master's user) or root;
/// else the refusal.
fn refuse_stranger(stream: &UnixStream) -> Option<String> {
    let owner = Uid::effective();
    match getsockopt(stream, PeerCredentials) {
        Ok(peer) if peer.uid() == owner.as_raw() || peer.uid() == 0 => None,
        Ok(peer) => {
            tracing::warn!(
                "control socket: refused a client running as uid {} (only uid {owner} and root may use it)",
                peer.uid()
            );
            Some(format!(
                "refused: uid {} is not the control socket's owner (uid {owner}); run runicorn ctl \
                 as the user the master runs as, or as root",
                peer.uid()
            ))
        }
        Err(err) => Some(format!(
            "refused: the peer's credentials cannot be read: {err}"
        )),
    }
}

/// The answer to one request line, and the signals it asks the loop for.
fn answer(line: &str, arbiter: &Arbiter) -> (Response, Vec<Signal>) {
    let request = match Request::parse(line) {
        Ok(request) => request,
        Err(err) => return (Response::error(err), Vec::new()),
    };
    let target = arbiter.workers_target();
    match request {
        Request::Status => (Response::status(arbiter.control_status()), Vec::new()),
        Request::WorkersAdd(count) => {
            let room = arbiter.worker_capacity().saturating_sub(target);
            if count > room {
                return (
                    Response::error(format!(
                        "cannot add {count} workers: {target} are wanted and the scoreboard has {} \
                         slots (-w at start sizes it: four times the workers, at least 256)",
                        arbiter.worker_capacity()
                    )),
                    Vec::new(),
                );
            }
            tracing::info!("Control socket: workers add {count} (as {count} TTIN)");
            (
                Response::done(format!(
                    "workers: {target} -> {} (as {count} TTIN)",
                    target + count
                )),
                vec![Signal::SIGTTIN; count],
            )
        }
        Request::WorkersRemove(count) => {
            // Past one worker, more TTOUs would only each say "never below
            // one": one says it.
            let sent = count.min(target);
            let new = target.saturating_sub(count).max(1);
            tracing::info!("Control socket: workers remove {count} (as {sent} TTOU)");
            let note = if count >= target {
                "; never below one"
            } else {
                ""
            };
            (
                Response::done(format!("workers: {target} -> {new} (as {sent} TTOU{note})")),
                vec![Signal::SIGTTOU; sent],
            )
        }
        Request::Reload => {
            tracing::info!("Control socket: reload (as HUP)");
            (
                Response::done("reloading: new workers with the re-read configuration (as HUP)"),
                vec![Signal::SIGHUP],
            )
        }
        Request::Stop => {
            tracing::info!("Control socket: stop (as TERM)");
            (
                Response::done("stopping gracefully (as TERM)"),
                vec![Signal::SIGTERM],
            )
        }
    }
}

impl LoopSource for ControlServer {
    fn name(&self) -> &'static str {
        "control"
    }

    fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        for client in &self.clients {
            let events = if client.answering() {
                PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            fds.push(PollFd::new(client.stream.as_fd(), events));
        }
        fds
    }

    fn serve(&mut self, ready: &[PollFlags], arbiter: &Arbiter) {
        let clients = self.clients.len();
        let mut keep = Vec::with_capacity(clients);
        for index in 0..clients {
            let events = ready.get(index + 1).copied().unwrap_or(PollFlags::empty());
            keep.push(self.serve_client(index, events, arbiter));
        }
        let mut keep = keep.into_iter();
        self.clients.retain(|_| keep.next().unwrap_or(false));
        if ready
            .first()
            .is_some_and(|events| events.contains(PollFlags::POLLIN))
        {
            self.accept();
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.clients.iter().map(|client| client.deadline).min()
    }

    fn requested(&mut self) -> Vec<Signal> {
        std::mem::take(&mut self.requested)
    }

    fn close(self: Box<Self>) {
        self.remove();
    }
}
