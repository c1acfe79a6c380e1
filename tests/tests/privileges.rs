//! Least privilege, end to end, with the master started as root: workers
//! drop the master's supplementary groups, then the gid, then the uid
//! (Gunicorn keeps the starting user's groups); a failed step stops the
//! worker from booting, named; root without `--user` is warned about
//! once; unix sockets are `0660` unless `--umask` says otherwise. What a
//! worker is, is read from `/proc/<pid>/status`; the master gets
//! supplementary groups to drop from `setpriv --groups`. Every test needs
//! root (the machine the suite runs on is root) and says so when skipped.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use nix::unistd::{Group, User};
use runicorn_tests::{deadline, get, wait_until, Launch, Server, LOCAL};

/// Supplementary groups the master starts with (any gids do).
const MASTER_GROUPS: &str = "4,27";

fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: needs root");
    }
    root
}

/// `/proc/<pid>/status` as `key -> value` (whitespace collapsed).
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

/// runicorn started by `setpriv --groups MASTER_GROUPS`, with `args`.
fn start_with_groups(args: &[&str]) -> Server {
    Launch::new(args)
        .wrapper(["setpriv", "--groups", MASTER_GROUPS, "--"])
        .start()
}

/// The worker's status once it has dropped to `uid` (it is visible from
/// fork on, and drops just after).
fn worker_status(server: &Server, uid: u32) -> BTreeMap<String, String> {
    let worker = server.wait_workers(1, 20.0)[0];
    let want = format!("{uid} {uid} {uid} {uid}");
    wait_until(deadline(10.0), || {
        status(worker).get("Uid") == Some(&want) && get(server.addr(), "/").is_ok()
    });
    status(worker)
}

#[test]
fn workers_drop_the_masters_groups_then_gid_then_uid() {
    if !root() {
        return;
    }
    let nobody = User::from_name("nobody").unwrap().expect("user nobody");
    let nogroup = Group::from_gid(nobody.gid)
        .unwrap()
        .expect("nobody's group");
    let server = start_with_groups(&[
        "-u",
        "nobody",
        "-g",
        &nogroup.name,
        "-b",
        LOCAL,
        "builtin:hello",
    ]);
    assert_eq!(
        status(server.pid())["Groups"],
        "4 27",
        "the master has groups to drop"
    );
    let worker = worker_status(&server, nobody.uid.as_raw());
    let gid = nobody.gid.as_raw();
    assert_eq!(worker["Gid"], format!("{gid} {gid} {gid} {gid}"));
    assert_eq!(worker["Groups"], "", "no supplementary group is kept");
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
}

#[test]
fn a_worker_that_stays_root_still_drops_the_groups() {
    if !root() {
        return;
    }
    // -u root changes no uid, yet the groups are dropped all the same.
    let server = start_with_groups(&["-u", "root", "-b", LOCAL, "builtin:hello"]);
    let worker = worker_status(&server, 0);
    assert_eq!(worker["Groups"], "", "{worker:?}");
    assert_eq!(status(server.pid())["Groups"], "4 27");
}

/// A user of its own, with one supplementary group, removed on drop.
struct TempUser {
    name: String,
    group: String,
}

impl TempUser {
    fn create() -> TempUser {
        let suffix = std::process::id();
        let user = TempUser {
            name: format!("rcn-e-user-{suffix}"),
            group: format!("rcn-e-extra-{suffix}"),
        };
        let run = |program: &str, args: &[&str]| {
            let status = Command::new(program).args(args).status().expect(program);
            assert!(status.success(), "{program} {args:?}: {status}");
        };
        run("groupadd", &[&user.group]);
        run(
            "useradd",
            &[
                "-M",
                "-U",
                "-s",
                "/usr/sbin/nologin",
                "-G",
                &user.group,
                &user.name,
            ],
        );
        user
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
    }
}

#[test]
fn initgroups_gives_the_users_own_groups_and_only_them() {
    if !root() {
        return;
    }
    let user = TempUser::create();
    let entry = User::from_name(&user.name).unwrap().expect("the user");
    let extra = Group::from_name(&user.group).unwrap().expect("the group");
    let server = start_with_groups(&[
        "-u",
        &user.name,
        "--initgroups",
        "-b",
        LOCAL,
        "builtin:hello",
    ]);
    let worker = worker_status(&server, entry.uid.as_raw());
    let mut groups: Vec<u32> = worker["Groups"]
        .split(' ')
        .map(|gid| gid.parse().unwrap())
        .collect();
    groups.sort_unstable();
    let mut expected = vec![entry.gid.as_raw(), extra.gid.as_raw()];
    expected.sort_unstable();
    assert_eq!(groups, expected, "{worker:?}");
    drop(server);
    // Without --initgroups the same user gets none.
    let server = start_with_groups(&["-u", &user.name, "-b", LOCAL, "builtin:hello"]);
    assert_eq!(worker_status(&server, entry.uid.as_raw())["Groups"], "");
}

#[test]
fn a_step_that_fails_stops_the_worker_with_its_name() {
    if !root() {
        return;
    }
    // A master that is not root cannot switch to root's group: setgid fails,
    // the worker does not boot (exit 3) and the master halts.
    let exited = Launch::new(["-u", "root", "-b", LOCAL, "builtin:hello"])
        .wrapper([
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .expect_exit(30.0);
    assert_ne!(exited.code(), 0, "{}", exited.log);
    assert!(
        exited
            .log
            .contains("Worker failed to boot: cannot switch to user root")
            && exited.log.contains("setgid failed"),
        "{}",
        exited.log
    );
    assert!(
        !exited.log.contains("Running workers as root"),
        "{}",
        exited.log
    );
}

#[test]
fn root_without_a_user_is_warned_once() {
    if !root() {
        return;
    }
    let warning = "Running workers as root";
    let server = Server::start(["-w", "2", "-b", LOCAL, "builtin:hello"]);
    server.wait_workers(2, 20.0);
    server.expect_log(warning, 10.0);
    assert_eq!(server.log_count(warning), 1, "{}", server.log());
    assert!(server.log().contains("--user"), "the fix is named");
    let server = Server::start(["-u", "nobody", "-b", LOCAL, "builtin:hello"]);
    server.wait_workers(1, 20.0);
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
    assert_eq!(server.log_count(warning), 0, "{}", server.log());
}

/// `curl` through the unix socket at `path` as nobody: the status, or 0
/// when it could not connect.
fn status_as_nobody(path: &Path) -> u16 {
    let output = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .args([
            "curl",
            "-s",
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--unix-socket")
        .arg(path)
        .arg("http://localhost/")
        .output()
        .expect("setpriv curl");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn unix_sockets_are_0660_unless_umask_says_otherwise() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Other users must reach the socket files inside.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = User::from_name("nobody").unwrap().expect("user nobody");
    let start = |name: &str, extra: &[&str]| {
        let socket = dir.path().join(name);
        let bind = format!("unix:{}", socket.display());
        let mut args = vec!["-b", bind.as_str()];
        args.extend_from_slice(extra);
        args.push("builtin:hello");
        let server = Server::start(args);
        let meta = std::fs::metadata(&socket).expect("stat the socket");
        (server, socket, meta.mode() & 0o7777, meta.gid())
    };
    let (_default, socket, mode, gid) = start("default.sock", &[]);
    assert_eq!((mode, gid), (0o660, 0), "rw-rw----, owner and group only");
    assert_eq!(status_as_nobody(&socket), 0, "another user cannot connect");
    let group = nobody.gid.to_string();
    let (_grouped, socket, mode, gid) = start("grouped.sock", &["-g", &group]);
    assert_eq!((mode, gid), (0o660, nobody.gid.as_raw()), "given to -g");
    assert_eq!(status_as_nobody(&socket), 200, "its group connects");
    let (_masked, _, mode, _) = start("masked.sock", &["--umask", "007"]);
    assert_eq!(mode, 0o770, "--umask given: 0777 minus the mask");
    let (_open, socket, mode, _) = start("open.sock", &["--umask", "0"]);
    assert_eq!(
        mode, 0o777,
        "--umask 0 asks for Gunicorn's world-connectable socket"
    );
    assert_eq!(status_as_nobody(&socket), 200);
}
