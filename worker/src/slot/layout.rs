//! The bytes of one scoreboard slot: atomics only, `#[repr(C)]`, valid when
//! all zero (the master maps them zero-filled and shares them across fork).

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8};

/// Request lanes per slot: requests tracked by start time and line at once.
pub const LANES: usize = 64;

/// The longest request line kept (longer ones are cut at a char boundary).
pub const LINE_BYTES: usize = 120;

/// The longest client address kept (an IPv6 address with its port fits).
pub const PEER_BYTES: usize = 56;

/// A lane's `start_ns` while its owner is writing the line.
pub const CLAIMING: u64 = u64::MAX;

/// Status classes counted per slot: 1xx to 5xx (a status outside 100-599
/// is counted as 5xx: no such status is sent by the kit).
pub const STATUS_CLASSES: usize = 5;

/// The request duration histogram's bucket upper bounds, in microseconds
/// (Prometheus' default buckets, with 1 ms and 2.5 ms in front and 30 s and
/// 60 s behind for the fast and the slow end); one more bucket counts the
/// durations above the last bound.
pub const DURATION_BOUNDS_US: [u64; 15] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Buckets of the duration histogram: one per bound, and one above them.
pub const DURATION_BUCKETS: usize = DURATION_BOUNDS_US.len() + 1;

/// One in-flight request: its start time, its request line and its
/// client's address, both under a seqlock (`seq` odd while written).
#[repr(C)]
#[derive(Debug)]
pub struct Lane {
    /// 0: free; `CLAIMING`: being filled; else the start, monotonic ns.
    pub start_ns: AtomicU64,
    pub seq: AtomicU32,
    pub len: AtomicU32,
    pub line: [AtomicU8; LINE_BYTES],
    /// The client's address as the worker saw it (`""`: a unix socket).
    pub peer_len: AtomicU32,
    pub peer: [AtomicU8; PEER_BYTES],
}

/// One worker's slot.
#[repr(C)]
#[derive(Debug)]
pub struct SlotData {
    pub pid: AtomicI32,
    pub generation: AtomicU32,
    /// When the master forked it, monotonic ns.
    pub spawned_ns: AtomicU64,
    /// When it finished booting (first heartbeat), monotonic ns; 0: not yet.
    pub boot_ns: AtomicU64,
    /// Its last heartbeat, monotonic ns; 0: none yet.
    pub heartbeat_ns: AtomicU64,
    pub served: AtomicU64,
    /// Every request in flight, lanes or not.
    pub in_flight: AtomicU64,
    /// 1 once the master stops the whole service: the worker, as it stops
    /// accepting, takes what the kernel queued on its listeners before it
    /// closes them (see `Slot::drains_on_stop`).
    pub drain_on_stop: AtomicU32,
    /// Why the worker began retiring on its own (a `RetireCause`; 0: it
    /// has not), so the master can count the exit by its reason.
    pub retire_cause: AtomicU32,
    /// Its resident set size in bytes, as the master last sampled it from
    /// `/proc/<pid>/statm` (about once a second); 0: not sampled yet.
    pub rss_bytes: AtomicU64,
    /// Finished requests by status class, 1xx at index 0.
    pub status_classes: [AtomicU64; STATUS_CLASSES],
    /// Finished requests by duration, bucket `i` counting durations up to
    /// `DURATION_BOUNDS_US[i]` and above the previous bound (not cumulative).
    pub duration_buckets: [AtomicU64; DURATION_BUCKETS],
    /// The finished requests' durations added up, microseconds.
    pub duration_sum_us: AtomicU64,
    pub lanes: [Lane; LANES],
}

impl Lane {
    /// A free lane.
    pub fn new() -> Self {
        Lane {
            start_ns: AtomicU64::new(0),
            seq: AtomicU32::new(0),
            len: AtomicU32::new(0),
            line: std::array::from_fn(|_| AtomicU8::new(0)),
            peer_len: AtomicU32::new(0),
            peer: std::array::from_fn(|_| AtomicU8::new(0)),
        }
    }
}

impl Default for Lane {
    fn default() -> Self {
        Lane::new()
    }
}

impl SlotData {
    /// A zeroed slot, as a fresh mapping holds one.
    pub fn new() -> Self {
        SlotData {
            pid: AtomicI32::new(0),
            generation: AtomicU32::new(0),
            spawned_ns: AtomicU64::new(0),
            boot_ns: AtomicU64::new(0),
            heartbeat_ns: AtomicU64::new(0),
            served: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            drain_on_stop: AtomicU32::new(0),
            retire_cause: AtomicU32::new(0),
            rss_bytes: AtomicU64::new(0),
            status_classes: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_sum_us: AtomicU64::new(0),
            lanes: std::array::from_fn(|_| Lane::new()),
        }
    }
}

impl Default for SlotData {
    fn default() -> Self {
        SlotData::new()
    }
}
