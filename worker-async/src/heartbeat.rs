//! The heartbeat, from tasks: each runtime runs a tick task that stamps its
//! own tick, and beats the scoreboard only while *every* runtime's tick is
//! fresh. A runtime thread blocked in app code (or spinning) stops ticking,
//! so the whole worker stops beating, and the master kills it after
//! `--timeout`, naming the request that held it (from the scoreboard lanes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runicorn_worker::clock::monotonic_nanos;
use runicorn_worker::Slot;
use tokio::time::MissedTickBehavior;

/// A finished runtime's tick: ignored by the freshness check.
const RETIRED: u64 = u64::MAX;

/// How often each runtime ticks: the master's poll interval (half the
/// timeout within 50 ms..1 s), so the beat is never late and a hang is
/// seen soon.
pub(crate) use runicorn_worker::poll_interval as interval;

/// The ticks of every runtime of one worker.
#[derive(Debug)]
pub(crate) struct Beats {
    slot: Slot,
    ticks: Vec<AtomicU64>,
    /// A tick older than this (ns) means its runtime is stuck.
    stale: u64,
}

impl Beats {
    /// `runtimes` ticks, all fresh now; ticks every `every`.
    pub(crate) fn new(slot: Slot, runtimes: usize, every: Duration) -> Beats {
        let now = monotonic_nanos();
        Beats {
            slot,
            ticks: (0..runtimes).map(|_| AtomicU64::new(now)).collect(),
            stale: (every * 2).as_nanos() as u64,
        }
    }

    /// Runtime `index` is alive: stamp it, and beat if every runtime is.
    pub(crate) fn tick(&self, index: usize) -> bool {
        let now = monotonic_nanos();
        self.ticks[index].store(now, Ordering::Release);
        let all_fresh = self.ticks.iter().all(|tick| {
            let tick = tick.load(Ordering::Acquire);
            tick == RETIRED || now.saturating_sub(tick) <= self.stale
        });
        if all_fresh {
            self.slot.heartbeat();
        }
        all_fresh
    }

    /// Runtime `index` has finished (graceful stop): no longer waited for.
    pub(crate) fn retire(&self, index: usize) {
        self.ticks[index].store(RETIRED, Ordering::Release);
    }
}

/// The tick task of runtime `index`; runs until its runtime ends.
pub(crate) async fn tick_forever(beats: Arc<Beats>, index: usize, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        beats.tick(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_worker::Slot;

    #[test]
    fn a_stale_runtime_stops_the_beat_until_it_ticks_or_retires() {
        let slot = Slot::local();
        let beats = Beats::new(slot.clone(), 2, Duration::from_millis(50));
        assert!(beats.tick(0));
        let first = slot.last_heartbeat().unwrap();
        // Runtime 1 goes silent for longer than two intervals.
        beats.ticks[1].store(monotonic_nanos() - 1_000_000_000, Ordering::Release);
        assert!(!beats.tick(0));
        assert_eq!(slot.last_heartbeat().unwrap(), first);
        assert!(beats.tick(1));
        beats.ticks[1].store(1, Ordering::Release);
        beats.retire(1);
        assert!(beats.tick(0));
        assert!(slot.last_heartbeat().unwrap() > first);
    }
}
