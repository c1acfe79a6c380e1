//! The access log's steady state allocates nothing: once the thread's time
//! cache and the process's buffer exist, a request's line (Gunicorn's
//! default format, the fields a browser sends) is rendered into the buffer
//! without an allocation, also when the buffer is written out at 64 KiB.
//! Counted with a wrapping global allocator, per thread (as
//! `http/tests/alloc.rs`). Not covered: `Authorization: Basic` (the `u`
//! atom decodes the user into a `String`) and `--log-format json`.
//!
//! `unsafe` is denied here but in `counting`, the allocator.

#![deny(unsafe_code)]

use std::time::Duration;

use runicorn_http::{Header, KeptFields, RequestDone, RequestHead, Version};
use runicorn_worker::access::{self, AccessLog, Record, GUNICORN_DEFAULT};

#[allow(unsafe_code)] // the fence: a global allocator is an unsafe trait
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The system allocator, counting allocations.
    pub(crate) struct Counting;

    thread_local! {
        /// This thread's allocations. Const-initialised and without a
        /// destructor, so reading it from the allocator allocates nothing.
        pub(crate) static THREAD_ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    fn count_one() {
        THREAD_ALLOCATIONS.with(|count| count.set(count.get() + 1));
    }

    // SAFETY: every method forwards to `System` with the caller's arguments
    // unchanged, so `System`'s guarantees are `Counting`'s; the counter is a
    // const-initialised thread-local `Cell` and allocates nothing.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count_one();
            // SAFETY: forwarded as received; the caller upholds `alloc`'s contract.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System.alloc` with this `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count_one();
            // SAFETY: forwarded as received; the caller upholds `realloc`'s contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;
}

fn allocations() -> usize {
    counting::THREAD_ALLOCATIONS.with(std::cell::Cell::get)
}

#[test]
fn a_line_allocates_nothing_once_warm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    access::open(Some(path.to_str().unwrap())).unwrap();
    let log = AccessLog::new(GUNICORN_DEFAULT).unwrap();
    let head = RequestHead {
        method: "GET".to_owned(),
        target: "/items/42?page=2".to_owned(),
        version: Version::Http11,
        headers: [
            ("Host", &b"example.com"[..]),
            ("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64) \"quoted\""),
            ("Referer", b"http://example.com/items"),
            ("Accept", b"*/*"),
        ]
        .iter()
        .map(|(name, value)| Header {
            name: (*name).to_owned(),
            value: value.to_vec(),
        })
        .collect(),
    };
    let kept = KeptFields::default();
    let done = RequestDone {
        head: &head,
        peer: "127.0.0.1:50000",
        response_fields: &kept,
        status: 200,
        body_bytes: 13,
        keep_alive: true,
    };
    let record = Record {
        done: &done,
        elapsed: Duration::from_micros(250),
        pid: 7,
        scheme: "http",
    };
    // Warm: the time cache, and the buffer's growth past its first 64 KiB
    // (a line is rendered in place, so the buffer holds one line more).
    for _ in 0..2_000 {
        log.log(&record);
    }
    let before = allocations();
    // Enough lines for several 64 KiB writes (about 110 bytes a line).
    for _ in 0..3_000 {
        log.log(&record);
    }
    let during = allocations() - before;
    // The counter sees this thread's allocations (so a zero means none).
    let probe = allocations();
    drop(std::hint::black_box(vec![0u8; 16]));
    assert_eq!(allocations(), probe + 1);
    access::flush();
    assert_eq!(during, 0, "allocations while logging 3,000 lines");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 5_000);
    let line = text.lines().last().unwrap();
    let (start, rest) = line.split_once(" [").unwrap();
    assert_eq!(start, "127.0.0.1 - -");
    assert_eq!(
        rest.split_once("] ").unwrap().1,
        "\"GET /items/42?page=2 HTTP/1.1\" 200 13 \"http://example.com/items\" \
         \"Mozilla/5.0 (X11; Linux x86_64) \\\"quoted\\\"\""
    );
}
