//! What the control socket's `status` reports: the master and every
//! worker it has, read from its records and the scoreboard (each worker's
//! requests in flight, from its slot's lanes, and its RSS as the master
//! sampled it).

use runicorn_worker::clock::monotonic_now;

use super::{Arbiter, VERSION};
use crate::control::protocol::{MasterStatus, RequestNow, Status, WorkerStatus};
use crate::memory;

impl Arbiter {
    /// How many workers the master keeps now.
    pub(crate) fn workers_target(&self) -> usize {
        self.num_workers
    }

    /// The most workers the scoreboard has slots for.
    pub(crate) fn worker_capacity(&self) -> usize {
        self.scoreboard.capacity()
    }

    /// The master and its workers now, oldest spawn first.
    pub(crate) fn control_status(&self) -> Status {
        let now = monotonic_now();
        let mut workers: Vec<WorkerStatus> = self
            .workers
            .iter()
            .map(|(&pid, record)| {
                let slot = self.scoreboard.slot(record.slot);
                let in_flight = slot.in_flight();
                let state = if record.state.retiring_since.is_some()
                    || record.state.killed
                    || record.state.aborted_at.is_some()
                {
                    "retiring"
                } else if slot.booted_at().is_none() {
                    "booting"
                } else if in_flight > 0 {
                    "busy"
                } else {
                    "idle"
                };
                WorkerStatus {
                    pid,
                    class: self.class.name().to_owned(),
                    age: record.state.age,
                    generation: record.state.generation,
                    uptime_secs: now.saturating_sub(record.state.spawned).as_secs_f64(),
                    requests: slot.requests_served(),
                    in_flight,
                    // Sampled by the master about once a second; read now
                    // for a worker not sampled yet.
                    rss_bytes: slot.rss_bytes().or_else(|| memory::resident_bytes(pid)),
                    state: state.to_owned(),
                    requests_now: slot
                        .requests_in_flight()
                        .into_iter()
                        .map(|(age, request)| RequestNow {
                            request,
                            secs: age.as_secs_f64(),
                        })
                        .collect(),
                }
            })
            .collect();
        workers.sort_by_key(|worker| worker.age);
        Status {
            master: MasterStatus {
                pid: self.pid.as_raw() as u32,
                version: VERSION.to_owned(),
                class: self.class.name().to_owned(),
                workers_target: self.num_workers,
                generation: self.generation,
                uptime_secs: now.saturating_sub(self.started).as_secs_f64(),
                listeners: self
                    .listeners
                    .iter()
                    .map(|listener| listener.describe())
                    .collect(),
            },
            workers,
        }
    }
}
