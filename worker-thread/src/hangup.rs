//! Whether a client has hung up while its request waited for a thread.
//!
//! The bytes of the request are still unread in the socket, so a peek
//! cannot see the end of stream behind them; `EPOLLRDHUP` can (`poll`'s
//! `POLLRDHUP` would too, but nix does not expose it). Each pool thread owns
//! one probe: an epoll set that holds at most the one connection it is
//! asked about, for the length of the question. A client that closed its
//! socket and one that only half-closed look the same from here.

use std::os::fd::BorrowedFd;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::error::ThreadError;

/// A pool thread's private epoll set, used only to ask about one socket.
#[derive(Debug)]
pub(crate) struct HangUpProbe {
    epoll: Epoll,
}

impl HangUpProbe {
    pub(crate) fn new() -> Result<HangUpProbe, ThreadError> {
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|errno| ThreadError::Poller {
                what: "hang-up probe epoll instance",
                source: errno.into(),
            })?;
        Ok(HangUpProbe { epoll })
    }

    /// Whether the peer of `socket` has shut down its sending side, or the
    /// connection failed, even with unread bytes buffered. When the question
    /// cannot be asked (epoll refused the descriptor) the answer is no: the
    /// driver then finds out for itself.
    pub(crate) fn hung_up(&self, socket: BorrowedFd<'_>) -> bool {
        if self
            .epoll
            .add(socket, EpollEvent::new(EpollFlags::EPOLLRDHUP, 0))
            .is_err()
        {
            return false;
        }
        let mut events = [EpollEvent::empty()];
        let count = self
            .epoll
            .wait(&mut events, EpollTimeout::ZERO)
            .unwrap_or(0);
        let _ = self.epoll.delete(socket);
        count > 0
            && events[0]
                .events()
                .intersects(EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_hang_up_is_seen_behind_unread_bytes_on_a_unix_socket() {
        let probe = HangUpProbe::new().unwrap();
        let (mut client, server) = UnixStream::pair().unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert!(!probe.hung_up(server.as_fd()), "bytes alone are no hang-up");
        assert!(!probe.hung_up(server.as_fd()), "asking twice works");
        client.shutdown(Shutdown::Write).unwrap();
        assert!(
            probe.hung_up(server.as_fd()),
            "a half-close behind the request"
        );
        drop(client);
        assert!(probe.hung_up(server.as_fd()));
    }

    #[test]
    fn a_closed_tcp_client_is_seen_and_a_live_one_is_not() {
        let probe = HangUpProbe::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert!(!probe.hung_up(server.as_fd()));
        drop(client);
        // The FIN travels over loopback; wait for it with a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !probe.hung_up(server.as_fd()) {
            assert!(
                std::time::Instant::now() < deadline,
                "no hang-up seen in 5 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
