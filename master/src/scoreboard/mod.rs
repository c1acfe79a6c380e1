//! The scoreboard: one shared-memory slot per worker, atomics only.
//!
//! Made by the master before the first fork (a `MAP_SHARED` anonymous
//! mapping, so every worker writes into the same pages the master reads).
//! The slot's layout and a worker's handle on it ([`Slot`]: heartbeat,
//! request lanes) are the worker kit's (`worker/src/slot.rs`); the master
//! keeps the mapping and its own side of a slot ([`ArbiterSlot`]: reset it
//! for a new worker, record the pid, the spawn time).

#[allow(unsafe_code)] // the fence: the shared mapping as `&[SlotData]`
mod mapping;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use runicorn_worker::clock::monotonic_nanos;
use runicorn_worker::Slot;

use mapping::Mapping;

/// The shared table of worker slots.
#[derive(Debug, Clone)]
pub struct Scoreboard {
    mapping: Arc<Mapping>,
}

impl Scoreboard {
    /// Maps `capacity` zeroed slots. Call before the first fork.
    pub fn new(capacity: usize) -> std::io::Result<Self> {
        Ok(Scoreboard {
            mapping: Arc::new(Mapping::new(capacity)?),
        })
    }

    /// How many slots there are.
    pub fn capacity(&self) -> usize {
        self.mapping.capacity()
    }

    /// A handle to slot `index` (panics when out of range).
    pub fn slot(&self, index: usize) -> Slot {
        Slot::new(self.mapping.clone(), index)
    }
}

/// The master's side of a slot.
pub trait ArbiterSlot {
    /// Clears the slot for a new worker, stamped with its spawn time.
    fn reset(&self, generation: u32);
    /// Records the worker's pid.
    fn set_pid(&self, pid: i32);
    /// The worker's pid (0: free).
    fn pid(&self) -> i32;
    /// When the worker was spawned, on the monotonic clock.
    fn spawned_at(&self) -> Duration;
    /// Records the worker's resident set size, as the master sampled it.
    fn set_rss_bytes(&self, bytes: u64);
    /// The service stops: when the worker stops accepting, it takes what
    /// the kernel queued before it closes its listeners
    /// (`Slot::drains_on_stop`). Set before the worker is sent TERM.
    fn ask_to_drain(&self);
}

impl ArbiterSlot for Slot {
    fn reset(&self, generation: u32) {
        let data = self.data();
        data.pid.store(0, Ordering::Relaxed);
        data.generation.store(generation, Ordering::Relaxed);
        data.boot_ns.store(0, Ordering::Relaxed);
        data.heartbeat_ns.store(0, Ordering::Relaxed);
        data.served.store(0, Ordering::Relaxed);
        data.in_flight.store(0, Ordering::Relaxed);
        data.drain_on_stop.store(0, Ordering::Relaxed);
        data.retire_cause.store(0, Ordering::Relaxed);
        data.rss_bytes.store(0, Ordering::Relaxed);
        for count in data.status_classes.iter().chain(&data.duration_buckets) {
            count.store(0, Ordering::Relaxed);
        }
        data.duration_sum_us.store(0, Ordering::Relaxed);
        for lane in &data.lanes {
            lane.start_ns.store(0, Ordering::Relaxed);
        }
        data.spawned_ns.store(monotonic_nanos(), Ordering::Release);
    }

    fn set_pid(&self, pid: i32) {
        self.data().pid.store(pid, Ordering::Release);
    }

    fn pid(&self) -> i32 {
        self.data().pid.load(Ordering::Acquire)
    }

    fn spawned_at(&self) -> Duration {
        Duration::from_nanos(self.data().spawned_ns.load(Ordering::Acquire))
    }

    fn set_rss_bytes(&self, bytes: u64) {
        self.data().rss_bytes.store(bytes, Ordering::Release);
    }

    fn ask_to_drain(&self) {
        self.data().drain_on_stop.store(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_of_the_mapping_is_reset_and_counts_for_the_master() {
        let board = Scoreboard::new(4).unwrap();
        assert_eq!(board.capacity(), 4);
        let slot = board.slot(2);
        slot.reset(1);
        slot.set_pid(42);
        assert_eq!(board.slot(2).pid(), 42);
        assert!(slot.spawned_at() > Duration::ZERO);
        assert!(slot.last_heartbeat().is_none());
        slot.heartbeat();
        let guard = slot.begin_request("GET /slow HTTP/1.1");
        assert_eq!(
            board.slot(2).oldest_request().unwrap().1,
            "GET /slow HTTP/1.1"
        );
        drop(guard);
        assert_eq!(board.slot(2).requests_served(), 1);
        assert_eq!(board.slot(1).requests_served(), 0);
        assert!(!slot.drains_on_stop());
        slot.ask_to_drain();
        assert!(board.slot(2).drains_on_stop());
        slot.set_rss_bytes(5 << 20);
        slot.note_retiring(runicorn_worker::RetireCause::MaxRequests);
        assert_eq!(board.slot(2).rss_bytes(), Some(5 << 20));
        slot.begin_request("GET / HTTP/1.1").finish(200);
        slot.reset(2);
        assert_eq!(slot.counters(), Default::default());
        assert!(!slot.drains_on_stop());
        assert_eq!(slot.rss_bytes(), None);
        assert_eq!(slot.retire_cause(), None);
        assert_eq!(slot.requests_served(), 0);
        assert!(slot.last_heartbeat().is_none());
        assert_eq!(slot.pid(), 0);
    }
}
