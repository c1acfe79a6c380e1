//! The validated settings the master and every worker class read.
//!
//! This is stage two of configuration (ripgrep's split): plain, already
//! validated values. Stage one — the settings table, the TOML file,
//! `RUNICORN_CMD_ARGS`, the command line and their precedence — lives in
//! `cli/src/settings/`, which builds one of these. Field names are
//! Gunicorn's setting keys, so `docs/settings.md` and this struct read alike.

use std::path::PathBuf;
use std::time::Duration;

use runicorn_http::{
    default_secure_scheme_headers, ConnConfig, ForwardedPolicy, Limits, ProxyMode, ProxyPolicy,
    Scheme,
};

use crate::tls::{CertReqs, Tls, TlsOptions, TlsVersions};

/// Every setting, with Gunicorn's key as its field name.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    // --- app and server mechanics
    /// The app to serve, `module:variable` (`builtin:hello`, `myapp:app`).
    pub app: String,
    /// `-c/--config`: the TOML file the settings came from, if any.
    pub config: Option<PathBuf>,
    /// `--chdir`: changed to before the app loads.
    pub chdir: Option<PathBuf>,
    /// `--app-path`: extra directories searched for app libraries.
    pub app_path: Vec<PathBuf>,
    /// `--pythonpath`: directories put on Python's `sys.path` (Python apps).
    pub pythonpath: Vec<PathBuf>,
    /// `--preload`: load the app in the master before forking.
    pub preload_app: bool,
    /// `--reload`: roll the workers when the app library or config changes.
    pub reload: bool,
    /// `--reload-extra-file`: more files that trigger a reload.
    pub reload_extra_files: Vec<PathBuf>,
    /// `-e/--env KEY=VALUE`: environment variables set for the workers.
    pub raw_env: Vec<(String, String)>,
    /// `--env-name`: the `[env.NAME]` section of the config file in force.
    pub env_name: Option<String>,

    // --- server socket
    /// `-b/--bind`: `HOST:PORT`, `[v6]:PORT`, `unix:PATH`, `fd://N`.
    pub bind: Vec<String>,
    /// `--backlog`: the listen queue length.
    pub backlog: i32,
    /// `--reuse-port`: set `SO_REUSEPORT` on TCP listeners.
    pub reuse_port: bool,
    /// `--forwarded-allow-ips`: front-end addresses and CIDR networks
    /// trusted to set `X-Forwarded-*` headers (`*` trusts all).
    pub forwarded_allow_ips: Vec<String>,
    /// `secure_scheme_headers`: fields (and the exact value) by which a
    /// trusted front end says the client used https.
    pub secure_scheme_headers: Vec<(String, String)>,
    /// `--proxy-protocol`: the PROXY protocol header a connection must (v1,
    /// v2) or may (auto) start with; off reads none.
    pub proxy_protocol: ProxyMode,
    /// `--proxy-allow-from`: the peers (addresses, CIDR networks, `*`)
    /// that may send a PROXY header.
    pub proxy_allow_ips: Vec<String>,
    /// `--forwarder-headers`: header names with `_` a trusted front end
    /// may send into a WSGI app's environ (`SCRIPT_NAME`), upper case.
    pub forwarder_headers: Vec<String>,

    // --- TLS (Gunicorn's names; see `crate::tls`)
    /// `--certfile`: the server's certificate chain, PEM.
    pub certfile: Option<PathBuf>,
    /// `--keyfile`: its private key, PEM.
    pub keyfile: Option<PathBuf>,
    /// `--ca-certs`: the CA bundle client certificates are checked against.
    pub ca_certs: Option<PathBuf>,
    /// `--cert-reqs`: whether clients must present a certificate.
    pub cert_reqs: CertReqs,
    /// `--ciphers`: the cipher suites (rustls names; empty: the defaults).
    pub ciphers: Vec<String>,
    /// `--ssl-version`: TLS 1.2 and 1.3, or one of them.
    pub ssl_version: TlsVersions,
    /// The files above, read and checked by the master ([`Tls::load`]) at
    /// start and on HUP; `None` while not loaded or when TLS is off.
    pub tls: Option<Tls>,

    // --- worker processes
    /// `-w/--workers`.
    pub workers: usize,
    /// `-k/--worker-class`: `sync`, `gthread`, `green`, `async`, or `lib:Symbol`.
    pub worker_class: String,
    /// `--threads`: pool threads (gthread), may workers (green), runtimes (async).
    pub threads: usize,
    /// `--worker-connections`: connections one worker holds at once.
    pub worker_connections: usize,
    /// `--max-requests`: recycle a worker after this many requests (0: never).
    pub max_requests: u64,
    /// `--max-requests-jitter`: a worker's limit is `max_requests + rand(0..=jitter)`.
    pub max_requests_jitter: u64,
    /// `--max-worker-memory`: a worker whose resident set passes this many
    /// MiB (each worker's own threshold drawn in 90-100% of it) retires
    /// gracefully; 0: no limit.
    pub max_worker_memory: u64,
    /// `-t/--timeout`: a silent worker is killed after this (zero: never).
    pub timeout: Duration,
    /// `--graceful-timeout`: how long a stopping worker may finish requests.
    pub graceful_timeout: Duration,
    /// `--keep-alive`: how long an idle keep-alive connection is kept.
    pub keepalive: Duration,
    /// `--green-stack-size`: coroutine stack size in bytes (green class).
    pub green_stack_size: usize,
    /// `--blocking-threads`: the pool of OS threads the async class runs
    /// apps without an async entry on, and the green class apps that block
    /// their thread; it bounds their requests in flight per worker (see
    /// [`crate::blocking_pool`]).
    pub blocking_threads: usize,

    // --- security limits (Gunicorn's names)
    /// `--limit-request-line`: longest request line; 0 means unlimited.
    pub limit_request_line: usize,
    /// `--limit-request-fields`: most header fields in a request.
    pub limit_request_fields: usize,
    /// `--limit-request-field_size`: longest header field; 0 means unlimited.
    pub limit_request_field_size: usize,
    /// `--limit-request-body`: largest request body in bytes.
    pub limit_request_body: u64,
    /// `--header-timeout`: the total deadline for a request head, from the
    /// accept (a new connection) or the first byte (a kept-alive one);
    /// zero: none.
    pub header_timeout: Duration,
    /// `--body-timeout`: the longest wait for the next body bytes; `None`:
    /// [`Settings::client_timeout`]; zero: none.
    pub body_timeout: Option<Duration>,
    /// `--body-min-rate`: the least average body rate in bytes a second
    /// after `body_min_rate_grace`; zero: off.
    pub body_min_rate: u64,
    /// `--body-min-rate-grace`: the waiting time a body gets before
    /// `body_min_rate` applies.
    pub body_min_rate_grace: Duration,
    /// `--write-timeout`: the longest a write may go without progress;
    /// `None`: [`Settings::client_timeout`]; zero: none.
    pub write_timeout: Option<Duration>,

    // --- server mechanics
    /// `-p/--pid`: the pidfile.
    pub pidfile: Option<PathBuf>,
    /// `-m/--umask`: the workers' file mode mask, and the unix sockets'
    /// (`0777 & !umask`) when given; unset, workers' mask is `0`
    /// (Gunicorn's) and unix sockets are made `0660`
    /// ([`Settings::unix_socket_umask`]).
    pub umask: Option<u32>,
    /// `-u/--user`: the user workers run as (name or uid).
    pub user: Option<String>,
    /// `-g/--group`: the group workers run as (name or gid).
    pub group: Option<String>,
    /// `--initgroups`: set the user's supplementary groups in workers.
    pub initgroups: bool,
    /// `-D/--daemon`.
    pub daemon: bool,
    /// `--control-socket`: the master's control socket, for `runicorn ctl`.
    pub control_socket: Option<PathBuf>,

    // --- logging
    /// `--log-level`: debug, info, warning, error, critical.
    pub loglevel: String,
    /// `--error-logfile`/`--log-file`: `-` is stderr.
    pub errorlog: String,
    /// `--capture-output`: stdout and stderr go to the error log file.
    pub capture_output: bool,
    /// `--log-format`: Gunicorn's text lines or one JSON object per line.
    pub log_format: crate::log::LogFormat,
    /// `--log-syslog`: send the logs to syslog too.
    pub syslog: bool,
    /// `--log-syslog-to`: `udp://HOST:PORT`, `tcp://HOST:PORT`, `unix://PATH[#dgram|#stream]`.
    pub syslog_addr: String,
    /// `--log-syslog-prefix`: the program name is `runicorn.PREFIX`.
    pub syslog_prefix: Option<String>,
    /// `--log-syslog-facility`: `user`, `daemon`, `local0`..`local7`, ...
    pub syslog_facility: String,
    /// `--disable-redirect-access-to-syslog`: access lines stay out of syslog.
    pub disable_redirect_access_to_syslog: bool,
    /// `--access-logfile`: `-` is stdout; `None`, no access log.
    pub accesslog: Option<String>,
    /// `--access-logformat`: Gunicorn's `access_log_format`.
    pub access_log_format: String,
    /// `--request-id-header`: the request field carrying a request's id,
    /// kept from the client when sane, else made; `None`, no ids.
    pub request_id_header: Option<String>,
    /// `--metrics-bind`: where the master serves `/metrics` (`HOST:PORT`).
    pub metrics_bind: Option<String>,
    /// `--statsd-host`: the StatsD server (`HOST:PORT` or `unix://PATH`).
    pub statsd_host: Option<String>,
    /// `--statsd-prefix`: put before every StatsD metric's name.
    pub statsd_prefix: String,
    /// `--dogstatsd-tags`: `tag1:value1,tag2` appended to every metric.
    pub dogstatsd_tags: String,
    /// `-n/--name`: the process title suffix.
    pub proc_name: Option<String>,

    // --- server hooks, `module:function` (issue 7)
    /// Gunicorn's server hooks by name (`post_fork` = `myapp:post_fork`).
    pub hooks: Vec<(String, String)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            app: String::new(),
            config: None,
            chdir: None,
            app_path: Vec::new(),
            pythonpath: Vec::new(),
            preload_app: false,
            reload: false,
            reload_extra_files: Vec::new(),
            raw_env: Vec::new(),
            env_name: None,
            bind: vec!["127.0.0.1:8000".to_owned()],
            backlog: 2048,
            reuse_port: false,
            forwarded_allow_ips: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
            secure_scheme_headers: default_secure_scheme_headers(),
            proxy_protocol: ProxyMode::Off,
            proxy_allow_ips: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
            forwarder_headers: vec!["SCRIPT_NAME".to_owned(), "PATH_INFO".to_owned()],
            certfile: None,
            keyfile: None,
            ca_certs: None,
            cert_reqs: CertReqs::None,
            ciphers: Vec::new(),
            ssl_version: TlsVersions::Both,
            tls: None,
            workers: 1,
            worker_class: "sync".to_owned(),
            threads: 1,
            worker_connections: 1000,
            max_requests: 0,
            max_requests_jitter: 0,
            max_worker_memory: 0,
            timeout: Duration::from_secs(30),
            graceful_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(2),
            green_stack_size: 64 * 1024,
            blocking_threads: 40,
            limit_request_line: 4094,
            limit_request_fields: 100,
            limit_request_field_size: 8190,
            limit_request_body: 1 << 30,
            header_timeout: Duration::from_secs(10),
            body_timeout: None,
            body_min_rate: 500,
            body_min_rate_grace: Duration::from_secs(20),
            write_timeout: None,
            pidfile: None,
            umask: None,
            user: None,
            group: None,
            initgroups: false,
            daemon: false,
            control_socket: None,
            loglevel: "info".to_owned(),
            errorlog: "-".to_owned(),
            log_format: crate::log::LogFormat::Text,
            syslog: false,
            syslog_addr: "udp://localhost:514".to_owned(),
            syslog_prefix: None,
            syslog_facility: "user".to_owned(),
            disable_redirect_access_to_syslog: false,
            capture_output: false,
            accesslog: None,
            access_log_format: crate::access::GUNICORN_DEFAULT.to_owned(),
            request_id_header: None,
            metrics_bind: None,
            statsd_host: None,
            statsd_prefix: String::new(),
            dogstatsd_tags: String::new(),
            proc_name: None,
            hooks: Vec::new(),
        }
    }
}

impl Settings {
    /// The default of `--body-timeout` and `--write-timeout`: half of
    /// `--timeout`, so that a sync worker stuck on a slow client fails the
    /// read or write before the master's heartbeat check kills it; 30 s
    /// when the timeout is disabled.
    pub fn client_timeout(&self) -> Duration {
        if self.timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            (self.timeout / 2).max(Duration::from_millis(500))
        }
    }

    /// The head deadline of a class whose worker does not beat while it
    /// waits for a head (sync): `--header-timeout`, cut to
    /// [`Settings::client_timeout`] (half of `--timeout`) when it is longer
    /// or none, so that the worker answers 408 (or closes) before the
    /// master kills it for silence. Without `--timeout`, as set.
    pub fn header_timeout_without_beats(&self) -> Duration {
        if self.timeout.is_zero() {
            return self.header_timeout;
        }
        let bound = self.client_timeout();
        if self.header_timeout.is_zero() {
            bound
        } else {
            self.header_timeout.min(bound)
        }
    }

    /// A connection's settings for a worker class: Gunicorn's request
    /// limits, `--keep-alive` as the idle timeout, and the deadlines of
    /// slow and greedy clients (`--header-timeout`, `--body-timeout`,
    /// `--body-min-rate`, `--write-timeout`). Whether a connection is kept
    /// alive at all is the class's rule.
    pub fn conn_config(&self, keep_alive: bool) -> ConnConfig {
        let limits = Limits::from_settings(
            self.limit_request_line,
            self.limit_request_fields,
            self.limit_request_field_size,
            self.limit_request_body,
        );
        let mut config = ConnConfig::new(limits);
        config.keep_alive = keep_alive;
        config.keepalive_timeout = self.keepalive;
        config.header_timeout = self.header_timeout;
        config.body_timeout = self.body_timeout.unwrap_or_else(|| self.client_timeout());
        config.body_min_rate = self.body_min_rate;
        config.body_min_rate_grace = self.body_min_rate_grace;
        config.write_timeout = self.write_timeout.unwrap_or_else(|| self.client_timeout());
        // Fixed for the worker's life: leaked once per connection setting
        // built (a worker builds one or two), so `ConnConfig` stays `Copy`.
        if self.accesslog.is_some() {
            if let Ok(format) = crate::access::AccessFormat::parse(&self.access_log_format) {
                if !format.response_fields().is_empty() {
                    config.kept_response_fields = format.response_fields().to_vec().leak();
                }
            }
        }
        config.request_id_header = self
            .request_id_header
            .as_deref()
            .map(|name| &*name.to_owned().leak());
        config
    }
}

impl Settings {
    /// The mask a worker process runs under: `--umask`, else `0`
    /// (Gunicorn's default).
    pub fn worker_umask(&self) -> u32 {
        self.umask.unwrap_or(0)
    }

    /// The mask unix sockets are bound under: `--umask` when given (a
    /// socket file is `0777 & !umask`, as Gunicorn makes it), else `0o117`,
    /// so the socket is `rw-rw----`: its owner and group (given to `-u` and
    /// `-g`) connect, other local users do not (Gunicorn's default umask
    /// `0` makes it world-connectable).
    pub fn unix_socket_umask(&self) -> u32 {
        self.umask.unwrap_or(0o117)
    }

    /// Whom a worker believes about forwarded clients and schemes:
    /// `forwarded_allow_ips` and `secure_scheme_headers`, validated in stage
    /// one (an entry that is not an address or network trusts nobody).
    /// Over TLS the scheme is `https` unless a trusted field says otherwise.
    pub fn forwarded_policy(&self) -> ForwardedPolicy {
        let policy = ForwardedPolicy::new(&self.forwarded_allow_ips, &self.secure_scheme_headers)
            .unwrap_or_else(|_| {
                ForwardedPolicy::new::<&str>(&[], &self.secure_scheme_headers)
                    .expect("no addresses to parse")
            });
        if self.tls.is_some() {
            policy.with_own_scheme(Scheme::Https)
        } else {
            policy
        }
    }

    /// Reads and checks the TLS files these settings name, into
    /// [`Settings::tls`] (the master does, at start and on HUP).
    pub fn load_tls(&mut self) -> Result<(), crate::tls::TlsError> {
        self.tls = Tls::load(&TlsOptions {
            certfile: self.certfile.as_deref(),
            keyfile: self.keyfile.as_deref(),
            ca_certs: self.ca_certs.as_deref(),
            cert_reqs: self.cert_reqs,
            ciphers: &self.ciphers,
            versions: self.ssl_version,
        })?;
        Ok(())
    }

    /// `--proxy-protocol` and `--proxy-allow-from`, validated in stage one
    /// (an entry that is not an address or network allows nobody).
    pub fn proxy_policy(&self) -> ProxyPolicy {
        ProxyPolicy::new(self.proxy_protocol, &self.proxy_allow_ips).unwrap_or_else(|_| {
            ProxyPolicy::new::<&str>(self.proxy_protocol, &[]).expect("no addresses to parse")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_config_carries_the_limits_and_the_deadlines() {
        let settings = Settings {
            timeout: Duration::from_secs(10),
            ..Settings::default()
        };
        let config = settings.conn_config(true);
        assert!(config.keep_alive);
        assert_eq!(config.keepalive_timeout, settings.keepalive);
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        // Half of --timeout unless set.
        assert_eq!(config.body_timeout, Duration::from_secs(5));
        assert_eq!(config.write_timeout, Duration::from_secs(5));
        assert_eq!(
            (config.body_min_rate, config.body_min_rate_grace),
            (500, Duration::from_secs(20))
        );
        let set = Settings {
            header_timeout: Duration::ZERO,
            body_timeout: Some(Duration::from_secs(3)),
            body_min_rate: 0,
            body_min_rate_grace: Duration::from_secs(4),
            write_timeout: Some(Duration::ZERO),
            ..settings.clone()
        };
        let config = set.conn_config(true);
        assert_eq!(config.header_timeout, Duration::ZERO);
        assert_eq!(config.body_timeout, Duration::from_secs(3));
        assert_eq!(
            (config.body_min_rate, config.body_min_rate_grace),
            (0, Duration::from_secs(4))
        );
        assert_eq!(config.write_timeout, Duration::ZERO);
        assert_eq!(config.limits.request_line, 4094);
        assert!(!settings.conn_config(false).keep_alive);
    }
}
