//! Issue 14, item 6: runicorn under systemd.
//!
//! The readiness protocol is checked against a real `NOTIFY_SOCKET`: a
//! unix datagram socket this test binds with `SO_PASSCRED`, so each
//! message comes with the pid that sent it. Socket activation runs through
//! `systemd-socket-activate` when it is installed, else through this
//! crate's `socket-activate`, which does the same for one socket. The
//! example units in `deploy/systemd/` are checked for the settings the
//! docs promise, and with `systemd-analyze verify` when it is installed.

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials,
};
use runicorn_tests::client::Addr;
use runicorn_tests::examples::{examples, root};
use runicorn_tests::proc::{signal, workers_of};
use runicorn_tests::wait::wait_for;
use runicorn_tests::{deadline, get, proc, runicorn_bin, wait_until, Launch, Signal, LOCAL};

/// One datagram: who sent it, what it said, and how many workers had
/// finished booting (marker files) when it arrived.
#[derive(Debug, Clone)]
struct Message {
    pid: i32,
    text: String,
    booted: usize,
}

/// The service manager's side of `NOTIFY_SOCKET`.
struct Notify {
    path: PathBuf,
    messages: Arc<Mutex<Vec<Message>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Notify {
    fn bind(path: PathBuf, booted_dir: Option<PathBuf>) -> Notify {
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        setsockopt(&socket, sockopt::PassCred, &true).expect("SO_PASSCRED");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (messages, stop) = (messages.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let mut space = nix::cmsg_space!(UnixCredentials);
                    let mut iov = [IoSliceMut::new(&mut buf)];
                    let Ok(msg) = recvmsg::<()>(
                        socket.as_raw_fd(),
                        &mut iov,
                        Some(&mut space),
                        MsgFlags::empty(),
                    ) else {
                        continue;
                    };
                    let pid = msg
                        .cmsgs()
                        .ok()
                        .into_iter()
                        .flatten()
                        .find_map(|cmsg| match cmsg {
                            ControlMessageOwned::ScmCredentials(creds) => Some(creds.pid()),
                            _ => None,
                        })
                        .unwrap_or(0);
                    let len = msg.bytes;
                    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                    let booted = booted_dir
                        .as_ref()
                        .and_then(|dir| std::fs::read_dir(dir).ok())
                        .map_or(0, Iterator::count);
                    messages.lock().unwrap().push(Message { pid, text, booted });
                }
            })
        };
        Notify {
            path,
            messages,
            stop,
            handle: Some(handle),
        }
    }

    fn all(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits for the first message after index `from` that `matches`;
    /// returns its index and the message.
    fn wait(&self, from: usize, secs: f64, matches: impl Fn(&Message) -> bool) -> (usize, Message) {
        wait_for(deadline(secs), || {
            self.all()
                .into_iter()
                .enumerate()
                .skip(from)
                .find(|(_, message)| matches(message))
        })
        .unwrap_or_else(|| panic!("no such notification within {secs}s; got {:#?}", self.all()))
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn monotonic_usec() -> i128 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    i128::from(now.tv_sec()) * 1_000_000 + i128::from(now.tv_nsec()) / 1_000
}

/// What the example app's `/env/NAME` says a worker sees.
fn worker_env(addr: &Addr, name: &str) -> String {
    get(addr, &format!("/env/{name}")).unwrap().text()
}

#[test]
fn ready_status_reloading_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let booted = dir.path().join("booted");
    std::fs::create_dir(&booted).unwrap();
    let notify = Notify::bind(dir.path().join("notify.sock"), Some(booted.clone()));
    let examples = examples().display().to_string();
    let mut server = Launch::new(["-w", "2", "-b", LOCAL, "--app-path", &examples, "hello:app"])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("HELLO_INIT", "sleep:500")
        .env("HELLO_BOOTED_DIR", &booted)
        .start();
    let master = server.pid() as i32;
    let (ready_at, ready) = notify.wait(0, 30.0, |m| m.text.contains("READY=1"));
    assert_eq!(ready.pid, master, "{ready:?}");
    assert_eq!(
        ready.booted, 2,
        "READY=1 before every worker booted: {ready:?}"
    );
    assert!(ready.text.contains("STATUS=2 workers"), "{ready:?}");
    assert!(
        notify.all()[..ready_at]
            .iter()
            .all(|m| !m.text.contains("READY=1")),
        "{:#?}",
        notify.all()
    );
    // Workers do not speak for the service.
    assert_eq!(worker_env(server.addr(), "NOTIFY_SOCKET"), "unset");

    server.signal(Signal::SIGTTIN);
    notify.wait(ready_at, 30.0, |m| m.text.contains("STATUS=3 workers"));

    let from = notify.all().len();
    let sent = monotonic_usec();
    server.signal(Signal::SIGHUP);
    let (reload_at, reloading) = notify.wait(from, 30.0, |m| m.text.contains("RELOADING=1"));
    assert_eq!(reloading.pid, master);
    let usec: i128 = reloading
        .text
        .lines()
        .find_map(|line| line.strip_prefix("MONOTONIC_USEC="))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(
        usec >= sent && usec - sent < 30_000_000,
        "MONOTONIC_USEC={usec}, HUP sent at {sent}"
    );
    // READY=1 again once the new generation booted: as in Gunicorn, HUP
    // goes back to the configured -w (the TTIN is forgotten).
    let (_, reloaded) = notify.wait(reload_at + 1, 30.0, |m| m.text.contains("READY=1"));
    assert!(reloaded.text.contains("STATUS=2 workers"), "{reloaded:?}");
    assert_eq!(
        reloaded.booted,
        2 + 1 + 2,
        "READY=1 before the new workers booted"
    );

    server.signal(Signal::SIGTERM);
    notify.wait(reload_at, 30.0, |m| {
        m.text.contains("STOPPING=1") && m.pid == master
    });
    assert_eq!(
        server.wait_exit(deadline(30.0)).and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn mainpid_follows_a_usr2_upgrade_and_the_new_master_is_quiet_until_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let notify = Notify::bind(dir.path().join("notify.sock"), None);
    let pidfile = dir.path().join("app.pid");
    let mut server = Launch::new([
        "-w",
        "1",
        "-b",
        LOCAL,
        "-p",
        pidfile.to_str().unwrap(),
        "builtin:hello",
    ])
    .env("NOTIFY_SOCKET", &notify.path)
    .start();
    let old = server.pid();
    notify.wait(0, 30.0, |m| {
        m.text.contains("READY=1") && m.pid == old as i32
    });
    server.signal(Signal::SIGUSR2);
    let next = dir.path().join("app.pid.2");
    let new = wait_for(deadline(30.0), || {
        std::fs::read_to_string(&next)
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()
    })
    .expect("the new master writes <pidfile>.2");
    assert!(wait_until(deadline(30.0), || workers_of(new).len() == 1));
    // Its worker is up; a master that spoke would have said READY by now.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        notify.all().iter().all(|m| m.pid != new as i32),
        "the new master spoke before its promotion: {:#?}",
        notify.all()
    );
    let before = notify.all().len();
    server.signal(Signal::SIGWINCH);
    assert!(wait_until(deadline(30.0), || workers_of(old).is_empty()));
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(deadline(30.0)).and_then(|s| s.code()),
        Some(0)
    );
    let mainpid = format!("MAINPID={new}");
    notify.wait(before, 30.0, |m| {
        m.pid == old as i32 && m.text.contains(&mainpid)
    });
    notify.wait(before, 30.0, |m| {
        m.pid == new as i32 && m.text.contains(&mainpid) && m.text.contains("READY=1")
    });
    assert!(
        notify.all().iter().all(|m| !m.text.contains("STOPPING=1")),
        "the old master said the service stops: {:#?}",
        notify.all()
    );
    let before = notify.all().len();
    signal(new, Signal::SIGTERM);
    notify.wait(before, 30.0, |m| {
        m.pid == new as i32 && m.text.contains("STOPPING=1")
    });
    assert!(wait_until(deadline(30.0), || !proc::alive(new)));
}

/// `systemd-socket-activate -l ADDRESS` when it is installed, and this
/// crate's `socket-activate`, which does the same for one socket.
fn activators() -> Vec<String> {
    let systemd = std::process::Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let mut tools = vec![env!("CARGO_BIN_EXE_socket-activate").to_owned()];
    if systemd {
        tools.push("systemd-socket-activate".to_owned());
    } else {
        eprintln!("systemd-socket-activate is not installed: socket activation through ours only");
    }
    tools
}

#[test]
fn socket_activation_serves_the_passed_socket_without_binding_and_through_usr2() {
    for tool in activators() {
        activated(&tool);
    }
}

#[test]
fn a_tcp_socket_passed_by_socket_activation_is_served() {
    // `--now`: the port (0) is known only from runicorn's `Listening at:`.
    let examples = examples().display().to_string();
    let server = Launch::new([
        "-w",
        "1",
        "-b",
        "unix:/nonexistent/runicorn-never-bound.sock",
        "--app-path",
        &examples,
        "hello:app",
    ])
    .wrapper([
        env!("CARGO_BIN_EXE_socket-activate"),
        "--now",
        "-l",
        "127.0.0.1:0",
    ])
    .start();
    let Addr::Tcp(addr) = server.addr().clone() else {
        panic!("a TCP listener: {:?}", server.addr())
    };
    assert_ne!(addr.port(), 0);
    assert!(server
        .log()
        .contains(&format!("Listening at: http://{addr} ({})", server.pid())));
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
    assert_eq!(worker_env(server.addr(), "LISTEN_FDS"), "unset");
}

fn activated(tool: &str) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    let pidfile = dir.path().join("app.pid");
    eprintln!("socket activation through {tool}");
    let examples = examples().display().to_string();
    // `-b` names a path that cannot be bound: a master that bound -b
    // instead of taking the passed socket would fail.
    let mut server = Launch::new([
        "-w",
        "2",
        "-b",
        "unix:/nonexistent/runicorn-never-bound.sock",
        "-p",
        pidfile.to_str().unwrap(),
        "--app-path",
        &examples,
        "hello:app",
    ])
    .wrapper([tool, "-l", socket.to_str().unwrap()])
    // The activator starts runicorn on the first connection, as systemd
    // does; that connection waits in the accept queue.
    .start_at(Addr::Unix(socket.clone()));
    let master = server.pid();
    let listening = server.expect_log("Listening at:", 30.0);
    assert!(
        listening.contains(&format!("unix:{}", socket.display())),
        "{listening}"
    );
    assert!(
        listening.contains(&format!("({master})")),
        "the activator exec'd runicorn: {listening}"
    );
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&socket).unwrap().ino();
    let addr = Addr::Unix(socket.clone());
    assert_eq!(get(&addr, "/").unwrap().status, 200);
    for name in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        assert_eq!(
            worker_env(&addr, name),
            "unset",
            "{name} leaked to a worker"
        );
    }

    // USR2 hands the socket over the way systemd passed it.
    server.signal(Signal::SIGUSR2);
    let new = wait_for(deadline(30.0), || {
        std::fs::read_to_string(dir.path().join("app.pid.2"))
            .ok()?
            .trim()
            .parse::<u32>()
            .ok()
    })
    .expect("new master");
    assert!(
        wait_until(deadline(30.0), || workers_of(new).len() == 2),
        "{}",
        server.log()
    );
    server.signal(Signal::SIGWINCH);
    assert!(wait_until(deadline(30.0), || workers_of(master).is_empty()));
    for _ in 0..10 {
        assert_eq!(get(&addr, "/").unwrap().status, 200);
    }
    assert_eq!(worker_env(&addr, "LISTEN_FDS"), "unset");
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(deadline(30.0)).and_then(|s| s.code()),
        Some(0)
    );
    server.expect_log("Master has been promoted.", 20.0);
    assert_eq!(get(&addr, "/").unwrap().status, 200);
    signal(new, Signal::SIGTERM);
    assert!(wait_until(deadline(30.0), || !proc::alive(new)));
    // The socket is systemd's (or the activator's): runicorn leaves it.
    assert_eq!(std::fs::metadata(&socket).unwrap().ino(), inode);
    // runicorn itself never mentions -b (the activator echoes its command).
    assert!(
        server
            .log()
            .lines()
            .all(|line| !(line.starts_with('[') && line.contains("runicorn-never-bound"))),
        "{}",
        server.log()
    );
}

/// `KEY=value` lines of a unit file.
fn unit_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_example_units_say_what_the_docs_promise_and_verify() {
    let units = root().join("deploy/systemd");
    let service = std::fs::read_to_string(units.join("runicorn.service")).unwrap();
    let socket = std::fs::read_to_string(units.join("runicorn.socket")).unwrap();
    assert_eq!(unit_values(&service, "Type"), ["notify"]);
    assert_eq!(unit_values(&service, "KillMode"), ["mixed"]);
    assert_eq!(unit_values(&service, "NotifyAccess"), ["main"]);
    assert_eq!(
        unit_values(&service, "ExecReload"),
        ["/bin/kill -HUP $MAINPID"]
    );
    assert!(!unit_values(&socket, "ListenStream").is_empty());
    let exec = unit_values(&service, "ExecStart").join(" ");
    let graceful: u64 = exec
        .split_whitespace()
        .skip_while(|word| *word != "--graceful-timeout")
        .nth(1)
        .and_then(|value| value.parse().ok())
        .expect("ExecStart sets --graceful-timeout");
    let stop: u64 = unit_values(&service, "TimeoutStopSec")
        .first()
        .and_then(|value| value.parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > graceful,
        "TimeoutStopSec={stop} must exceed --graceful-timeout {graceful}"
    );

    let installed = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        eprintln!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
        return;
    }
    // Verified as installed, with ExecStart pointing at this build.
    let dir = tempfile::tempdir().unwrap();
    let bin = runicorn_bin().display().to_string();
    std::fs::write(
        dir.path().join("runicorn.service"),
        service.replace("/usr/local/bin/runicorn", &bin),
    )
    .unwrap();
    std::fs::write(dir.path().join("runicorn.socket"), &socket).unwrap();
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("runicorn.socket"))
        .arg(dir.path().join("runicorn.service"))
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    let ours: Vec<&str> = said
        .lines()
        .filter(|line| line.contains("runicorn.s"))
        .collect();
    assert!(
        output.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{said}",
        output.status
    );
}

#[test]
fn bad_socket_activation_variables_are_one_error_line() {
    for (listen_fds, expected) in [
        ("x", "LISTEN_FDS='x': not a count of descriptors"),
        ("1", "LISTEN_FDS='1': fd 3: file descriptor 3 is not open"),
    ] {
        // `sh` sets LISTEN_PID to its own pid, which exec gives runicorn.
        let script = format!("LISTEN_PID=$$ LISTEN_FDS={listen_fds} exec \"$0\" \"$@\"");
        let exited = Launch::new(["-b", LOCAL, "builtin:hello"])
            .wrapper(["sh", "-c", script.as_str()])
            .expect_exit(30.0);
        assert_eq!(exited.code(), 1, "{}", exited.log);
        let lines: Vec<&str> = exited
            .log
            .lines()
            .filter(|line| line.contains("LISTEN_FDS"))
            .collect();
        assert_eq!(lines.len(), 1, "{}", exited.log);
        assert!(
            lines[0].contains(expected) && lines[0].contains("systemd sets it"),
            "{}",
            lines[0]
        );
    }
}
