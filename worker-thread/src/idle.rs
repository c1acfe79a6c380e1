//! The connections parked in the poller, with their deadlines.
//!
//! Three kinds wait here: *fresh* connections, accepted and not yet sent a
//! byte (they get the head deadline), *waiting* ones, with a partial head
//! (until that head's deadline) or lingering after an error answer (until
//! the linger's end), and *kept-alive* ones, answered and
//! waiting for their next request (they get `--keep-alive`). Those waiting
//! for a head, and the kept-alive ones, are ordered by deadline, each in a
//! set of their own, so expiry is a look at the front, and the oldest
//! kept-alive connection (the one closed to make room for a new client) is
//! the first of its set; a connection whose client is sending a head is
//! never closed for room (nor one lingering: it is closing anyway). Pure bookkeeping over explicit instants, so it is
//! unit-tested without sockets or clocks.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// Why a connection is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleKind {
    /// Accepted, waiting for its first bytes.
    Fresh,
    /// Part of a request head received, waiting for the rest (a slow
    /// client: it holds no thread while it drips), or a lingering close
    /// waiting for the client's last bytes; until the connection's own
    /// deadline.
    Waiting,
    /// Answered, waiting for its next request.
    KeptAlive,
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    kind: IdleKind,
    deadline: Instant,
}

/// Parked items keyed by their epoll token.
#[derive(Debug)]
pub(crate) struct IdleSet<T> {
    entries: HashMap<u64, Entry<T>>,
    fresh: BTreeSet<(Instant, u64)>,
    kept: BTreeSet<(Instant, u64)>,
}

impl<T> IdleSet<T> {
    pub(crate) fn new() -> IdleSet<T> {
        IdleSet {
            entries: HashMap::new(),
            fresh: BTreeSet::new(),
            kept: BTreeSet::new(),
        }
    }

    fn order(&mut self, kind: IdleKind) -> &mut BTreeSet<(Instant, u64)> {
        match kind {
            IdleKind::Fresh | IdleKind::Waiting => &mut self.fresh,
            IdleKind::KeptAlive => &mut self.kept,
        }
    }

    /// Parks `item` under `token` (a token is never reused) until `deadline`.
    pub(crate) fn park(&mut self, token: u64, item: T, kind: IdleKind, deadline: Instant) {
        self.order(kind).insert((deadline, token));
        self.entries.insert(
            token,
            Entry {
                item,
                kind,
                deadline,
            },
        );
    }

    /// Takes the item parked under `token` (it became readable).
    pub(crate) fn take(&mut self, token: u64) -> Option<T> {
        let entry = self.entries.remove(&token)?;
        self.order(entry.kind).remove(&(entry.deadline, token));
        Some(entry.item)
    }

    /// Removes and returns every item whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<T> {
        let mut due: Vec<u64> = Vec::new();
        for order in [&self.fresh, &self.kept] {
            due.extend(
                order
                    .iter()
                    .take_while(|(deadline, _)| *deadline <= now)
                    .map(|(_, token)| *token),
            );
        }
        due.into_iter()
            .filter_map(|token| self.take(token))
            .collect()
    }

    /// Removes the kept-alive item parked longest ago, to make room.
    pub(crate) fn evict_oldest_kept(&mut self) -> Option<T> {
        let (_, token) = *self.kept.first()?;
        self.take(token)
    }

    /// The earliest deadline, if anything is parked.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let fresh = self.fresh.first().map(|(deadline, _)| *deadline);
        let kept = self.kept.first().map(|(deadline, _)| *deadline);
        match (fresh, kept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether an item is parked under `token`.
    pub(crate) fn contains(&self, token: u64) -> bool {
        self.entries.contains_key(&token)
    }

    /// How many items are parked.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many kept-alive items are parked.
    pub(crate) fn kept_len(&self) -> usize {
        self.kept.len()
    }

    /// Removes and returns everything.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.fresh.clear();
        self.kept.clear();
        self.entries.drain().map(|(_, entry)| entry.item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn take_removes_from_both_indexes() {
        let base = Instant::now();
        let mut idle = IdleSet::new();
        idle.park(1, "a", IdleKind::Fresh, at(base, 100));
        idle.park(2, "b", IdleKind::KeptAlive, at(base, 50));
        assert_eq!(idle.len(), 2);
        assert_eq!(idle.kept_len(), 1);
        assert_eq!(idle.next_deadline(), Some(at(base, 50)));
        assert_eq!(idle.take(2), Some("b"));
        assert_eq!(idle.take(2), None);
        assert_eq!(idle.kept_len(), 0);
        assert_eq!(idle.next_deadline(), Some(at(base, 100)));
    }

    #[test]
    fn expire_returns_only_what_is_due() {
        let base = Instant::now();
        let mut idle = IdleSet::new();
        idle.park(1, 1, IdleKind::Fresh, at(base, 10));
        idle.park(2, 2, IdleKind::KeptAlive, at(base, 20));
        idle.park(3, 3, IdleKind::KeptAlive, at(base, 30));
        idle.park(4, 4, IdleKind::Fresh, at(base, 40));
        let mut due = idle.expire(at(base, 25));
        due.sort_unstable();
        assert_eq!(due, vec![1, 2]);
        assert_eq!(idle.len(), 2);
        assert!(idle.expire(at(base, 29)).is_empty());
        assert_eq!(idle.next_deadline(), Some(at(base, 30)));
    }

    #[test]
    fn eviction_takes_the_oldest_kept_alive_never_a_fresh_one_or_a_head() {
        let base = Instant::now();
        let mut idle = IdleSet::new();
        idle.park(1, "fresh", IdleKind::Fresh, at(base, 5));
        idle.park(4, "head", IdleKind::Waiting, at(base, 1));
        idle.park(2, "older", IdleKind::KeptAlive, at(base, 10));
        idle.park(3, "newer", IdleKind::KeptAlive, at(base, 20));
        assert_eq!(idle.evict_oldest_kept(), Some("older"));
        assert_eq!(idle.evict_oldest_kept(), Some("newer"));
        assert_eq!(idle.evict_oldest_kept(), None);
        assert_eq!(idle.len(), 2);
        assert_eq!(idle.kept_len(), 0);
        assert_eq!(idle.expire(at(base, 1)), vec!["head"]);
    }

    #[test]
    fn drain_empties_everything() {
        let base = Instant::now();
        let mut idle = IdleSet::new();
        idle.park(1, 1, IdleKind::KeptAlive, at(base, 10));
        idle.park(2, 2, IdleKind::Fresh, at(base, 10));
        assert_eq!(idle.drain().len(), 2);
        assert!(idle.is_empty());
        assert_eq!(idle.next_deadline(), None);
    }
}
