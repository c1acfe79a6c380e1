//! systemd's readiness protocol (sd_notify(3)) for the master, through the
//! `sd-notify` crate: one datagram to `NOTIFY_SOCKET` per change, nothing
//! at all when the variable is unset. No thread: each send is one
//! non-blocking `sendto` from the master's loop.
//!
//! What is sent, and when (the arbiter decides, this module remembers what
//! it already said so each state goes out once):
//! - `READY=1` once the first generation of workers has booted (not when
//!   the sockets are bound: a unit ordered after this one then finds the
//!   app answering), with `STATUS=` the worker count;
//! - `STATUS=` whenever the count of booted workers or the target changes;
//! - `RELOADING=1` and `MONOTONIC_USEC=` on HUP, then `READY=1` once the
//!   new generation booted (or the reload was given up);
//! - `STOPPING=1` when the master stops;
//! - `MAINPID=` across a USR2 upgrade: the old master names the new one as
//!   it exits, and the new master names itself once promoted. A new master
//!   says nothing before then: the old one is still the service's main
//!   process, and a rollback must not look like the service stopping.
//!
//! `NOTIFY_SOCKET` stays in the master's environment (the re-executed
//! binary needs it) and is removed in each worker: an app must not speak
//! for the service.

use sd_notify::NotifyState;

/// The variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// What the master has told the service manager so far.
#[derive(Debug, Default)]
pub struct Notifier {
    /// Quiet until promoted (a new master during a USR2 upgrade).
    muted: bool,
    ready: bool,
    reloading: bool,
    status: String,
}

impl Notifier {
    /// A notifier; `muted` while this master is the new binary of an
    /// upgrade whose old master still runs.
    pub fn new(muted: bool) -> Notifier {
        Notifier {
            muted,
            ..Notifier::default()
        }
    }

    /// Whether a service manager listens at all.
    pub fn enabled() -> bool {
        std::env::var_os(NOTIFY_SOCKET).is_some()
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.muted || !Notifier::enabled() {
            return;
        }
        if let Err(err) = sd_notify::notify(states) {
            tracing::warn!("cannot notify the service manager at ${NOTIFY_SOCKET}: {err}");
        }
    }

    /// The worker count changed: `STATUS=`, and `READY=1` the first time
    /// (or after a reload) once every wanted worker has booted.
    pub fn workers(&mut self, booted: usize, target: usize, note: &str) {
        let status = if target == 0 {
            format!("0 workers: stopped by WINCH; HUP or TTIN starts them{note}")
        } else if booted >= target {
            format!("{booted} workers{note}")
        } else {
            format!("{booted} of {target} workers booted{note}")
        };
        let becomes_ready = (!self.ready || self.reloading) && booted >= target;
        if becomes_ready {
            self.ready = true;
            self.reloading = false;
            self.status = status;
            self.send(&[NotifyState::Ready, NotifyState::Status(&self.status)]);
        } else if status != self.status {
            self.status = status;
            self.send(&[NotifyState::Status(&self.status)]);
        }
    }

    /// HUP: `RELOADING=1` with the monotonic time, until `workers` sees the
    /// new generation booted or [`Notifier::reload_done`] is called.
    pub fn reloading(&mut self) {
        self.reloading = true;
        let now = NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0));
        self.send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ]);
    }

    /// A reload that ended without a new generation (refused, given up):
    /// `READY=1` again with the reason.
    pub fn reload_done(&mut self, status: &str) {
        if self.reloading {
            self.reloading = false;
            self.status = status.to_owned();
            self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        }
    }

    /// The master stops: `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// An old master leaving its new binary in charge: `MAINPID=new`.
    pub fn hand_over(&self, new_master: u32) {
        let status = format!("handing over to the new master (pid {new_master})");
        self.send(&[
            NotifyState::MainPid(new_master),
            NotifyState::Status(&status),
        ]);
    }

    /// A new master whose old master has exited: it is the service now.
    /// `MAINPID=` itself, and `READY=1` if its workers are up.
    pub fn promoted(&mut self, pid: u32) {
        self.muted = false;
        let mut states = vec![NotifyState::MainPid(pid)];
        if self.ready {
            states.push(NotifyState::Ready);
        }
        if !self.status.is_empty() {
            states.push(NotifyState::Status(&self.status));
        }
        self.send(&states);
    }
}
