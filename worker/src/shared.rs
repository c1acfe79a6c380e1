//! [`Shared`]: what every connection, thread, coroutine and task of one
//! worker shares, and the per-request bookkeeping every class does the
//! same way: the scoreboard lane naming the request (so a hung one is
//! named), the count toward `--max-requests` (Gunicorn's "Autorestarting
//! worker after current request."), whether the next request must be the
//! last on its connection, the app's failure that retires the worker, the
//! line naming a request that ended past `--timeout`, and whom to believe
//! about forwarded clients.
//!
//! A request's life in the kit is two calls every class makes, whichever
//! driver runs it: [`Shared::start_request`] when its head is parsed and
//! [`Shared::end_request`] once its response has ended. Whatever is kept
//! per request (the scoreboard with its status and duration counters, the
//! access log, the request id) hangs on those two.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runicorn_app::blocking::{call_app, Endpoint};
use runicorn_app::{AppError, Application, Host};
use std::os::fd::AsRawFd;

use runicorn_http::{
    ConnConfig, ConnState, Exchange, ForwardedPolicy, ProxyPolicy, RequestDone, RequestHead,
    Transport,
};

use crate::access::{request_id, AccessLog, Record, RequestIds};
use crate::class::{past_max_requests, Worker};
use crate::shutdown::Shutdown;
use crate::slot::{RequestGuard, RetireCause, Slot};
use crate::statsd::{self, Statsd};
use crate::tls::{Secured, Tls};
use crate::unanswered::Answering;

/// The worker-wide state every class serves requests from.
pub struct Shared {
    /// The app: its blocking entry, and its async one when it has one.
    pub app: Application,
    /// This worker's scoreboard slot.
    pub slot: Slot,
    /// The worker's stop state.
    pub shutdown: Shutdown,
    /// The connection settings, with the class's keep-alive rule.
    pub config: ConnConfig,
    /// Requests after which the worker retires, jitter applied (0: never).
    max_requests: u64,
    /// Requests started so far.
    started: AtomicU64,
    /// Whom to believe about forwarded clients and schemes.
    forwarded: ForwardedPolicy,
    /// `--proxy-protocol` and `--proxy-allow-from`.
    proxy: ProxyPolicy,
    /// Each listener's address, as apps are told it, by listener index.
    server_addrs: Vec<Arc<str>>,
    /// `--access-logfile`: the line format (the target is the process's,
    /// see [`crate::access`]).
    access: Option<AccessLog>,
    /// `--request-id-header`: the ids this worker makes.
    request_ids: Option<RequestIds>,
    /// `--timeout` (zero: none): a request that ends after it is logged.
    timeout: Duration,
    /// The worker class's name, for the log.
    class: String,
    /// `--statsd-host`'s client, inherited from the master.
    statsd: Option<Arc<Statsd>>,
    /// `--certfile`: the TLS every connection is served under (checked by
    /// the master, inherited with the generation's settings).
    tls: Option<Tls>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("app", &self.app)
            .field("config", &self.config)
            .field("max_requests", &self.max_requests)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// A request that has started: its scoreboard lane (dropping the guard
/// frees it and counts the request served), whether it must be the last
/// on its connection, and when it started. Handed back to
/// [`Shared::end_request`] when its response has ended.
#[derive(Debug)]
pub struct Started {
    /// The request's scoreboard lane.
    pub guard: RequestGuard,
    /// The worker is stopping, or this request reached `--max-requests`:
    /// its response carries `Connection: close`.
    pub last: bool,
}

impl Shared {
    /// The state of `worker`, served with `config` (the class's keep-alive
    /// rule applied to [`Settings::conn_config`](crate::Settings::conn_config)).
    pub fn new(worker: &Worker, config: ConnConfig) -> Shared {
        let request_id_header = config.request_id_header;
        Shared {
            app: worker.app.clone(),
            slot: worker.slot.clone(),
            shutdown: worker.shutdown.clone(),
            config,
            max_requests: worker.max_requests,
            started: AtomicU64::new(0),
            forwarded: worker.settings.forwarded_policy(),
            proxy: worker.settings.proxy_policy(),
            tls: worker.settings.tls.clone(),
            server_addrs: worker
                .listeners
                .iter()
                .map(|listener| Arc::from(listener.server_addr()))
                .collect(),
            // Validated when the settings were read; a format that no
            // longer parses leaves the log off rather than the worker down.
            // On with a target, or with syslog taking access lines
            // (Gunicorn: `accesslog or syslog and not
            // disable_redirect_access_to_syslog`).
            access: (worker.settings.accesslog.is_some()
                || crate::log::syslog::takes(crate::log::syslog::Stream::Access))
            .then(|| {
                AccessLog::new(&worker.settings.access_log_format)
                    .map_err(|err| tracing::error!("access log off: {err}"))
                    .ok()
                    .map(|log| log.with_log_format(worker.settings.log_format, request_id_header))
            })
            .flatten(),
            request_ids: worker
                .settings
                .request_id_header
                .as_ref()
                .map(|_| RequestIds::new()),
            timeout: worker.settings.timeout,
            class: worker.settings.worker_class.clone(),
            statsd: statsd::current(),
        }
    }

    /// A worker's state in this process alone (tests, in-process runs): its
    /// own scoreboard slot and stop state, no `--max-requests`, no trusted
    /// front end, no listener addresses.
    pub fn in_process(app: Application, config: ConnConfig) -> std::io::Result<Shared> {
        Ok(Shared {
            app,
            slot: Slot::local(),
            shutdown: Shutdown::new()?,
            config,
            max_requests: 0,
            started: AtomicU64::new(0),
            forwarded: ForwardedPolicy::default(),
            proxy: ProxyPolicy::default(),
            server_addrs: Vec::new(),
            access: None,
            request_ids: None,
            timeout: Duration::ZERO,
            class: "in-process".to_owned(),
            statsd: None,
            tls: None,
        })
    }

    /// The same, writing access lines in `access`'s format to this
    /// process's target ([`crate::access::open`]) and giving requests ids
    /// when `config` names a request-id field.
    pub fn with_access_log(mut self, access: Option<AccessLog>) -> Shared {
        self.access = access;
        self.request_ids = self.config.request_id_header.map(|_| RequestIds::new());
        self
    }

    /// The same, retiring after `max_requests` (0: never).
    pub fn with_max_requests(mut self, max_requests: u64) -> Shared {
        self.max_requests = max_requests;
        self
    }

    /// Requests started so far.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    /// Whether the next request to start must be the last on its
    /// connection: the worker is stopping, or it reaches `--max-requests`.
    pub fn closing(&self) -> bool {
        past_max_requests(self.started() + 1, self.max_requests) || !self.shutdown.is_running()
    }

    /// A parsed request starts: with `--request-id-header`, it gets its id
    /// (the client's when sane, else a new one) in its head and its
    /// response; then [`Shared::begin`], its lane naming the client `peer`
    /// (`""`: a unix socket). Every class calls this (the blocking driver
    /// through `ConnBookkeeping`).
    pub fn start_request(&self, state: &mut ConnState, peer: &str) -> Started {
        if let Some(ids) = &self.request_ids {
            let mut client = [0u8; request_id::MAX_LEN];
            let kept = state
                .config()
                .request_id_header
                .and_then(|name| state.head().header(name))
                .filter(|value| request_id::is_sane(value))
                .map(|value| {
                    client[..value.len()].copy_from_slice(value);
                    value.len()
                });
            match kept {
                Some(len) => state.set_request_id(&client[..len]),
                None => state.set_request_id(&ids.next()),
            }
        }
        self.begin(state.head(), peer)
    }

    /// The request has ended (its response is complete or cut short; it
    /// may still be buffered): it is counted in the scoreboard slot (served,
    /// its status class and duration: a few relaxed atomic adds, no
    /// allocation) and its lane freed; a request that ran past `--timeout`
    /// is named again (the master named it as it passed the limit); its
    /// access line is written, and with `--statsd-host` Gunicorn's
    /// per-request metrics are sent (three datagrams, never waited on).
    pub fn end_request(&self, started: Started, done: &RequestDone<'_>) {
        let elapsed = started.guard.finish(done.status);
        if !self.timeout.is_zero() && elapsed > self.timeout {
            self.log_overrun(done, elapsed);
        }
        if let Some(client) = &self.statsd {
            client.request(done.status, elapsed);
        }
        if let Some(access) = &self.access {
            let scheme = if access.format().needs_scheme() {
                self.forwarded
                    .resolve(done.head, done.peer)
                    .map_or(self.forwarded.own_scheme().as_str(), |forwarded| {
                        forwarded.scheme.as_str()
                    })
            } else {
                self.forwarded.own_scheme().as_str()
            };
            access.log(&Record {
                done,
                elapsed,
                pid: access.pid(),
                scheme,
            });
        }
    }

    #[cold]
    fn log_overrun(&self, done: &RequestDone<'_>, age: Duration) {
        let head = done.head;
        tracing::warn!(
            "Request \"{} {} {}\" from {} on {} {} worker (pid: {}) ended after {:.1}s, past --timeout {}s",
            head.method,
            head.target,
            head.version.as_str(),
            client(done.peer),
            crate::class::article(&self.class),
            self.class,
            std::process::id(),
            age.as_secs_f64(),
            self.timeout.as_secs_f64()
        );
    }

    /// Counts a request from `peer` as started and gives it a scoreboard
    /// lane named by its request line and client. The request reaching
    /// `--max-requests` starts the graceful stop (requests racing it on
    /// other threads learn it when their response starts).
    pub fn begin(&self, head: &RequestHead, peer: &str) -> Started {
        let count = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        if count == self.max_requests {
            tracing::info!("Autorestarting worker after current request.");
            self.slot.note_retiring(RetireCause::MaxRequests);
            self.shutdown.request_graceful();
        }
        let last = past_max_requests(count, self.max_requests) || !self.shutdown.is_running();
        let guard = self
            .slot
            .begin_request_from(&[&head.method, &head.target, head.version.as_str()], peer);
        Started { guard, last }
    }

    /// The address apps are told a connection on listener `listener`
    /// arrived on (`""` when unknown).
    pub fn server_addr(&self, listener: usize) -> &Arc<str> {
        static UNKNOWN: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        self.server_addrs
            .get(listener)
            .unwrap_or_else(|| UNKNOWN.get_or_init(|| Arc::from("")))
    }

    /// The TLS connections are served under, if any (the async class
    /// hands its config to tokio-rustls).
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// An accepted socket as the blocking driver serves it: under TLS when
    /// the worker serves TLS, its requests listed for a killed worker's
    /// answer only when plain (see [`crate::unanswered`]). Where a class
    /// starts a connection's transport.
    pub fn transport<S: Transport + AsRawFd>(
        &self,
        socket: S,
    ) -> std::io::Result<Answering<Secured<S>>> {
        crate::tls::client_transport(socket, self.tls.as_ref())
    }

    /// Whom to believe about forwarded clients and schemes.
    pub fn forwarded(&self) -> &ForwardedPolicy {
        &self.forwarded
    }

    /// `--proxy-protocol` and `--proxy-allow-from`: what a connection's
    /// first bytes must be (see [`crate::proxy`]).
    pub fn proxy(&self) -> &ProxyPolicy {
        &self.proxy
    }

    /// Sets `--proxy-protocol` and `--proxy-allow-from` (in-process runs).
    pub fn with_proxy(mut self, proxy: ProxyPolicy) -> Shared {
        self.proxy = proxy;
        self
    }

    /// What an app is told of listener `listener`, for the blocking glue.
    pub fn endpoint(&self, listener: usize) -> Endpoint<'_> {
        Endpoint {
            server_addr: self.server_addr(listener),
            forwarded: &self.forwarded,
        }
    }

    /// An app call ended: a panic retires the worker once its in-flight
    /// requests are answered (the app's state may be broken).
    pub fn app_returned(&self, result: &Result<(), AppError>) {
        if result.as_ref().is_err_and(|err| err.panicked) {
            self.slot.note_retiring(RetireCause::Panic);
            self.shutdown.retire_after_panic();
        }
    }

    /// Runs the app's blocking entry on one request of the blocking driver,
    /// with `host`'s waits. (A worker that begins retiring while the app
    /// runs still answers, with `Connection: close`: the connection state
    /// watches [`Shutdown::retirement`].)
    pub fn call_app(&self, exchange: &mut Exchange<'_>, host: &dyn Host, listener: usize) {
        let result = call_app(&*self.app.sync, exchange, host, &self.endpoint(listener));
        self.app_returned(&result);
    }
}

/// A client as the log names it: its address, or the unix socket's.
pub fn client(peer: &str) -> &str {
    if peer.is_empty() {
        "a unix socket client"
    } else {
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_http::{RequestHead, Version};

    fn head() -> RequestHead {
        RequestHead {
            method: "GET".into(),
            target: "/slow".into(),
            version: Version::Http11,
            ..RequestHead::default()
        }
    }

    fn shared() -> Shared {
        let app = runicorn_app::builtin::lookup("hello").unwrap();
        Shared::in_process(app, ConnConfig::default()).unwrap()
    }

    #[test]
    fn a_started_request_is_named_in_the_scoreboard_and_counted() {
        let shared = shared();
        let started = shared.begin(&head(), "127.0.0.1:1");
        assert!(!started.last);
        assert_eq!(
            shared.slot.oldest_request().unwrap().1,
            "GET /slow HTTP/1.1"
        );
        let head = head();
        shared.end_request(
            started,
            &RequestDone {
                head: &head,
                peer: "",
                response_fields: &runicorn_http::KeptFields::default(),
                status: 503,
                body_bytes: 0,
                keep_alive: false,
            },
        );
        assert_eq!(shared.slot.requests_served(), 1);
        assert_eq!(shared.slot.counters().status_classes, [0, 0, 0, 0, 1]);
        assert_eq!(shared.started(), 1);
    }

    #[test]
    fn the_request_reaching_max_requests_is_the_last_and_retires_the_worker() {
        let shared = shared().with_max_requests(2);
        assert!(!shared.closing());
        assert!(!shared.begin(&head(), "127.0.0.1:1").last);
        assert!(shared.closing(), "the next one reaches the limit");
        assert!(shared.shutdown.is_running());
        assert!(shared.begin(&head(), "127.0.0.1:1").last);
        assert!(!shared.shutdown.is_running());
        assert!(shared.begin(&head(), "127.0.0.1:1").last);
    }

    #[test]
    fn a_stopping_worker_closes_after_the_request() {
        let shared = shared();
        shared.shutdown.request_graceful();
        assert!(shared.closing());
        assert!(shared.begin(&head(), "127.0.0.1:1").last);
    }

    #[test]
    fn a_panic_retires_the_worker_and_an_error_does_not() {
        let shared = shared();
        shared.app_returned(&Err(AppError::new("broken")));
        assert!(shared.shutdown.is_running());
        let mut panicked = AppError::new("boom");
        panicked.panicked = true;
        shared.app_returned(&Err(panicked));
        assert!(!shared.shutdown.is_running());
    }

    #[test]
    fn an_unknown_listener_has_no_address() {
        assert_eq!(&**shared().server_addr(3), "");
    }
}
