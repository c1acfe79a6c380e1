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
            lanes: std::array::from_fn(|_| Lane::new()),
        }
    }
}

impl Default for SlotData {
    fn default() -> Self {
        SlotData::new()
    }
}
