//! End-to-end tests of the settings (issue 8): the real binary, every source
//! and its precedence, `--print-config`/`--check-config`, bad input, HUP
//! re-reading the config file, and the settings that change how processes
//! run (`--chdir`, `-m`, `-e`, `-D`, `-u`/`-g`, `-n`). Servers bind
//! `127.0.0.1:0` or a unix socket in a temp dir; every process is killed on
//! drop, also when a test fails.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{killpg, Signal as NixSignal};
use nix::unistd::Pid;
use runicorn_tests::examples::examples;
use runicorn_tests::{deadline, get, proc, runicorn_bin, wait_until, Launch, Server, Signal};

const LOCAL: &str = "127.0.0.1:0";

/// A short-lived `runicorn` run (print-config, check-config, a refused
/// value): its own process group, killed on drop, bounded in time.
struct Run {
    child: Child,
}

/// What a short run printed and how it ended.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn start(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Run {
        let mut command = Command::new(runicorn_bin());
        command.args(args);
        for key in runicorn_tests::server::HERMETIC_ENV {
            command.env_remove(key);
        }
        let child = command
            .envs(envs.iter().copied())
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn runicorn");
        Run { child }
    }

    fn finish(mut self, secs: f64) -> Output {
        let until = deadline(secs);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(!until.passed(), "runicorn did not exit within {secs}s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        let _ = self
            .child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout);
        let _ = self
            .child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr);
        Output {
            code: status.code().expect("exited, not killed"),
            stdout,
            stderr,
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), NixSignal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn run(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Output {
    Run::start(args, envs, cwd).finish(20.0)
}

/// `key = value` lines of a `--print-config` output.
fn printed(output: &Output) -> BTreeMap<String, String> {
    assert_eq!(output.code, 0, "print-config failed: {}", output.stderr);
    output
        .stdout
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains(" = "))
        .filter_map(|line| line.split_once(" = "))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

/// `/proc/<pid>/status` as key -> value.
fn status(pid: u32) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| {
            (
                key.to_owned(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(LOCAL).expect("bind a probe port");
    listener.local_addr().expect("probe port").port()
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "runicorn.toml",
        "workers = 2\ntimeout = 10\nkeepalive = 7\nbackound = 1\n",
    );
    // An unknown key in the default file is refused with file, line and the nearest key.
    let refused = run(&["--print-config", "builtin:hello"], &[], dir.path());
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("unknown setting 'backound'"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("line 4"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("did you mean 'backlog'?"),
        "{}",
        refused.stderr
    );

    write(
        dir.path(),
        "runicorn.toml",
        "workers = 2\ntimeout = 10\nkeepalive = 7\n",
    );
    let envs = [
        ("RUNICORN_CMD_ARGS", "-w 3 -t 20 --max-requests 9"),
        ("WEB_CONCURRENCY", "5"),
    ];
    let values = printed(&run(
        &["--print-config", "-w", "4", "builtin:hello"],
        &envs,
        dir.path(),
    ));
    assert_eq!(
        values["workers"], "4",
        "the command line beats RUNICORN_CMD_ARGS"
    );
    assert_eq!(values["timeout"], "20", "RUNICORN_CMD_ARGS beats the file");
    assert_eq!(
        values["max_requests"], "9",
        "RUNICORN_CMD_ARGS beats the default"
    );
    assert_eq!(values["keepalive"], "7", "the file beats the default");
    assert_eq!(values["graceful_timeout"], "30", "the default stays");
    let values = printed(&run(
        &["--print-config", "builtin:hello"],
        &[("WEB_CONCURRENCY", "5")],
        dir.path(),
    ));
    assert_eq!(values["workers"], "2", "the file beats $WEB_CONCURRENCY");
}

#[test]
fn env_derived_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("PORT", "5001"),
        ("WEB_CONCURRENCY", "3"),
        ("FORWARDED_ALLOW_IPS", "10.0.0.1,10.0.0.2"),
    ];
    let values = printed(&run(
        &["--print-config", "builtin:hello"],
        &envs,
        dir.path(),
    ));
    assert_eq!(values["bind"], "[\"0.0.0.0:5001\"]");
    assert_eq!(values["workers"], "3");
    assert_eq!(values["forwarded_allow_ips"], "\"10.0.0.1,10.0.0.2\"");
    let values = printed(&run(&["--print-config", "builtin:hello"], &[], dir.path()));
    assert_eq!(values["bind"], "[\"127.0.0.1:8000\"]");
    assert_eq!(values["workers"], "1");
    assert_eq!(values["forwarded_allow_ips"], "\"127.0.0.1,::1\"");
    // And the real thing: WEB_CONCURRENCY forks that many workers.
    let server = Launch::new(["-b", LOCAL, "builtin:hello"])
        .env("WEB_CONCURRENCY", "2")
        .start();
    server.wait_workers(2, 20.0);
}

#[test]
fn env_sections_are_selected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "runicorn.toml",
        "workers = 2\n[env.production]\nworkers = 6\nloglevel = \"warning\"\n",
    );
    let values = printed(&run(
        &["--print-config", "builtin:hello"],
        &[("RUNICORN_ENV", "production")],
        dir.path(),
    ));
    assert_eq!(values["workers"], "6");
    assert_eq!(values["loglevel"], "\"warning\"");
    let values = printed(&run(
        &[
            "--print-config",
            "--env-name",
            "production",
            "builtin:hello",
        ],
        &[],
        dir.path(),
    ));
    assert_eq!(values["workers"], "6");
    let missing = run(
        &["--print-config", "--env-name", "staging", "builtin:hello"],
        &[],
        dir.path(),
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("[env.production]"),
        "{}",
        missing.stderr
    );
}

#[test]
fn print_config_round_trips_through_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--print-config",
        "-w",
        "3",
        "-b",
        "127.0.0.1:0",
        "-b",
        "unix:/tmp/runicorn-roundtrip.sock",
        "-t",
        "2.5",
        "-m",
        "027",
        "-e",
        "GREETING=hi there",
        "--max-requests",
        "100",
        "--preload",
        "-n",
        "roundtrip",
        "builtin:echo",
    ];
    let first = run(&args, &[], dir.path());
    assert_eq!(first.code, 0, "{}", first.stderr);
    let file = write(dir.path(), "printed.toml", &first.stdout);
    let file = file.to_str().unwrap();
    let second = run(&["--print-config", "-c", file], &[], dir.path());
    assert_eq!(second.code, 0, "{}", second.stderr);
    let without_config = |text: &str| {
        text.lines()
            .filter(|line| !line.starts_with("# config"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_config(&second.stdout),
        without_config(&first.stdout)
    );
    assert_eq!(printed(&second)["umask"], "\"0o027\"");
}

#[test]
fn check_config_loads_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let good = run(
        &["--check-config", "-w", "2", "builtin:hello"],
        &[],
        dir.path(),
    );
    assert_eq!(good.code, 0, "{}", good.stderr);
    let bad = run(&["--check-config", "builtin:nope"], &[], dir.path());
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("Failed to find application object 'nope' in 'builtin'"),
        "{}",
        bad.stderr
    );
    let missing = run(
        &["--check-config", "no_such_lib_for_tests:app"],
        &[],
        dir.path(),
    );
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    write(dir.path(), "runicorn.toml", "workers = \"many\"\n");
    let bad_file = run(&["--check-config", "builtin:hello"], &[], dir.path());
    assert_eq!(bad_file.code, 1, "{}", bad_file.stderr);
    assert!(
        bad_file.stderr.contains("runicorn.toml line 1"),
        "{}",
        bad_file.stderr
    );
}

#[test]
fn bad_values_get_one_line_and_the_right_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["-w", "-3", "builtin:hello"],
            2,
            "invalid value '-3' for workers (-w/--workers)",
        ),
        (
            &["--bind", "nonsense", "builtin:hello"],
            2,
            "invalid value 'nonsense' for bind (-b/--bind)",
        ),
        (
            &["--log-level", "loud", "builtin:hello"],
            2,
            "expected one of debug, info, warning, error, critical",
        ),
        (
            &["-t", "abc", "builtin:hello"],
            2,
            "invalid value 'abc' for timeout (-t/--timeout)",
        ),
        (
            &["-k", "gevnt", "builtin:hello"],
            2,
            "unknown worker class 'gevnt': known classes are",
        ),
        (
            &["--paste", "/srv/app.ini", "builtin:hello"],
            2,
            "MODULE:VARIABLE",
        ),
        (&["--no-such-flag", "builtin:hello"], 2, "--no-such-flag"),
        (
            &["-u", "no-such-user-runicorn", "builtin:hello"],
            1,
            "no such user on this system",
        ),
        (
            &["-g", "no-such-group-runicorn", "builtin:hello"],
            1,
            "no such group on this system",
        ),
        (&["-c", "missing.toml", "builtin:hello"], 1, "missing.toml"),
        (&[], 2, "no application specified"),
    ];
    for (args, code, expected) in cases {
        let output = run(args, &[], dir.path());
        assert_eq!(output.code, *code, "{args:?}: {}", output.stderr);
        assert!(
            output.stderr.contains(expected),
            "{args:?}: {}",
            output.stderr
        );
        if !args.contains(&"--no-such-flag") {
            assert_eq!(
                output.stderr.trim().lines().count(),
                1,
                "{args:?}: one line: {}",
                output.stderr
            );
        }
    }
}

#[test]
fn hup_rereads_the_file_for_workers_and_bind() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "runicorn.toml",
        "workers = 1\nbind = [\"127.0.0.1:0\"]\n",
    );
    let server = Launch::new(["-c", config.to_str().unwrap(), "builtin:hello"])
        .current_dir(dir.path())
        .start();
    server.wait_workers(1, 20.0);
    let port = free_port();
    write(
        dir.path(),
        "runicorn.toml",
        &format!("workers = 2\nbind = [\"127.0.0.1:{port}\"]\n"),
    );
    server.signal(Signal::SIGHUP);
    server.expect_log(&format!("Listening at: http://127.0.0.1:{port}"), 20.0);
    server.wait_workers(2, 20.0);
    let addr = runicorn_tests::Addr::Tcp(format!("127.0.0.1:{port}").parse().unwrap());
    let response = get(&addr, "/").expect("GET on the new address");
    assert_eq!(response.text(), "Hello, World!");
}

#[test]
fn hup_with_a_broken_file_keeps_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "runicorn.toml", "workers = 2\n");
    let server =
        Launch::new(["-c", config.to_str().unwrap(), "-b", LOCAL, "builtin:hello"]).start();
    server.wait_workers(2, 20.0);
    write(dir.path(), "runicorn.toml", "workers = [\n");
    server.signal(Signal::SIGHUP);
    let line = server.expect_log("keeping the running configuration", 20.0);
    assert!(line.contains("runicorn.toml"), "{line}");
    let response = get(server.addr(), "/").expect("still serving");
    assert_eq!(response.status, 200);
    assert_eq!(server.worker_pids().len(), 2);
}

#[test]
fn chdir_and_umask_reach_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let server = Server::start([
        "-b".as_ref(),
        LOCAL.as_ref(),
        "--chdir".as_ref(),
        work.as_os_str(),
        "-m".as_ref(),
        "0o027".as_ref(),
        OsStr::new("builtin:hello"),
    ]);
    let worker = server.wait_workers(1, 20.0)[0];
    // The worker is visible from fork on; it changes directory and umask
    // just after, so wait (bounded) for both to be in place.
    let cwd = || std::fs::read_link(format!("/proc/{worker}/cwd")).ok();
    let umask = || status(worker).get("Umask").cloned();
    wait_until(deadline(10.0), || {
        cwd().as_deref() == Some(work.as_path()) && umask().as_deref() == Some("0027")
    });
    assert_eq!(cwd(), Some(work.clone()));
    assert_eq!(umask().as_deref(), Some("0027"));
}

/// Kills a daemonised master's process group (it left ours with setsid):
/// the group id, once known.
struct DaemonGuard(Option<u32>);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = killpg(Pid::from_raw(pid as i32), NixSignal::SIGKILL);
        }
    }
}

#[test]
fn daemon_detaches_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("runicorn.pid");
    let log = dir.path().join("error.log");
    let exited = Launch::new([
        "-D".as_ref(),
        "-p".as_ref(),
        pidfile.as_os_str(),
        "--error-logfile".as_ref(),
        log.as_os_str(),
        "-b".as_ref(),
        LOCAL.as_ref(),
        OsStr::new("builtin:hello"),
    ])
    .expect_exit(20.0);
    assert_eq!(
        exited.code(),
        0,
        "the foreground process exits 0: {}",
        exited.log
    );
    let mut guard = DaemonGuard(None);
    assert!(wait_until(deadline(20.0), || std::fs::read_to_string(
        &pidfile
    )
    .is_ok_and(|text| !text.trim().is_empty())));
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stat = proc::stat(pid).expect("the daemon runs");
    guard.0 = Some(stat.pgrp);
    assert_ne!(
        stat.pgrp,
        std::process::id(),
        "the daemon left the test's process group"
    );
    let listening = runicorn_tests::wait::wait_for(deadline(20.0), || {
        let text = std::fs::read_to_string(&log).ok()?;
        let line = text
            .lines()
            .find(|line| line.contains("Listening at: "))?
            .to_owned();
        let token = line
            .split_once("Listening at: ")?
            .1
            .split_whitespace()
            .next()?
            .to_owned();
        runicorn_tests::Addr::parse_listening(&token)
    });
    let addr = listening.expect("the daemon logs its address");
    assert_eq!(
        get(&addr, "/").expect("GET the daemon").text(),
        "Hello, World!"
    );
    nix::sys::signal::kill(Pid::from_raw(pid as i32), NixSignal::SIGTERM).unwrap();
    assert!(
        wait_until(deadline(30.0), || !proc::alive(pid)),
        "the daemon stops on TERM"
    );
}

/// What `ps` shows for `pid`: its argv area, NULs as spaces.
fn process_title(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim()
        .to_owned()
}

/// The master's and a worker's titles once both are set, with `extra` args
/// (the master sets its own before it logs `Listening at:`).
fn titles(extra: &[&str]) -> (String, String) {
    let mut args = vec!["-b", LOCAL];
    args.extend_from_slice(extra);
    args.push("builtin:hello");
    let server = Server::start(args);
    let worker = server.wait_workers(1, 20.0)[0];
    // The worker sets its title right after fork; wait for it, bounded.
    let worker_title = wait_until(deadline(10.0), || {
        process_title(worker).starts_with("runicorn: worker")
    });
    assert!(worker_title, "worker title: {}", process_title(worker));
    (process_title(server.pid()), process_title(worker))
}

#[test]
fn process_titles_name_the_role_and_the_name() {
    let (master, worker) = titles(&["-n", "titled"]);
    assert!(master.starts_with("runicorn: master [titled]"), "{master}");
    assert!(worker.starts_with("runicorn: worker [titled]"), "{worker}");
    // Without -n the name is the app, as Gunicorn's default proc_name.
    let (master, worker) = titles(&[]);
    assert!(
        master.starts_with("runicorn: master [builtin:hello]"),
        "{master}"
    );
    assert!(
        worker.starts_with("runicorn: worker [builtin:hello]"),
        "{worker}"
    );
}

#[test]
fn workers_drop_privileges_to_nobody_when_run_as_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some(nobody) = nix::unistd::User::from_name("nobody").ok().flatten() else {
        eprintln!("skipped: no user nobody");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let server = Server::start([
        "-u".as_ref(),
        "nobody".as_ref(),
        "-g".as_ref(),
        nobody.gid.to_string().as_ref(),
        "-b".as_ref(),
        format!("unix:{}", socket.display()).as_ref(),
        OsStr::new("builtin:hello"),
    ]);
    let worker = server.wait_workers(1, 20.0)[0];
    assert_eq!(get(server.addr(), "/").expect("GET as nobody").status, 200);
    let worker_status = status(worker);
    let uid = nobody.uid.to_string();
    let gid = nobody.gid.to_string();
    assert_eq!(
        worker_status["Uid"],
        [uid.as_str(); 4].join(" "),
        "real, effective, saved, fs uid"
    );
    assert_eq!(
        worker_status["Gid"],
        [gid.as_str(); 4].join(" "),
        "real, effective, saved, fs gid"
    );
    assert_eq!(
        worker_status["Groups"], "",
        "supplementary groups cleared without --initgroups"
    );
    let master_status = status(server.pid());
    assert!(
        master_status["Uid"].starts_with("0 "),
        "the master keeps root: {}",
        master_status["Uid"]
    );
}

#[test]
fn reload_rolls_the_workers_when_a_watched_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "runicorn.toml", "workers = 1\n");
    let extra = write(dir.path(), "extra.txt", "one\n");
    let server = Server::start([
        "-c".as_ref(),
        config.as_os_str(),
        "--reload".as_ref(),
        "--reload-extra-file".as_ref(),
        extra.as_os_str(),
        "-b".as_ref(),
        LOCAL.as_ref(),
        OsStr::new("builtin:hello"),
    ]);
    server.expect_log("Reload watcher", 20.0);
    server.expect_log("Booting worker with pid:", 20.0);
    // The watcher is up once it logged; give inotify its watch, then touch.
    assert!(wait_until(deadline(20.0), || {
        write(dir.path(), "extra.txt", "two\n");
        server.wait_for_log("Reloading: ", deadline(1.5)).is_some()
    }));
    server.expect_log("extra.txt changed", 5.0);
    server.expect_log("Handling signal: hup", 20.0);
    assert!(
        server
            .wait_for_log_count("Booting worker with pid:", 2, deadline(20.0))
            .is_some(),
        "a new generation of workers: {}",
        server.log()
    );
    // A config change rolls them too, and its new value is used.
    write(dir.path(), "runicorn.toml", "workers = 2\n");
    assert!(
        server
            .wait_for_log_count("Booting worker with pid:", 4, deadline(20.0))
            .is_some(),
        "the config change rolled the workers with the new count: {}",
        server.log()
    );
    assert_eq!(
        get(server.addr(), "/").expect("GET after reload").status,
        200
    );
}

/// Replaces `path` by `source` the safe way: copy beside it, then rename.
fn replace_by_rename(source: &Path, path: &Path) {
    let staged = path.with_extension("so.new");
    std::fs::copy(source, &staged).expect("stage the new library");
    std::fs::rename(&staged, path).expect("rename the new library into place");
}

#[test]
fn reload_serves_a_replaced_library() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libswap.so");
    std::fs::copy(examples().join("libhello.so"), &library).expect("copy libhello.so");
    let server = Server::start([
        "--reload".as_ref(),
        "--app-path".as_ref(),
        dir.path().as_os_str(),
        "-b".as_ref(),
        LOCAL.as_ref(),
        OsStr::new("swap:app"),
    ]);
    assert_eq!(
        get(server.addr(), "/").expect("GET hello").text(),
        "Hello, World!\n"
    );
    server.expect_log("Reload watcher", 20.0);
    // Swap in the echo app until the watcher reports it (its watch may
    // still be settling right after it logged).
    assert!(
        wait_until(deadline(20.0), || {
            replace_by_rename(&examples().join("libecho.so"), &library);
            server
                .wait_for_log("libswap.so changed", deadline(1.5))
                .is_some()
        }),
        "the watcher saw the new library: {}",
        server.log()
    );
    assert!(
        wait_until(deadline(30.0), || {
            get(server.addr(), "/").is_ok_and(|response| response.text() != "Hello, World!\n")
        }),
        "the new generation serves the replaced library: {}",
        server.log()
    );
}

#[test]
fn help_and_version_come_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let help = run(&["--help"], &[], dir.path());
    assert_eq!(help.code, 0, "{}", help.stderr);
    for expected in [
        "Worker Processes:",
        "-w, --workers <INT>",
        "-k, --worker-class <CLASS>",
        "--limit-request-field_size <INT>",
        "-p, --pid <FILE>",
        "--preload",
        "--check-config",
        "RUNICORN_CMD_ARGS",
    ] {
        assert!(
            help.stdout.contains(expected),
            "--help lacks {expected:?}:\n{}",
            help.stdout
        );
    }
    assert!(!help.stdout.contains("--spew"), "refused flags stay hidden");
    let version = run(&["--version"], &[], dir.path());
    assert_eq!(version.code, 0);
    assert!(
        version.stdout.starts_with("runicorn "),
        "{}",
        version.stdout
    );
}

#[test]
fn threads_with_the_sync_class_follow_gunicorns_rule() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        &["--check-config", "--threads", "4", "builtin:hello"],
        &[],
        dir.path(),
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("--threads 4 with the sync worker class: using gthread")
            || output
                .stderr
                .contains("--threads 4 has no effect with the sync worker class"),
        "the promotion is logged: {}",
        output.stderr
    );
}

#[test]
fn env_flag_reaches_the_workers_init_worker() {
    let app_path = examples().display().to_string();
    let base = ["-b", LOCAL, "--app-path", app_path.as_str()];
    // The hello library's init_worker, in the worker, reads HELLO_INIT: set
    // only through -e here (the harness clears nothing it would inherit).
    let mut args = base.to_vec();
    args.extend(["-e", "HELLO_INIT=fail", "hello:app"]);
    let exited = Launch::new(&args).expect_exit(30.0);
    assert_eq!(exited.code(), 3, "{}", exited.log);
    assert!(
        exited.log.contains("HELLO_INIT=fail: refusing to boot"),
        "{}",
        exited.log
    );
    // Any other value boots, and both forms (-e and --env) are accepted.
    let mut args = base.to_vec();
    args.extend(["--env", "HELLO_INIT=ok", "-e", "OTHER=1", "hello:app"]);
    let server = Server::start(&args);
    assert_eq!(get(server.addr(), "/").expect("GET hello").status, 200);
}
