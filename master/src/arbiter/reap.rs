//! `reap_workers`: collect every exited child, say how it died, decide
//! whether to halt, back off, or simply replace it.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::supervisor;
use super::Arbiter;
use crate::hooks::WorkerView;
use crate::oom;
use crate::scoreboard::ArbiterSlot;
use runicorn_worker::clock::monotonic_now;
use runicorn_worker::ending::{APP_LOAD_ERROR, WORKER_BOOT_ERROR};

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
        slot.set_pid(0);
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
                tracing::error!(
                    worker_pid = pid,
                    signal = "SIGKILL",
                    "Worker (pid:{pid}) was sent SIGKILL! Perhaps out of memory? The master did not send it: {}",
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
                    "Worker (pid:{pid}) was sent {}!",
                    signal.as_str()
                );
            }
            (None, None) => {}
        }
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
