//! The control socket and `runicorn ctl` (issue 15, "a live view"): `ctl
//! status` names the request each worker runs now under every class;
//! `workers add|remove`, `reload` and `stop` act as TTIN, TTOU, HUP and
//! TERM (a worker retiring is listed with the request it finishes); the
//! socket is mode 0600 and answers its owner alone; a client
//! that stalls holds nothing; a second master cannot take a live socket,
//! a stale one is replaced; across a USR2 upgrade the socket stays with
//! the old master until the new one is promoted.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use runicorn_tests::proc::{read_pid, workers_of};
use runicorn_tests::{
    deadline, exit_code, get, runicorn_bin, wait_replaced, wait_until, Class, Conn, Launch, Server,
    Signal,
};
use serde_json::Value;

/// The uid and gid of `nobody`, a user that does not own the socket.
const NOBODY: u32 = 65534;

struct Controlled {
    server: Server,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// `runicorn -k CLASS --control-socket DIR/ctl EXTRA... APP`.
fn start(class: Class, extra: &[&str], app: &str) -> Controlled {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl");
    let mut args = vec!["--control-socket", socket.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = class.start(&args, app);
    server.expect_log("Control socket at: ", 10.0);
    Controlled {
        server,
        socket,
        _dir: dir,
    }
}

/// `runicorn ctl -s SOCKET ARGS...`, as this process's user.
fn ctl(socket: &Path, args: &[&str]) -> Output {
    ctl_command(socket, args)
        .output()
        .expect("run runicorn ctl")
}

fn ctl_command(socket: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(runicorn_bin());
    command.arg("ctl").arg("-s").arg(socket).args(args);
    command.env_remove("RUNICORN_CONTROL_SOCKET");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ctl status --json`, parsed; panics if it fails.
fn status(controlled: &Controlled) -> Value {
    let output = ctl(&controlled.socket, &["status", "--json"]);
    assert!(
        output.status.success(),
        "ctl status: {}\n{}",
        text(&output.stderr),
        controlled.server.log()
    );
    let answer: Value =
        serde_json::from_slice(&output.stdout).expect("JSON from ctl status --json");
    assert_eq!(answer["ok"], true, "{answer}");
    answer["status"].clone()
}

/// `ctl ARGS` must succeed; its stdout.
fn ctl_ok(controlled: &Controlled, args: &[&str]) -> String {
    let output = ctl(&controlled.socket, args);
    assert!(
        output.status.success(),
        "ctl {args:?}: {}\n{}",
        text(&output.stderr),
        controlled.server.log()
    );
    text(&output.stdout)
}

/// `ctl status` while a slow request runs: the worker is busy, and its row
/// names the request line and its age, in the table and in the JSON.
fn status_names_the_request_in_flight(class: Class) {
    let mut extra = vec!["-w", "2"];
    if class == Class::Gthread {
        extra.extend(["--threads", "2"]);
    }
    let controlled = start(class, &extra, "builtin:sleep");
    controlled.server.wait_workers(2, 10.0);
    let addr = controlled.server.addr().clone();
    let slow = std::thread::spawn(move || {
        let mut conn = Conn::connect(&addr)?;
        conn.set_timeout(Duration::from_secs(30))?;
        conn.get("/slow?ms=3000")
    });
    const LINE: &str = "GET /slow?ms=3000 HTTP/1.1";
    let mut last = Value::Null;
    let found = wait_until(deadline(10.0), || {
        last = status(&controlled);
        last["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|worker| worker["requests_now"][0]["request"] == LINE)
    });
    assert!(found, "no worker runs {LINE:?}: {last}");
    std::thread::sleep(Duration::from_millis(500));
    let now = status(&controlled);
    let workers = now["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{now}");
    let busy = workers
        .iter()
        .find(|worker| worker["requests_now"][0]["request"] == LINE)
        .unwrap_or_else(|| panic!("the request ended too soon: {now}"));
    assert_eq!(busy["state"], "busy", "{now}");
    assert_eq!(busy["class"], class.name(), "{now}");
    assert_eq!(busy["in_flight"], 1, "{now}");
    let secs = busy["requests_now"][0]["secs"].as_f64().unwrap();
    assert!((0.4..3.0).contains(&secs), "age {secs}: {now}");
    assert!(busy["rss_bytes"].as_u64().unwrap() > 1 << 20, "{now}");
    let pid = busy["pid"].as_i64().unwrap();
    assert!(
        workers_of(controlled.server.pid()).contains(&(pid as u32)),
        "{now}"
    );
    let idle = workers.iter().find(|worker| worker["pid"] != pid).unwrap();
    assert_eq!(idle["state"], "idle", "{now}");
    assert_eq!(idle["requests_now"].as_array().unwrap().len(), 0, "{now}");
    assert_eq!(now["master"]["pid"], controlled.server.pid(), "{now}");
    assert_eq!(now["master"]["workers_target"], 2, "{now}");
    // The table: the busy worker's row ends with the line and its age.
    let table = ctl_ok(&controlled, &["status"]);
    let row = table
        .lines()
        .find(|row| row.starts_with(&format!("{pid} ")))
        .unwrap_or_else(|| panic!("no row for {pid}:\n{table}"));
    assert!(
        row.contains(class.name()) && row.contains(" busy "),
        "{table}"
    );
    assert!(
        row.contains(&format!("{LINE} (")) && row.ends_with("s)"),
        "{table}"
    );
    let response = slow.join().unwrap().expect("the slow request is answered");
    assert_eq!(response.status, 200);
    // Once answered, it is counted and gone from the list.
    let after = status(&controlled);
    let worker = after["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|worker| worker["pid"] == pid)
        .cloned()
        .unwrap();
    assert_eq!(worker["requests"], 1, "{after}");
    assert_eq!(
        worker["requests_now"].as_array().unwrap().len(),
        0,
        "{after}"
    );
}

runicorn_tests::class_matrix![status_names_the_request_in_flight];

#[test]
fn workers_add_and_remove_change_the_worker_count() {
    let controlled = start(Class::Sync, &["-w", "1"], "builtin:hello");
    let master = controlled.server.pid();
    controlled.server.wait_workers(1, 10.0);
    assert_eq!(
        ctl_ok(&controlled, &["workers", "add", "2"]),
        "workers: 1 -> 3 (as 2 TTIN)\n"
    );
    assert!(
        wait_until(deadline(20.0), || workers_of(master).len() == 3),
        "{:?}\n{}",
        workers_of(master),
        controlled.server.log()
    );
    // The log is read from the server's pipe: wait for both lines, then
    // check there are no more than two.
    assert!(
        controlled
            .server
            .wait_for_log_count("Handling signal: ttin", 2, deadline(10.0))
            .is_some(),
        "{}",
        controlled.server.log()
    );
    assert_eq!(controlled.server.log_count("Handling signal: ttin"), 2);
    assert_eq!(status(&controlled)["master"]["workers_target"], 3);
    assert_eq!(
        ctl_ok(&controlled, &["workers", "remove", "5"]),
        "workers: 3 -> 1 (as 3 TTOU; never below one)\n"
    );
    assert!(
        wait_until(deadline(30.0), || workers_of(master).len() == 1),
        "{:?}\n{}",
        workers_of(master),
        controlled.server.log()
    );
    controlled
        .server
        .expect_log("Keeping 1 worker: TTOU never goes below one", 5.0);
    // A count that is not a positive number is refused by ctl itself.
    let zero = ctl(&controlled.socket, &["workers", "add", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero.stderr));
    assert_eq!(get(controlled.server.addr(), "/").unwrap().status, 200);
}

#[test]
fn reload_rolls_the_workers() {
    let controlled = start(Class::Gthread, &["-w", "2"], "builtin:hello");
    let old = controlled.server.wait_workers(2, 10.0);
    assert!(ctl_ok(&controlled, &["reload"]).contains("(as HUP)"));
    controlled.server.expect_log("Handling signal: hup", 10.0);
    assert!(
        wait_replaced(&controlled.server, &old, 30.0),
        "workers {old:?} were not replaced:\n{}",
        controlled.server.log()
    );
    let generations: Vec<Value> = status(&controlled)["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|worker| worker["generation"].clone())
        .collect();
    assert_eq!(generations, [1, 1]);
}

#[test]
fn stop_stops_gracefully_and_removes_the_socket() {
    let mut controlled = start(Class::Async, &["-w", "1"], "builtin:sleep");
    controlled.server.wait_workers(1, 10.0);
    let addr = controlled.server.addr().clone();
    let slow = std::thread::spawn(move || {
        let mut conn = Conn::connect(&addr)?;
        conn.set_timeout(Duration::from_secs(30))?;
        conn.get("/slow?ms=2000")
    });
    assert!(wait_until(deadline(10.0), || {
        status(&controlled)["workers"][0]["in_flight"] == 1
    }));
    assert_eq!(
        ctl_ok(&controlled, &["stop"]),
        "stopping gracefully (as TERM)\n"
    );
    assert_eq!(
        slow.join()
            .unwrap()
            .expect("answered during the graceful stop")
            .status,
        200
    );
    assert_eq!(exit_code(&mut controlled.server, 30.0), 0);
    controlled.server.expect_log("Handling signal: term", 1.0);
    assert!(
        !controlled.socket.exists(),
        "the socket file is removed at exit"
    );
    let after = ctl(&controlled.socket, &["status"]);
    assert_eq!(after.status.code(), Some(1));
    let err = text(&after.stderr);
    assert!(
        err.contains("no control socket at") && err.contains("--control-socket"),
        "{err}"
    );
}

#[test]
fn the_socket_is_mode_0600_and_answers_its_owner_alone() {
    let controlled = start(Class::Sync, &["-w", "1"], "builtin:hello");
    let meta = std::fs::symlink_metadata(&controlled.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "mode {:o}", meta.mode());
    assert_eq!(
        meta.uid(),
        nix::unistd::geteuid().as_raw(),
        "owned by the master's user"
    );
    // Another user: the file's mode keeps it out.
    let as_nobody = |args: &[&str]| {
        ctl_command(&controlled.socket, args)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("run runicorn ctl as nobody")
    };
    let denied = as_nobody(&["status"]);
    assert_eq!(denied.status.code(), Some(1));
    let err = text(&denied.stderr);
    assert!(
        err.contains("permission denied") && err.contains("run runicorn ctl as that user"),
        "{err}"
    );
    // Widened by hand: the master still checks who is asking (SO_PEERCRED).
    let dir = controlled.socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&controlled.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [&["status"][..], &["stop"][..], &["workers", "add", "1"][..]] {
        let refused = as_nobody(args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        let err = text(&refused.stderr);
        assert!(
            err.contains(&format!(
                "refused: uid {NOBODY} is not the control socket's owner"
            )),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        controlled
            .server
            .log_count(&format!("refused a client running as uid {NOBODY}")),
        3
    );
    // Nothing happened: same workers, still serving; the owner is answered.
    assert_eq!(
        controlled.server.log_count("Handling signal"),
        0,
        "{}",
        controlled.server.log()
    );
    assert_eq!(controlled.server.worker_pids().len(), 1);
    assert_eq!(status(&controlled)["master"]["workers_target"], 1);
}

#[test]
fn a_stalled_client_does_not_hold_the_master() {
    let controlled = start(Class::Sync, &["-w", "1"], "builtin:hello");
    let master = controlled.server.pid();
    controlled.server.wait_workers(1, 10.0);
    // Connected, and never a byte: the master serves on.
    let mut stalled = UnixStream::connect(&controlled.socket).unwrap();
    let held_since = Instant::now();
    controlled.server.signal(Signal::SIGTTIN);
    assert!(
        wait_until(deadline(10.0), || workers_of(master).len() == 2),
        "TTIN was not handled while a client held the socket:\n{}",
        controlled.server.log()
    );
    assert_eq!(status(&controlled)["master"]["workers_target"], 2);
    assert_eq!(get(controlled.server.addr(), "/").unwrap().status, 200);
    // At its deadline (5 s) the stalled client is dropped.
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut rest = Vec::new();
    let read = stalled.read_to_end(&mut rest);
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    let held = held_since.elapsed();
    assert!(held >= Duration::from_secs(4), "dropped after {held:?}");
    controlled
        .server
        .expect_log("a client took longer than 5s to send its request", 5.0);
    // A line that is not a request gets an answer naming the requests.
    let mut client = UnixStream::connect(&controlled.socket).unwrap();
    std::io::Write::write_all(&mut client, b"restart\n").unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["ok"], false);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("`workers add N`"),
        "{answer}"
    );
}

#[test]
fn a_live_socket_is_not_taken_and_a_stale_one_is_replaced() {
    let controlled = start(Class::Sync, &["-w", "1"], "builtin:hello");
    // A second master with the same path: refused at start, the first keeps it.
    let socket = controlled.socket.to_str().unwrap();
    let second = Class::Sync
        .launch(&["--control-socket", socket], "builtin:hello")
        .expect_exit(20.0);
    assert_eq!(second.code(), 1);
    assert!(
        second.log.contains(&format!(
            "--control-socket {socket}: another process serves this socket"
        )),
        "{}",
        second.log
    );
    assert_eq!(
        status(&controlled)["master"]["pid"],
        controlled.server.pid()
    );
    // A socket file nobody serves (its master was killed): replaced.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("ctl");
    drop(UnixListener::bind(&stale).unwrap());
    let refused = ctl(&stale, &["status"]);
    assert!(
        text(&refused.stderr).contains("nothing serves"),
        "{}",
        text(&refused.stderr)
    );
    let server = Class::Sync.start(
        &["--control-socket", stale.to_str().unwrap()],
        "builtin:hello",
    );
    server.expect_log("Control socket at: ", 10.0);
    let output = ctl(&stale, &["status", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // And a path that is not a socket is left alone.
    let file = dir.path().join("file");
    std::fs::write(&file, "keep me").unwrap();
    let refused = Class::Sync
        .launch(
            &["--control-socket", file.to_str().unwrap()],
            "builtin:hello",
        )
        .expect_exit(20.0);
    assert_eq!(refused.code(), 1);
    assert!(
        refused.log.contains("exists and is not a socket"),
        "{}",
        refused.log
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn ctl_without_a_socket_names_the_flag() {
    let output = Command::new(runicorn_bin())
        .args(["ctl", "status"])
        .env_remove("RUNICORN_CONTROL_SOCKET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--control-socket PATH"),
        "{}",
        text(&output.stderr)
    );
}

/// USR2: the new master leaves the socket to the old one (which keeps
/// answering) and binds it once promoted.
#[test]
fn usr2_hands_the_socket_over_at_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl");
    let pidfile = dir.path().join("app.pid");
    let mut server = Launch::new([
        "-w",
        "1",
        "-b",
        "127.0.0.1:0",
        "-p",
        pidfile.to_str().unwrap(),
        "--control-socket",
        socket.to_str().unwrap(),
        "builtin:hello",
    ])
    .start();
    let old = server.pid();
    assert!(wait_until(deadline(20.0), || workers_of(old).len() == 1));
    server.signal(Signal::SIGUSR2);
    let mut next = pidfile.clone().into_os_string();
    next.push(".2");
    let next = PathBuf::from(next);
    let new = runicorn_tests::wait::wait_for(deadline(30.0), || {
        read_pid(&next).filter(|pid| *pid != old)
    })
    .unwrap_or_else(|| panic!("no new master:\n{}", server.log()));
    assert!(wait_until(deadline(30.0), || workers_of(new).len() == 1));
    server.expect_log(
        &format!("left to the old master (pid {old}) until this master is promoted"),
        10.0,
    );
    let pid_of = |socket: &Path| {
        let output = ctl(socket, &["status", "--json"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
        answer["status"]["master"]["pid"].as_u64().unwrap() as u32
    };
    assert_eq!(pid_of(&socket), old, "the old master keeps the socket");
    server.signal(Signal::SIGWINCH);
    assert!(wait_until(deadline(30.0), || workers_of(old).is_empty()));
    server.signal(Signal::SIGTERM);
    assert_eq!(exit_code(&mut server, 30.0), 0);
    assert!(
        wait_until(deadline(10.0), || { UnixStream::connect(&socket).is_ok() }),
        "the promoted master did not bind the socket:\n{}",
        server.log()
    );
    assert_eq!(pid_of(&socket), new, "the promoted master has the socket");
    server.expect_log(
        &format!("Control socket at: {} ({new})", socket.display()),
        5.0,
    );
    let stop = ctl(&socket, &["stop"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(
        wait_until(deadline(30.0), || !runicorn_tests::proc::alive(new)),
        "the new master did not stop"
    );
    assert!(!socket.exists(), "removed by the master that made it");
}

/// The socket is made once, at start: a HUP whose configuration names
/// another path says so, and the socket stays where it was.
#[test]
fn a_hup_that_moves_the_socket_says_it_stays() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.ctl");
    let second = dir.path().join("second.ctl");
    let config = dir.path().join("runicorn.toml");
    let write = |path: &Path| {
        std::fs::write(
            &config,
            format!("control_socket = {:?}\n", path.to_str().unwrap()),
        )
        .unwrap();
    };
    write(&first);
    let server = Class::Sync.start(&["-c", config.to_str().unwrap()], "builtin:hello");
    server.expect_log("Control socket at: ", 10.0);
    let old = server.wait_workers(1, 10.0);
    write(&second);
    server.signal(Signal::SIGHUP);
    let line = server.expect_log("--control-socket changed from", 10.0);
    assert!(
        line.contains(&format!(
            "from {} to {} on HUP",
            first.display(),
            second.display()
        )) && line.contains(&format!("stays at {}", first.display())),
        "{line}"
    );
    assert!(wait_replaced(&server, &old, 30.0));
    assert!(!second.exists());
    let output = ctl(&first, &["status", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// A worker that TTOU retires while it runs a request is listed as
/// `retiring`, its request still named, until it has answered and exited.
#[test]
fn a_retiring_worker_is_listed_with_the_request_it_finishes() {
    let controlled = start(
        Class::Gthread,
        &["-w", "1", "--threads", "2"],
        "builtin:sleep",
    );
    let master = controlled.server.pid();
    let first = controlled.server.wait_workers(1, 10.0)[0];
    let addr = controlled.server.addr().clone();
    let slow = std::thread::spawn(move || {
        let mut conn = Conn::connect(&addr)?;
        conn.set_timeout(Duration::from_secs(30))?;
        conn.get("/slow?ms=4000")
    });
    assert!(wait_until(deadline(10.0), || {
        status(&controlled)["workers"][0]["in_flight"] == 1
    }));
    ctl_ok(&controlled, &["workers", "add", "1"]);
    assert!(wait_until(deadline(20.0), || workers_of(master).len() == 2));
    // TTOU retires the oldest: the busy one.
    ctl_ok(&controlled, &["workers", "remove", "1"]);
    let mut last = Value::Null;
    let listed = wait_until(deadline(10.0), || {
        last = status(&controlled);
        last["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|worker| worker["pid"] == first && worker["state"] == "retiring")
    });
    assert!(listed, "worker {first} is not listed as retiring: {last}");
    let retiring = last["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|worker| worker["pid"] == first)
        .cloned()
        .unwrap();
    assert_eq!(
        retiring["requests_now"][0]["request"], "GET /slow?ms=4000 HTTP/1.1",
        "{last}"
    );
    assert_eq!(slow.join().unwrap().expect("answered").status, 200);
    assert!(wait_until(deadline(20.0), || {
        status(&controlled)["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|worker| worker["pid"] != first)
    }));
}
