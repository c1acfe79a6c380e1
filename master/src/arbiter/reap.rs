//! `reap_workers`: collect every exited child, say how it died, count it
//! by reason ([`ExitReason`]), decide whether to halt, back off, or simply
//! replace it.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::supervisor;
use super::Arbiter;
use crate::hooks::WorkerView;
use crate::scoreboard::ArbiterSlot;
use crate::{memory, oom};
use runicorn_worker::clock::monotonic_now;
use runicorn_worker::ending::{APP_LOAD_ERROR, WORKER_BOOT_ERROR};
use runicorn_worker::RetireCause;

/// Why a worker left, as the master counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExitReason {
    /// It exited on its own with an error code, or for no reason it told.
    Exit,
    /// A signal the master did not send killed it, and the cgroup's OOM
    /// counter did not rise.
    Signal,
    /// It ran past `--timeout`: killed by the master for silence, or (gthread)
    /// retired after a request overran.
    Timeout,
    /// The kernel's OOM killer: a SIGKILL the master did not send, with the
    /// cgroup's `oom_kill` counter risen.
    Oom,
    /// It reached `--max-requests`.
    MaxRequests,
    /// The master retired it past `--max-worker-memory`.
    Memory,
    /// Its app panicked and it retired.
    Panic,
    /// The master stopped it: HUP, TTOU, WINCH, the service's stop.
    Retired,
    /// It failed to boot (Gunicorn's exit codes 3 and 4).
    BootFailed,
}

impl ExitReason {
    /// Every reason, in the order they are listed.
    pub const ALL: [ExitReason; 9] = [
        ExitReason::Exit,
        ExitReason::Signal,
        ExitReason::Timeout,
        ExitReason::Oom,
        ExitReason::MaxRequests,
        ExitReason::Memory,
        ExitReason::Panic,
        ExitReason::Retired,
        ExitReason::BootFailed,
    ];

    /// The reason as a metric label names it.
    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Exit => "exit",
            ExitReason::Signal => "signal",
            ExitReason::Timeout => "timeout",
            ExitReason::Oom => "oom",
            ExitReason::MaxRequests => "max_requests",
            ExitReason::Memory => "memory",
            ExitReason::Panic => "panic",
            ExitReason::Retired => "retired",
            ExitReason::BootFailed => "boot_failed",
        }
    }
}

/// Worker exits counted by reason since the master started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitCounts {
    counts: [u64; ExitReason::ALL.len()],
}

impl ExitCounts {
    /// How many workers left for `reason`.
    pub fn count(&self, reason: ExitReason) -> u64 {
        self.counts[reason as usize]
    }

    /// Every reason with its count.
    pub fn iter(&self) -> impl Iterator<Item = (ExitReason, u64)> + '_ {
        ExitReason::ALL
            .iter()
            .map(|&reason| (reason, self.count(reason)))
    }

    fn add(&mut self, reason: ExitReason) {
        self.counts[reason as usize] += 1;
    }
}

/// What the master knows of a worker's death, to name its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Death {
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<Signal>,
    /// The master sent it TERM, QUIT or KILL.
    pub signalled: bool,
    /// The master killed it (SIGABRT then SIGKILL) for silence.
    pub timed_out: bool,
    /// The reason the master retired it for, if its own.
    pub retired_for: Option<ExitReason>,
    /// Why it retired on its own, as its slot says.
    pub cause: Option<RetireCause>,
    /// The cgroup's OOM kill counter rose since the last look.
    pub oom_rose: bool,
}

/// The reason a death is counted under.
pub fn exit_reason(death: &Death) -> ExitReason {
    if matches!(death.code, Some(BOOT_FAILED | LOAD_FAILED)) {
        return ExitReason::BootFailed;
    }
    if let Some(reason) = death.retired_for {
        return reason;
    }
    if death.timed_out {
        return ExitReason::Timeout;
    }
    match (death.signal, death.signalled) {
        (Some(Signal::SIGKILL), false) if death.oom_rose => return ExitReason::Oom,
        (Some(_), false) => return ExitReason::Signal,
        _ => {}
    }
    match death.cause {
        Some(RetireCause::MaxRequests) => ExitReason::MaxRequests,
        Some(RetireCause::Timeout) => ExitReason::Timeout,
        Some(RetireCause::Panic) => ExitReason::Panic,
        None if death.signalled => ExitReason::Retired,
        None => ExitReason::Exit,
    }
}

/// Gunicorn's exit codes, as `waitpid` reports them.
const BOOT_FAILED: i32 = WORKER_BOOT_ERROR as i32;
const LOAD_FAILED: i32 = APP_LOAD_ERROR as i32;

impl Arbiter {
    /// Gunicorn's `reap_workers`, over `waitpid(-1)`: orphans reparented to
    /// a PID-1 master are reaped too, so no zombie stays.
    pub(super) fn reap_workers(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    tracing::error!("waitpid failed: {err}");
                    return;
                }
                Ok(status) => status,
            };
            match status {
                WaitStatus::Exited(pid, code) => self.worker_exited(pid.as_raw(), Some(code), None),
                WaitStatus::Signaled(pid, signal, _) => {
                    self.worker_exited(pid.as_raw(), None, Some(signal));
                }
                _ => {}
            }
        }
    }

    fn worker_exited(&mut self, pid: i32, code: Option<i32>, signal: Option<Signal>) {
        if self.upgrade.child.map(Pid::as_raw) == Some(pid) {
            self.new_master_exited(pid, code, signal);
            return;
        }
        let Some(record) = self.workers.remove(&pid) else {
            tracing::debug!("Reaped orphan process (pid:{pid})");
            return;
        };
        let now = monotonic_now();
        let slot = self.scoreboard.slot(record.slot);
        let booted = slot.booted_at();
        let last_rss = match slot.rss_bytes() {
            Some(bytes) => format!("its last RSS was {}", memory::human(bytes)),
            None => "its RSS was never sampled (it lived less than a second)".to_owned(),
        };
        slot.set_pid(0);
        // Its requests stay counted once the slot is reused.
        self.totals.fold(&slot);
        let mut oom_rose = false;
        match (code, signal) {
            (Some(0), _) => {}
            (Some(code), _) => tracing::error!(
                worker_pid = pid,
                exit_code = code,
                "Worker (pid:{pid}) exited with code {code}."
            ),
            (None, Some(Signal::SIGKILL)) if record.state.killed => {
                let why = if record.state.retiring_since.is_some() {
                    "it overran --graceful-timeout while stopping"
                } else {
                    "it stayed silent past --timeout and SIGABRT did not end it"
                };
                tracing::error!(
                    worker_pid = pid,
                    signal = "SIGKILL",
                    "Worker (pid:{pid}) was sent SIGKILL! (by the master: {why})"
                );
            }
            (None, Some(Signal::SIGKILL)) => {
                let now_count = oom::read_oom_kills();
                oom_rose = oom::rose(self.oom_baseline.as_ref(), now_count.as_ref());
                tracing::error!(
                    worker_pid = pid,
                    signal = "SIGKILL",
                    "Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory? The master did not send it; \
                     {last_rss}; {}",
                    oom::explain(self.oom_baseline.as_ref(), now_count.as_ref())
                );
                self.oom_baseline = now_count;
            }
            (None, Some(signal)) if record.signalled => {
                tracing::info!(
                    worker_pid = pid,
                    signal = signal.as_str(),
                    "Worker (pid:{pid}) stopped by {}",
                    signal.as_str()
                );
            }
            (None, Some(signal)) => {
                tracing::error!(
                    worker_pid = pid,
                    signal = signal.as_str(),
                    "Worker (pid:{pid}) was sent {}! The master did not send it; {last_rss}",
                    signal.as_str()
                );
            }
            (None, None) => {}
        }
        self.exits.add(exit_reason(&Death {
            code,
            signal,
            signalled: record.signalled,
            timed_out: record.state.aborted_at.is_some()
                || (record.state.killed && record.state.retiring_since.is_none()),
            retired_for: record.retired_for,
            cause: slot.retire_cause(),
            oom_rose,
        }));
        let view = WorkerView {
            pid: pid as u32,
            age: record.state.age,
            exit_code: code,
        };
        self.hooks.child_exit(&self.view(), &view);

        if matches!(code, Some(BOOT_FAILED | LOAD_FAILED)) && !record.signalled {
            let reason = if code == Some(BOOT_FAILED) {
                "Worker failed to boot."
            } else {
                "App failed to load."
            };
            if self.pending.is_some() && record.state.generation == self.generation {
                self.abandon_reload(reason);
            } else if record.state.generation == self.generation && self.halt.is_none() {
                self.halt = Some((reason.to_owned(), code.unwrap_or(1) as u8));
            }
            return;
        }
        let unexpected = !record.signalled
            && !record.state.killed
            && record.state.aborted_at.is_none()
            && code != Some(0);
        if unexpected && supervisor::is_fast_death(record.state.spawned, booted, now) {
            self.fast_deaths += 1;
            self.last_fast_death = now;
            let delay = supervisor::respawn_delay(self.fast_deaths);
            self.next_spawn_at = now + delay;
            tracing::warn!(
                "Worker (pid:{pid}) died right after boot; respawning in {:.1}s (back-off after {} fast deaths)",
                delay.as_secs_f64(),
                self.fast_deaths
            );
        } else if booted.is_some() {
            self.fast_deaths = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn death() -> Death {
        Death {
            code: Some(0),
            signal: None,
            signalled: false,
            timed_out: false,
            retired_for: None,
            cause: None,
            oom_rose: false,
        }
    }

    #[test]
    fn every_death_is_counted_under_its_reason() {
        let reason = |death: Death| exit_reason(&death);
        assert_eq!(reason(death()), ExitReason::Exit);
        assert_eq!(
            reason(Death {
                code: Some(1),
                ..death()
            }),
            ExitReason::Exit
        );
        assert_eq!(
            reason(Death {
                code: Some(BOOT_FAILED),
                ..death()
            }),
            ExitReason::BootFailed
        );
        assert_eq!(
            reason(Death {
                cause: Some(RetireCause::MaxRequests),
                ..death()
            }),
            ExitReason::MaxRequests
        );
        assert_eq!(
            reason(Death {
                cause: Some(RetireCause::Timeout),
                ..death()
            }),
            ExitReason::Timeout
        );
        assert_eq!(
            reason(Death {
                cause: Some(RetireCause::Panic),
                ..death()
            }),
            ExitReason::Panic
        );
        assert_eq!(
            reason(Death {
                signalled: true,
                ..death()
            }),
            ExitReason::Retired
        );
        // Retired for memory, even if it then overran the graceful timeout.
        assert_eq!(
            reason(Death {
                code: None,
                signal: Some(Signal::SIGKILL),
                signalled: true,
                retired_for: Some(ExitReason::Memory),
                ..death()
            }),
            ExitReason::Memory
        );
        assert_eq!(
            reason(Death {
                code: None,
                signal: Some(Signal::SIGKILL),
                signalled: true,
                timed_out: true,
                ..death()
            }),
            ExitReason::Timeout
        );
        let foreign_kill = Death {
            code: None,
            signal: Some(Signal::SIGKILL),
            ..death()
        };
        assert_eq!(reason(foreign_kill), ExitReason::Signal);
        assert_eq!(
            reason(Death {
                oom_rose: true,
                ..foreign_kill
            }),
            ExitReason::Oom
        );
        assert_eq!(
            reason(Death {
                signal: Some(Signal::SIGSEGV),
                oom_rose: true,
                ..foreign_kill
            }),
            ExitReason::Signal
        );
        let mut counts = ExitCounts::default();
        counts.add(ExitReason::Memory);
        counts.add(ExitReason::Memory);
        assert_eq!(counts.count(ExitReason::Memory), 2);
        assert_eq!(counts.iter().map(|(_, count)| count).sum::<u64>(), 2);
        assert_eq!(ExitReason::Memory.name(), "memory");
    }
}
