//! The worker's main thread: one epoll set holding the listeners (while the
//! worker may accept), the stop state's wake pipe and the pool's doorbell.
//! The connections that are not on a thread (fresh ones waiting for their
//! first bytes, slow ones for the rest of a head, kept-alive ones for their
//! next request) are parked in the hub (`pool::Hub`), where the pool
//! threads wait for them: the poller parks what it accepts and closes what
//! expires (a partial head with a 408 written without waiting), and never
//! touches a request.
//!
//! Each pass beats the heartbeat, decides whether to watch the listeners
//! (asking the threads to ring when one becomes free if none is now),
//! waits (at most the poll interval, or until the next idle deadline),
//! accepts, and closes what expired.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use runicorn_http::ConnConfig;
use runicorn_worker::{Listener, Worker};

use crate::error::ThreadError;
use crate::idle::IdleKind;
use crate::policy::{self, Load};
use crate::pool::{Hub, Pool};
use runicorn_worker::Shared;

/// The token of the stop state's wake pipe.
const TOKEN_SHUTDOWN: u64 = u64::MAX;
/// The token of the pool's doorbell.
const TOKEN_POOL: u64 = u64::MAX - 1;
/// Events taken from the kernel per wait (listeners and two pipes).
const EVENTS_PER_WAIT: usize = 64;
/// How long a connection found readable at its deadline (no thread was
/// free to read it) stays parked before the poller looks at it again; a
/// thread that frees up takes it at once.
const SERVED_LATE_RECHECK: Duration = Duration::from_secs(1);

/// How the main loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoopEnd {
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
    /// The worker's listeners while it accepts (empty once it stopped).
    pub(crate) listeners: Vec<Listener>,
    pub(crate) epoll: Epoll,
    /// Where the connections not on a thread are parked.
    pub(crate) hub: Arc<Hub>,
    pub(crate) pool: Pool,
    pub(crate) config: ConnConfig,
    /// The TLS connections are served under, if any.
    pub(crate) tls: Option<runicorn_worker::tls::Tls>,
    pub(crate) listening: bool,
    pub(crate) accept_paused_until: Option<Instant>,
    /// The pause after accept errors, doubling while they last.
    pub(crate) accept_backoff: runicorn_worker::AcceptBackoff,
    /// While saturated: when to look for starving connections next.
    pub(crate) next_probe: Option<Instant>,
    /// The last look saw a connection waiting.
    pub(crate) pending_seen: bool,
    pub(crate) stop: Option<Stop>,
    pub(crate) last_check: Instant,
}

impl std::fmt::Debug for Poller<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("hub", &self.hub)
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
        listeners: Vec<Listener>,
    ) -> Result<Poller<'w>, ThreadError> {
        runicorn_worker::listener::set_nonblocking(&listeners)?;
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
        let hub = Arc::new(Hub::new(
            policy::head_deadline(&worker.settings),
            worker.settings.keepalive,
        )?);
        epoll
            .add(
                hub.doorbell_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_POOL),
            )
            .map_err(register_error("the pool's eventfd"))?;
        let pool = Pool::start(worker.settings.threads.max(1), shared, &hub)?;
        Ok(Poller {
            worker,
            listeners,
            epoll,
            hub,
            pool,
            config: policy::conn_config(&worker.settings),
            tls: shared.tls().cloned(),
            listening: false,
            accept_paused_until: None,
            accept_backoff: runicorn_worker::AcceptBackoff::default(),
            next_probe: None,
            pending_seen: false,
            stop: None,
            last_check: Instant::now(),
        })
    }

    /// Runs until the worker should exit; then closes what is parked and
    /// stops the pool (joining it only when no thread is busy).
    pub(crate) fn run(mut self) -> LoopEnd {
        let ending = self.serve();
        drop(self.hub.drain());
        if ending != LoopEnd::Quick {
            self.pool.finish(true);
        }
        ending
    }

    fn serve(&mut self) -> LoopEnd {
        let interval = policy::poll_interval(self.worker.settings.timeout);
        let mut events = vec![EpollEvent::empty(); EVENTS_PER_WAIT];
        let mut ready_listeners: Vec<usize> = Vec::new();
        loop {
            self.worker.slot.heartbeat();
            let now = Instant::now();
            if let Some(ending) = self.check_state(now, interval) {
                return ending;
            }
            // Asked before the counts are read, so a thread that becomes
            // free meanwhile rings; withdrawn when a free thread is seen
            // (and no stop waits for the last one).
            self.hub.ask_for_ring();
            let wanted = self.should_listen(now);
            if wanted && self.stop.is_none() {
                self.hub.cancel_ring();
            }
            self.set_listening(wanted);
            let wait = self.wait_time(now, interval);
            let count = match self.epoll.wait(&mut events, wait) {
                Ok(count) => count,
                Err(Errno::EINTR) => 0,
                Err(err) => {
                    tracing::error!(
                        "epoll_wait failed: {err}; the worker exits and the master replaces it"
                    );
                    return LoopEnd::Broken;
                }
            };
            ready_listeners.clear();
            for event in &events[..count] {
                match event.data() {
                    TOKEN_SHUTDOWN => self.drain_wake_pipe(),
                    TOKEN_POOL => self.hub.answer_doorbell(),
                    index => ready_listeners.push(index as usize),
                }
            }
            if !ready_listeners.is_empty() {
                self.accept_from(&ready_listeners);
            }
            let now = Instant::now();
            self.take_starving_connections(now);
            for mut client in self.hub.expire(now) {
                if client.sent_while_parked() {
                    // Readable, and no thread was free to read it: served
                    // when one is, looked at again after a while if not.
                    self.hub
                        .park_until(client, IdleKind::Waiting, now + SERVED_LATE_RECHECK);
                } else {
                    client.close_at_deadline();
                }
            }
        }
    }

    /// The counts the accept decisions read.
    pub(crate) fn load(&self) -> Load {
        let counts = self.hub.accept_counts(Instant::now(), policy::FRESH_CLAIM);
        Load {
            busy: self.hub.held(),
            waiting: self.hub.free_threads(),
            claimed: counts.claimed,
            threads: self.worker.settings.threads.max(1),
            parked: counts.parked,
            kept: counts.kept,
            cap: self.worker.settings.worker_connections,
        }
    }

    /// Until the next deadline: poll interval, idle expiry, graceful
    /// timeout, accept pause, starvation probe or the end of a fresh
    /// connection's claim on a thread, whichever comes first.
    fn wait_time(&self, now: Instant, interval: Duration) -> EpollTimeout {
        let mut wake_at = now + interval;
        // When the oldest claim on a free thread lapses (its connection
        // still silent), the worker may accept again.
        let (_, claim_ends) = self.hub.claimed(now, policy::FRESH_CLAIM);
        for deadline in [
            self.stop.map(|stop| stop.deadline),
            self.accept_paused_until,
            self.next_probe,
            claim_ends,
        ]
        .into_iter()
        .flatten()
        {
            wake_at = wake_at.min(deadline);
        }
        // The first parked deadline too; a thread that parks a connection
        // due earlier rings.
        let wake_at = self.hub.poller_sleeps_until(wake_at);
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
}
