//! `socket-activate [--now] -l ADDRESS PROGRAM [ARGS...]`: what
//! `systemd-socket-activate -l ADDRESS` does for one socket, for machines
//! without systemd: bind ADDRESS (a unix socket path, or `HOST:PORT`),
//! wait for the first connection (it stays in the accept queue for the
//! program), keep the socket at descriptor 3 across exec, set
//! `LISTEN_FDS=1` and `LISTEN_PID` to this process, and exec PROGRAM, which
//! keeps the pid. `--now` execs at once instead of waiting (for `HOST:0`,
//! whose port the test learns from the program's log).
//! The tests use systemd's tool when it is installed, and this always.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let now = args.first().is_some_and(|arg| arg == "--now");
    if now {
        args.remove(0);
    }
    let (Some("-l"), Some(address), Some(program)) =
        (args.first().map(String::as_str), args.get(1), args.get(2))
    else {
        eprintln!("usage: socket-activate [--now] -l ADDRESS PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let socket: OwnedFd = if address.contains('/') {
        match std::os::unix::net::UnixListener::bind(address) {
            Ok(listener) => listener.into(),
            Err(err) => return fail(&format!("cannot bind {address}: {err}")),
        }
    } else {
        match std::net::TcpListener::bind(address.as_str()) {
            Ok(listener) => listener.into(),
            Err(err) => return fail(&format!("cannot bind {address}: {err}")),
        }
    };
    // Nothing else is open: the socket is descriptor 3, or F_DUPFD puts a
    // copy there.
    let fd = if socket.as_raw_fd() == 3 {
        3
    } else {
        match fcntl(socket.as_fd(), FcntlArg::F_DUPFD(3)) {
            Ok(3) => 3,
            other => return fail(&format!("cannot put the socket at descriptor 3: {other:?}")),
        }
    };
    if fd == socket.as_raw_fd() {
        if let Err(err) = fcntl(socket.as_fd(), FcntlArg::F_SETFD(FdFlag::empty())) {
            return fail(&format!("cannot keep descriptor 3 open across exec: {err}"));
        }
    }
    eprintln!("Listening on {address} as 3.");
    let mut wait = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    if !now {
        if let Err(err) = poll(&mut wait, PollTimeout::NONE) {
            return fail(&format!("cannot wait for a connection: {err}"));
        }
    }
    // `socket` (or its copy at 3) stays open through exec: it is not
    // dropped before `exec` replaces this process.
    let err = Command::new(program)
        .args(&args[3..])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", std::process::id().to_string())
        .exec();
    fail(&format!("cannot execute {program}: {err}"))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("socket-activate: {message}");
    ExitCode::from(1)
}
