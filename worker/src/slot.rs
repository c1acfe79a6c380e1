//! A worker's scoreboard slot: its heartbeat, its request counters and the
//! lanes naming its in-flight requests, atomics only.
//!
//! The master maps the scoreboard (`master/src/scoreboard/`) before the
//! first fork, one [`SlotData`] per worker, and reads the slots to kill
//! silent workers and to say *which request* hung; a worker writes into its
//! own [`Slot`]. Several requests may be in flight per worker (threads,
//! coroutines, tasks): each claims one of [`LANES`] lanes lock-free with
//! its start time and request line; when all lanes are taken a request is
//! only counted. A finished request is counted by status class and in the
//! duration histogram ([`RequestGuard::finish`]), which the master adds up
//! for `/metrics` (folding a dead worker's counts into its own totals).
//! Nothing here blocks or allocates on the request path.

mod layout;

use std::fmt;
use std::sync::atomic::{fence, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::monotonic_nanos;
use layout::CLAIMING;
pub use layout::{
    Lane, SlotData, DURATION_BOUNDS_US, DURATION_BUCKETS, LANES, LINE_BYTES, PEER_BYTES,
    STATUS_CLASSES,
};

/// Where the slots live: the master's shared mapping, or [`LocalSlots`].
pub trait SlotMemory: Send + Sync + fmt::Debug {
    /// Every slot.
    fn slots(&self) -> &[SlotData];
}

/// Slots in this process's own memory: for a worker class run in process
/// (tests), where no master reads them.
#[derive(Debug)]
pub struct LocalSlots(Box<[SlotData]>);

impl LocalSlots {
    /// `capacity` zeroed slots.
    pub fn new(capacity: usize) -> Self {
        LocalSlots((0..capacity.max(1)).map(|_| SlotData::new()).collect())
    }
}

impl SlotMemory for LocalSlots {
    fn slots(&self) -> &[SlotData] {
        &self.0
    }
}

/// A handle into one worker's slot. Clone it into every thread, coroutine
/// or task of the worker.
#[derive(Debug, Clone)]
pub struct Slot {
    memory: Arc<dyn SlotMemory>,
    index: usize,
}

impl Slot {
    /// A handle to slot `index` of `memory` (panics when out of range).
    pub fn new(memory: Arc<dyn SlotMemory>, index: usize) -> Self {
        let capacity = memory.slots().len();
        assert!(
            index < capacity,
            "scoreboard slot {index} out of range ({capacity} slots)"
        );
        Slot { memory, index }
    }

    /// A slot of its own in this process's memory (tests, in-process runs).
    pub fn local() -> Self {
        Slot::new(Arc::new(LocalSlots::new(1)), 0)
    }

    /// The slot's atomics, for the master's side (reset, pid, spawn time).
    pub fn data(&self) -> &SlotData {
        &self.memory.slots()[self.index]
    }

    /// This slot's index in the scoreboard.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Tells the master this worker is alive. The first beat marks it booted
    /// (the master beats once for it after the app is loaded and
    /// `init_worker` ran). Beat at least every `timeout / 2`, also while idle.
    /// The beat is also the worker's periodic tick: it writes out the access
    /// log's buffered lines when they are due and reopens it after USR1
    /// ([`crate::access::tick`]), so every class, a library's included,
    /// flushes at least once a second without a thread of its own.
    pub fn heartbeat(&self) {
        crate::access::tick();
        let now = monotonic_nanos();
        let data = self.data();
        let _ = data
            .boot_ns
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed);
        data.heartbeat_ns.store(now, Ordering::Release);
    }

    /// Marks a request as started; dropping the guard ends it.
    pub fn begin_request(&self, request_line: &str) -> RequestGuard {
        self.begin_request_parts(&[request_line])
    }

    /// [`Slot::begin_request`] for a line given in parts (method, target,
    /// version), written joined by single spaces without building the line.
    pub fn begin_request_parts(&self, parts: &[&str]) -> RequestGuard {
        self.begin_request_from(parts, "")
    }

    /// [`Slot::begin_request_parts`] for a request from client `peer`
    /// (`""`: a unix socket), kept in the lane beside the line (cut to
    /// [`PEER_BYTES`]), so the master can name the client of a request
    /// that runs long. Neither blocks nor allocates.
    pub fn begin_request_from(&self, parts: &[&str], peer: &str) -> RequestGuard {
        let data = self.data();
        data.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut claimed = None;
        let start = monotonic_nanos();
        for (index, lane) in data.lanes.iter().enumerate() {
            if lane
                .start_ns
                .compare_exchange(0, CLAIMING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                claimed = Some(index);
                lane.seq.fetch_add(1, Ordering::AcqRel);
                fence(Ordering::Release);
                let len = write_line(&lane.line, parts);
                lane.len.store(len as u32, Ordering::Relaxed);
                let peer_len = write_line(&lane.peer, &[peer]);
                lane.peer_len.store(peer_len as u32, Ordering::Relaxed);
                lane.seq.fetch_add(1, Ordering::Release);
                lane.start_ns.store(start, Ordering::Release);
                break;
            }
        }
        RequestGuard {
            slot: self.clone(),
            lane: claimed,
            start_ns: start,
        }
    }

    /// The finished requests' counters, as they are now.
    pub fn counters(&self) -> Counters {
        let data = self.data();
        Counters {
            status_classes: std::array::from_fn(|index| {
                data.status_classes[index].load(Ordering::Relaxed)
            }),
            duration_buckets: std::array::from_fn(|index| {
                data.duration_buckets[index].load(Ordering::Relaxed)
            }),
            duration_sum_us: data.duration_sum_us.load(Ordering::Relaxed),
        }
    }

    /// Requests this worker finished.
    pub fn requests_served(&self) -> u64 {
        self.data().served.load(Ordering::Acquire)
    }

    /// Requests this worker has in flight.
    pub fn in_flight(&self) -> u64 {
        self.data().in_flight.load(Ordering::Acquire)
    }

    /// Every tracked in-flight request: how long it has run and its line,
    /// oldest first (for `runicorn ctl status`).
    pub fn requests_in_flight(&self) -> Vec<(Duration, String)> {
        self.lane_requests()
            .into_iter()
            .map(|request| (request.age, request.line))
            .collect()
    }

    /// How long the oldest tracked in-flight request has run, and its line.
    pub fn oldest_request(&self) -> Option<(Duration, String)> {
        let now = monotonic_nanos();
        let mut oldest: Option<(u64, String)> = None;
        for lane in &self.data().lanes {
            let start = lane.start_ns.load(Ordering::Acquire);
            if start == 0 || start == CLAIMING {
                continue;
            }
            if oldest.as_ref().is_some_and(|(best, _)| *best <= start) {
                continue;
            }
            if let Some((line, _)) = read_lane(lane, start) {
                oldest = Some((start, line));
            }
        }
        oldest.map(|(start, line)| (Duration::from_nanos(now.saturating_sub(start)), line))
    }

    /// Every tracked request in flight, oldest first, each named by its
    /// lane and start (which together identify it for as long as it runs),
    /// its line and its client.
    pub fn lane_requests(&self) -> Vec<LaneRequest> {
        self.lanes_where(|_| true)
    }

    /// [`Slot::lane_requests`] that have run longer than `limit` (only
    /// their lanes are read).
    pub fn requests_older_than(&self, limit: Duration) -> Vec<LaneRequest> {
        self.lanes_where(|age| age > limit)
    }

    fn lanes_where(&self, keep: impl Fn(Duration) -> bool) -> Vec<LaneRequest> {
        let now = monotonic_nanos();
        let mut found = Vec::new();
        for (index, lane) in self.data().lanes.iter().enumerate() {
            let start = lane.start_ns.load(Ordering::Acquire);
            if start == 0 || start == CLAIMING {
                continue;
            }
            let age = Duration::from_nanos(now.saturating_sub(start));
            if !keep(age) {
                continue;
            }
            if let Some((line, peer)) = read_lane(lane, start) {
                found.push(LaneRequest {
                    lane: index,
                    start_ns: start,
                    age,
                    line,
                    peer,
                });
            }
        }
        found.sort_by_key(|request| request.start_ns);
        found
    }

    /// Whether this worker, when it stops accepting, must first take every
    /// connection the kernel has queued on its listeners: set by the master
    /// when it stops the whole service, and so closes its own copies of the
    /// listeners. The last process to close a listening socket resets the
    /// connections still queued on it; a worker that retires while others
    /// (or the master) keep the socket open leaves the queue to them.
    pub fn drains_on_stop(&self) -> bool {
        self.data().drain_on_stop.load(Ordering::Acquire) != 0
    }

    /// The worker's resident set size in bytes, as the master last sampled
    /// it (about once a second); `None` before the first sample.
    pub fn rss_bytes(&self) -> Option<u64> {
        let bytes = self.data().rss_bytes.load(Ordering::Acquire);
        (bytes != 0).then_some(bytes)
    }

    /// Records why this worker begins retiring on its own, for the master's
    /// count of exits by reason; the first cause recorded stays.
    pub fn note_retiring(&self, cause: RetireCause) {
        let _ = self.data().retire_cause.compare_exchange(
            0,
            cause as u32,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// Why this worker began retiring on its own, if it did.
    pub fn retire_cause(&self) -> Option<RetireCause> {
        RetireCause::from_u32(self.data().retire_cause.load(Ordering::Acquire))
    }

    /// When the worker booted (its first heartbeat), if it has.
    pub fn booted_at(&self) -> Option<Duration> {
        nonzero(self.data().boot_ns.load(Ordering::Acquire))
    }

    /// The last heartbeat, if any.
    pub fn last_heartbeat(&self) -> Option<Duration> {
        nonzero(self.data().heartbeat_ns.load(Ordering::Acquire))
    }
}

/// Why a worker retires on its own (the master's reasons are its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RetireCause {
    /// It reached `--max-requests`.
    MaxRequests = 1,
    /// A request ran past `--timeout` (gthread).
    Timeout = 2,
    /// The app panicked.
    Panic = 3,
}

impl RetireCause {
    fn from_u32(value: u32) -> Option<RetireCause> {
        match value {
            1 => Some(RetireCause::MaxRequests),
            2 => Some(RetireCause::Timeout),
            3 => Some(RetireCause::Panic),
            _ => None,
        }
    }
}

/// A slot's finished-request counters (or the sum of several slots').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests by status class, 1xx at index 0.
    pub status_classes: [u64; STATUS_CLASSES],
    /// Requests per duration bucket (see [`DURATION_BOUNDS_US`]), not cumulative.
    pub duration_buckets: [u64; DURATION_BUCKETS],
    /// The durations added up, microseconds.
    pub duration_sum_us: u64,
}

impl Counters {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Counters) {
        for (sum, count) in self.status_classes.iter_mut().zip(other.status_classes) {
            *sum += count;
        }
        for (sum, count) in self.duration_buckets.iter_mut().zip(other.duration_buckets) {
            *sum += count;
        }
        self.duration_sum_us += other.duration_sum_us;
    }

    /// Finished requests counted.
    pub fn requests(&self) -> u64 {
        self.status_classes.iter().sum()
    }
}

/// The index of `status`'s class in [`Counters::status_classes`].
pub fn status_class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => STATUS_CLASSES - 1,
    }
}

/// The index of the duration bucket `micros` falls in.
pub fn duration_bucket_index(micros: u64) -> usize {
    DURATION_BOUNDS_US.partition_point(|&bound| bound < micros)
}

fn nonzero(nanos: u64) -> Option<Duration> {
    (nanos != 0).then(|| Duration::from_nanos(nanos))
}

/// Writes `parts` joined by spaces into `cells`, cut to fit on a character
/// boundary; returns the length written.
fn write_line(cells: &[AtomicU8], parts: &[&str]) -> usize {
    let mut len = 0;
    let mut next = None;
    'parts: for (index, part) in parts.iter().enumerate() {
        let separator: &[u8] = if index == 0 { b"" } else { b" " };
        for &byte in separator.iter().chain(part.as_bytes()) {
            if len == cells.len() {
                next = Some(byte);
                break 'parts;
            }
            cells[len].store(byte, Ordering::Relaxed);
            len += 1;
        }
    }
    if let Some(mut next) = next {
        // Cut before a character that did not fit whole: back off while the
        // first byte left out continues a character.
        while len > 0 && next & 0xC0 == 0x80 {
            len -= 1;
            next = cells[len].load(Ordering::Relaxed);
        }
    }
    len
}

/// A lane's line and client, read consistently while it still holds the
/// request that started at `start`.
fn read_lane(lane: &Lane, start: u64) -> Option<(String, String)> {
    let text = |cells: &[AtomicU8], len: &std::sync::atomic::AtomicU32| {
        let len = (len.load(Ordering::Relaxed) as usize).min(cells.len());
        let bytes: Vec<u8> = cells[..len]
            .iter()
            .map(|cell| cell.load(Ordering::Relaxed))
            .collect();
        bytes
    };
    for _ in 0..8 {
        let before = lane.seq.load(Ordering::Acquire);
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let line = text(&lane.line, &lane.len);
        let peer = text(&lane.peer, &lane.peer_len);
        fence(Ordering::Acquire);
        if lane.seq.load(Ordering::Relaxed) == before
            && lane.start_ns.load(Ordering::Relaxed) == start
        {
            return Some((
                String::from_utf8_lossy(&line).into_owned(),
                String::from_utf8_lossy(&peer).into_owned(),
            ));
        }
    }
    None
}

/// A request in flight, as its lane names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneRequest {
    /// Its lane in the slot.
    pub lane: usize,
    /// When it started, scoreboard nanoseconds (with `lane`, its identity).
    pub start_ns: u64,
    /// How long it has run.
    pub age: Duration,
    /// Its request line (cut to [`LINE_BYTES`]).
    pub line: String,
    /// Its client's address (`""`: a unix socket).
    pub peer: String,
}

/// One request in flight; dropping it counts the request served, and
/// [`RequestGuard::finish`] counts its status and duration too.
#[derive(Debug)]
pub struct RequestGuard {
    slot: Slot,
    lane: Option<usize>,
    start_ns: u64,
}

impl RequestGuard {
    /// The request was answered with `status`: counts it by status class and
    /// duration (three relaxed atomic adds) and ends it; returns how long it
    /// took.
    pub fn finish(self, status: u16) -> Duration {
        let elapsed = self.age();
        let micros = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let data = self.slot.data();
        data.status_classes[status_class_index(status)].fetch_add(1, Ordering::Relaxed);
        data.duration_buckets[duration_bucket_index(micros)].fetch_add(1, Ordering::Relaxed);
        data.duration_sum_us.fetch_add(micros, Ordering::Relaxed);
        elapsed
    }

    /// How long the request has run.
    pub fn age(&self) -> Duration {
        Duration::from_nanos(monotonic_nanos().saturating_sub(self.start_ns))
    }

    /// Its request line and client, as its lane names them (`None` when
    /// every lane was taken as it started).
    pub fn named(&self) -> Option<(String, String)> {
        let lane = &self.slot.data().lanes[self.lane?];
        read_lane(lane, self.start_ns)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let data = self.slot.data();
        if let Some(index) = self.lane {
            data.lanes[index].start_ns.store(0, Ordering::Release);
        }
        data.in_flight.fetch_sub(1, Ordering::AcqRel);
        data.served.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_and_the_oldest_is_named() {
        let memory: Arc<dyn SlotMemory> = Arc::new(LocalSlots::new(4));
        let slot = Slot::new(memory.clone(), 2);
        assert!(slot.last_heartbeat().is_none());
        slot.heartbeat();
        assert!(slot.booted_at().is_some());
        let first = slot.begin_request("GET /slow HTTP/1.1");
        std::thread::sleep(Duration::from_millis(2));
        let second = slot.begin_request("GET /fast HTTP/1.1");
        assert_eq!(slot.in_flight(), 2);
        let (age, line) = slot.oldest_request().unwrap();
        assert_eq!(line, "GET /slow HTTP/1.1");
        assert!(age >= Duration::from_millis(2));
        let listed: Vec<String> = slot
            .requests_in_flight()
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        assert_eq!(listed, ["GET /slow HTTP/1.1", "GET /fast HTTP/1.1"]);
        drop(first);
        assert_eq!(slot.oldest_request().unwrap().1, "GET /fast HTTP/1.1");
        assert_eq!(slot.requests_in_flight().len(), 1);
        drop(second);
        assert_eq!(slot.in_flight(), 0);
        assert_eq!(slot.requests_served(), 2);
        assert!(slot.oldest_request().is_none());
        assert_eq!(Slot::new(memory, 1).requests_served(), 0);
    }

    #[test]
    fn requests_past_a_limit_are_named_with_their_client() {
        let slot = Slot::local();
        let old = slot.begin_request_from(&["GET", "/slow", "HTTP/1.1"], "127.0.0.1:4242");
        std::thread::sleep(Duration::from_millis(20));
        let young = slot.begin_request_from(&["GET", "/fast", "HTTP/1.1"], "");
        let found = slot.requests_older_than(Duration::from_millis(10));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, "GET /slow HTTP/1.1");
        assert_eq!(found[0].peer, "127.0.0.1:4242");
        assert!(found[0].age >= Duration::from_millis(20));
        assert_eq!(
            old.named(),
            Some(("GET /slow HTTP/1.1".to_owned(), "127.0.0.1:4242".to_owned()))
        );
        assert_eq!(young.named().unwrap().1, "");
        assert!(old.age() >= Duration::from_millis(20));
        let long_peer = format!("[{}]:65535", "f".repeat(80));
        let cut = slot.begin_request_from(&["GET", "/"], &long_peer);
        assert_eq!(cut.named().unwrap().1.len(), PEER_BYTES);
        drop((old, young, cut));
        assert!(slot.requests_older_than(Duration::ZERO).is_empty());
    }

    #[test]
    fn finished_requests_are_counted_by_status_class_and_duration() {
        let slot = Slot::local();
        slot.begin_request("GET / HTTP/1.1").finish(200);
        slot.begin_request("GET /x HTTP/1.1").finish(404);
        let took = slot.begin_request("GET /e HTTP/1.1").finish(500);
        drop(slot.begin_request("GET /lost HTTP/1.1"));
        let counters = slot.counters();
        assert_eq!(counters.status_classes, [0, 1, 0, 1, 1]);
        assert_eq!(counters.requests(), 3);
        assert_eq!(counters.duration_buckets.iter().sum::<u64>(), 3);
        assert!(counters.duration_sum_us >= took.as_micros() as u64);
        assert_eq!(slot.requests_served(), 4);
        let mut total = Counters::default();
        total.add(&counters);
        total.add(&counters);
        assert_eq!(total.status_classes, [0, 2, 0, 2, 2]);
    }

    #[test]
    fn statuses_and_durations_fall_in_their_buckets() {
        assert_eq!(status_class_index(101), 0);
        assert_eq!(status_class_index(299), 1);
        assert_eq!(status_class_index(599), 4);
        assert_eq!(status_class_index(42), 4);
        assert_eq!(duration_bucket_index(0), 0);
        assert_eq!(duration_bucket_index(1_000), 0, "a bound is inclusive (le)");
        assert_eq!(duration_bucket_index(1_001), 1);
        assert_eq!(duration_bucket_index(60_000_000), DURATION_BUCKETS - 2);
        assert_eq!(duration_bucket_index(u64::MAX), DURATION_BUCKETS - 1);
    }

    #[test]
    fn lanes_overflow_is_only_counted() {
        let slot = Slot::local();
        let guards: Vec<_> = (0..LANES + 5)
            .map(|n| slot.begin_request(&format!("GET /{n} HTTP/1.1")))
            .collect();
        assert_eq!(slot.in_flight(), (LANES + 5) as u64);
        assert_eq!(slot.oldest_request().unwrap().1, "GET /0 HTTP/1.1");
        drop(guards);
        assert_eq!(slot.requests_served(), (LANES + 5) as u64);
    }

    #[test]
    fn a_line_in_parts_is_the_line_joined_by_spaces_and_cut_alike() {
        let slot = Slot::local();
        let guard = slot.begin_request_parts(&["GET", "/a?b=1", "HTTP/1.1"]);
        assert_eq!(slot.oldest_request().unwrap().1, "GET /a?b=1 HTTP/1.1");
        drop(guard);
        for pad in 0..4 {
            // Every offset of a two-byte character against the cut.
            let target = format!("/{}{}", "x".repeat(pad), "é".repeat(100));
            let whole = format!("GET {target} HTTP/1.1");
            let guard = slot.begin_request(&whole);
            let joined = slot.oldest_request().unwrap().1;
            drop(guard);
            let guard = slot.begin_request_parts(&["GET", &target, "HTTP/1.1"]);
            let parts = slot.oldest_request().unwrap().1;
            drop(guard);
            assert_eq!(parts, joined);
            assert!(parts.len() <= LINE_BYTES && parts.len() > LINE_BYTES - 2);
            assert!(whole.starts_with(&parts));
        }
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let slot = Slot::local();
        let line = format!("GET /{} HTTP/1.1", "é".repeat(100));
        let _guard = slot.begin_request(&line);
        let kept = slot.oldest_request().unwrap().1;
        assert!(kept.len() <= LINE_BYTES && line.starts_with(&kept));
    }

    #[test]
    fn concurrent_requests_from_threads() {
        let slot = Slot::local();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let slot = slot.clone();
                std::thread::spawn(move || {
                    for n in 0..500 {
                        let _guard = slot.begin_request(&format!("GET /{n} HTTP/1.1"));
                        let _ = slot.oldest_request();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(slot.requests_served(), 2000);
        assert_eq!(slot.in_flight(), 0);
    }
}
