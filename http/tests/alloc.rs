//! Steady state allocates nothing: parsing into a reused head, a reused
//! `Cycle` encoding into a reused `Vec`, and the blocking driver serving
//! keep-alive requests, once their buffers have grown. Counted with a
//! wrapping global allocator, per thread: the test harness's own thread may
//! allocate while the test runs (on a loaded machine it registers its wait
//! for the test late), and that is not the code under test.
//!
//! `unsafe` is denied here but in `counting`, the allocator.

#![deny(unsafe_code)]

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::time::Duration;

use runicorn_http::{
    parse_head_into, ConnConfig, Connection, Cycle, CycleOptions, DateCache, Exchange, HeadStatus,
    Limits, NoBookkeeping, RequestHead, ServeMode, Transport,
};

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

use counting::THREAD_ALLOCATIONS;

const REQUEST: &[u8] = b"GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\nCookie: a=b\r\n\r\n";

/// Serves `REQUEST` over and over, `left` times; discards what is written.
struct Repeat {
    left: usize,
    offset: usize,
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let rest = &REQUEST[self.offset..];
        let count = rest.len().min(buf.len());
        buf[..count].copy_from_slice(&rest[..count]);
        self.offset += count;
        if self.offset == REQUEST.len() {
            self.offset = 0;
            self.left -= 1;
        }
        Ok(count)
    }
}

impl Write for Repeat {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Repeat {
    fn set_read_timeout(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

fn hello(exchange: &mut Exchange<'_>) {
    exchange
        .start_response(
            200,
            &[("Content-Type", b"text/plain"), ("Content-Length", b"5")],
        )
        .unwrap();
    exchange.write(b"hello").unwrap();
}

/// Allocations this thread made while `run` ran.
fn allocations_during(run: impl FnOnce()) -> usize {
    let before = THREAD_ALLOCATIONS.with(Cell::get);
    run();
    THREAD_ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn steady_state_allocates_nothing() {
    let limits = Limits::default();
    let mut head = RequestHead::default();
    let date = DateCache::default();
    let mut cycle = Cycle::default();
    let mut out = Vec::new();
    let mut one_request = || {
        let Ok(HeadStatus::Complete(info)) = parse_head_into(REQUEST, &limits, &mut head) else {
            panic!("request does not parse");
        };
        cycle.reset(info, &head, &limits, CycleOptions::default());
        out.clear();
        cycle
            .start_response(
                &mut out,
                200,
                &[("Content-Type", b"text/plain")],
                date.as_bytes(),
            )
            .unwrap();
        cycle.write_body(&mut out, b"Hello, World!").unwrap();
        assert!(cycle.finish(&mut out, date.as_bytes()).keep_alive);
    };
    one_request();
    let counted = allocations_during(|| {
        for _ in 0..1000 {
            one_request();
        }
    });
    assert_eq!(counted, 0, "sans-IO parse + cycle + encode allocated");

    // The driver: the first connection grows its buffers; a warm one
    // serving 1000 keep-alive requests must allocate only what `new` and
    // the warm-up did, which we measure by difference.
    let serve = |requests: usize| {
        let mut conn = Connection::new(
            Repeat {
                left: requests,
                offset: 0,
            },
            "",
            ConnConfig::default(),
        );
        let mut handler = hello;
        conn.serve(&mut handler, &mut NoBookkeeping, ServeMode::Blocking);
        conn.requests()
    };
    let mut served = 0;
    let few = allocations_during(|| served = serve(10));
    assert_eq!(served, 10);
    let many = allocations_during(|| served = serve(1010));
    assert_eq!(served, 1010);
    assert_eq!(many, few, "the driver allocated per request");
}
