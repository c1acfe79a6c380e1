//! `murder_workers` and `manage_workers`: act on the supervisor's decisions.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::supervisor::{self, Murder};
use super::{Arbiter, RetiredListeners};
use runicorn_worker::class::article;
use runicorn_worker::clock::monotonic_now;
use runicorn_worker::Listener;

impl Arbiter {
    /// Gunicorn's `murder_workers`: SIGABRT the silent, SIGKILL the stuck.
    pub(super) fn murder_workers(&mut self) {
        let now = monotonic_now();
        let actions = supervisor::murder(
            &self.worker_states(),
            now,
            self.settings.timeout,
            self.settings.graceful_timeout,
        );
        for action in actions {
            match action {
                Murder::Abort(pid) => {
                    let Some(record) = self.workers.get(&pid) else {
                        continue;
                    };
                    let slot = self.scoreboard.slot(record.slot);
                    let silent =
                        now.saturating_sub(slot.last_heartbeat().unwrap_or(record.state.spawned));
                    let class = self.class.name();
                    let an = article(class);
                    let what = match (slot.last_heartbeat(), slot.oldest_request()) {
                        (_, Some((age, line))) => {
                            format!(
                                "handling \"{line}\" (started {:.1}s ago) on {an} {class} worker: {}",
                                age.as_secs_f64(),
                                self.class.timeout_advice()
                            )
                        }
                        (None, None) => format!(
                            "while booting on {an} {class} worker (loading the app or init_worker took \
                             longer than --timeout: raise -t or make the app's start faster)"
                        ),
                        (Some(_), None) => format!(
                            "while idle on {an} {class} worker: no request in flight (stuck outside any \
                             request, e.g. in the app's own threads or the worker's loop)"
                        ),
                    };
                    let request = slot.oldest_request().map(|(_, line)| line);
                    runicorn_worker::critical!(
                        worker_pid = pid,
                        silent_seconds = silent.as_secs_f64(),
                        request = request.as_deref(),
                        "WORKER TIMEOUT (pid:{pid}) after {:.1}s {what}",
                        silent.as_secs_f64()
                    );
                    self.signal_worker(pid, Signal::SIGABRT);
                    if let Some(record) = self.workers.get_mut(&pid) {
                        record.state.aborted_at = Some(now);
                    }
                }
                Murder::Kill(pid) => {
                    if self
                        .workers
                        .get(&pid)
                        .is_some_and(|record| record.state.retiring_since.is_some())
                    {
                        tracing::warn!(
                            "Worker (pid:{pid}) did not stop within --graceful-timeout ({:.1}s): sending SIGKILL",
                            self.settings.graceful_timeout.as_secs_f64()
                        );
                    }
                    self.signal_worker(pid, Signal::SIGKILL);
                    if let Some(record) = self.workers.get_mut(&pid) {
                        record.state.killed = true;
                    }
                }
            }
        }
    }

    /// Names every request that has run past `--timeout`, once, as it
    /// passes the limit, under every class (the worker names it again as it
    /// ends): the class, the request line, the client, the age, and what the
    /// class does about it. A worker the master is killing for silence is
    /// left to its `WORKER TIMEOUT` line.
    pub(super) fn name_overdue_requests(&mut self) {
        let timeout = self.settings.timeout;
        if timeout.is_zero() {
            self.overdue_named.clear();
            return;
        }
        let mut still = HashSet::new();
        for (&pid, record) in &self.workers {
            if record.state.aborted_at.is_some() || record.state.killed {
                continue;
            }
            let slot = self.scoreboard.slot(record.slot);
            for request in slot.requests_older_than(timeout) {
                let key = (record.slot, request.lane, request.start_ns);
                if !self.overdue_named.contains(&key) {
                    tracing::warn!(
                        "Request past --timeout {}s on {} {} worker (pid: {pid}): \"{}\" from {}, \
                         running for {:.1}s; {}",
                        timeout.as_secs_f64(),
                        article(self.class.name()),
                        self.class.name(),
                        request.line,
                        runicorn_worker::shared::client(&request.peer),
                        request.age.as_secs_f64(),
                        self.class.overdue_policy()
                    );
                }
                still.insert(key);
            }
        }
        self.overdue_named = still;
    }

    /// Gunicorn's `manage_workers`: retire extras and old generations,
    /// close listeners nobody uses any more, and say how many workers to
    /// spawn now (the loop forks them: its one fork point).
    pub(super) fn manage_workers(&mut self) -> usize {
        let now = monotonic_now();
        let plan = supervisor::manage(&self.worker_states(), self.num_workers, self.generation);
        if plan.generation_ready {
            if let Some(pending) = self.pending.take() {
                tracing::info!(
                    "Reload complete: the new workers have booted; old workers are stopping gracefully"
                );
                if let Some((_, listeners)) = pending.listeners {
                    self.retired_listeners.push(RetiredListeners {
                        newest_generation: self.generation.saturating_sub(1),
                        listeners,
                    });
                }
            }
        }
        for pid in plan.retire {
            self.retire_worker(pid, now);
        }
        self.close_retired_listeners();
        self.end_backoff_if_recovered(now);
        if plan.spawn == 0 || now < self.next_spawn_at {
            return 0;
        }
        if self.fast_deaths > 0 {
            // Backing off: one worker per step, and the next one no
            // sooner than the same delay again (its fast death, if it
            // comes, lengthens the delay).
            self.next_spawn_at = now + supervisor::respawn_delay(self.fast_deaths);
            return 1;
        }
        plan.spawn
    }

    /// The back-off ends once a worker spawned after the last fast death has
    /// stayed up past [`supervisor::FAST_DEATH`] since it booted (workers
    /// that were already up say nothing about the new ones).
    fn end_backoff_if_recovered(&mut self, now: Duration) {
        if self.fast_deaths == 0 {
            return;
        }
        let survivor = self.workers.iter().find(|(_, record)| {
            record.state.spawned > self.last_fast_death
                && self
                    .scoreboard
                    .slot(record.slot)
                    .booted_at()
                    .is_some_and(|boot| now.saturating_sub(boot) >= supervisor::FAST_DEATH)
        });
        if let Some((pid, _)) = survivor {
            tracing::info!(
                "Worker (pid:{pid}) stayed up: the back-off after {} fast deaths is over, respawning \
                 at full speed",
                self.fast_deaths
            );
            self.fast_deaths = 0;
            self.next_spawn_at = now;
        }
    }

    pub(super) fn retire_worker(&mut self, pid: i32, now: Duration) {
        self.signal_worker(pid, Signal::SIGTERM);
        if let Some(record) = self.workers.get_mut(&pid) {
            record.state.retiring_since = Some(now);
        }
    }

    pub(super) fn close_retired_listeners(&mut self) {
        let oldest_alive = self
            .workers
            .values()
            .map(|record| record.state.generation)
            .min();
        let mut still = Vec::new();
        for retired in std::mem::take(&mut self.retired_listeners) {
            if oldest_alive.is_some_and(|oldest| oldest <= retired.newest_generation) {
                still.push(retired);
                continue;
            }
            for listener in retired.listeners {
                tracing::info!("Closing listener {} (no longer bound)", listener.describe());
                let path = listener.unix_path();
                drop(listener);
                if let Some(path) = path {
                    if self.unix_paths.contains(&path) && !self.bound_unix_paths().contains(&path) {
                        let _ = std::fs::remove_file(&path);
                        self.unix_paths.retain(|known| known != &path);
                    }
                }
            }
        }
        self.retired_listeners = still;
    }

    pub(super) fn bound_unix_paths(&self) -> Vec<PathBuf> {
        self.listeners
            .iter()
            .filter_map(Listener::unix_path)
            .collect()
    }
}
