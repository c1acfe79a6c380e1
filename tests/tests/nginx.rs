//! Issue 14, item 7: runicorn behind a real nginx, configured with the
//! example users copy (`deploy/nginx/runicorn.conf`), one copy to a unix
//! socket and one to TCP, both to the same runicorn.
//!
//! Through nginx, under load (keep-alive and new-connection clients on both
//! copies): ten HUPs, a USR2 upgrade, TERM with requests queued, and
//! `--max-requests` recycling give no 502 and no 504, and no other failure,
//! under every worker class (one test per class and scenario, as in
//! `classes.rs`: `the_matrix_lists_every_class` fails when a class is
//! missing). The forwarded fields the example sets are the ones runicorn
//! believes, and the unix socket's mode lets nginx in and nobody else.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use runicorn_tests::client::Addr;
use runicorn_tests::nginx::{example_directive, example_runicorn_flag, WorkerUser};
use runicorn_tests::proc::{read_pid, workers_of};
use runicorn_tests::scenario::exit_code;
use runicorn_tests::wait::wait_for;
use runicorn_tests::{
    deadline, wait_until, Class, ClientLoop, Conn, LoadReport, Nginx, Server, Signal,
};

/// Added to every server of the class.
fn class_extra(class: Class) -> &'static [&'static str] {
    match class {
        Class::Gthread => &["--threads", "4"],
        Class::Sync | Class::Green | Class::Async => &[],
    }
}

/// runicorn on a unix socket and a loopback port, started with the
/// example's `--keep-alive` and `--umask`, and nginx in front of both.
struct Stack {
    server: Server,
    // Dropped after the server: nginx outlives runicorn's last answer.
    nginx: Nginx,
    dir: tempfile::TempDir,
}

impl Stack {
    fn start(class: Class, workers: &str, extra: &[&str], app: &str) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("runicorn.sock");
        let unix = format!("unix:{}", socket.display());
        let pidfile = dir.path().join("runicorn.pid").display().to_string();
        let keep_alive = example_runicorn_flag("--keep-alive");
        let umask = example_runicorn_flag("--umask");
        let mut args = vec![
            "-k",
            class.name(),
            "-w",
            workers,
            "-b",
            &unix,
            "-b",
            "127.0.0.1:0",
            "--keep-alive",
            &keep_alive,
            "--umask",
            &umask,
            "-p",
            &pidfile,
        ];
        args.extend_from_slice(class_extra(class));
        args.extend_from_slice(extra);
        args.push(app);
        let server = Server::start(args);
        let upstreams = [Addr::Unix(socket), tcp_listener(&server)];
        let nginx = Nginx::start(&dir.path().join("nginx"), &upstreams);
        Stack { server, nginx, dir }
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("runicorn.pid")
    }
}

fn tcp_listener(server: &Server) -> Addr {
    server
        .addrs()
        .iter()
        .find(|addr| matches!(addr, Addr::Tcp(_)))
        .cloned()
        .expect("a TCP listener")
}

/// Clients on both of nginx's sites: per site three on kept-alive
/// connections and one on new connections.
struct Load {
    loops: Vec<(&'static str, ClientLoop)>,
}

impl Load {
    fn start(nginx: &Nginx, path: &str) -> Load {
        let mut loops = Vec::new();
        for (name, addr) in ["unix", "tcp"].into_iter().zip(nginx.addrs()) {
            loops.push((name, ClientLoop::start_keepalive(&addr, path, 3)));
            loops.push((name, ClientLoop::start(&addr, path, 1)));
        }
        Load { loops }
    }

    fn ok(&self) -> usize {
        self.loops.iter().map(|(_, each)| each.report().ok).sum()
    }

    /// Waits until `count` more requests succeeded.
    fn progress(&self, count: usize, stack: &Stack, what: &str) {
        let from = self.ok();
        assert!(
            wait_until(deadline(30.0), || self.ok() >= from + count),
            "no progress through nginx after {what}: {:?}\n{}",
            self.loops
                .iter()
                .map(|(_, each)| each.report())
                .collect::<Vec<_>>(),
            stack.server.log()
        );
    }

    fn stop(self) -> Figures {
        let mut figures = Figures::default();
        for (name, each) in self.loops {
            figures.add(name, each.stop());
        }
        figures
    }
}

/// What the clients saw, per upstream and in all.
#[derive(Debug, Default)]
struct Figures {
    all: LoadReport,
    unix: LoadReport,
    tcp: LoadReport,
}

impl Figures {
    fn add(&mut self, site: &str, report: LoadReport) {
        match site {
            "unix" => self.unix.merge(report.clone()),
            _ => self.tcp.merge(report.clone()),
        }
        self.all.merge(report);
    }

    fn status(report: &LoadReport, status: u16) -> usize {
        report.statuses.get(&status).copied().unwrap_or(0)
    }

    /// Prints the figures and asserts that nothing failed.
    fn check(&self, class: Class, scenario: &str, stack: &Stack) {
        let line = |report: &LoadReport| {
            let gateway = Figures::status(report, 502) + Figures::status(report, 504);
            format!(
                "sent {} 502 {} 504 {} other failures {} retried {}",
                report.total(),
                Figures::status(report, 502),
                Figures::status(report, 504),
                report.failed - gateway,
                report.retried
            )
        };
        eprintln!(
            "FIGURES nginx {} {scenario}: {} (unix: {}; tcp: {})",
            class.name(),
            line(&self.all),
            line(&self.unix),
            line(&self.tcp)
        );
        assert!(
            self.unix.ok > 0 && self.tcp.ok > 0,
            "both upstreams serve: {self:?}"
        );
        assert_eq!(
            (self.all.failed, self.all.retried),
            (0, 0),
            "{self:?}\n--- runicorn ---\n{}\n--- nginx ---\n{}",
            stack.server.log(),
            stack.nginx.error_log()
        );
    }
}

/// Ten HUPs under load through nginx.
fn hups(class: Class) {
    let stack = Stack::start(class, "4", &[], "builtin:hello");
    stack.server.wait_workers(4, 10.0);
    let load = Load::start(&stack.nginx, "/");
    load.progress(200, &stack, "the start");
    for reload in 1..=10 {
        stack.server.signal(Signal::SIGHUP);
        if stack
            .server
            .wait_for_log_count("Reload complete", reload, deadline(20.0))
            .is_none()
        {
            panic!("reload {reload} did not complete:\n{}", stack.server.log());
        }
        load.progress(50, &stack, &format!("reload {reload}"));
    }
    load.stop().check(class, "hup-x10", &stack);
}

/// `--max-requests 50 --max-requests-jitter 10` on two workers under load
/// through nginx, until twelve workers have recycled.
fn max_requests(class: Class) {
    let stack = Stack::start(
        class,
        "2",
        &["--max-requests", "50", "--max-requests-jitter", "10"],
        "builtin:hello",
    );
    let load = Load::start(&stack.nginx, "/");
    let recycled = stack.server.wait_for_log_count(
        "Autorestarting worker after current request.",
        12,
        deadline(30.0),
    );
    assert!(
        recycled.is_some(),
        "fewer than 12 recycles:\n{}",
        stack.server.log()
    );
    load.stop().check(class, "max-requests", &stack);
}

/// A USR2 upgrade under load through nginx: USR2, WINCH and TERM to the
/// old master, the new one promoted.
fn usr2(class: Class) {
    let mut stack = Stack::start(class, "2", &[], "builtin:hello");
    let pidfile = stack.pidfile();
    let old = stack.server.pid();
    assert!(wait_until(deadline(20.0), || workers_of(old).len() == 2));
    let load = Load::start(&stack.nginx, "/");
    load.progress(100, &stack, "the start");

    stack.server.signal(Signal::SIGUSR2);
    let mut next = pidfile.as_os_str().to_owned();
    next.push(".2");
    let next = PathBuf::from(next);
    let new = wait_for(deadline(30.0), || read_pid(&next).filter(|pid| *pid != old))
        .unwrap_or_else(|| panic!("no new master after USR2:\n{}", stack.server.log()));
    assert!(
        wait_until(deadline(30.0), || workers_of(new).len() == 2),
        "the new master's workers:\n{}",
        stack.server.log()
    );
    load.progress(100, &stack, "USR2");
    stack.server.signal(Signal::SIGWINCH);
    assert!(
        wait_until(deadline(30.0), || workers_of(old).is_empty()),
        "the old workers after WINCH:\n{}",
        stack.server.log()
    );
    load.progress(100, &stack, "WINCH");
    stack.server.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut stack.server, 30.0), 0);
    assert!(
        wait_until(deadline(10.0), || read_pid(&pidfile) == Some(new)),
        "the new master was not promoted:\n{}",
        stack.server.log()
    );
    load.progress(100, &stack, "the old master's exit");
    load.stop().check(class, "usr2", &stack);
}

/// TERM with twenty 3-second requests sent through nginx to four workers,
/// most of them queued: every one is answered 200, and the master exits 0.
fn term_with_queued_requests(class: Class) {
    let mut stack = Stack::start(
        class,
        "4",
        &["--log-level", "debug", "--graceful-timeout", "60"],
        "builtin:sleep",
    );
    stack.server.wait_workers(4, 10.0);
    let sites = stack.nginx.addrs();
    let clients: Vec<_> = (0..20)
        .map(|n| {
            let addr = sites[n % 2].clone();
            let handle = thread::spawn(move || {
                let mut conn = Conn::connect(&addr)?;
                conn.set_timeout(Duration::from_secs(90))?;
                conn.get("/queued?ms=3000")
            });
            (if n % 2 == 0 { "unix" } else { "tcp" }, handle)
        })
        .collect();
    // Every request has reached runicorn (served, or queued by the kernel
    // in its accept queue) before TERM: nginx holds ten connections to each
    // listener.
    let socket = stack.dir.path().join("runicorn.sock");
    let port = tcp_listener(&stack.server).tcp().port();
    let mut seen = (0, 0);
    assert!(
        wait_until(deadline(20.0), || {
            seen = (unix_connections(&socket), tcp_connections(port));
            seen.0 >= 10 && seen.1 >= 10
        }),
        "nginx did not connect ten times to each listener: (unix, tcp) {seen:?}\n{}",
        stack.server.log()
    );
    stack.server.signal(Signal::SIGTERM);
    let mut figures = Figures::default();
    for (site, handle) in clients {
        let outcome = handle.join().expect("client thread");
        let mut report = LoadReport::default();
        report.record(&outcome);
        figures.add(site, report);
    }
    assert_eq!(exit_code(&mut stack.server, 90.0), 0);
    figures.check(class, "term-queued", &stack);
}

/// Connected sockets of the unix socket at `path` on the server's side
/// (accepted, or waiting in the accept queue), from `/proc/net/unix`
/// (state 03: connected; 02: queued, not yet accepted).
fn unix_connections(path: &Path) -> usize {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let path = path.to_str().expect("a UTF-8 path");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            matches!(fields.get(5), Some(&"02" | &"03")) && fields.get(7) == Some(&path)
        })
        .count()
}

/// Established connections to the loopback TCP port `port` on the
/// server's side (accepted, or waiting in the accept queue), from
/// `/proc/net/tcp` (state 01).
fn tcp_connections(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|local| local.split_once(':'))
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            local_port == Some(port) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// What reaches the app through nginx: `X-Forwarded-For` with the client's
/// address, the scheme nginx saw (a client's own scheme fields replaced or
/// removed: without that, `X-Forwarded-Ssl: on` with nginx's
/// `X-Forwarded-Proto: http` would be a 400), no `Forwarded` (a client's
/// own would otherwise be believed: its `for=` as the client, its `host=`),
/// and the Host the client sent.
fn forwarded_fields(class: Class) {
    let stack = Stack::start(class, "1", &[], "builtin:echo");
    for (site, addr) in ["unix", "tcp"].into_iter().zip(stack.nginx.addrs()) {
        let mut conn = Conn::connect(&addr).expect("connect to nginx");
        let response = conn
            .request(
                "GET",
                "/where",
                &[
                    ("X-Forwarded-Proto", "https"),
                    ("X-Forwarded-Ssl", "on"),
                    ("X-Forwarded-Protocol", "ssl"),
                    ("Forwarded", "for=192.0.2.66;proto=https;host=evil.example"),
                ],
                b"",
            )
            .expect("GET through nginx");
        assert_eq!(response.status, 200, "{site}: {response:?}");
        let json = response.json();
        assert_eq!(json["url_scheme"], "http", "{site}: {json}");
        assert_eq!(json["client_addr"], "127.0.0.1", "{site}: {json}");
        let headers: Vec<(String, String)> = json["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_ascii_lowercase(),
                    pair[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let value = |name: &str| {
            headers
                .iter()
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(value("x-forwarded-for"), ["127.0.0.1"], "{site}: {json}");
        assert_eq!(value("x-forwarded-proto"), ["http"], "{site}: {json}");
        assert!(value("x-forwarded-ssl").is_empty(), "{site}: {json}");
        assert!(value("x-forwarded-protocol").is_empty(), "{site}: {json}");
        assert!(value("forwarded").is_empty(), "{site}: {json}");
        assert_eq!(
            json["forwarded_host"],
            serde_json::Value::Null,
            "{site}: {json}"
        );
        assert_eq!(value("host"), [addr.host_header()], "{site}: {json}");
        assert!(value("connection").is_empty(), "{site}: {json}");
    }
}

/// A request that hangs its worker past `--timeout`, per class (as
/// `classes.rs`'s `hung_request_is_named`): the arguments, the app, the
/// path, and the program in runicorn's place.
fn hang(
    class: Class,
) -> (
    &'static [&'static str],
    &'static str,
    &'static str,
    Option<&'static str>,
) {
    match class {
        Class::Sync => (&["-t", "1"], "builtin:sleep", "/?ms=3000", None),
        // A sleeping pool thread: the request's own age past --timeout
        // retires the worker, which leaves after --graceful-timeout.
        Class::Gthread => (
            &["--timeout", "2", "--graceful-timeout", "1"],
            "builtin:sleep",
            "/stuck?ms=30000",
            None,
        ),
        // Only a spinning handler holds the one may thread.
        Class::Green => (
            &["--threads", "1", "-t", "2"],
            "builtin:cpu",
            "/?n=4000000000",
            None,
        ),
        // An async app that blocks its runtime's thread (the test
        // binary's linked `stall:app`).
        Class::Async => (
            &["--threads", "2", "-t", "2"],
            "stall:app",
            "/?secs=60",
            Some(env!("CARGO_BIN_EXE_runicorn-linked")),
        ),
    }
}

/// A request whose worker is killed for `--timeout`, through nginx: the
/// client gets runicorn's answer for it (issue 14, item 4), not nginx's
/// 502 for a connection closed without one.
fn timed_out_request(class: Class) {
    let (extra, app, path, program) = hang(class);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("runicorn.sock");
    let unix = format!("unix:{}", socket.display());
    let mut args = vec![
        "-k",
        class.name(),
        "-w",
        "1",
        "-b",
        &unix,
        "-b",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(class_extra(class));
    args.extend_from_slice(extra);
    args.push(app);
    let mut launch = runicorn_tests::Launch::new(args);
    if let Some(program) = program {
        launch = launch.program(program);
    }
    let server = launch.start();
    let nginx = Nginx::start(
        &dir.path().join("nginx"),
        &[Addr::Unix(socket), tcp_listener(&server)],
    );
    for (site, addr) in ["unix", "tcp"].into_iter().zip(nginx.addrs()) {
        let old = server.wait_workers(1, 20.0);
        let mut conn = Conn::connect(&addr).expect("connect to nginx");
        conn.set_timeout(Duration::from_secs(60)).unwrap();
        let response = conn.get(path).expect("an answer from nginx");
        eprintln!(
            "FIGURES nginx {} timeout via {site}: status {}",
            class.name(),
            response.status
        );
        assert_eq!(
            response.status,
            500,
            "{site}: {response:?}\n--- runicorn ---\n{}\n--- nginx ---\n{}",
            server.log(),
            nginx.error_log()
        );
        assert!(
            runicorn_tests::wait_replaced(&server, &old, 20.0),
            "the worker was not replaced:\n{}",
            server.log()
        );
    }
}

runicorn_tests::class_matrix![
    hups,
    max_requests,
    usr2,
    term_with_queued_requests,
    forwarded_fields,
    timed_out_request,
];

/// The example's numbers hold together: nginx closes an idle upstream
/// connection before runicorn's `--keep-alive` would, and waits for an
/// answer longer than `--timeout` plus `--graceful-timeout`.
#[test]
fn the_example_timeouts_match_runicorns() {
    let secs = |value: String| -> u64 {
        value
            .strip_suffix('s')
            .unwrap_or(&value)
            .parse()
            .unwrap_or_else(|_| panic!("a number of seconds: {value}"))
    };
    let keep_alive: u64 = example_runicorn_flag("--keep-alive").parse().unwrap();
    let timeout: u64 = example_runicorn_flag("--timeout").parse().unwrap();
    let graceful: u64 = example_runicorn_flag("--graceful-timeout").parse().unwrap();
    assert!(secs(example_directive("keepalive_timeout")) < keep_alive);
    for directive in ["proxy_read_timeout", "proxy_send_timeout"] {
        assert!(
            secs(example_directive(directive)) > timeout + graceful,
            "{directive}"
        );
    }
    assert_eq!(example_directive("proxy_http_version"), "1.1");
    assert_eq!(example_directive("proxy_set_header Connection"), "\"\"");
}

/// The unix socket as the example has runicorn create it (`--umask 007`,
/// `-g` nginx's group): `rwxrwx---` (connecting needs write permission;
/// the execute bit means nothing on a socket), owned by the group nginx's
/// workers run as, so nginx gets through and other users do not. Run as
/// root, nginx's workers run as Debian's `www-data`, as installed: through
/// a socket with that group they are served, through the same mode with
/// root's group they are refused (a 502, `Permission denied` in nginx's
/// log). Not as root, nginx's workers are the test's user and only the mode
/// and the way through are checked.
#[test]
fn the_unix_socket_lets_nginx_in_and_no_one_else() {
    let dir = tempfile::tempdir().unwrap();
    // nginx's workers must reach the socket files inside.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let umask = example_runicorn_flag("--umask");
    let root = nix::unistd::geteuid().is_root();
    let www = nix::unistd::Group::from_name("www-data").ok().flatten();
    let start = |name: &str, group: Option<&str>| {
        let socket = dir.path().join(name);
        let bind = format!("unix:{}", socket.display());
        let mut args = vec!["-w", "1", "-b", &bind, "--umask", &umask];
        if let Some(group) = group {
            args.extend_from_slice(&["-g", group]);
        }
        args.push("builtin:hello");
        (Server::start(args), socket)
    };
    let mode = |socket: &Path| {
        let meta = std::fs::metadata(socket).expect("stat the socket");
        (meta.mode() & 0o7777, meta.gid())
    };
    match (root, www) {
        (true, Some(www)) => {
            let (_granted, granted) = start("granted.sock", Some("www-data"));
            let (_denied, denied) = start("denied.sock", None);
            assert_eq!(mode(&granted), (0o770, www.gid.as_raw()));
            assert_eq!(mode(&denied), (0o770, 0));
            let user = WorkerUser {
                user: "www-data".into(),
                group: "www-data".into(),
            };
            let nginx = Nginx::start_as(
                &dir.path().join("nginx"),
                &[Addr::Unix(granted), Addr::Unix(denied)],
                Some(user),
            );
            let through = |index: usize| {
                runicorn_tests::get(&nginx.addr(index), "/")
                    .expect("an answer from nginx")
                    .status
            };
            assert_eq!(through(0), 200, "{}", nginx.error_log());
            assert_eq!(through(1), 502, "{}", nginx.error_log());
            assert!(
                nginx.error_log().contains("(13: Permission denied)"),
                "{}",
                nginx.error_log()
            );
        }
        _ => {
            eprintln!("not root (or no www-data group): nginx runs as the test's user");
            let (_server, socket) = start("own.sock", None);
            assert_eq!(mode(&socket).0, 0o770);
            let nginx = Nginx::start(&dir.path().join("nginx"), &[Addr::Unix(socket)]);
            let response = runicorn_tests::get(&nginx.addr(0), "/").expect("through nginx");
            assert_eq!(response.status, 200, "{}", nginx.error_log());
        }
    }
}
