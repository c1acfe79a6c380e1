//! Issue 14, item 1: the USR2 binary upgrade, as Gunicorn and nginx do it.
//!
//! Under load (new-connection and keep-alive clients, and a connect probe
//! every 5 ms): USR2 starts a new master from the binary on disk, which
//! adopts the listening sockets (same inode) and writes `<pidfile>.2`;
//! WINCH retires the old master's workers, TERM ends it, the new master is
//! promoted and renames its pidfile. Not one request fails and not one
//! connection is refused. Also: rollback, a second USR2 refused, and a bad
//! `RUNICORN_FD` refused in one line.
//!
//! Every worker class runs it, with keep-alive clients too: a retiring
//! worker (WINCH) loses no request on a kept-alive connection.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use runicorn_tests::client::Addr;
use runicorn_tests::proc::{read_pid, signal, workers_of};
use runicorn_tests::wait::wait_for;
use runicorn_tests::{
    deadline, get, proc, runicorn_bin, wait_until, ClientLoop, Launch, Server, Signal,
};

/// The inode of the socket listening on a loopback TCP port, from
/// `/proc/net/tcp` (state 0A is LISTEN).
fn listen_inode(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let (_, hex_port) = local.split_once(':')?;
        (u16::from_str_radix(hex_port, 16).ok()? == port && fields.get(3) == Some(&"0A"))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// The socket inodes among `pid`'s open descriptors.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let target = std::fs::read_link(entry.ok()?.path()).ok()?;
            let text = target.to_str()?;
            text.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

fn file_inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat").ino()
}

/// A client that connects every 5 ms and counts refused connections.
struct ConnectProbe {
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    other: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl ConnectProbe {
    fn start(addr: SocketAddr) -> ConnectProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let other = Arc::new(AtomicUsize::new(0));
        let handle = {
            let (stop, attempts, refused, other) = (
                stop.clone(),
                attempts.clone(),
                refused.clone(),
                other.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                        Ok(stream) => drop(stream),
                        Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        ConnectProbe {
            stop,
            attempts,
            refused,
            other,
            handle: Some(handle),
        }
    }

    /// Waits until the probe has connected `count` more times, so each
    /// step of the upgrade is probed.
    fn more(&self, count: usize) {
        let from = self.attempts.load(Ordering::Relaxed);
        assert!(
            wait_until(deadline(30.0), || self.attempts.load(Ordering::Relaxed)
                >= from + count),
            "the connect probe stalled"
        );
    }

    /// Stops; returns (attempts, refused, other errors).
    fn stop(mut self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        (
            self.attempts.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
        )
    }
}

impl Drop for ConnectProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// USR2 to `old` (whose pidfile is `pidfile`): waits for the new master and
/// its `workers` workers; returns its pid.
fn upgrade(server: &Server, pidfile: &Path, workers: usize) -> u32 {
    let old = server.pid();
    server.signal(Signal::SIGUSR2);
    let next = upgrade_pidfile(pidfile);
    let new = wait_for(deadline(30.0), || read_pid(&next).filter(|pid| *pid != old))
        .unwrap_or_else(|| panic!("no {} after USR2:\n{}", next.display(), server.log()));
    assert!(
        wait_until(deadline(30.0), || workers_of(new).len() == workers),
        "the new master {new} has workers {:?}:\n{}",
        workers_of(new),
        server.log()
    );
    new
}

fn upgrade_pidfile(pidfile: &Path) -> PathBuf {
    let mut name = pidfile.as_os_str().to_owned();
    name.push(".2");
    name.into()
}

fn upgrade_under_load(class: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("app.pid");
    let socket = dir.path().join("app.sock");
    let unix = format!("unix:{}", socket.display());
    let mut server = Server::start([
        "-k",
        class,
        "-w",
        "2",
        "-b",
        "127.0.0.1:0",
        "-b",
        &unix,
        "-p",
        pidfile.to_str().unwrap(),
        "--graceful-timeout",
        "20",
        "builtin:hello",
    ]);
    let old = server.pid();
    let addr = server.addrs()[0].clone();
    let Addr::Tcp(tcp) = addr.clone() else {
        panic!("first listener is TCP: {addr:?}")
    };
    assert!(wait_until(deadline(20.0), || workers_of(old).len() == 2));
    let inode = listen_inode(tcp.port()).expect("the listening socket in /proc/net/tcp");
    let socket_file = file_inode(&socket);

    let fresh = ClientLoop::start(&addr, "/", 2);
    let kept = ClientLoop::start_keepalive(&addr, "/", 2);
    let probe = ConnectProbe::start(tcp);
    assert!(fresh.wait_ok(50, deadline(20.0)) && kept.wait_ok(50, deadline(20.0)));
    probe.more(20);

    let usr2 = Instant::now();
    let new = upgrade(&server, &pidfile, 2);
    let handover = usr2.elapsed();
    probe.more(20);
    assert_eq!(
        read_pid(&pidfile),
        Some(old),
        "the old master keeps <pidfile>"
    );
    assert_eq!(
        listen_inode(tcp.port()),
        Some(inode),
        "the socket was not rebound"
    );
    assert!(
        socket_inodes(new).contains(&inode),
        "the new master holds the old socket"
    );
    assert_eq!(
        file_inode(&socket),
        socket_file,
        "the unix socket file was not rebound"
    );

    // A second USR2, to either master, is refused while the upgrade runs.
    server.signal(Signal::SIGUSR2);
    server.expect_log("USR2 signal ignored. Child exists.", 10.0);
    signal(new, Signal::SIGUSR2);
    server.expect_log("USR2 signal ignored. Parent exists.", 10.0);

    // WINCH: the old workers retire; the new ones serve everything.
    server.signal(Signal::SIGWINCH);
    assert!(
        wait_until(deadline(30.0), || workers_of(old).is_empty()),
        "old workers {:?} after WINCH:\n{}",
        workers_of(old),
        server.log()
    );
    let before = fresh.report().ok + kept.report().ok;
    assert!(
        wait_until(deadline(20.0), || fresh.report().ok + kept.report().ok
            > before + 50),
        "no requests served by the new workers alone"
    );
    probe.more(20);

    // TERM the old master: it exits, the new one is promoted.
    let term = Instant::now();
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(deadline(30.0)).expect("old master exits");
    let old_exit = term.elapsed();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    server.expect_log("Master has been promoted.", 20.0);
    assert!(
        wait_until(deadline(10.0), || read_pid(&pidfile) == Some(new)
            && !upgrade_pidfile(&pidfile).exists()),
        "pidfile {:?}, .2 exists: {}",
        read_pid(&pidfile),
        upgrade_pidfile(&pidfile).exists()
    );
    assert!(
        socket.exists(),
        "the old master removed the unix socket the new one serves"
    );
    let before = fresh.report().ok + kept.report().ok;
    assert!(wait_until(deadline(20.0), || fresh.report().ok
        + kept.report().ok
        > before + 50));
    assert_eq!(get(&Addr::Unix(socket.clone()), "/").unwrap().status, 200);
    probe.more(20);

    let fresh = fresh.stop();
    let kept = kept.stop();
    let (attempts, refused, other) = probe.stop();
    assert_eq!(listen_inode(tcp.port()), Some(inode));
    assert_eq!(file_inode(&socket), socket_file);

    // TERM the new master: everything goes, the socket file too.
    let term = Instant::now();
    signal(new, Signal::SIGTERM);
    assert!(
        wait_until(deadline(30.0), || !proc::alive(new)),
        "the new master did not exit:\n{}",
        server.log()
    );
    let new_exit = term.elapsed();
    assert!(wait_until(deadline(10.0), || !socket.exists() && !pidfile.exists()));
    eprintln!(
        "{class}: {} requests on new connections ({} failed), {} on kept-alive ones ({} failed), \
         {attempts} connect probes ({refused} refused, {other} other errors); hand-over (USR2 to \
         the new workers up) {handover:?}; old master exit after TERM {old_exit:?}, new master \
         {new_exit:?}",
        fresh.total(),
        fresh.failed,
        kept.total(),
        kept.failed,
    );
    assert_eq!(fresh.failed, 0, "{:?}\n{}", fresh.errors, server.log());
    assert_eq!(kept.failed, 0, "{:?}\n{}", kept.errors, server.log());
    assert_eq!((refused, other), (0, 0), "connect probe failures");
    assert!(attempts > 100, "{attempts} probes");
}

#[test]
fn usr2_upgrade_under_load_sync() {
    upgrade_under_load("sync");
}

#[test]
fn usr2_upgrade_under_load_gthread() {
    upgrade_under_load("gthread");
}

#[test]
fn usr2_upgrade_under_load_green() {
    upgrade_under_load("green");
}

#[test]
fn usr2_upgrade_under_load_async() {
    upgrade_under_load("async");
}

/// Copies an executable with cp(1), not `std::fs::copy`: a file this
/// (multi-threaded) test process held open for writing would be inherited
/// by any child another test forks meanwhile, and until that child execs,
/// exec'ing the copy fails with ETXTBSY ("Text file busy").
fn copy_executable(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success(), "cp {} {}", from.display(), to.display());
}

#[test]
fn usr2_runs_the_binary_on_disk_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("runicorn");
    copy_executable(runicorn_bin(), &bin);
    let pidfile = dir.path().join("app.pid");
    let mut server = Launch::new([
        "-w",
        "2",
        "-b",
        "127.0.0.1:0",
        "-p",
        pidfile.to_str().unwrap(),
        "builtin:hello",
    ])
    .program(&bin)
    .start();
    let old = server.pid();
    assert!(wait_until(deadline(20.0), || workers_of(old).len() == 2));
    // Deploy a new binary: a new file at the same path.
    let staged = dir.path().join("runicorn.new");
    copy_executable(runicorn_bin(), &staged);
    std::fs::rename(&staged, &bin).unwrap();
    let new = upgrade(&server, &pidfile, 2);
    let exe = |pid: u32| file_inode(Path::new(&format!("/proc/{pid}/exe")));
    assert_eq!(
        exe(new),
        file_inode(&bin),
        "the new master runs the binary now on disk"
    );
    assert_ne!(exe(old), exe(new));

    server.signal(Signal::SIGWINCH);
    assert!(wait_until(deadline(30.0), || workers_of(old).is_empty()));

    // Roll back: TERM the new master; the old one has no workers until HUP.
    signal(new, Signal::SIGTERM);
    server.expect_log("this master has had no workers since WINCH", 30.0);
    assert!(
        !upgrade_pidfile(&pidfile).exists(),
        "the new master leaves no .2 behind"
    );
    assert_eq!(read_pid(&pidfile), Some(old));
    // A request sent now waits in the accept queue (the socket stays open)
    // and is answered once HUP brought the workers back.
    let addr = server.addr().clone();
    let waiting = std::thread::spawn(move || get(&addr, "/"));
    std::thread::sleep(Duration::from_millis(200));
    server.signal(Signal::SIGHUP);
    assert!(wait_until(deadline(30.0), || workers_of(old).len() == 2));
    let answered = waiting
        .join()
        .unwrap()
        .expect("the queued request is answered");
    assert_eq!(answered.status, 200);

    // USR2 works again after the rollback, this time to the end ...
    let again = upgrade(&server, &pidfile, 2);
    assert_ne!(again, new);
    server.signal(Signal::SIGWINCH);
    assert!(wait_until(deadline(30.0), || workers_of(old).is_empty()));
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(deadline(30.0)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(wait_until(deadline(20.0), || read_pid(&pidfile) == Some(again)));
    // ... and the promoted master upgrades in turn (the next deploy).
    signal(again, Signal::SIGUSR2);
    let next = upgrade_pidfile(&pidfile);
    let third = wait_for(deadline(30.0), || {
        read_pid(&next).filter(|pid| *pid != again)
    })
    .unwrap_or_else(|| panic!("no second upgrade:\n{}", server.log()));
    assert!(wait_until(deadline(30.0), || workers_of(third).len() == 2));
    signal(again, Signal::SIGWINCH);
    signal(again, Signal::SIGTERM);
    assert!(
        wait_until(deadline(30.0), || read_pid(&pidfile) == Some(third)),
        "{}",
        server.log()
    );
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
    signal(third, Signal::SIGTERM);
    assert!(wait_until(deadline(30.0), || !proc::alive(third)));
    assert!(wait_until(deadline(10.0), || !pidfile.exists()));
}

#[test]
fn a_bad_runicorn_fd_is_one_error_line() {
    for (value, expected) in [
        ("x", "'x' is not a file descriptor number"),
        ("1000000", "fd 1000000: file descriptor 1000000 is not open"),
        ("0", "fd 0: not a socket"),
    ] {
        let exited = Launch::new(["-b", "127.0.0.1:0", "builtin:hello"])
            .env("RUNICORN_FD", value)
            .env("RUNICORN_PID", "1")
            .expect_exit(30.0);
        assert_eq!(exited.code(), 1, "{value}: {}", exited.log);
        let lines: Vec<&str> = exited
            .log
            .lines()
            .filter(|line| line.contains("RUNICORN_FD"))
            .collect();
        assert_eq!(lines.len(), 1, "{value}: {}", exited.log);
        assert!(
            lines[0].contains(expected) && lines[0].contains("unset RUNICORN_FD"),
            "{value}: {}",
            lines[0]
        );
    }
    let exited = Launch::new(["-b", "127.0.0.1:0", "builtin:hello"])
        .env("RUNICORN_PID", "abc")
        .expect_exit(30.0);
    assert_eq!(exited.code(), 1, "{}", exited.log);
    assert!(
        exited.log.contains("RUNICORN_PID='abc': not a process id"),
        "{}",
        exited.log
    );
}

#[test]
fn pre_exec_hooks_run_in_the_forked_child_before_the_new_binary() {
    use runicorn_tests::examples::examples;
    // From an app library (TOML config) ...
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let config = dir.path().join("runicorn.toml");
    std::fs::write(
        &config,
        "pre_exec = \"hooks:pre_exec\"\non_starting = \"hooks:on_starting\"\n",
    )
    .unwrap();
    let pidfile = dir.path().join("app.pid");
    let examples = examples().display().to_string();
    let server = Launch::new([
        "-c",
        config.to_str().unwrap(),
        "-w",
        "1",
        "-b",
        "127.0.0.1:0",
        "-p",
        pidfile.to_str().unwrap(),
        "--app-path",
        &examples,
        "builtin:hello",
    ])
    .env("HOOKS_LOG", &log)
    .start();
    assert!(wait_until(deadline(20.0), || workers_of(server.pid())
        .len()
        == 1));
    let new = upgrade(&server, &pidfile, 1);
    let lines = std::fs::read_to_string(&log).unwrap();
    // The child that ran pre_exec is the new master: exec keeps the pid.
    let pre_exec: Vec<&str> = lines
        .lines()
        .filter(|line| line.starts_with("pre_exec "))
        .collect();
    assert_eq!(
        pre_exec,
        [format!("pre_exec pid={new} workers=1")],
        "{lines}"
    );
    let starting = |pid: u32| format!("on_starting pid={pid} ");
    assert!(
        lines.contains(&starting(server.pid())) && lines.contains(&starting(new)),
        "{lines}"
    );
    signal(new, Signal::SIGTERM);
    assert!(wait_until(deadline(30.0), || !proc::alive(new)));

    // ... and from gunicorn.conf.py, with Gunicorn's `server` object.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.py"),
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'hi']\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gunicorn.conf.py"),
        "import os\n\ndef pre_exec(server):\n    server.log.info(\"pre_exec in %s for master %s\", os.getpid(), server.pid)\n",
    )
    .unwrap();
    let pidfile = dir.path().join("app.pid");
    let server = Launch::new([
        "-w",
        "1",
        "-b",
        "127.0.0.1:0",
        "-p",
        pidfile.to_str().unwrap(),
        "hello:app",
    ])
    .current_dir(dir.path())
    .env("VIRTUAL_ENV", "")
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .start();
    assert!(wait_until(deadline(30.0), || workers_of(server.pid())
        .len()
        == 1));
    let new = upgrade(&server, &pidfile, 1);
    server.expect_log(
        &format!("pre_exec in {new} for master {}", server.pid()),
        10.0,
    );
    signal(new, Signal::SIGTERM);
    assert!(wait_until(deadline(30.0), || !proc::alive(new)));
}
