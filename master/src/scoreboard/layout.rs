//! The bytes of one scoreboard slot: atomics only, `#[repr(C)]`.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8};

/// Request lanes per slot: requests tracked by start time and line at once.
pub const LANES: usize = 64;

/// The longest request line kept (longer ones are cut at a char boundary).
pub const LINE_BYTES: usize = 120;

/// A lane's `start_ns` while its owner is writing the line.
pub const CLAIMING: u64 = u64::MAX;

/// One in-flight request: its start time and its request line, the line
/// under a seqlock (`seq` odd while it is being written).
#[repr(C)]
#[derive(Debug)]
pub struct Lane {
    /// 0: free; `CLAIMING`: being filled; else the start, monotonic ns.
    pub start_ns: AtomicU64,
    pub seq: AtomicU32,
    pub len: AtomicU32,
    pub line: [AtomicU8; LINE_BYTES],
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
    pub lanes: [Lane; LANES],
}
