//! The pool: `--threads` threads that wait in one epoll set, the hub's,
//! where every connection not on a thread is parked, registered one-shot.
//! The thread the kernel wakes for a readable connection takes it, serves
//! it (`job::run_job`) and parks it again itself, so a request costs no
//! hand-over between threads: no channel, no wake-up of the poller, no
//! context switch beyond the one that wakes a waiting thread.
//!
//! The poller (the worker's main thread) parks what it accepts here, closes
//! what expires, and reads the counts its accept rules need; the threads
//! ring its doorbell only when it asked (it waits for a thread to become
//! free, or for the last connection of a stopping worker) or when they park
//! a connection whose deadline comes before the poller's next wake-up.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use runicorn_http::Outcome;
use runicorn_worker::Shared;

use crate::error::ThreadError;
use crate::idle::{IdleKind, IdleSet};
use crate::job::{run_job, Ready};
use crate::serve::Client;

/// The token of the pool's stop eventfd in the hub's epoll set;
/// connections' tokens count up from 0 and are never reused.
const TOKEN_STOP: u64 = u64::MAX;

/// How the threads wake the poller: an eventfd written only when the
/// poller has not yet been told (one write per wake-up).
#[derive(Debug)]
struct Doorbell {
    eventfd: EventFd,
    rung: AtomicBool,
}

impl Doorbell {
    fn ring(&self) {
        if !self.rung.swap(true, Ordering::SeqCst) {
            // A failed write can only mean the counter is full, i.e. rung.
            let _ = self.eventfd.write(1);
        }
    }

    /// Called by the poller when the doorbell's descriptor is readable.
    fn answer(&self) {
        if self.rung.load(Ordering::SeqCst) {
            let _ = self.eventfd.read();
            self.rung.store(false, Ordering::SeqCst);
        }
    }
}

/// The parked connections' bookkeeping, under the hub's lock.
#[derive(Debug)]
struct Parked {
    idle: IdleSet<Client>,
    next_token: u64,
    /// When the poller wakes next (it closes what expired then); a park
    /// with an earlier deadline rings its doorbell.
    poller_wakes_at: Option<Instant>,
    /// The fresh connections parked within `policy::FRESH_CLAIM`, oldest
    /// first, by the instant they were parked (accepted) and their token;
    /// an entry whose token is no longer parked went to a thread.
    claims: VecDeque<(Instant, u64)>,
}

impl Parked {
    /// See [`Hub::claimed`].
    fn claims_within(&mut self, now: Instant, window: Duration) -> (usize, Option<Instant>) {
        let Parked { idle, claims, .. } = self;
        while let Some(&(accepted, token)) = claims.front() {
            if accepted + window <= now || !idle.contains(token) {
                claims.pop_front();
            } else {
                break;
            }
        }
        let count = claims
            .iter()
            .filter(|(_, token)| idle.contains(*token))
            .count();
        let ends = claims.front().map(|(accepted, _)| *accepted + window);
        (count, ends)
    }
}

/// The parked connections as the accept decisions count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AcceptCounts {
    /// Connections parked.
    pub(crate) parked: usize,
    /// Of those, kept-alive ones.
    pub(crate) kept: usize,
    /// Fresh ones claiming a free thread (see [`Hub::claimed`]).
    pub(crate) claimed: usize,
}

/// What the poller and the pool threads share: the parked connections (in
/// the epoll set, one-shot, and in `parked` under a lock), the counts the
/// accept rules read, and the poller's doorbell.
pub(crate) struct Hub {
    epoll: Epoll,
    parked: Mutex<Parked>,
    /// Connections a thread took and has not parked again or closed.
    held: AtomicUsize,
    /// Threads waiting for a connection with none ready: free threads.
    waiting: AtomicUsize,
    /// The poller wants its doorbell rung when a thread becomes free.
    ring_when_free: AtomicBool,
    doorbell: Doorbell,
    /// How long a fresh connection may wait for its first bytes.
    head_deadline: Duration,
    /// How long a kept-alive connection may wait for its next request.
    keepalive: Duration,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("held", &self.held)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// An empty hub: fresh connections may wait `head_deadline` for their
    /// first bytes, kept-alive ones `keepalive` for their next request.
    pub(crate) fn new(head_deadline: Duration, keepalive: Duration) -> Result<Hub, ThreadError> {
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|errno| ThreadError::Poller {
                what: "pool's epoll instance",
                source: errno.into(),
            })?;
        let eventfd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(
            |errno| ThreadError::Poller {
                what: "wake-up eventfd",
                source: errno.into(),
            },
        )?;
        Ok(Hub {
            epoll,
            parked: Mutex::new(Parked {
                idle: IdleSet::new(),
                next_token: 0,
                poller_wakes_at: None,
                claims: VecDeque::new(),
            }),
            held: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            ring_when_free: AtomicBool::new(false),
            doorbell: Doorbell {
                eventfd,
                rung: AtomicBool::new(false),
            },
            head_deadline,
            keepalive,
        })
    }

    fn parked(&self) -> MutexGuard<'_, Parked> {
        // A thread that panicked while holding the lock left the sets
        // consistent (no user code runs under it).
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Parks `client` until it is readable or its kind's deadline passes
    /// (from `now`: the head deadline for a fresh one, `--keep-alive` for a
    /// kept-alive one); see [`Hub::park_until`].
    pub(crate) fn park(&self, client: Client, kind: IdleKind, now: Instant) {
        let wait = match kind {
            IdleKind::Fresh | IdleKind::Waiting => self.head_deadline,
            IdleKind::KeptAlive => self.keepalive,
        };
        // A fresh one is parked as it is accepted: from `now` it claims a
        // free thread (`Hub::claimed`).
        let accepted = (kind == IdleKind::Fresh).then_some(now);
        self.arm(client, kind, now + wait, accepted);
    }

    /// Parks `client` until it is readable or `deadline` passes: a fresh
    /// one (just accepted) is added to the epoll set, one back from a
    /// thread re-armed.
    pub(crate) fn park_until(&self, client: Client, kind: IdleKind, deadline: Instant) {
        self.arm(client, kind, deadline, None);
    }

    /// [`Hub::park_until`]; `accepted`: when a fresh connection was
    /// accepted, listed among the claims on the free threads.
    fn arm(&self, client: Client, kind: IdleKind, deadline: Instant, accepted: Option<Instant>) {
        let mut parked = self.parked();
        let token = parked.next_token;
        parked.next_token += 1;
        let mut event = EpollEvent::new(
            EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT,
            token,
        );
        let fd = client.stream().as_fd();
        // Armed under the lock: a thread woken for it finds it parked, and
        // the poller cannot close it (and reuse its descriptor) meanwhile.
        let armed = match kind {
            IdleKind::Fresh => self.epoll.add(fd, event),
            IdleKind::Waiting | IdleKind::KeptAlive => match self.epoll.modify(fd, &mut event) {
                Err(Errno::ENOENT) => self.epoll.add(fd, event),
                other => other,
            },
        };
        if let Err(err) = armed {
            drop(parked);
            tracing::debug!("cannot park a connection in epoll: {err}; closing it");
            return;
        }
        parked.idle.park(token, client, kind, deadline);
        if let Some(accepted) = accepted {
            parked.claims.push_back((accepted, token));
        }
        let early = parked
            .poller_wakes_at
            .is_some_and(|wakes_at| deadline < wakes_at);
        drop(parked);
        if early {
            self.doorbell.ring();
        }
    }

    /// Takes the connection parked under `token` onto the calling thread
    /// (`None`: it expired or was closed for room meanwhile).
    fn take(&self, token: u64) -> Option<Client> {
        let mut parked = self.parked();
        let client = parked.idle.take(token)?;
        // Counted under the lock, so held + parked never misses it.
        self.held.fetch_add(1, Ordering::SeqCst);
        Some(client)
    }

    /// A thread is done with the connection it took (parked or closed).
    fn release(&self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits for the next readable connection; `None` when the pool stops
    /// (or epoll fails, which only a bug can cause). An event already
    /// pending when the thread asks has waited for a thread (every thread
    /// was busy when it came); one that arrives while the thread waits has
    /// not.
    fn next_ready(&self, events: &mut [EpollEvent; 1]) -> Option<Ready> {
        loop {
            let (result, waited) = match self.epoll.wait(events, EpollTimeout::ZERO) {
                Ok(0) => {
                    self.waiting.fetch_add(1, Ordering::SeqCst);
                    if self.ring_when_free.load(Ordering::SeqCst)
                        && self.ring_when_free.swap(false, Ordering::SeqCst)
                    {
                        self.doorbell.ring();
                    }
                    let result = self.epoll.wait(events, EpollTimeout::NONE);
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    (result, false)
                }
                other => (other, true),
            };
            match result {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::error!("epoll_wait failed on a pool thread: {err}; the thread exits");
                    return None;
                }
            }
            let event = events[0];
            if event.data() == TOKEN_STOP {
                return None;
            }
            return Some(Ready {
                token: event.data(),
                events: event.events(),
                waited,
            });
        }
    }

    /// Connections on a thread now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Threads waiting with no connection ready.
    pub(crate) fn free_threads(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Parked connections, and how many of them are kept-alive ones.
    #[cfg(test)]
    pub(crate) fn parked_counts(&self) -> (usize, usize) {
        let parked = self.parked();
        (parked.idle.len(), parked.idle.kept_len())
    }

    /// The connections accepted within `window` of `now` that still wait
    /// for their first bytes (each will take a thread as they come), and
    /// when the oldest of them stops counting; older entries and those a
    /// thread took are forgotten.
    pub(crate) fn claimed(&self, now: Instant, window: Duration) -> (usize, Option<Instant>) {
        self.parked().claims_within(now, window)
    }

    /// [`Hub::parked_counts`] and [`Hub::claimed`]'s count under one lock:
    /// what the accept decisions read, several times per poller pass.
    pub(crate) fn accept_counts(&self, now: Instant, window: Duration) -> AcceptCounts {
        let mut parked = self.parked();
        let (claimed, _) = parked.claims_within(now, window);
        AcceptCounts {
            parked: parked.idle.len(),
            kept: parked.idle.kept_len(),
            claimed,
        }
    }

    /// Whether nothing is parked.
    pub(crate) fn is_empty(&self) -> bool {
        self.parked().idle.is_empty()
    }

    /// Asks the threads to ring the doorbell when one becomes free (before
    /// the poller reads the counts, so a thread freed meanwhile rings).
    pub(crate) fn ask_for_ring(&self) {
        self.ring_when_free.store(true, Ordering::SeqCst);
    }

    /// Withdraws [`Hub::ask_for_ring`] (a free thread was seen).
    pub(crate) fn cancel_ring(&self) {
        self.ring_when_free.store(false, Ordering::SeqCst);
    }

    /// The descriptor that becomes readable when a thread rings.
    pub(crate) fn doorbell_fd(&self) -> BorrowedFd<'_> {
        self.doorbell.eventfd.as_fd()
    }

    /// The poller heard the doorbell.
    pub(crate) fn answer_doorbell(&self) {
        self.doorbell.answer();
    }

    /// The poller sleeps until `wake_at` or the first parked deadline,
    /// whichever comes first: returns that instant and remembers it.
    pub(crate) fn poller_sleeps_until(&self, wake_at: Instant) -> Instant {
        let mut parked = self.parked();
        let wake_at = parked
            .idle
            .next_deadline()
            .map_or(wake_at, |deadline| deadline.min(wake_at));
        parked.poller_wakes_at = Some(wake_at);
        wake_at
    }

    /// Removes every connection whose deadline has passed (the caller
    /// closes them, outside the lock: `Connection::close_at_deadline`).
    pub(crate) fn expire(&self, now: Instant) -> Vec<Client> {
        self.parked().idle.expire(now)
    }

    /// Removes the kept-alive connection parked longest ago, to make room.
    pub(crate) fn evict_oldest_kept(&self) -> Option<Client> {
        self.parked().idle.evict_oldest_kept()
    }

    /// Removes every parked connection.
    pub(crate) fn drain(&self) -> Vec<Client> {
        self.parked().idle.drain()
    }

    /// Takes `ready`'s connection and serves it (see `job::run_job`),
    /// then parks it again or closes it.
    fn serve(&self, shared: &Shared, ready: Ready) {
        let Some(client) = self.take(ready.token) else {
            return;
        };
        match run_job(shared, client, ready) {
            Some((client, Outcome::Idle)) => self.park(client, IdleKind::KeptAlive, Instant::now()),
            // A slow client's partial head, or a lingering close: parked
            // until the deadline the connection reports (the head's, the
            // linger's end), or, with none yet (no byte came), a fresh
            // connection's.
            Some((client, Outcome::Waiting)) => match client.park_deadline() {
                Some(deadline) => self.park_until(client, IdleKind::Waiting, deadline),
                None => self.park(client, IdleKind::Waiting, Instant::now()),
            },
            Some((_, Outcome::Close)) | None => {}
        }
        self.release();
    }
}

/// The running pool.
#[derive(Debug)]
pub(crate) struct Pool {
    hub: Arc<Hub>,
    /// Registered in the hub's epoll set, level-triggered and never read:
    /// once written, every thread's next wait returns it.
    stop: EventFd,
    handles: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` threads serving `hub`'s connections with `shared`.
    pub(crate) fn start(
        threads: usize,
        shared: &Arc<Shared>,
        hub: &Arc<Hub>,
    ) -> Result<Pool, ThreadError> {
        let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(
            |errno| ThreadError::Poller {
                what: "pool's stop eventfd",
                source: errno.into(),
            },
        )?;
        hub.epoll
            .add(&stop, EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_STOP))
            .map_err(|errno| ThreadError::Register {
                what: "the pool's stop eventfd".to_owned(),
                source: errno.into(),
            })?;
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let hub = Arc::clone(hub);
            let shared = Arc::clone(shared);
            let handle = thread::Builder::new()
                .name(format!("gthread-{index}"))
                .spawn(move || {
                    let mut events = [EpollEvent::empty()];
                    while let Some(ready) = hub.next_ready(&mut events) {
                        hub.serve(&shared, ready);
                    }
                })
                .map_err(|source| ThreadError::Thread {
                    index,
                    threads,
                    source,
                })?;
            handles.push(handle);
        }
        Ok(Pool {
            hub: Arc::clone(hub),
            stop,
            handles,
        })
    }

    /// Stops the threads; with `join`, waits for them (only when none holds
    /// a connection, so this cannot hang).
    pub(crate) fn finish(mut self, join: bool) {
        let _ = self.stop.write(1);
        if join && self.hub.held() == 0 {
            for handle in self.handles.drain(..) {
                let _ = handle.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;

    use runicorn_http::Connection;
    use runicorn_worker::tls::Secured;
    use runicorn_worker::{Answering, Settings};

    use crate::policy::conn_config;
    use crate::stream::Stream;

    fn shared() -> Arc<Shared> {
        let hello = runicorn_app::builtin::lookup("hello").unwrap();
        Arc::new(Shared::in_process(hello, conn_config(&Settings::default())).unwrap())
    }

    fn hub() -> Arc<Hub> {
        Arc::new(Hub::new(Duration::from_secs(5), Duration::from_secs(5)).unwrap())
    }

    /// A fresh connection parked in `hub`; the client's end.
    fn parked_connection(hub: &Hub) -> UnixStream {
        let (client, server) = UnixStream::pair().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let conn = Client::new(
            Connection::new(
                Answering::new(Secured::Plain(Stream::Unix(server))),
                "",
                conn_config(&Settings::default()),
            ),
            0,
        );
        hub.park(conn, IdleKind::Fresh, Instant::now());
        client
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /// One turn of a pool thread on the calling thread: waits for the next
    /// readable connection and serves it.
    fn one_turn(hub: &Hub, shared: &Shared) -> bool {
        let mut events = [EpollEvent::empty()];
        let ready = hub.next_ready(&mut events).expect("an event");
        let waited = ready.waited;
        hub.serve(shared, ready);
        waited
    }

    #[test]
    fn a_thread_serves_a_parked_connection_and_parks_it_again() {
        let (hub, shared) = (hub(), shared());
        let mut client = parked_connection(&hub);
        assert_eq!(hub.parked_counts(), (1, 0));
        for round in 0..3 {
            client.write_all(GET).unwrap();
            one_turn(&hub, &shared);
            let mut buf = [0u8; 512];
            let read = client.read(&mut buf).unwrap();
            assert!(
                String::from_utf8_lossy(&buf[..read]).contains("Hello, World!"),
                "round {round}"
            );
            assert_eq!(hub.parked_counts(), (1, 1), "kept alive, parked again");
            assert_eq!(hub.held(), 0);
        }
        assert_eq!(shared.slot.requests_served(), 3);
    }

    #[test]
    fn a_fresh_connection_claims_a_thread_until_its_bytes_are_taken_or_the_window_ends() {
        let (hub, shared) = (hub(), shared());
        let window = Duration::from_secs(60);
        let start = Instant::now();
        let mut first = parked_connection(&hub);
        let _second = parked_connection(&hub);
        let (claimed, ends) = hub.claimed(Instant::now(), window);
        assert_eq!(claimed, 2, "two connections just accepted, silent so far");
        assert_eq!(
            hub.accept_counts(Instant::now(), window),
            AcceptCounts {
                parked: 2,
                kept: 0,
                claimed: 2
            }
        );
        let ends = ends.expect("the oldest claim's end");
        assert!(ends >= start + window && ends <= Instant::now() + window);
        first.write_all(GET).unwrap();
        assert_eq!(
            hub.claimed(Instant::now(), window).0,
            2,
            "bytes in, not yet on a thread: still claims one"
        );
        one_turn(&hub, &shared);
        assert_eq!(
            hub.claimed(Instant::now(), window).0,
            1,
            "taken by a thread (and parked again kept alive): no longer a claim"
        );
        assert_eq!(
            hub.claimed(Instant::now() + window, window),
            (0, None),
            "a connection silent for the whole window claims nothing"
        );
    }

    #[test]
    fn a_request_that_waited_for_a_thread_is_dropped_if_its_client_hung_up() {
        let (hub, shared) = (hub(), shared());
        let mut client = parked_connection(&hub);
        client.write_all(GET).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        // Readable before any thread asked: it waited for one.
        assert!(one_turn(&hub, &shared));
        assert_eq!(shared.slot.requests_served(), 0, "the app never ran");
        let mut text = String::new();
        let _ = client.read_to_string(&mut text);
        assert_eq!(text, "", "nothing was answered");
        assert_eq!(hub.parked_counts(), (0, 0), "closed");
    }

    #[test]
    fn a_request_that_waited_from_a_live_client_is_answered() {
        let (hub, shared) = (hub(), shared());
        let mut client = parked_connection(&hub);
        client.write_all(GET).unwrap();
        assert!(one_turn(&hub, &shared));
        let mut buf = [0u8; 512];
        let read = client.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..read]).contains("Hello, World!"));
        assert_eq!(shared.slot.requests_served(), 1);
    }

    #[test]
    fn a_half_closing_client_that_found_a_free_thread_is_answered() {
        let (hub, shared) = (hub(), shared());
        let mut client = parked_connection(&hub);
        let thread = {
            let (hub, shared) = (Arc::clone(&hub), Arc::clone(&shared));
            thread::spawn(move || one_turn(&hub, &shared))
        };
        // Once the thread counts itself free it is past its look for
        // pending events: what arrives now did not wait for a thread.
        while hub.free_threads() == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        client.write_all(GET).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        assert!(!thread.join().unwrap(), "it did not wait");
        // Served, and parked again (the driver has not read the end of
        // stream yet): close it to read the whole answer.
        drop(hub.drain());
        let mut text = String::new();
        client.read_to_string(&mut text).unwrap();
        assert!(text.contains("Hello, World!"), "{text}");
        assert_eq!(shared.slot.requests_served(), 1);
    }

    /// Whether a thread that finds nothing to do rings the doorbell, with
    /// the poller's request (`ask`) or without.
    fn free_thread_rings(ask: bool) -> bool {
        let hub = hub();
        let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).unwrap();
        hub.epoll
            .add(&stop, EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_STOP))
            .unwrap();
        if ask {
            hub.ask_for_ring();
        }
        let waiter = {
            let hub = Arc::clone(&hub);
            thread::spawn(move || hub.next_ready(&mut [EpollEvent::empty()]).is_none())
        };
        while hub.free_threads() == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        // Stopped only once it waits, so it rang (or not) before that.
        stop.write(1).unwrap();
        assert!(waiter.join().unwrap(), "the stop token ends the wait");
        let rung = hub.doorbell.rung.load(Ordering::SeqCst);
        assert!(
            !hub.ring_when_free.load(Ordering::SeqCst),
            "a request is answered once"
        );
        rung
    }

    #[test]
    fn a_thread_that_becomes_free_rings_the_poller_only_when_asked() {
        assert!(free_thread_rings(true));
        assert!(!free_thread_rings(false));
    }

    #[test]
    fn a_park_before_the_pollers_wake_up_rings_it() {
        let hub = Arc::new(Hub::new(Duration::from_millis(100), Duration::from_secs(5)).unwrap());
        let now = Instant::now();
        assert_eq!(
            hub.poller_sleeps_until(now + Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        let _client = parked_connection(&hub);
        assert!(
            hub.doorbell.rung.load(Ordering::SeqCst),
            "a head deadline of 100 ms is before the poller's 1 s"
        );
        hub.answer_doorbell();
        let wake = hub.poller_sleeps_until(Instant::now() + Duration::from_secs(1));
        assert!(wake < Instant::now() + Duration::from_millis(200));
    }

    /// What the client reads until the server closes.
    fn read_until_closed(client: &mut UnixStream) -> String {
        let mut bytes = Vec::new();
        let _ = client.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_partial_head_goes_back_to_the_hub_and_is_served_once_the_rest_comes() {
        let (hub, shared) = (hub(), shared());
        let mut client = parked_connection(&hub);
        for (index, byte) in GET[..GET.len() - 1].iter().enumerate() {
            client.write_all(&[*byte]).unwrap();
            // Returns at once (a blocking read would wait the 10 s head
            // deadline), leaving the connection parked, not held.
            let started = Instant::now();
            one_turn(&hub, &shared);
            assert!(started.elapsed() < Duration::from_secs(5), "byte {index}");
            assert_eq!(hub.held(), 0, "byte {index}");
            assert_eq!(
                hub.parked_counts(),
                (1, 0),
                "byte {index}: parked, not kept-alive"
            );
        }
        let deadline = hub.parked().idle.next_deadline().unwrap();
        assert!(
            deadline <= Instant::now() + Settings::default().header_timeout,
            "parked until the head's deadline"
        );
        client.write_all(&GET[GET.len() - 1..]).unwrap();
        one_turn(&hub, &shared);
        let mut buf = [0u8; 512];
        let read = client.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..read]).contains("Hello, World!"));
        assert_eq!(hub.parked_counts(), (1, 1), "kept alive");
        assert_eq!(shared.slot.requests_served(), 1);
    }

    #[test]
    fn a_partial_head_past_its_deadline_is_answered_408_and_a_silent_one_closed() {
        let (hub, shared) = (hub(), shared());
        let mut slow = parked_connection(&hub);
        let mut silent = parked_connection(&hub);
        slow.write_all(b"GET / HT").unwrap();
        one_turn(&hub, &shared);
        assert_eq!(hub.parked_counts(), (2, 0));
        let expired = hub.expire(Instant::now() + Duration::from_secs(60));
        assert_eq!(expired.len(), 2);
        for mut client in expired {
            client.close_at_deadline();
        }
        let answer = read_until_closed(&mut slow);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(answer.contains("Connection: close"), "{answer}");
        assert_eq!(read_until_closed(&mut silent), "");
        assert_eq!(shared.slot.requests_served(), 0);
    }

    #[test]
    fn a_lingering_close_after_a_bad_request_waits_parked_not_on_a_thread() {
        let (hub, shared) = (hub(), shared());
        let mut client = parked_connection(&hub);
        client.write_all(b"BAD REQUEST\r\n\r\n").unwrap();
        one_turn(&hub, &shared);
        // Answered, the sending half shut, and parked until the linger's
        // end (a blocking linger would hold the thread for it, then close).
        assert_eq!(hub.held(), 0);
        assert_eq!(hub.parked_counts(), (1, 0), "lingering, parked");
        let answer = read_until_closed(&mut client);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        // What the client sends meanwhile is read and dropped, on a turn
        // that parks it again.
        client.write_all(b"more").unwrap();
        one_turn(&hub, &shared);
        assert_eq!(hub.parked_counts(), (1, 0));
        // At the linger's end the poller closes it, silently.
        for mut client in hub.expire(Instant::now() + Duration::from_secs(60)) {
            client.close_at_deadline();
        }
        assert_eq!(hub.parked_counts(), (0, 0));
        client.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert!(matches!(client.read(&mut buf), Ok(0) | Err(_)));
    }
}
