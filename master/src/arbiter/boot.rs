//! Boot reporting: each worker's boot time, logged by the master when the
//! worker's first heartbeat arrives (the app loaded and `init_worker`
//! returned), and `when_ready`, run once the whole first generation has
//! booted rather than at fork time, so a hook that registers the service
//! somewhere (a load balancer, a readiness file) does so when requests can
//! be answered. Slow boots (a Python app importing for seconds) show up in
//! the log as `Worker (pid:N) booted in 4.21s`.

use super::{monotonic_now, Arbiter};

impl Arbiter {
    /// Logs the boot time of every worker that has booted since the last
    /// pass, then runs `when_ready` if the service just became ready.
    pub(super) fn note_boots(&mut self) {
        for (pid, record) in &mut self.workers {
            if record.boot_logged {
                continue;
            }
            let Some(booted) = self.scoreboard.slot(record.slot).booted_at() else {
                continue;
            };
            record.boot_logged = true;
            let seconds = booted.saturating_sub(record.state.spawned).as_secs_f64();
            tracing::info!(
                worker_pid = *pid,
                boot_seconds = seconds,
                "Worker (pid:{pid}) booted in {seconds:.2}s"
            );
        }
        if self.ready {
            return;
        }
        let booted = self
            .workers
            .values()
            .filter(|record| {
                record.boot_logged
                    && record.state.generation == self.generation
                    && record.state.retiring_since.is_none()
                    && !record.state.killed
                    && record.state.aborted_at.is_none()
            })
            .count();
        if booted >= self.num_workers {
            self.ready = true;
            let seconds = monotonic_now().saturating_sub(self.started).as_secs_f64();
            let noun = if booted == 1 { "worker" } else { "workers" };
            tracing::info!(
                workers = booted,
                boot_seconds = seconds,
                "Ready: {booted} {noun} booted in {seconds:.2}s"
            );
            self.hooks.when_ready(&self.view());
        }
    }
}
