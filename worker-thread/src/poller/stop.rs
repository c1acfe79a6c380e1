//! Graceful stop and the worker's own checks: quick or graceful, a dead
//! master, a request past `--timeout`, and when a stopping worker is done.

use std::time::{Duration, Instant};

use runicorn_worker::ShutdownState;

use super::{Ending, Poller, Stop};
use crate::policy::{self, STOP_IDLE_GRACE};

impl Poller<'_> {
    /// The stop decisions, in order: quick, master gone, a request past
    /// `--timeout`, graceful stop progress.
    pub(super) fn check_state(&mut self, now: Instant, interval: Duration) -> Option<Ending> {
        let state = self.worker.shutdown.state();
        if state == ShutdownState::Quick {
            return Some(Ending::Quick);
        }
        if state == ShutdownState::Running && now.duration_since(self.last_check) >= interval {
            self.last_check = now;
            self.periodic_checks();
        }
        if !self.worker.shutdown.is_running() && self.stop.is_none() {
            self.begin_stop(now);
        }
        let stop = self.stop?;
        if self.busy == 0 && self.idle.is_empty() {
            return Some(Ending::Graceful);
        }
        if now >= stop.deadline {
            tracing::warn!(
                "Graceful timeout: {} request(s) still running after --graceful-timeout {}s; the worker exits",
                self.busy,
                self.worker.settings.graceful_timeout.as_secs_f64()
            );
            return Some(Ending::GracefulTimeout);
        }
        None
    }

    /// Once per poll interval: is the master alive, has a request run past
    /// `--timeout`?
    fn periodic_checks(&mut self) {
        let shutdown = &self.worker.shutdown;
        if !shutdown.master_alive() {
            tracing::info!("Parent changed, shutting down: {}", std::process::id());
            shutdown.request_graceful();
            return;
        }
        let timeout = self.worker.settings.timeout;
        if let Some((age, line)) = self.worker.slot.oldest_request() {
            if policy::overdue(age, timeout) {
                runicorn_worker::critical!(
                    "WORKER TIMEOUT (pid:{}): request {line:?} has run {:.1}s, past --timeout {}s; \
                     the worker stops accepting and exits once its other requests finish (at most \
                     --graceful-timeout {}s later). Raise --timeout if such requests are expected, \
                     or find why the handler blocks",
                    std::process::id(),
                    age.as_secs_f64(),
                    timeout.as_secs_f64(),
                    self.worker.settings.graceful_timeout.as_secs_f64()
                );
                shutdown.request_graceful();
            }
        }
    }

    /// Stop accepting; idle connections get a short grace to send the
    /// request they may already be sending, which is then answered with
    /// `Connection: close`.
    fn begin_stop(&mut self, now: Instant) {
        self.stop = Some(Stop {
            deadline: now + self.worker.settings.graceful_timeout,
        });
        self.set_listening(false);
        self.idle.shorten(now + STOP_IDLE_GRACE);
    }
}
