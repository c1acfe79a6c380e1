//! The shared anonymous mapping under the scoreboard, as a slice of slots.
//!
//! The only `unsafe` outside `sys`: turning the mapping into `&[SlotData]`.
//! Sound because `SlotData` is made of atomics only (for which all-zero
//! bytes are a valid value, and which may be shared across threads and, via
//! MAP_SHARED, processes), the mapping is page-aligned and zero-filled, and
//! it lives until the last `Arc<Mapping>` drops.

use std::ptr::NonNull;

use runicorn_worker::slot::{SlotData, SlotMemory};

use crate::sys;

#[derive(Debug)]
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: the mapping holds only atomics, so shared access from any thread
// is data-race free; the pointer itself is never mutated.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(super) fn new(capacity: usize) -> std::io::Result<Self> {
        let len = capacity.max(1) * size_of::<SlotData>();
        let ptr = sys::map_shared_anonymous(len)?;
        Ok(Mapping {
            ptr,
            len,
            capacity: capacity.max(1),
        })
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }
}

impl SlotMemory for Mapping {
    fn slots(&self) -> &[SlotData] {
        // SAFETY: see the module doc: page-aligned (mmap) so aligned for
        // SlotData, `capacity * size_of` bytes long, zero is a valid value of
        // every atomic in it, and only shared references are ever made.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<SlotData>(), self.capacity) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        sys::unmap(self.ptr, self.len);
    }
}
