//! The worker's main thread: one epoll set holding the listeners (while the
//! worker may accept), the stop state's wake pipe, the pool's doorbell, and
//! every connection that is not on a thread: fresh ones waiting for their
//! first bytes and kept-alive ones waiting for their next request.
//!
//! Each pass beats the heartbeat, takes back connections from the pool
//! (parking the idle ones), decides whether to watch the listeners, waits
//! (at most the poll interval, or until the next idle deadline), hands
//! readable connections to the pool, accepts, and closes what expired.
//! Connections are registered `EPOLLONESHOT`: an event disarms it, so a
//! connection on a thread never wakes the poller; parking re-arms it.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use runicorn_http::{ConnConfig, Outcome};
use runicorn_worker::Worker;

use crate::error::ThreadError;
use crate::idle::{IdleKind, IdleSet};
use crate::job::{Job, Returned};
use crate::policy::{self, Load, STOP_IDLE_GRACE};
use crate::pool::Pool;
use crate::serve::{Client, Shared};

/// The token of the stop state's wake pipe.
const TOKEN_SHUTDOWN: u64 = u64::MAX;
/// The token of the pool's doorbell.
const TOKEN_POOL: u64 = u64::MAX - 1;
/// Tokens below this are listener indices; connections count up from it
/// and a token is never reused.
const FIRST_CLIENT: u64 = 1 << 16;
/// Events taken from the kernel per wait.
const EVENTS_PER_WAIT: usize = 256;

/// How the main loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every request finished and every connection closed.
    Graceful,
    /// `--graceful-timeout` passed with requests still running.
    GracefulTimeout,
    /// INT/QUIT: leave now.
    Quick,
    /// epoll itself failed; the master replaces the worker.
    Broken,
}

/// A graceful stop in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stop {
    /// When the worker gives up on its running requests.
    pub(crate) deadline: Instant,
}

/// The main loop's state.
pub(crate) struct Poller<'w> {
    pub(crate) worker: &'w Worker,
    pub(crate) epoll: Epoll,
    pub(crate) pool: Pool,
    pub(crate) config: ConnConfig,
    pub(crate) idle: IdleSet<Client>,
    /// Connections handed to the pool and not yet back.
    pub(crate) busy: usize,
    pub(crate) next_token: u64,
    pub(crate) listening: bool,
    pub(crate) accept_paused_until: Option<Instant>,
    /// While saturated: when to look for starving connections next.
    pub(crate) next_probe: Option<Instant>,
    /// The last look saw a connection waiting.
    pub(crate) pending_seen: bool,
    pub(crate) stop: Option<Stop>,
    pub(crate) last_check: Instant,
    pub(crate) returned: Vec<Returned>,
}

impl std::fmt::Debug for Poller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("busy", &self.busy)
            .field("parked", &self.idle.len())
            .field("listening", &self.listening)
            .finish_non_exhaustive()
    }
}

fn register_error(what: impl Into<String>) -> impl FnOnce(Errno) -> ThreadError {
    let what = what.into();
    move |errno| ThreadError::Register {
        what,
        source: errno.into(),
    }
}

impl<'w> Poller<'w> {
    /// Makes the listeners non-blocking, the epoll set and the pool.
    pub(crate) fn boot(
        worker: &'w Worker,
        shared: &Arc<Shared>,
    ) -> Result<Poller<'w>, ThreadError> {
        for listener in &worker.listeners {
            listener
                .set_nonblocking(true)
                .map_err(|source| ThreadError::Nonblocking {
                    listener: listener.describe(),
                    source,
                })?;
        }
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|errno| ThreadError::Poller {
                what: "epoll instance",
                source: errno.into(),
            })?;
        epoll
            .add(
                worker.shutdown.wake_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SHUTDOWN),
            )
            .map_err(register_error("the stop-signal pipe"))?;
        let pool = Pool::start(worker.settings.threads.max(1), shared)?;
        epoll
            .add(
                pool.wake_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_POOL),
            )
            .map_err(register_error("the pool's eventfd"))?;
        Ok(Poller {
            worker,
            epoll,
            pool,
            config: policy::conn_config(&worker.settings),
            idle: IdleSet::new(),
            busy: 0,
            next_token: FIRST_CLIENT,
            listening: false,
            accept_paused_until: None,
            next_probe: None,
            pending_seen: false,
            stop: None,
            last_check: Instant::now(),
            returned: Vec::new(),
        })
    }

    /// Runs until the worker should exit; then closes what is parked and
    /// stops the pool (joining it only when no thread is busy).
    pub(crate) fn run(mut self) -> Ending {
        let ending = self.serve();
        drop(self.idle.drain());
        if ending != Ending::Quick {
            self.pool.finish(self.busy == 0);
        }
        ending
    }

    fn serve(&mut self) -> Ending {
        let interval = policy::poll_interval(self.worker.settings.timeout);
        let mut events = vec![EpollEvent::empty(); EVENTS_PER_WAIT];
        let mut ready_listeners: Vec<usize> = Vec::new();
        loop {
            self.worker.slot.heartbeat();
            self.take_returned();
            let now = Instant::now();
            if let Some(ending) = self.check_state(now, interval) {
                return ending;
            }
            let wanted = self.should_listen(now);
            self.set_listening(wanted);
            let wait = self.wait_time(now, interval);
            let count = match self.epoll.wait(&mut events, wait) {
                Ok(count) => count,
                Err(Errno::EINTR) => 0,
                Err(err) => {
                    tracing::error!(
                        "epoll_wait failed: {err}; the worker exits and the master replaces it"
                    );
                    return Ending::Broken;
                }
            };
            ready_listeners.clear();
            for event in &events[..count] {
                match event.data() {
                    TOKEN_SHUTDOWN => self.drain_wake_pipe(),
                    TOKEN_POOL => {}
                    token if token < FIRST_CLIENT => ready_listeners.push(token as usize),
                    token => self.client_ready(token, event.events()),
                }
            }
            // Connections back from the pool free threads before accepting.
            self.take_returned();
            if !ready_listeners.is_empty() {
                self.accept_from(&ready_listeners);
            }
            let now = Instant::now();
            self.take_starving_connections(now);
            for expired in self.idle.expire(now) {
                drop(expired);
            }
        }
    }

    /// The counts the accept decisions read.
    pub(crate) fn load(&self) -> Load {
        Load {
            busy: self.busy,
            threads: self.worker.settings.threads.max(1),
            parked: self.idle.len(),
            kept: self.idle.kept_len(),
            cap: self.worker.settings.worker_connections,
        }
    }

    /// Until the next deadline: poll interval, idle expiry, graceful
    /// timeout, accept pause or starvation probe, whichever comes first.
    fn wait_time(&self, now: Instant, interval: Duration) -> EpollTimeout {
        let mut wake_at = now + interval;
        for deadline in [
            self.idle.next_deadline(),
            self.stop.map(|stop| stop.deadline),
            self.accept_paused_until,
            self.next_probe,
        ]
        .into_iter()
        .flatten()
        {
            wake_at = wake_at.min(deadline);
        }
        // Round up, so the loop never wakes just before a deadline and spins.
        let millis = wake_at
            .saturating_duration_since(now)
            .as_micros()
            .div_ceil(1000);
        EpollTimeout::from(u16::try_from(millis).unwrap_or(u16::MAX))
    }

    /// The stop state's pipe stays readable after a change; this loop is its
    /// only reader in the process, so it empties it to wait again, and sees
    /// a later change (graceful, then quick) as a new byte.
    fn drain_wake_pipe(&self) {
        let mut buf = [0u8; 64];
        while let Ok(1..) = nix::unistd::read(self.worker.shutdown.wake_fd(), &mut buf) {}
    }

    fn take_returned(&mut self) {
        let mut returned = std::mem::take(&mut self.returned);
        returned.extend(self.pool.returned());
        for Returned { client, outcome } in returned.drain(..) {
            self.busy -= 1;
            if outcome == Outcome::Idle {
                self.park(client, IdleKind::KeptAlive);
            }
        }
        self.returned = returned;
    }

    fn client_ready(&mut self, token: u64, events: EpollFlags) {
        let Some(client) = self.idle.take(token) else {
            return;
        };
        if events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP) {
            self.dispatch(client);
        }
        // Error or hang-up with nothing to read: dropping closes it.
    }

    /// Hands `client` to the pool; it is queued when no thread is free.
    pub(crate) fn dispatch(&mut self, client: Client) {
        let queued_at = (self.busy >= self.load().threads).then(Instant::now);
        self.busy += 1;
        self.pool.submit(Job { client, queued_at });
    }

    /// Parks `client` until it is readable or its deadline passes.
    pub(crate) fn park(&mut self, client: Client, kind: IdleKind) {
        let now = Instant::now();
        let wait = match kind {
            IdleKind::Fresh => policy::head_deadline(&self.worker.settings),
            IdleKind::KeptAlive => self.worker.settings.keepalive,
        };
        let wait = if self.stop.is_some() {
            wait.min(STOP_IDLE_GRACE)
        } else {
            wait
        };
        let token = self.next_token;
        self.next_token += 1;
        let mut event = EpollEvent::new(
            EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT,
            token,
        );
        let fd = client.stream().as_fd();
        // Re-arm a connection parked before; a new one (or one that went
        // straight from accept to a thread) is added.
        let armed = match self.epoll.modify(fd, &mut event) {
            Err(Errno::ENOENT) => self.epoll.add(fd, event),
            other => other,
        };
        if let Err(err) = armed {
            tracing::debug!("cannot park a connection in epoll: {err}; closing it");
            return;
        }
        self.idle.park(token, client, kind, now + wait);
    }
}
