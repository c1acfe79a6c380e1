//! A gthread worker's life: boot (the shared state, the poller and its
//! pool), run the poller until the worker should exit, and the stop: the
//! worker's own checks (quick or graceful, a dead master, a request past
//! `--timeout`) and when a stopping worker is done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runicorn_worker::{stop_accepting, Drain, Ending, RetireCause, Shared, ShutdownState, Worker};

use crate::policy;
use crate::poller::{LoopEnd, Poller, Stop};

/// Runs the worker until it should exit; its exit code.
pub(crate) fn run(mut worker: Worker) -> Ending {
    let shared = Arc::new(Shared::new(&worker, policy::conn_config(&worker.settings)));
    let listeners = std::mem::take(&mut worker.listeners);
    let poller = match Poller::boot(&worker, &shared, listeners) {
        Ok(poller) => poller,
        Err(err) => return Ending::boot_failed(err),
    };
    match poller.run() {
        LoopEnd::Graceful => worker.app.sync.shutdown_worker(),
        // A thread may still be inside the app: do not call into it again.
        // The requests still running at the graceful timeout (a request
        // past --timeout retired the worker) get a 500 rather than a reset.
        LoopEnd::GracefulTimeout => runicorn_worker::unanswered::answer_all(),
        LoopEnd::Quick | LoopEnd::Broken => {}
    }
    Ending::Stopped
}

impl Poller<'_> {
    /// The stop decisions, in order: quick, master gone, a request past
    /// `--timeout`, graceful stop progress.
    pub(crate) fn check_state(&mut self, now: Instant, interval: Duration) -> Option<LoopEnd> {
        let state = self.worker.shutdown.state();
        if state == ShutdownState::Quick {
            return Some(LoopEnd::Quick);
        }
        if state == ShutdownState::Running && now.duration_since(self.last_check) >= interval {
            self.last_check = now;
            self.periodic_checks();
        }
        if !self.worker.shutdown.is_running() && self.stop.is_none() {
            self.begin_stop(now);
        }
        let stop = self.stop?;
        let held = self.hub.held();
        if held == 0 && self.hub.is_empty() {
            return Some(LoopEnd::Graceful);
        }
        if now >= stop.deadline {
            tracing::warn!(
                "Graceful timeout: {} request(s) still running after --graceful-timeout {}s; the worker exits",
                held,
                self.worker.settings.graceful_timeout.as_secs_f64()
            );
            return Some(LoopEnd::GracefulTimeout);
        }
        None
    }

    /// Once per poll interval: is the master alive, has a request run past
    /// `--timeout`?
    fn periodic_checks(&mut self) {
        let shutdown = &self.worker.shutdown;
        if shutdown.retire_if_orphaned() {
            return;
        }
        let timeout = self.worker.settings.timeout;
        if let Some((age, line)) = self.worker.slot.oldest_request() {
            if policy::overdue(age, timeout) {
                runicorn_worker::critical!(
                    "WORKER TIMEOUT (pid:{}): request {line:?} has run {:.1}s, past --timeout {}s, on \
                     a gthread worker; the worker stops accepting and exits once its requests finish (at \
                     most --graceful-timeout {}s later). Find the slow call in that request first; raise \
                     --timeout only if the request is meant to be slow; views that wait on IO can run \
                     under -k async, which waits without a thread",
                    std::process::id(),
                    age.as_secs_f64(),
                    timeout.as_secs_f64(),
                    self.worker.settings.graceful_timeout.as_secs_f64()
                );
                self.worker.slot.note_retiring(RetireCause::Timeout);
                shutdown.request_graceful();
            }
        }
    }

    /// Stop accepting: the listeners leave the epoll set and are closed,
    /// after the connections queued on them are taken and parked when the
    /// service stops (`runicorn_worker::stop_accepting`). Parked
    /// connections stay until their client sends its next request (answered
    /// with `Connection: close`, the connection state watches the
    /// retirement), closes, or their own deadline passes (`--keep-alive`,
    /// or the head deadline for a fresh one or a partial head): closing one
    /// sooner could cross a request its client is already sending.
    fn begin_stop(&mut self, now: Instant) {
        self.stop = Some(Stop {
            deadline: now + self.worker.settings.graceful_timeout,
        });
        self.set_listening(false);
        let listeners = std::mem::take(&mut self.listeners);
        for (index, accepted) in stop_accepting(listeners, Drain::on_stop(&self.worker.slot)) {
            let (stream, peer) = crate::accept::stream_of(accepted);
            self.admit(stream, peer, index);
        }
    }
}
