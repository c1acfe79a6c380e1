//! Accepting: whether the listeners are watched, and taking new
//! connections from them while a thread is free and there is room. An
//! accept error such as EMFILE unwatches them for a doubling pause
//! (`runicorn_worker::AcceptBackoff`: the kit's cause-and-fix line).

use std::io;
use std::time::Instant;

use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use runicorn_http::Connection;
use runicorn_worker::is_transient_accept_error;
use runicorn_worker::{Accepted, Listener};

use crate::idle::IdleKind;
use crate::policy::ACCEPT_PATIENCE;
use crate::poller::Poller;
use crate::serve::Client;
use crate::stream::Stream;

impl Poller<'_> {
    pub(crate) fn should_listen(&mut self, now: Instant) -> bool {
        if let Some(until) = self.accept_paused_until {
            if now < until {
                return false;
            }
            self.accept_paused_until = None;
        }
        self.stop.is_none() && self.worker.shutdown.is_running() && self.load().may_accept()
    }

    /// Adds or removes the listeners. Not `EPOLLEXCLUSIVE`: a worker woken
    /// for a connection it then declines (its threads filled up in the same
    /// pass) must not leave that connection unseen by the other workers, so
    /// every worker that is listening is woken and they race for `accept`.
    pub(crate) fn set_listening(&mut self, wanted: bool) {
        if wanted == self.listening {
            return;
        }
        for (index, listener) in self.listeners.iter().enumerate() {
            let result = if wanted {
                self.epoll
                    .add(listener, EpollEvent::new(EpollFlags::EPOLLIN, index as u64))
            } else {
                self.epoll.delete(listener)
            };
            if let Err(err) = result {
                tracing::error!(
                    "cannot watch listener {} with epoll: {err}",
                    listener.describe()
                );
            }
        }
        self.listening = wanted;
    }

    /// Accepts from the ready listeners while a thread is free: at most as
    /// many connections per pass as there are free threads, so a burst is
    /// shared with the other workers instead of queued behind busy threads.
    pub(crate) fn accept_from(&mut self, ready: &[usize]) {
        let budget = self.load().free();
        self.accept_up_to(ready, budget, false);
    }

    /// Once per [`ACCEPT_PATIENCE`] while saturated: if a connection has sat
    /// in a listener's queue across two looks, no worker has a free thread,
    /// so this one takes up to `--threads` waiting connections (within
    /// `--worker-connections`) and serves them in turn behind its busy
    /// threads. Without this, kept-alive clients that refill the threads as
    /// soon as they free up would starve new clients for good.
    ///
    /// One pool's worth per look, not the whole queue: every saturated
    /// worker looks at the same pace, so a burst (a load generator opening
    /// 200 connections at once) is shared about evenly between them instead
    /// of landing on whichever looked first. A kept-alive connection stays
    /// on the worker that took it, so an uneven split would last: with 174
    /// and 26 connections on two 8-thread workers, the clients of the first
    /// waited seven times longer than those of the second. What is still
    /// waiting after a batch was seen by this look, so the next look takes
    /// the next batch.
    pub(crate) fn take_starving_connections(&mut self, now: Instant) {
        let load = self.load();
        let running = self.stop.is_none() && self.worker.shutdown.is_running();
        if !running || !load.saturated() || self.accept_paused_until.is_some() {
            self.next_probe = None;
            self.pending_seen = false;
            return;
        }
        let due = *self.next_probe.get_or_insert(now + ACCEPT_PATIENCE);
        if now < due {
            return;
        }
        self.next_probe = Some(now + ACCEPT_PATIENCE);
        let pending = self.pending_listeners();
        if pending.is_empty() {
            self.pending_seen = false;
            return;
        }
        if !std::mem::replace(&mut self.pending_seen, true) {
            // First sighting: give a free worker its chance.
            return;
        }
        tracing::debug!("every worker is saturated; taking waiting connections");
        self.accept_up_to(&pending, load.threads, true);
        self.pending_seen = !self.pending_listeners().is_empty();
    }

    /// The listeners with a connection waiting (a zero-timeout poll).
    fn pending_listeners(&self) -> Vec<usize> {
        let mut fds: Vec<PollFd<'_>> = self
            .listeners
            .iter()
            .map(|listener| PollFd::new(listener.as_fd(), PollFlags::POLLIN))
            .collect();
        if poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) == 0 {
            return Vec::new();
        }
        fds.iter()
            .enumerate()
            .filter(|(_, fd)| {
                fd.revents()
                    .is_some_and(|events| events.contains(PollFlags::POLLIN))
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// Accepts up to `budget` connections from `ready`; `saturated`: the
    /// worker takes them although no thread is free (see
    /// [`Poller::take_starving_connections`]).
    fn accept_up_to(&mut self, ready: &[usize], mut budget: usize, saturated: bool) {
        for &index in ready {
            while budget > 0 && self.stop.is_none() && self.worker.shutdown.is_running() {
                let load = self.load();
                let allowed = if saturated {
                    load.has_room()
                } else {
                    load.may_accept()
                };
                if !allowed {
                    return;
                }
                if load.needs_room() {
                    match self.hub.evict_oldest_kept() {
                        Some(oldest) => drop(oldest),
                        None => return,
                    }
                }
                let Some(listener) = self.listeners.get(index) else {
                    break;
                };
                match accept(listener) {
                    Ok(Some((stream, peer))) => {
                        budget -= 1;
                        self.accept_backoff.reset();
                        self.admit(stream, peer, index);
                    }
                    Ok(None) => break,
                    Err(err) => {
                        let pause = self.accept_backoff.failed(&listener.describe(), &err);
                        self.accept_paused_until = Some(Instant::now() + pause);
                        self.set_listening(false);
                        return;
                    }
                }
            }
        }
    }

    /// A new connection, parked until its first bytes (when they are
    /// already here, a free thread is woken for it at once).
    pub(crate) fn admit(&mut self, stream: Stream, peer: String, listener: usize) {
        // Under TLS when the worker serves TLS (the handshake is the first
        // read, on a pool thread); a plain one is listed while its answer
        // has not started: a worker killed first still answers its client
        // (`runicorn_worker::unanswered`).
        let transport = match runicorn_worker::tls::client_transport(stream, self.tls.as_ref()) {
            Ok(transport) => transport,
            Err(err) => {
                tracing::error!("cannot start TLS for {peer}: {err}");
                return;
            }
        };
        let mut connection = Connection::new(transport, peer, self.config);
        connection.watch_retirement(self.worker.shutdown.retirement());
        let client = Client::new(connection, listener);
        self.hub.park(client, IdleKind::Fresh, Instant::now());
    }
}

/// A connection the stop took off a listener's queue, as the poller parks it.
pub(crate) fn stream_of(accepted: Accepted) -> (Stream, String) {
    match accepted {
        Accepted::Tcp(stream, peer) => {
            // Best effort: responses are written in few writes anyway.
            let _ = stream.set_nodelay(true);
            (Stream::Tcp(stream), peer.to_string())
        }
        Accepted::Unix(stream) => (Stream::Unix(stream), String::new()),
    }
}

/// Accepts one connection; `Ok(None)` when there is nothing to accept.
fn accept(listener: &Listener) -> io::Result<Option<(Stream, String)>> {
    // accept(2) on Linux does not pass O_NONBLOCK on: the stream is
    // blocking, and the driver bounds every read and write with a timeout.
    let accepted = match listener {
        Listener::Tcp(tcp) => tcp.accept().map(|(stream, peer)| {
            // Best effort: responses are written in few writes anyway.
            let _ = stream.set_nodelay(true);
            (Stream::Tcp(stream), peer.to_string())
        }),
        Listener::Unix(unix) => unix
            .accept()
            .map(|(stream, _)| (Stream::Unix(stream), String::new())),
    };
    match accepted {
        Ok(accepted) => Ok(Some(accepted)),
        Err(err) if is_transient_accept_error(&err) => Ok(None),
        Err(err) => Err(err),
    }
}
