//! What a master inherits when it starts, and what it hands on when it
//! re-executes itself on USR2 (binary upgrade).
//!
//! At start ([`capture`], once, before anything forks or an interpreter
//! copies the environment) the master takes out of its environment the
//! variables meant for it alone: `RUNICORN_FD` (the listening sockets a
//! runicorn master hands its new binary, as Gunicorn's `GUNICORN_FD`),
//! `RUNICORN_PID` (that old master's pid, as `GUNICORN_PID`) and systemd's
//! `LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`, so no worker (and no app)
//! sees them. It also keeps what Gunicorn's `START_CTX` keeps for the
//! re-exec: the program as started (`argv[0]`, made absolute against the
//! start directory when it names a path, else looked up on `PATH` at exec
//! time, so a binary replaced on disk is the one that runs), the arguments,
//! the directory and the environment.
//!
//! Inherited descriptors are taken at that same moment, before the master
//! opens anything itself (a bogus `LISTEN_FDS=2` must not make the master
//! adopt its own signal pipe), and checked: open, a socket, a stream
//! socket, TCP or unix, and listening. A descriptor that fails is left
//! open (it is not ours to close: it may be stderr), and the error, one
//! line naming the variable and the fix, is reported when the master binds.

use std::ffi::OsString;
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use nix::unistd::Pid;
use socket2::{Domain, Socket, Type};

use crate::error::MasterError;
use crate::sys;
use runicorn_worker::Listener;

/// The listening sockets a master hands its new binary: `3,4`.
pub const RUNICORN_FD: &str = "RUNICORN_FD";
/// The old master's pid, in the new binary's environment.
pub const RUNICORN_PID: &str = "RUNICORN_PID";

/// systemd's socket activation variables (sd_listen_fds(3)).
const LISTEN_FDS: &str = "LISTEN_FDS";
const LISTEN_PID: &str = "LISTEN_PID";
const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// The first descriptor systemd passes.
pub const LISTEN_FDS_START: RawFd = 3;

/// Everything captured at start.
#[derive(Debug, Clone)]
pub struct Start {
    /// `argv[0]`, absolute when it named a path (else a name for `PATH`).
    pub program: OsString,
    /// The whole argv, `argv[0]` included.
    pub args: Vec<OsString>,
    /// The directory the master started in.
    pub cwd: PathBuf,
    /// The environment, without the variables below.
    pub env: Vec<(OsString, OsString)>,
    /// `RUNICORN_FD`, as found (parsed when the listeners are made).
    pub runicorn_fd: Option<String>,
    /// `RUNICORN_PID`, as found.
    pub runicorn_pid: Option<String>,
    /// `LISTEN_FDS`, when `LISTEN_PID` named this process.
    pub listen_fds: Option<String>,
}

static START: OnceLock<Start> = OnceLock::new();

/// The sockets handed over, adopted at capture, until the master takes them.
static HANDED: Mutex<Option<Result<Option<Inherited>, MasterError>>> = Mutex::new(None);

/// The sockets handed to this process (adopted and checked at [`capture`]),
/// once: systemd's (`LISTEN_FDS`, which replace `-b` as in Gunicorn) or a
/// runicorn master's (`RUNICORN_FD`). The first bad descriptor is the error.
pub fn take_listeners() -> Result<Option<Inherited>, MasterError> {
    capture();
    HANDED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .unwrap_or(Ok(None))
}

/// Captures the start context and removes the inherited variables from the
/// environment; later calls return the first capture. Call it first thing
/// in `main` (before an embedded interpreter copies the environment); the
/// arbiter calls it too.
pub fn capture() -> &'static Start {
    START.get_or_init(|| {
        let args: Vec<OsString> = std::env::args_os().collect();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let program = args.first().cloned().unwrap_or_default();
        let program = if program.as_bytes().contains(&b'/') {
            cwd.join(&program).into_os_string()
        } else {
            program
        };
        let take = |key: &str| {
            let value = std::env::var(key).ok();
            std::env::remove_var(key);
            value
        };
        let runicorn_fd = take(RUNICORN_FD);
        let runicorn_pid = take(RUNICORN_PID);
        let listen_pid = take(LISTEN_PID);
        let listen_fds = take(LISTEN_FDS);
        take(LISTEN_FDNAMES);
        let ours = listen_pid
            .as_deref()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            == Some(std::process::id());
        let start = Start {
            program,
            args,
            cwd,
            env: std::env::vars_os().collect(),
            runicorn_fd,
            runicorn_pid,
            listen_fds: listen_fds.filter(|_| ours),
        };
        *HANDED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(start.adopt_listeners());
        start
    })
}

impl Start {
    /// The old master, when this process is the new binary of a USR2
    /// upgrade (`RUNICORN_PID`). A value that is not a pid is an error.
    pub fn old_master(&self) -> Result<Option<Pid>, MasterError> {
        let Some(value) = &self.runicorn_pid else {
            return Ok(None);
        };
        match value.trim().parse::<i32>() {
            Ok(pid) if pid > 0 => Ok(Some(Pid::from_raw(pid))),
            _ => Err(MasterError::Inherited {
                variable: RUNICORN_PID,
                value: value.clone(),
                reason: "not a process id".to_owned(),
            }),
        }
    }

    /// Adopts the listeners handed over, if any; the first bad one is the error.
    fn adopt_listeners(&self) -> Result<Option<Inherited>, MasterError> {
        if let Some(count) = &self.listen_fds {
            let bad = |reason: String| MasterError::Inherited {
                variable: LISTEN_FDS,
                value: count.clone(),
                reason,
            };
            let n: RawFd = count
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| bad("not a count of descriptors from 1 to 1024".to_owned()))?;
            let listeners = (LISTEN_FDS_START..LISTEN_FDS_START + n)
                .map(|fd| adopt_listener(fd).map_err(|reason| bad(format!("fd {fd}: {reason}"))))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Some(Inherited::Systemd(listeners)));
        }
        let Some(value) = &self.runicorn_fd else {
            return Ok(None);
        };
        let bad = |reason: String| MasterError::Inherited {
            variable: RUNICORN_FD,
            value: value.clone(),
            reason,
        };
        let fds = parse_fd_list(value).map_err(bad)?;
        let listeners = fds
            .into_iter()
            .map(|fd| adopt_listener(fd).map_err(|reason| bad(format!("fd {fd}: {reason}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Inherited::Upgrade(listeners)))
    }
}

/// Listeners handed to this process.
#[derive(Debug)]
pub enum Inherited {
    /// From systemd (socket activation): they replace `-b`.
    Systemd(Vec<Listener>),
    /// From the old master of a USR2 upgrade: matched to `-b` by address.
    Upgrade(Vec<Listener>),
}

/// `3,4,5` as descriptor numbers: at least one, no duplicates.
pub fn parse_fd_list(value: &str) -> Result<Vec<RawFd>, String> {
    let mut fds = Vec::new();
    for part in value.split(',') {
        let fd: RawFd = part
            .trim()
            .parse()
            .ok()
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| format!("'{part}' is not a file descriptor number"))?;
        if fds.contains(&fd) {
            return Err(format!("fd {fd} is named twice"));
        }
        fds.push(fd);
    }
    Ok(fds)
}

/// Takes an inherited descriptor as a listener, after checking that it is
/// open, a stream socket of the TCP or unix family, and listening. Sets
/// close-on-exec (the exec of a USR2 clears it again, on purpose).
pub fn adopt_listener(fd: RawFd) -> Result<Listener, String> {
    let socket = Socket::from(sys::adopt_fd(fd).map_err(|err| err.to_string())?);
    let domain = match check_listener(&socket) {
        Ok(domain) => domain,
        Err(reason) => {
            // Not ours to close (it may be stdin or stderr): hand it back.
            let _ = socket.into_raw_fd();
            return Err(reason);
        }
    };
    if domain == Domain::UNIX {
        Ok(Listener::Unix(UnixListener::from(
            std::os::fd::OwnedFd::from(socket),
        )))
    } else {
        Ok(Listener::Tcp(socket.into()))
    }
}

/// A listening TCP or unix stream socket (made close-on-exec): its family.
fn check_listener(socket: &Socket) -> Result<Domain, String> {
    let domain = socket
        .domain()
        .map_err(|err| format!("not a socket ({err})"))?;
    let kind = socket
        .r#type()
        .map_err(|err| format!("not a socket ({err})"))?;
    if kind != Type::STREAM {
        return Err("not a stream socket (a UDP or datagram socket cannot serve HTTP)".to_owned());
    }
    if ![Domain::UNIX, Domain::IPV4, Domain::IPV6].contains(&domain) {
        return Err("not a TCP or unix socket".to_owned());
    }
    if !socket.is_listener().unwrap_or(false) {
        return Err("not a listening socket (bound and listen() called)".to_owned());
    }
    socket.set_cloexec(true).map_err(|err| err.to_string())?;
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn fd_lists_parse_and_bad_ones_say_why() {
        assert_eq!(parse_fd_list("3").unwrap(), vec![3]);
        assert_eq!(parse_fd_list("3, 4,10").unwrap(), vec![3, 4, 10]);
        for (bad, why) in [
            ("", "not a file descriptor"),
            ("x", "'x' is not"),
            ("3,", "'' is not"),
            ("-1", "'-1' is not"),
            ("3,3", "named twice"),
        ] {
            let err = parse_fd_list(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn only_listening_stream_sockets_are_adopted() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let adopted = adopt_listener(tcp.into_raw_fd()).unwrap();
        assert_eq!(adopted.local_addr(), Some(addr));

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = adopt_listener(udp.into_raw_fd()).unwrap_err();
        assert!(err.contains("not a stream socket"), "{err}");

        let unbound = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let err = adopt_listener(unbound.into_raw_fd()).unwrap_err();
        assert!(err.contains("not a listening socket"), "{err}");

        let file = tempfile::tempfile().unwrap();
        let err = adopt_listener(file.into_raw_fd()).unwrap_err();
        assert!(err.contains("not a socket"), "{err}");

        // Far above any descriptor limit: never open.
        let err = adopt_listener(1 << 30).unwrap_err();
        assert!(err.contains("not open"), "{err}");
    }
}
