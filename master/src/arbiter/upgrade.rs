//! USR2, WINCH and promotion: the binary upgrade, as Gunicorn and nginx do it.
//!
//! USR2: the master forks, and the child executes the program the master
//! was started as (`argv[0]` as typed, so a binary replaced on disk is the
//! new one, not the deleted inode `/proc/self/exe` names), with the same
//! arguments, directory and environment, plus `RUNICORN_FD` (the listening
//! descriptors, left open across that one exec) and `RUNICORN_PID` (this
//! master). A master that got its sockets from systemd hands them on the
//! way systemd did: at descriptors 3.. with `LISTEN_FDS`/`LISTEN_PID`. The
//! new master adopts the sockets and never binds them again (same sockets,
//! same accept queues, same unix socket files), writes `<pidfile>.2`, and
//! boots its own workers; from then on both generations accept on the same
//! sockets. WINCH to the old master retires its workers gracefully (it
//! keeps none until HUP or TTIN); TERM ends it. Once the old master is gone
//! the new one is promoted (`Master has been promoted.`): it renames
//! `<pidfile>.2` to `<pidfile>` and, under systemd, names itself with
//! `MAINPID=`. Rollback: TERM the new master, HUP the old one. A second
//! USR2 to either master while the upgrade runs is refused with a log line.
//!
//! The pidfile names are Gunicorn's (`arbiter.py`: the new master writes
//! `<pidfile>.2`; `maybe_promote_master` renames it), not nginx's (the old
//! master moves its file to `<pidfile>.oldbin` and the new one writes
//! `<pidfile>`). Either way `<pidfile>` names the master in charge: with
//! Gunicorn's names that stays true while both run (the old master serves
//! until WINCH/TERM), and scripts written for Gunicorn keep working.
//!
//! While either side of an upgrade runs, neither master removes the unix
//! socket files at exit: they belong to both. The control socket
//! (`--control-socket`) is one master's: the old one keeps it (and removes
//! its file as it exits); the new one binds it once promoted.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Arbiter;
use crate::inherit::{self, Start, LISTEN_FDS_START, RUNICORN_FD, RUNICORN_PID};
use crate::sys::{self, Forked};
use runicorn_worker::Listener;

/// The spec recorded for listeners systemd passed.
pub(super) const SYSTEMD_SPEC: &str = "LISTEN_FDS";

/// The binary upgrade this master takes part in.
#[derive(Debug, Default)]
pub(super) struct Upgrade {
    /// The new master this one forked on USR2, until it is reaped.
    pub(super) child: Option<Pid>,
    /// The old master that executed this one, until it exits (promotion).
    pub(super) parent: Option<Pid>,
}

impl Upgrade {
    /// Is the other master of an upgrade running?
    pub(super) fn in_progress(&self) -> bool {
        self.child.is_some() || self.parent.is_some()
    }
}

/// `<pidfile>.2`: where a new master writes its pid until promoted.
pub(super) fn upgrade_pidfile(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".2");
    name.into()
}

impl Arbiter {
    /// USR2: fork and execute the new binary (Gunicorn's `reexec`).
    pub(super) fn handle_usr2(&mut self) {
        tracing::info!("Handling signal: usr2");
        if let Some(child) = self.upgrade.child {
            tracing::warn!(
                "USR2 signal ignored. Child exists. (the new master, pid {child}, is running: \
                 WINCH then TERM this master to finish the upgrade, or TERM the new one to roll back)"
            );
            return;
        }
        if let Some(parent) = self.upgrade.parent {
            tracing::warn!(
                "USR2 signal ignored. Parent exists. (this master is the new binary of an upgrade \
                 in progress: stop the old master, pid {parent}, first)"
            );
            return;
        }
        let start = inherit::capture();
        let program = Path::new(&start.program).display().to_string();
        match sys::fork() {
            Ok(Forked::Parent(child)) => {
                tracing::info!("Forked a new master (pid:{child}), executing {program}");
                self.upgrade.child = Some(child);
            }
            Ok(Forked::Child) => {
                let err = self.reexec(start);
                tracing::error!(
                    "USR2: cannot execute {program}: {err} (the old master keeps serving; check \
                     that the binary exists and is executable)"
                );
                sys::exit_now(1);
            }
            Err(err) => {
                tracing::error!(
                    "USR2: cannot fork the new master: {err}; this master keeps serving"
                );
            }
        }
    }

    /// In the forked child: hand the listeners over and exec. Returns only
    /// on failure.
    fn reexec(&self, start: &Start) -> io::Error {
        sys::reset_signals_for_exec();
        self.hooks.pre_exec(&self.view());
        let mut env: Vec<(OsString, OsString)> = start.env.clone();
        env.push((RUNICORN_PID.into(), self.pid.to_string().into()));
        let from_systemd = !self.listener_specs.is_empty()
            && self.listener_specs.iter().all(|spec| spec == SYSTEMD_SPEC);
        if from_systemd {
            if let Err(err) = place_at(LISTEN_FDS_START, &self.listeners) {
                return err;
            }
            env.push(("LISTEN_FDS".into(), self.listeners.len().to_string().into()));
            env.push(("LISTEN_PID".into(), std::process::id().to_string().into()));
        } else {
            let mut fds = Vec::new();
            for listener in &self.listeners {
                if let Err(err) = fcntl(listener.as_fd(), FcntlArg::F_SETFD(FdFlag::empty())) {
                    return err.into();
                }
                fds.push(listener.as_raw_fd().to_string());
            }
            env.push((RUNICORN_FD.into(), fds.join(",").into()));
        }
        if let Err(err) = std::env::set_current_dir(&start.cwd) {
            return err;
        }
        let Some(program) = c_string(&start.program) else {
            return io::Error::other("the program path holds a NUL byte");
        };
        let args: Vec<CString> = start.args.iter().filter_map(|arg| c_string(arg)).collect();
        let env: Vec<CString> = env
            .iter()
            .filter_map(|(key, value)| {
                let mut pair = key.clone();
                pair.push("=");
                pair.push(value);
                c_string(&pair)
            })
            .collect();
        let result = if start.program.as_bytes().contains(&b'/') {
            nix::unistd::execve(&program, &args, &env)
        } else {
            nix::unistd::execvpe(&program, &args, &env)
        };
        match result {
            Err(err) => err.into(),
            Ok(never) => match never {},
        }
    }

    /// WINCH: retire every worker gracefully and keep none (Gunicorn: only
    /// when daemonized, since a terminal sends WINCH on every resize; here
    /// also after a USR2, and whenever there is no terminal to resize).
    pub(super) fn handle_winch(&mut self) {
        if !(self.settings.daemon
            || self.upgrade.child.is_some()
            || !sys::has_controlling_terminal())
        {
            tracing::info!(
                "SIGWINCH ignored. Not daemonized (a terminal sends it on resize; WINCH retires the \
                 workers after a USR2, with -D, or when the master has no terminal)"
            );
            return;
        }
        tracing::info!("Handling signal: winch");
        tracing::info!("graceful stop of workers");
        let old = self.num_workers;
        self.num_workers = 0;
        self.hooks.nworkers_changed(&self.view(), 0, Some(old));
    }

    /// A new master whose old master has exited takes over: Gunicorn's
    /// `maybe_promote_master`. Called every turn of the loop (the kernel
    /// sends SIGCHLD when the parent dies, which wakes it).
    pub(super) fn maybe_promote(&mut self) {
        let Some(parent) = self.upgrade.parent else {
            return;
        };
        if nix::unistd::getppid() == parent {
            return;
        }
        self.upgrade.parent = None;
        tracing::info!("Master has been promoted.");
        if let (Some(pidfile), Some(path)) = (self.pidfile.as_mut(), self.settings.pidfile.clone())
        {
            if let Err(err) = pidfile.rename(&path) {
                tracing::error!("cannot move the pidfile to {}: {err}", path.display());
            }
        }
        sys::set_process_title(
            &format!("runicorn: master [{}]", super::proc_name(&self.settings)),
            "runicorn-master",
        );
        self.notifier.promoted(self.pid.as_raw() as u32);
        self.bind_deferred_control_socket();
        if std::mem::take(&mut self.metrics_deferred) {
            self.rebind_metrics();
        }
    }

    /// Once promoted, the control socket the old master kept (and removed
    /// as it exited) is this master's.
    fn bind_deferred_control_socket(&mut self) {
        let Some(path) = self.control_deferred.take() else {
            return;
        };
        match crate::control::ControlServer::bind(&path) {
            Ok(server) => {
                tracing::info!("Control socket at: {} ({})", path.display(), self.pid);
                self.sources.push(Box::new(server));
            }
            Err(err) => tracing::error!("{err}; this master runs without a control socket"),
        }
    }

    /// The old master reaped its new master: an upgrade rolled back or failed.
    pub(super) fn new_master_exited(
        &mut self,
        pid: i32,
        code: Option<i32>,
        signal: Option<Signal>,
    ) {
        self.upgrade.child = None;
        let how = match (code, signal) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was stopped by {}", signal.as_str()),
            (None, None) => "exited".to_owned(),
        };
        if self.num_workers == 0 {
            tracing::warn!(
                "The new master (pid:{pid}) {how}; this master has had no workers since WINCH: send \
                 it HUP to start them again"
            );
        } else {
            tracing::info!("The new master (pid:{pid}) {how}; this master keeps serving");
        }
    }

    /// Before the master exits: under systemd, an old master whose new one
    /// runs names it the main process; any other master says it is stopping.
    pub(super) fn announce_exit(&mut self) {
        self.maybe_promote();
        if let Some(child) = self.upgrade.child {
            if crate::pidfile::is_alive(child.as_raw()) {
                self.notifier.hand_over(child.as_raw() as u32);
            }
        }
    }
}

fn c_string(value: &OsStr) -> Option<CString> {
    CString::new(value.as_bytes()).ok()
}

/// Puts `listeners` at descriptors `first..` (systemd's layout), open
/// across exec. Copies go above the range first, so no `dup2` overwrites a
/// listener that has not moved yet; the copies close at exec.
fn place_at(first: RawFd, listeners: &[Listener]) -> io::Result<()> {
    let above = first + listeners.len() as RawFd;
    let mut copies = Vec::new();
    for listener in listeners {
        copies.push(fcntl(listener.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(above))?);
    }
    for (index, copy) in copies.into_iter().enumerate() {
        sys::dup2(copy, first + index as RawFd)?;
    }
    Ok(())
}
