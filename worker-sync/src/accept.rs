//! Accepting: wait until a listener (or the shutdown wake fd) is readable,
//! then take one connection and serve it (`serve`).

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runicorn_worker::{is_transient_accept_error, Listener, Shared, Worker};

use crate::serve;

/// The pause after an accept error that is not transient (EMFILE, ENOBUFS),
/// so a listener that stays readable does not spin the worker.
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Polls the listeners and the wake fd; the indices of readable listeners.
pub(crate) fn wait_readable(
    listeners: &[Listener],
    worker: &Worker,
    timeout: PollTimeout,
) -> Result<Vec<usize>, Errno> {
    let mut fds: Vec<PollFd<'_>> = listeners
        .iter()
        .map(|listener| PollFd::new(listener.as_fd(), PollFlags::POLLIN))
        .collect();
    fds.push(PollFd::new(worker.shutdown.wake_fd(), PollFlags::POLLIN));
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok(Vec::new()),
        Err(err) => return Err(err),
    }
    let readable = PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP;
    Ok(fds[..listeners.len()]
        .iter()
        .enumerate()
        .filter(|(_, fd)| {
            fd.revents()
                .is_some_and(|events| events.intersects(readable))
        })
        .map(|(index, _)| index)
        .collect())
}

/// Accepts one connection on listener `index` and serves it. `Ok(false)`:
/// nothing to accept.
pub(crate) fn accept_and_serve(index: usize, worker: &Worker, shared: &Shared) -> io::Result<bool> {
    let accepted = match &worker.listeners[index] {
        Listener::Tcp(tcp) => tcp
            .accept()
            .map(|(stream, peer)| Accepted::Tcp(stream, peer.to_string())),
        Listener::Unix(unix) => unix.accept().map(|(stream, _)| Accepted::Unix(stream)),
    };
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(err) if is_transient_accept_error(&err) => return Ok(false),
        Err(err) => return Err(err),
    };
    // The connection gets its own fresh heartbeat budget.
    worker.slot.heartbeat();
    match accepted {
        Accepted::Tcp(stream, peer) => {
            stream.set_nonblocking(false)?;
            // Best effort: a response is written in few writes anyway.
            let _ = stream.set_nodelay(true);
            serve::connection(shared, stream, peer, index);
        }
        Accepted::Unix(stream) => {
            stream.set_nonblocking(false)?;
            serve::connection(shared, stream, String::new(), index);
        }
    }
    Ok(true)
}

enum Accepted {
    Tcp(std::net::TcpStream, String),
    Unix(std::os::unix::net::UnixStream),
}
