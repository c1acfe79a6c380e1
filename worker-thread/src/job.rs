//! One connection's turn on a pool thread, and what comes back from it.
//!
//! A connection that had to wait for a thread (every thread was busy when
//! the poller handed it over) and waited at least [`HANG_UP_CHECK_AFTER`]
//! is looked at again when a thread takes it: if its client has hung up
//! meanwhile, it is closed unanswered instead of holding a thread for a
//! request nobody will read (nginx logs such a client as 499). Without this,
//! clients that give up, or a load generator that stops, leave a saturated
//! worker running every abandoned request in its queue before any live one:
//! after a 200-connection `wrk` run against `-w 2 --threads 8` and a 100 ms
//! app, about two seconds of work for one worker's threads. A client that
//! half-closes right after its request is still answered when a thread was
//! free for it.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use runicorn_http::Outcome;

use crate::hangup::HangUpProbe;
use crate::serve::{serve_readable, Client, Shared};

/// How long a queued connection must have waited before a thread asks
/// whether its client is still there. The question costs three system
/// calls; a request that found a thread within a millisecond was not
/// abandoned in a queue, so the common case of a busy but keeping-up
/// worker (short requests, many kept-alive clients) does not pay for it.
pub(crate) const HANG_UP_CHECK_AFTER: Duration = Duration::from_millis(1);

/// A readable connection handed to the pool.
#[derive(Debug)]
pub(crate) struct Job {
    /// The connection.
    pub(crate) client: Client,
    /// When it was handed over, if every thread was busy then (it waits in
    /// the queue, and its client may hang up before a thread takes it).
    pub(crate) queued_at: Option<Instant>,
}

/// A connection back from the pool.
#[derive(Debug)]
pub(crate) struct Returned {
    /// The connection, with any state the driver keeps.
    pub(crate) client: Client,
    /// Idle (park it) or Close (drop it).
    pub(crate) outcome: Outcome,
}

/// Serves `job`'s connection until it is idle or closed, unless it waited
/// in the queue and its client hung up meanwhile.
pub(crate) fn run_job(shared: &Shared, probe: &HangUpProbe, job: Job) -> Returned {
    let Job {
        mut client,
        queued_at,
    } = job;
    let waited = queued_at.is_some_and(|at| at.elapsed() >= HANG_UP_CHECK_AFTER);
    let outcome = if waited && probe.hung_up(client.stream().as_fd()) {
        tracing::debug!(
            "client {} hung up while its request waited for a thread; closing it unanswered",
            client.peer()
        );
        Outcome::Close
    } else {
        serve_readable(shared, &mut client)
    };
    Returned { client, outcome }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    use runicorn_http::Connection;
    use runicorn_worker::{Settings, Shutdown as StopState, Slot};

    use crate::policy::conn_config;
    use crate::stream::Stream;

    fn shared() -> Shared {
        Shared {
            app: Arc::clone(&runicorn_app::builtin::lookup("hello").unwrap().sync),
            slot: Slot::local(),
            shutdown: StopState::new().unwrap(),
            max_requests: 0,
            started: AtomicU64::new(0),
            forwarded: runicorn_http::ForwardedPolicy::default(),
            server_addrs: Vec::new(),
        }
    }

    /// A request sent on a fresh connection, then the client's sending side
    /// shut (`half_close`) or left open.
    fn request(half_close: bool) -> (UnixStream, Client) {
        let (mut client, server) = UnixStream::pair().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        if half_close {
            client.shutdown(Shutdown::Write).unwrap();
        }
        let settings = Settings::default();
        let conn = Client::new(
            Connection::new(Stream::Unix(server), "", conn_config(&settings)),
            0,
        );
        (client, conn)
    }

    fn long_ago() -> Option<Instant> {
        Instant::now().checked_sub(Duration::from_secs(1))
    }

    /// Everything the server sent until it closed (or 5 s passed).
    fn read_all(mut client: UnixStream, returned: Returned) -> String {
        drop(returned);
        let mut text = String::new();
        let _ = client.read_to_string(&mut text);
        text
    }

    #[test]
    fn a_queued_request_whose_client_hung_up_is_not_run() {
        let shared = shared();
        let probe = HangUpProbe::new().unwrap();
        let (client, conn) = request(true);
        let job = Job {
            client: conn,
            queued_at: long_ago(),
        };
        let returned = run_job(&shared, &probe, job);
        assert_eq!(returned.outcome, Outcome::Close);
        assert_eq!(shared.slot.requests_served(), 0, "the app never ran");
        assert_eq!(read_all(client, returned), "", "nothing was answered");
    }

    #[test]
    fn a_queued_request_from_a_live_client_is_answered() {
        let shared = shared();
        let probe = HangUpProbe::new().unwrap();
        let (client, conn) = request(false);
        let job = Job {
            client: conn,
            queued_at: long_ago(),
        };
        let returned = run_job(&shared, &probe, job);
        assert_eq!(returned.outcome, Outcome::Idle);
        assert_eq!(shared.slot.requests_served(), 1);
        assert!(read_all(client, returned).contains("Hello, World!"));
    }

    #[test]
    fn a_half_closing_client_that_did_not_wait_for_a_thread_is_answered() {
        let shared = shared();
        let probe = HangUpProbe::new().unwrap();
        for queued_at in [None, Instant::now().checked_add(Duration::from_secs(3600))] {
            let (client, conn) = request(true);
            let returned = run_job(
                &shared,
                &probe,
                Job {
                    client: conn,
                    queued_at,
                },
            );
            assert!(read_all(client, returned).contains("Hello, World!"));
        }
        assert_eq!(shared.slot.requests_served(), 2);
    }
}
