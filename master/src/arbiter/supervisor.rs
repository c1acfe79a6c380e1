//! The arbiter's decisions, as pure functions of a process table and a clock.
//!
//! Nothing here forks, signals or reads the time: the arbiter builds a
//! [`WorkerState`] per worker from its records and the scoreboard, asks what
//! to do, and does it. That keeps the rules (who is silent, who retires,
//! how many to spawn, how long to back off) unit-testable without a process.

use std::time::Duration;

/// What the supervisor knows of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerState {
    /// Its pid.
    pub pid: i32,
    /// Its spawn order.
    pub age: u64,
    /// The configuration generation it was spawned with (HUP increments it).
    pub generation: u64,
    /// When it was forked.
    pub spawned: Duration,
    /// Its last heartbeat; `None` until it booted.
    pub last_beat: Option<Duration>,
    /// When the master sent it SIGABRT for silence.
    pub aborted_at: Option<Duration>,
    /// The master sent it SIGKILL.
    pub killed: bool,
    /// When the master asked it to stop gracefully (TERM).
    pub retiring_since: Option<Duration>,
}

impl WorkerState {
    /// Has it beaten its heartbeat at least once?
    pub fn booted(&self) -> bool {
        self.last_beat.is_some()
    }

    fn active(&self) -> bool {
        self.retiring_since.is_none() && !self.killed && self.aborted_at.is_none()
    }
}

/// What to do about a worker that has gone silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Murder {
    /// First pass past the timeout: SIGABRT (log the timeout).
    Abort(i32),
    /// Still there on a later pass, or a graceful stop overran: SIGKILL.
    Kill(i32),
}

/// The pause between SIGABRT and SIGKILL.
pub const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Silent workers, and retiring workers past `graceful_timeout`.
pub fn murder(
    workers: &[WorkerState],
    now: Duration,
    timeout: Duration,
    graceful_timeout: Duration,
) -> Vec<Murder> {
    let mut actions = Vec::new();
    for worker in workers {
        if worker.killed {
            continue;
        }
        if let Some(since) = worker.retiring_since {
            if now.saturating_sub(since) > graceful_timeout {
                actions.push(Murder::Kill(worker.pid));
            }
            continue;
        }
        if let Some(aborted) = worker.aborted_at {
            if now.saturating_sub(aborted) >= ABORT_GRACE {
                actions.push(Murder::Kill(worker.pid));
            }
            continue;
        }
        if timeout.is_zero() {
            continue;
        }
        let reference = worker.last_beat.unwrap_or(worker.spawned);
        if now.saturating_sub(reference) > timeout {
            actions.push(Murder::Abort(worker.pid));
        }
    }
    actions
}

/// How to bring the worker set to its target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Workers of the current generation to fork.
    pub spawn: usize,
    /// Workers to stop gracefully (TERM).
    pub retire: Vec<i32>,
    /// The current generation is fully booted and older ones are being retired.
    pub generation_ready: bool,
}

/// Spawn up to `target` workers of `generation`; retire the oldest extras
/// (TTOU); retire older generations only once `target` workers of the
/// current one have booted (HUP without a gap in service). A target of 0
/// (WINCH) retires every worker.
pub fn manage(workers: &[WorkerState], target: usize, generation: u64) -> Plan {
    let mut current: Vec<&WorkerState> = workers
        .iter()
        .filter(|worker| worker.generation == generation && worker.active())
        .collect();
    current.sort_by_key(|worker| worker.age);
    let mut plan = Plan {
        spawn: target.saturating_sub(current.len()),
        ..Plan::default()
    };
    if current.len() > target {
        plan.retire.extend(
            current[..current.len() - target]
                .iter()
                .map(|worker| worker.pid),
        );
    }
    let booted = current.iter().filter(|worker| worker.booted()).count();
    if booted >= target {
        plan.generation_ready = true;
        plan.retire.extend(
            workers
                .iter()
                .filter(|worker| worker.generation != generation && worker.active())
                .map(|worker| worker.pid),
        );
    }
    plan
}

/// The first respawn delay after a worker died right after boot.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest respawn delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A worker that dies sooner than this after boot counts as a fast death.
pub const FAST_DEATH: Duration = Duration::from_secs(1);

/// The respawn delay after `fast_deaths` consecutive fast deaths.
pub fn respawn_delay(fast_deaths: u32) -> Duration {
    if fast_deaths == 0 {
        return Duration::ZERO;
    }
    let doublings = (fast_deaths - 1).min(16);
    (BACKOFF_START * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

/// Did a worker that lived `spawned..now` (booted at `booted`) die fast?
pub fn is_fast_death(spawned: Duration, booted: Option<Duration>, now: Duration) -> bool {
    match booted {
        None => true,
        Some(boot) => now.saturating_sub(boot.max(spawned)) < FAST_DEATH,
    }
}

/// A worker's request limit: `max + rand(0..=jitter)`, 0 meaning never.
pub fn max_requests(max: u64, jitter: u64, random: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    max + random % (jitter + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn worker(pid: i32, generation: u64) -> WorkerState {
        WorkerState {
            pid,
            age: pid as u64,
            generation,
            spawned: Duration::ZERO,
            last_beat: Some(S),
            aborted_at: None,
            killed: false,
            retiring_since: None,
        }
    }

    #[test]
    fn silent_workers_get_abort_then_kill() {
        let mut silent = worker(1, 0);
        let fine = WorkerState {
            last_beat: Some(S * 30),
            ..worker(2, 0)
        };
        let timeout = S * 30;
        assert!(murder(&[silent.clone(), fine.clone()], S * 31, timeout, S).is_empty());
        assert_eq!(
            murder(&[silent.clone(), fine.clone()], S * 32, timeout, S),
            vec![Murder::Abort(1)]
        );
        silent.aborted_at = Some(S * 32);
        assert!(murder(&[silent.clone()], S * 32 + S / 2, timeout, S).is_empty());
        assert_eq!(
            murder(&[silent.clone()], S * 33, timeout, S),
            vec![Murder::Kill(1)]
        );
        silent.killed = true;
        assert!(murder(&[silent], S * 40, timeout, S).is_empty());
    }

    #[test]
    fn a_worker_that_never_booted_times_out_from_its_spawn() {
        let booting = WorkerState {
            last_beat: None,
            spawned: S * 10,
            ..worker(1, 0)
        };
        assert!(murder(std::slice::from_ref(&booting), S * 12, S * 2, S).is_empty());
        assert_eq!(murder(&[booting], S * 13, S * 2, S), vec![Murder::Abort(1)]);
    }

    #[test]
    fn zero_timeout_disables_the_heartbeat_check() {
        assert!(murder(&[worker(1, 0)], S * 1000, Duration::ZERO, S).is_empty());
    }

    #[test]
    fn retiring_workers_are_killed_after_graceful_timeout() {
        let retiring = WorkerState {
            retiring_since: Some(S * 10),
            ..worker(1, 0)
        };
        assert!(murder(std::slice::from_ref(&retiring), S * 40, S, S * 30).is_empty());
        assert_eq!(
            murder(&[retiring], S * 41, S, S * 30),
            vec![Murder::Kill(1)]
        );
    }

    #[test]
    fn manage_spawns_to_target_and_retires_the_oldest_extra() {
        assert_eq!(manage(&[], 2, 0).spawn, 2);
        assert_eq!(manage(&[], 0, 0).spawn, 0, "WINCH: no worker");
        let winched = manage(&[worker(1, 0), worker(2, 1)], 0, 1);
        assert_eq!((winched.spawn, winched.retire), (0, vec![2, 1]));
        let three = [worker(5, 0), worker(3, 0), worker(4, 0)];
        let plan = manage(&three, 2, 0);
        assert_eq!((plan.spawn, plan.retire), (0, vec![3]));
        let retiring = WorkerState {
            retiring_since: Some(S),
            ..worker(3, 0)
        };
        let plan = manage(&[retiring, worker(4, 0)], 2, 0);
        assert_eq!((plan.spawn, plan.retire), (1, vec![]));
    }

    #[test]
    fn old_generation_retires_only_once_the_new_one_booted() {
        let old = [worker(1, 0), worker(2, 0)];
        let plan = manage(&old, 2, 1);
        assert_eq!(
            (plan.spawn, plan.retire.clone(), plan.generation_ready),
            (2, vec![], false)
        );
        let booting = WorkerState {
            last_beat: None,
            ..worker(3, 1)
        };
        let mut table = vec![old[0].clone(), old[1].clone(), booting, worker(4, 1)];
        let plan = manage(&table, 2, 1);
        assert_eq!((plan.spawn, plan.retire), (0, vec![]));
        table[2].last_beat = Some(S);
        let plan = manage(&table, 2, 1);
        assert_eq!(
            (plan.spawn, plan.retire, plan.generation_ready),
            (0, vec![1, 2], true)
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(respawn_delay(0), Duration::ZERO);
        assert_eq!(respawn_delay(1), Duration::from_millis(100));
        assert_eq!(respawn_delay(2), Duration::from_millis(200));
        assert_eq!(respawn_delay(6), Duration::from_millis(3200));
        assert_eq!(respawn_delay(7), BACKOFF_MAX);
        assert_eq!(respawn_delay(1000), BACKOFF_MAX);
    }

    #[test]
    fn fast_deaths_and_request_limits() {
        assert!(is_fast_death(S, None, S * 100));
        assert!(is_fast_death(S, Some(S * 2), S * 2 + S / 2));
        assert!(!is_fast_death(S, Some(S * 2), S * 4));
        assert_eq!(max_requests(0, 10, 7), 0);
        assert_eq!(max_requests(100, 0, 7), 100);
        assert_eq!(max_requests(100, 10, 7), 107);
        assert!((100..=110).contains(&max_requests(100, 10, u64::MAX)));
    }
}
