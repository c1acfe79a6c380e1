//! One dispatch of a readable connection on a pool thread: the blocking
//! driver in `UntilIdle` mode runs every request that has arrived (pipelined
//! ones included, in order) and hands the connection back when nothing more
//! is buffered. The scoreboard learns when each request starts and ends;
//! `--max-requests` marks the request that starts as the last on its
//! connection (`Connection: close`), and so does a retiring worker, for
//! every response that starts once it retires (the connection state
//! watches `Shutdown::retirement`, set when the poller admits it).

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runicorn_app::blocking::ThreadHost;
use runicorn_http::{Connection, Exchange, Outcome, ServeMode};
use std::os::fd::AsFd;
use std::time::Instant;

use runicorn_worker::proxy::{self, Attempt, HeaderRead, PendingHeader};
use runicorn_worker::tls::Secured;
use runicorn_worker::{Answering, ConnBookkeeping, Shared};

use crate::stream::Stream;

/// A client's transport: the socket, under TLS when the worker serves TLS.
pub(crate) type ClientStream = Answering<Secured<Stream>>;

/// A client connection with its driver state (buffers, pipelined bytes)
/// and the listener it arrived on. Derefs to the driver's [`Connection`].
/// The connection is boxed: a `Client` moves in and out of the parked set
/// once per request, and the driver's state is hundreds of bytes.
#[derive(Debug)]
pub(crate) struct Client {
    connection: Box<Connection<ClientStream>>,
    /// The index of the listener that accepted it.
    listener: usize,
    /// Its PROXY protocol header while it is due (if the worker reads
    /// one): its first turns read it.
    header: Option<HeaderDue>,
}

/// A connection's PROXY header still to come.
#[derive(Debug)]
struct HeaderDue {
    /// When the connection was accepted: the head deadline runs from it.
    accepted: Instant,
    /// That deadline, once a turn has worked it out.
    deadline: Option<Instant>,
    /// The header's bytes taken so far.
    pending: PendingHeader,
}

impl Client {
    /// A connection accepted on listener `listener`.
    pub(crate) fn new(connection: Connection<ClientStream>, listener: usize) -> Client {
        Client {
            connection: Box::new(connection),
            listener,
            header: Some(HeaderDue {
                accepted: Instant::now(),
                deadline: None,
                pending: PendingHeader::default(),
            }),
        }
    }

    /// Until when a connection back with [`Outcome::Waiting`] may stay
    /// parked: its PROXY header's deadline while the header is due, else
    /// the connection's own (`Connection::park_deadline`).
    pub(crate) fn park_deadline(&self) -> Option<Instant> {
        match &self.header {
            Some(due) => due.deadline,
            None => self.connection.park_deadline(),
        }
    }

    /// Closes a connection still parked at its deadline: one whose PROXY
    /// header was being read and never completed quietly (what came taken,
    /// a FIN), else as `Connection::close_at_deadline` does (a connection
    /// no thread has taken yet has no header deadline worked out: nothing
    /// of a header was read, and it closes as one that sent nothing).
    pub(crate) fn close_at_deadline(&mut self) {
        match &self.header {
            Some(due) if due.deadline.is_some() => {
                proxy::expired(self.connection.stream().as_fd(), self.connection.peer());
            }
            _ => self.connection.close_at_deadline(),
        }
    }

    /// Whether, at its deadline, this parked connection has bytes (or its
    /// client's end) no thread has read yet. Then the wait was the
    /// server's, not the client's: every thread was busy while the bytes
    /// sat in the socket (a queue behind long requests, a stop draining
    /// them), and closing would drop a request the client sent in time.
    /// Such a connection is served instead: a thread takes it as soon as
    /// one is free and judges a head by its own deadline (a slow client's
    /// partial head still gets its 408 then). A lingering close ends at its
    /// deadline whatever came.
    pub(crate) fn sent_while_parked(&self) -> bool {
        if self.connection.is_lingering() {
            return false;
        }
        let mut fds = [PollFd::new(
            self.connection.stream().as_fd(),
            PollFlags::POLLIN,
        )];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1..))
    }

    /// Reads the PROXY header, if one is due: `None` once it is read (or
    /// none is asked for) and requests may be served, else how the turn
    /// ends (parked for the rest of the header, or closed).
    fn read_header(&mut self, shared: &Shared) -> Option<Outcome> {
        let policy = shared.proxy();
        let due = self.header.as_mut().filter(|_| policy.is_on());
        let Some(due) = due else {
            self.header = None;
            return None;
        };
        let deadline = proxy::header_deadline(&shared.config, due.accepted);
        due.deadline = deadline;
        let connection = &mut self.connection;
        loop {
            let fd = connection.stream().as_fd();
            let past = || deadline.is_some_and(|deadline| Instant::now() >= deadline);
            match due.pending.attempt(fd, connection.peer(), policy) {
                Attempt::Done(HeaderRead::Serve(header)) => {
                    if let Some(header) = header {
                        connection.set_proxied(&header);
                    }
                    self.header = None;
                    return None;
                }
                Attempt::Done(HeaderRead::Close) => return Some(Outcome::Close),
                // Nothing unread: parked (no thread held) until more comes
                // or the deadline, when the poller closes it.
                Attempt::Wait if !past() => return Some(Outcome::Waiting),
                // A signature split over writes stays unread (the socket
                // stays readable, so parking would spin): looked at again
                // on this thread, up to the deadline.
                Attempt::Pause if proxy::pause_with(deadline, std::thread::sleep) => {}
                Attempt::Wait | Attempt::Pause => {
                    proxy::expired(fd, connection.peer());
                    return Some(Outcome::Close);
                }
            }
        }
    }
}

impl std::ops::Deref for Client {
    type Target = Connection<ClientStream>;

    fn deref(&self) -> &Connection<ClientStream> {
        &self.connection
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Connection<ClientStream> {
        &mut self.connection
    }
}

/// Serves every request buffered or arriving on `client` (which is
/// readable) until it is idle or closed.
pub(crate) fn serve_readable(shared: &Shared, client: &mut Client) -> Outcome {
    // The PROXY header, before any request.
    if let Some(outcome) = client.read_header(shared) {
        return outcome;
    }
    let listener = client.listener;
    let mut bookkeeping = ConnBookkeeping::new(shared);
    let mut handler =
        |exchange: &mut Exchange<'_>| shared.call_app(exchange, &ThreadHost, listener);
    client
        .connection
        .serve(&mut handler, &mut bookkeeping, ServeMode::UntilIdle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use std::sync::Arc;

    use runicorn_app::App;
    use runicorn_worker::{Settings, Shutdown};

    use crate::policy::conn_config;

    fn shared(max_requests: u64) -> Shared {
        let hello = runicorn_app::builtin::lookup("hello").unwrap();
        Shared::in_process(hello, conn_config(&Settings::default()))
            .unwrap()
            .with_max_requests(max_requests)
    }

    fn pair() -> (UnixStream, Client) {
        let (client, server) = UnixStream::pair().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let settings = Settings::default();
        (
            client,
            Client::new(
                Connection::new(
                    Answering::new(Secured::Plain(Stream::Unix(server))),
                    "",
                    conn_config(&settings),
                ),
                0,
            ),
        )
    }

    /// Reads until `count` responses (ends of hello bodies) have arrived.
    fn read_responses(client: &mut UnixStream, count: usize) -> String {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while text.matches("Hello, World!").count() < count {
            let read = client.read(&mut buf).unwrap();
            assert!(read > 0, "closed early: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..read]));
        }
        text
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn pipelined_requests_are_answered_then_the_connection_is_idle() {
        let shared = shared(0);
        let (mut client, mut conn) = pair();
        client.write_all(&GET.repeat(3)).unwrap();
        assert_eq!(serve_readable(&shared, &mut conn), Outcome::Idle);
        let text = read_responses(&mut client, 3);
        assert!(!text.contains("close"), "{text}");
        assert_eq!(shared.slot.requests_served(), 3);
        assert_eq!(shared.slot.in_flight(), 0);
        // The parked connection serves its next request on the next dispatch.
        client.write_all(GET).unwrap();
        assert_eq!(serve_readable(&shared, &mut conn), Outcome::Idle);
        read_responses(&mut client, 1);
        assert_eq!(conn.requests(), 4);
    }

    #[test]
    fn the_request_reaching_max_requests_closes_and_retires_the_worker() {
        let shared = shared(2);
        let (mut client, mut conn) = pair();
        client.write_all(GET).unwrap();
        assert_eq!(serve_readable(&shared, &mut conn), Outcome::Idle);
        assert!(shared.shutdown.is_running());
        client.write_all(GET).unwrap();
        assert_eq!(serve_readable(&shared, &mut conn), Outcome::Close);
        let text = read_responses(&mut client, 2);
        assert_eq!(text.matches("Connection: close").count(), 1, "{text}");
        assert!(!shared.shutdown.is_running());
    }

    #[test]
    fn max_requests_counts_with_keep_alive_off() {
        let shared = shared(2);
        let settings = Settings {
            keepalive: Duration::ZERO,
            ..Settings::default()
        };
        for _ in 0..2 {
            let (mut client, server) = UnixStream::pair().unwrap();
            let mut conn = Client::new(
                Connection::new(
                    Answering::new(Secured::Plain(Stream::Unix(server))),
                    "",
                    conn_config(&settings),
                ),
                0,
            );
            client.write_all(GET).unwrap();
            assert_eq!(serve_readable(&shared, &mut conn), Outcome::Close);
        }
        assert!(!shared.shutdown.is_running());
    }

    #[test]
    fn a_stopping_worker_still_answers_a_request_that_arrived_on_a_kept_connection() {
        let shared = shared(0);
        let (mut client, mut conn) = pair();
        conn.watch_retirement(shared.shutdown.retirement());
        client.write_all(GET).unwrap();
        assert_eq!(serve_readable(&shared, &mut conn), Outcome::Idle);
        shared.shutdown.request_graceful();
        client.write_all(GET).unwrap();
        assert_eq!(serve_readable(&shared, &mut conn), Outcome::Close);
        let text = read_responses(&mut client, 2);
        assert_eq!(text.matches("Connection: close").count(), 1, "{text}");
    }

    /// Answers like hello, but the worker is told to stop while it runs.
    struct StopsTheWorker(Shutdown);

    impl App for StopsTheWorker {
        fn call(&self, call: &mut dyn runicorn_app::Call) -> Result<(), runicorn_app::AppError> {
            self.0.request_graceful();
            call.start_response(200, &[("Content-Length", b"13")])?;
            call.write(b"Hello, World!")?;
            Ok(())
        }
    }

    #[test]
    fn a_response_started_after_the_stop_began_closes_the_connection() {
        let mut shared = shared(0);
        shared.app.sync = Arc::new(StopsTheWorker(shared.shutdown.clone()));
        let (mut client, mut conn) = pair();
        conn.watch_retirement(shared.shutdown.retirement());
        client.write_all(GET).unwrap();
        assert_eq!(serve_readable(&shared, &mut conn), Outcome::Close);
        let text = read_responses(&mut client, 1);
        assert!(text.contains("Connection: close"), "{text}");
    }

    #[test]
    fn an_unread_body_is_drained_before_the_next_pipelined_request() {
        let shared = shared(0);
        let (mut client, mut conn) = pair();
        // The body looks like a request: parsing it as one would answer 3 times.
        let body = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
        let post = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        client.write_all(post.as_bytes()).unwrap();
        client.write_all(GET).unwrap();
        assert_eq!(serve_readable(&shared, &mut conn), Outcome::Idle);
        read_responses(&mut client, 2);
        assert_eq!(shared.slot.requests_served(), 2);
    }
}
