//! `sample_memory`: about once a second the master reads every worker's
//! RSS into its scoreboard slot (where metrics and `runicorn ctl` read it,
//! and the death line of a worker killed from outside names it), and
//! retires gracefully each worker past its `--max-worker-memory` threshold,
//! the way TTOU and HUP retire one: TERM, it stops accepting, finishes what
//! it has in flight and exits, and `manage_workers` forks its replacement.

use super::{Arbiter, ExitReason};
use crate::memory::{self, human, MIB};
use crate::scoreboard::ArbiterSlot;
use runicorn_worker::clock::monotonic_now;

impl Arbiter {
    /// Samples every worker's RSS; retires those past their threshold.
    pub(super) fn sample_memory(&mut self) {
        let now = monotonic_now();
        if now.saturating_sub(self.last_memory_sample) < memory::SAMPLE_INTERVAL {
            return;
        }
        self.last_memory_sample = now;
        let mut over = Vec::new();
        for (&pid, record) in &self.workers {
            let Some(bytes) = memory::resident_bytes(pid) else {
                continue;
            };
            let slot = self.scoreboard.slot(record.slot);
            slot.set_rss_bytes(bytes);
            let state = &record.state;
            let active = state.retiring_since.is_none()
                && !state.killed
                && state.aborted_at.is_none()
                && !record.signalled
                && slot.booted_at().is_some();
            match record.memory_threshold {
                Some(threshold) if active && bytes > threshold => {
                    let fresh = slot.requests_served() == 0 && slot.in_flight() == 0;
                    over.push((pid, bytes, threshold, fresh));
                }
                _ => {}
            }
        }
        let limit = self.settings.max_worker_memory;
        for (pid, bytes, threshold, fresh) in over {
            if fresh {
                // Retiring it would replace it with a worker as big, in a
                // loop: the limit is below what the app needs to boot.
                tracing::error!(
                    "Worker (pid: {pid}) uses {} before serving any request, over --max-worker-memory \
                     {limit} MiB: the app needs more than the limit to boot, so it is not retired for its \
                     memory; raise --max-worker-memory above {} MiB",
                    human(bytes),
                    bytes.div_ceil(MIB) + bytes.div_ceil(MIB) / 4
                );
                if let Some(record) = self.workers.get_mut(&pid) {
                    record.memory_threshold = None;
                }
                continue;
            }
            tracing::warn!(
                "Worker (pid: {pid}) uses {}, over --max-worker-memory {limit} MiB (its threshold {}, \
                 drawn in 90-100% of the limit): retiring it gracefully",
                human(bytes),
                human(threshold)
            );
            self.retire_worker(pid, now);
            if let Some(record) = self.workers.get_mut(&pid) {
                record.retired_for = Some(ExitReason::Memory);
            }
        }
    }
}
