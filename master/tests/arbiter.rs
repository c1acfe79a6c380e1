//! Process-level tests of the arbiter with a toy worker class.
//!
//! The test binary re-executes itself with `--toy-server CONFIG` to become a
//! master (single-threaded: this target has no libtest harness) serving
//! `ToyClass`, a tiny accept-and-answer loop, and `ToyLoader`. Each test
//! starts its master in its own process group, kills the whole group on
//! drop (also on panic), binds 127.0.0.1:0 and reads the port from the log,
//! and waits on conditions with deadlines.

#[path = "arbiter/harness.rs"]
mod harness;
#[path = "arbiter/toy.rs"]
mod toy;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use harness::{alive, get, wait_for, watchdog, workers_gone, Server, LIVE_GROUPS};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

// --- the tests --------------------------------------------------------------

fn workers_spawned_and_replaced_after_sigkill() {
    let mut server = Server::start(&["workers=2"]);
    let port = server.port();
    let pids = server.wait_booted(2);
    assert!(pids.contains(&get(port, "/").unwrap().parse().unwrap()));
    kill(Pid::from_raw(pids[0]), Signal::SIGKILL).unwrap();
    let log = server.wait_log(
        &format!("Worker (pid:{}) was sent SIGKILL!", pids[0]),
        Duration::from_secs(5),
    );
    assert!(log.contains("The master did not send it"), "{log}");
    let booted = server.wait_booted(3);
    assert!(alive(booted[2]));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(workers_gone(&booted));
}

fn term_is_graceful_and_exits_zero() {
    let mut server = Server::start(&["workers=1", "graceful_timeout=10"]);
    let port = server.port();
    let pids = server.wait_booted(1);
    let client = std::thread::spawn(move || get(port, "/sleep"));
    server.wait_log("toy: handling GET /sleep", Duration::from_secs(5));
    server.signal(Signal::SIGTERM);
    let body = client
        .join()
        .unwrap()
        .expect("the in-flight request finishes");
    assert_eq!(body, pids[0].to_string());
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(workers_gone(&pids));
    assert!(server.log().contains("Shutting down: Master"));
}

fn term_kills_what_overruns_graceful_timeout() {
    let mut server = Server::start(&["workers=1", "graceful_timeout=1", "timeout=60"]);
    let port = server.port();
    let pids = server.wait_booted(1);
    let client = std::thread::spawn(move || get(port, "/slow"));
    server.wait_log("toy: handling GET /slow", Duration::from_secs(5));
    let started = Instant::now();
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    // Generous bound: 1 s of grace, then SIGKILL, far below the 30 s request.
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(workers_gone(&pids));
    let _ = client.join();
}

fn hooks_are_called_where_gunicorn_calls_them() {
    std::env::set_var("TOY_HOOKS", "1");
    let mut server = Server::start(&["workers=1"]);
    std::env::remove_var("TOY_HOOKS");
    let pids = server.wait_booted(1);
    server.wait_log(
        &format!("hook: post_worker_init pid={}", pids[0]),
        Duration::from_secs(5),
    );
    // when_ready once the first generation booted, not at fork time.
    server.wait_log("hook: when_ready workers=1", Duration::from_secs(5));
    server.signal(Signal::SIGTTIN);
    server.wait_log(
        "hook: nworkers_changed Some(1) -> 2",
        Duration::from_secs(5),
    );
    server.wait_booted(2);
    server.signal(Signal::SIGHUP);
    server.wait_log("hook: on_reload", Duration::from_secs(5));
    server.wait_log(
        &format!("hook: child_exit pid={}", pids[0]),
        Duration::from_secs(5),
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    let log = server.log();
    let order = [
        "hook: on_starting",
        "hook: nworkers_changed None -> 1",
        "hook: pre_fork age=1",
        "hook: post_fork pid=",
        "hook: post_worker_init pid=",
        "booted in ",
        "Ready: 1 worker booted in ",
        "hook: when_ready workers=1",
        "hook: worker_exit pid=",
        "hook: on_exit",
    ];
    let mut from = 0;
    for hook in order {
        let at = log[from..]
            .find(hook)
            .unwrap_or_else(|| panic!("{hook} missing or out of order:\n{log}"));
        from += at;
    }
}

fn workers_drop_privileges_when_root() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("(skipped: not root)");
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        eprintln!("(skipped: no user nobody)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("p.sock");
    let bind_line = format!("bind=unix:{}", socket.display());
    let mut server = Server::start(&["workers=1", "user=nobody", &bind_line]);
    let pids = server.wait_booted(1);
    let status = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .map(|line| {
                line.split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let worker = wait_for(Duration::from_secs(5), || {
        let text = status(pids[0]);
        field(&text, "Uid:")
            .starts_with(&nobody.uid.to_string())
            .then_some(text)
    })
    .unwrap_or_else(|| panic!("worker still {}", field(&status(pids[0]), "Uid:")));
    let uid = nobody.uid.to_string();
    let gid = nobody.gid.to_string();
    assert_eq!(field(&worker, "Uid:"), [uid.as_str(); 4].join(" "));
    assert_eq!(field(&worker, "Gid:"), [gid.as_str(); 4].join(" "));
    assert_eq!(field(&worker, "Groups:"), "");
    assert!(
        field(&status(server.pid()), "Uid:").starts_with("0 "),
        "master keeps root"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().uid(),
        nobody.uid.as_raw()
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn quit_is_quick() {
    let mut server = Server::start(&["workers=2", "graceful_timeout=20"]);
    let pids = server.wait_booted(2);
    let started = Instant::now();
    server.signal(Signal::SIGQUIT);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(workers_gone(&pids));
}

fn ttin_and_ttou_change_the_count() {
    let mut server = Server::start(&["workers=1"]);
    let first = server.wait_booted(1);
    server.signal(Signal::SIGTTIN);
    let two = server.wait_booted(2);
    server.signal(Signal::SIGTTOU);
    // The oldest worker retires.
    assert!(workers_gone(&first), "log:\n{}", server.log());
    assert!(alive(two[1]));
    server.signal(Signal::SIGTTOU);
    server.wait_log("Keeping 1 worker", Duration::from_secs(5));
    assert!(alive(two[1]));
    assert_eq!(server.booted().len(), 2);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn hup_replaces_every_worker() {
    let mut server = Server::start(&["workers=2"]);
    let port = server.port();
    let old = server.wait_booted(2);
    server.signal(Signal::SIGHUP);
    let all = server.wait_booted(4);
    assert!(
        workers_gone(&old),
        "old workers retire; log:\n{}",
        server.log()
    );
    let served: i32 = get(port, "/").unwrap().parse().unwrap();
    assert!(all[2..].contains(&served));
    // A broken config keeps the running one.
    std::fs::write(&server.config, "workers=lots\n").unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_log(
        "Reload failed, keeping the running configuration",
        Duration::from_secs(5),
    );
    assert!(
        all[2..].iter().all(|pid| alive(*pid)),
        "{all:?} log:\n{}",
        server.log()
    );
    // A config whose workers cannot boot keeps the old workers serving.
    server.set_config(&["bind=127.0.0.1:0", "workers=2", "app=toy:boot"]);
    server.signal(Signal::SIGHUP);
    server.wait_log("cannot boot", Duration::from_secs(10));
    assert!(
        all[2..].iter().all(|pid| alive(*pid)),
        "{all:?} log:\n{}",
        server.log()
    );
    let served: i32 = get(port, "/").unwrap().parse().unwrap();
    assert!(all[2..].contains(&served));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn timeout_kills_and_names_the_request() {
    let mut server = Server::start(&["workers=1", "timeout=1"]);
    let port = server.port();
    let pids = server.wait_booted(1);
    let client = std::thread::spawn(move || get(port, "/slow"));
    let log = server.wait_log("WORKER TIMEOUT", Duration::from_secs(10));
    assert!(
        log.contains(&format!("WORKER TIMEOUT (pid:{})", pids[0])),
        "{log}"
    );
    assert!(
        log.contains("handling \"GET /slow HTTP/1.1\" (started"),
        "{log}"
    );
    let _ = client.join();
    server.wait_booted(2);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn boot_failure_halts_with_the_code() {
    let mut server = Server::start(&["workers=2", "app=toy:boot"]);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), 3);
    assert!(
        server.log().contains("Reason: Worker failed to boot."),
        "{}",
        server.log()
    );
    let mut server = Server::start(&["workers=1", "app=nope:app"]);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), 4);
    assert!(
        server.log().contains("Reason: App failed to load."),
        "{}",
        server.log()
    );
    assert!(
        server.log().contains("No module named 'nope:app'"),
        "{}",
        server.log()
    );
}

fn pidfile_and_unix_socket_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("toy.pid");
    let socket = dir.path().join("toy.sock");
    let pid_line = format!("pidfile={}", pidfile.display());
    let bind_line = format!("bind=unix:{}", socket.display());
    let mut server = Server::start(&[&pid_line, &bind_line, "workers=1"]);
    server.wait_booted(1);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        server.pid().to_string()
    );
    assert!(socket.exists());
    // A second master with the same pidfile is refused.
    let mut second = Server::start(&[&pid_line, "workers=1"]);
    assert_eq!(second.wait_exit(Duration::from_secs(10)), 1);
    assert!(second.stderr().contains("already running"));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(!pidfile.exists(), "pidfile removed");
    assert!(!socket.exists(), "socket file removed");
}

fn port_in_use_is_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let bind_line = format!("bind={address}");
    let mut server = Server::start(&[&bind_line]);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), 1);
    let stderr = server.stderr();
    assert!(
        stderr.contains(&format!("Connection in use: {address}")),
        "{stderr}"
    );
}

fn max_requests_recycles() {
    let mut server = Server::start(&["workers=1", "max_requests=2"]);
    let port = server.port();
    let first = server.wait_booted(1);
    for _ in 0..2 {
        assert_eq!(get(port, "/").unwrap(), first[0].to_string());
    }
    let booted = server.wait_booted(2);
    assert!(workers_gone(&first));
    assert_eq!(get(port, "/").unwrap(), booted[1].to_string());
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn process_titles_name_the_role() {
    let mut server = Server::start(&["workers=1", "name=shop"]);
    let pids = server.wait_booted(1);
    let cmdline = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline(server.pid()).starts_with("runicorn: master [shop]"),
        "{:?}",
        cmdline(server.pid())
    );
    assert!(
        cmdline(pids[0]).starts_with("runicorn: worker [shop]"),
        "{:?}",
        cmdline(pids[0])
    );
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pids[0])).unwrap();
    assert_eq!(comm.trim(), "runicorn-worker");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn usr1_reopens_the_log_in_master_and_workers() {
    let mut server = Server::start(&["workers=1"]);
    let port = server.port();
    let pids = server.wait_booted(1);
    let log = server.dir.path().join("error.log");
    std::fs::rename(&log, server.dir.path().join("error.log.1")).unwrap();
    server.signal(Signal::SIGUSR1);
    server.wait_log("Handling signal: usr1", Duration::from_secs(5));
    // Give the worker its USR1 before its next line: wait for it to be
    // delivered by asking until the worker's line lands in the new file.
    let landed = wait_for(Duration::from_secs(5), || {
        get(port, "/").ok()?;
        server.log().contains("toy: handling GET /").then_some(())
    });
    assert!(
        landed.is_some(),
        "worker kept the old file; new log:\n{}",
        server.log()
    );
    assert!(alive(pids[0]));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn hup_rebinds_when_bind_changes() {
    let mut server = Server::start(&["workers=1"]);
    let port = server.port();
    let old = server.wait_booted(1);
    let socket = server.dir.path().join("new.sock");
    let bind_line = format!("bind=unix:{}", socket.display());
    server.set_config(&[&bind_line, "workers=1"]);
    server.signal(Signal::SIGHUP);
    let booted = server.wait_booted(2);
    assert!(workers_gone(&old), "log:\n{}", server.log());
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET / HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.ends_with(&booted[1].to_string()), "{response}");
    // The old listener closes once its generation is gone.
    let closed = wait_for(Duration::from_secs(5), || {
        TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    assert!(
        closed.is_some(),
        "old port still open; log:\n{}",
        server.log()
    );
    // A spec kept across a HUP is reused, not rebound: same socket file.
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&socket).unwrap().ino();
    server.set_config(&[&bind_line, "bind=127.0.0.1:0", "workers=1"]);
    server.signal(Signal::SIGHUP);
    server.wait_booted(3);
    assert_eq!(std::fs::metadata(&socket).unwrap().ino(), inode);
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
    assert!(!socket.exists());
}

fn fast_deaths_back_off() {
    let mut server = Server::start(&["workers=1", "app=toy:crash"]);
    server.wait_log("respawning in 0.4s", Duration::from_secs(10));
    // 100 + 200 + 400 ms of back-off: a handful of boots, not a tight loop.
    let boots = server.booted().len();
    assert!(
        (3..=12).contains(&boots),
        "{boots} boots; log:\n{}",
        server.log()
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)), 0);
}

fn daemon_detaches_and_writes_the_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("d.pid");
    let pid_line = format!("pidfile={}", pidfile.display());
    let mut server = Server::start(&["workers=1", "daemon=1", &pid_line]);
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)),
        0,
        "the launcher exits at once"
    );
    let daemon =
        wait_for(Duration::from_secs(10), || pidfile::read(&pidfile)).expect("pidfile written");
    if let Ok(group) = nix::unistd::getpgid(Some(Pid::from_raw(daemon))) {
        server.daemon_groups.borrow_mut().push(group.as_raw());
        LIVE_GROUPS.lock().unwrap().push(group.as_raw());
    }
    assert_ne!(daemon, server.pid());
    let port = server.port();
    let body = wait_for(Duration::from_secs(10), || {
        get(port, "/").ok().filter(|body| !body.is_empty())
    });
    assert!(body.is_some());
    kill(Pid::from_raw(daemon), Signal::SIGTERM).unwrap();
    let removed = wait_for(Duration::from_secs(10), || {
        (!pidfile.exists()).then_some(())
    });
    assert!(removed.is_some(), "log:\n{}", server.log());
}

mod pidfile {
    pub fn read(path: &std::path::Path) -> Option<i32> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--toy-server") {
        return toy::toy_server(PathBuf::from(&args[2]));
    }
    let filter = args
        .iter()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .cloned();
    let tests: &[(&'static str, fn())] = &[
        (
            "workers_spawned_and_replaced_after_sigkill",
            workers_spawned_and_replaced_after_sigkill,
        ),
        (
            "term_is_graceful_and_exits_zero",
            term_is_graceful_and_exits_zero,
        ),
        (
            "term_kills_what_overruns_graceful_timeout",
            term_kills_what_overruns_graceful_timeout,
        ),
        (
            "hooks_are_called_where_gunicorn_calls_them",
            hooks_are_called_where_gunicorn_calls_them,
        ),
        (
            "workers_drop_privileges_when_root",
            workers_drop_privileges_when_root,
        ),
        ("quit_is_quick", quit_is_quick),
        (
            "ttin_and_ttou_change_the_count",
            ttin_and_ttou_change_the_count,
        ),
        ("hup_replaces_every_worker", hup_replaces_every_worker),
        (
            "timeout_kills_and_names_the_request",
            timeout_kills_and_names_the_request,
        ),
        (
            "boot_failure_halts_with_the_code",
            boot_failure_halts_with_the_code,
        ),
        (
            "pidfile_and_unix_socket_semantics",
            pidfile_and_unix_socket_semantics,
        ),
        (
            "port_in_use_is_one_clear_line",
            port_in_use_is_one_clear_line,
        ),
        ("max_requests_recycles", max_requests_recycles),
        ("process_titles_name_the_role", process_titles_name_the_role),
        (
            "usr1_reopens_the_log_in_master_and_workers",
            usr1_reopens_the_log_in_master_and_workers,
        ),
        (
            "hup_rebinds_when_bind_changes",
            hup_rebinds_when_bind_changes,
        ),
        ("fast_deaths_back_off", fast_deaths_back_off),
        (
            "daemon_detaches_and_writes_the_pidfile",
            daemon_detaches_and_writes_the_pidfile,
        ),
    ];
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        if filter
            .as_ref()
            .is_some_and(|filter| !name.contains(filter.as_str()))
        {
            continue;
        }
        ran += 1;
        let started = Instant::now();
        let done = watchdog(name);
        let outcome = std::panic::catch_unwind(test);
        let _ = done.send(());
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        eprintln!(
            "test {name} ... {verdict} ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    eprintln!(
        "test result: {} passed; {} failed",
        ran - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
