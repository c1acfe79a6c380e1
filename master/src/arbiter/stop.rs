//! `stop` and `halt`: bring every worker down, gracefully or quickly.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{supervisor, Arbiter, Stop, TICK};
use crate::scoreboard::ArbiterSlot;
use runicorn_worker::clock::monotonic_now;

impl Arbiter {
    /// Gunicorn's `stop`: TERM (graceful) or QUIT (quick) to every worker,
    /// wait up to `graceful_timeout`, then SIGKILL what is left (after a
    /// graceful stop, SIGABRT first: the requests still running are answered
    /// 500, and a second later SIGKILL).
    pub(super) fn stop(&mut self, mut stop: Stop) {
        // Across a USR2 upgrade the service goes on with the other master:
        // only a master alone says it stops.
        self.maybe_promote();
        if !self.upgrade.in_progress() {
            self.notifier.stopping();
        }
        self.close_listeners(stop == Stop::Graceful && !self.upgrade.in_progress());
        self.signal_all(if stop == Stop::Graceful {
            Signal::SIGTERM
        } else {
            Signal::SIGQUIT
        });
        let deadline = monotonic_now() + self.settings.graceful_timeout;
        while !self.workers.is_empty() {
            let now = monotonic_now();
            if now >= deadline {
                break;
            }
            for signal in self.wait_for_signals((deadline - now).min(TICK)) {
                if stop == Stop::Graceful && matches!(signal, Signal::SIGINT | Signal::SIGQUIT) {
                    stop = Stop::Quick;
                    self.signal_all(Signal::SIGQUIT);
                }
            }
            self.reap_workers();
        }
        if !self.workers.is_empty() && stop == Stop::Graceful {
            // Past --graceful-timeout: SIGABRT first, so each worker answers
            // the requests it still runs with a 500 (`runicorn_worker::
            // unanswered`) instead of leaving their clients a reset, then
            // SIGKILL for whatever is left a second later.
            tracing::warn!(
                "Graceful timeout ({:.1}s): {} worker(s) still running requests; their clients get a 500 (SIGABRT), then SIGKILL",
                self.settings.graceful_timeout.as_secs_f64(),
                self.workers.len()
            );
            self.signal_all(Signal::SIGABRT);
            let until = monotonic_now() + supervisor::ABORT_GRACE;
            while !self.workers.is_empty() {
                let now = monotonic_now();
                if now >= until {
                    break;
                }
                let _ = self.wait_for_signals((until - now).min(TICK));
                self.reap_workers();
            }
        }
        if !self.workers.is_empty() {
            self.signal_all(Signal::SIGKILL);
            for pid in self.workers.keys().copied().collect::<Vec<_>>() {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
                self.workers.remove(&pid);
            }
        }
        self.reap_workers();
    }

    /// The master stops serving: it closes its copies of the listening
    /// sockets now, before its workers are told to stop, so that the last
    /// process to close each socket is a worker. With `drain` (a graceful
    /// stop of the whole service, no other master of an upgrade holding the
    /// sockets) every worker is asked first to take what the kernel queued
    /// before it closes its own copies: nothing queued is reset, and a
    /// client that comes once every copy is closed is refused
    /// (`runicorn_worker::stop_accepting`). The unix socket files are
    /// removed at exit (`Arbiter::cleanup`).
    fn close_listeners(&mut self, drain: bool) {
        if drain {
            for record in self.workers.values() {
                self.scoreboard.slot(record.slot).ask_to_drain();
            }
        }
        self.listeners.clear();
        self.retired_listeners.clear();
        if let Some(pending) = self.pending.as_mut() {
            pending.listeners = None;
        }
    }

    /// Gunicorn's `halt`: stop the workers, say why, exit with `code`.
    pub(super) fn halt_with(&mut self, reason: &str, code: u8) -> u8 {
        self.stop(Stop::Graceful);
        tracing::info!("Shutting down: Master");
        tracing::info!("Reason: {reason}");
        code
    }
}
