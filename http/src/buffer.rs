//! The read buffer of one connection: bytes received and not yet consumed,
//! kept across requests (pipelining) and across hand-offs to a poller.

use std::io::{self, Read};

/// Initial size; grown up to the head cap when a head needs it.
const INITIAL: usize = 8 * 1024;

/// A compacting byte buffer read into from a stream.
#[derive(Debug)]
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    pub(crate) fn new() -> ReadBuffer {
        ReadBuffer {
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The buffered, unconsumed bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// Drop `count` bytes from the front.
    pub(crate) fn consume(&mut self, count: usize) {
        self.start += count.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Read once from `stream`, making room first (up to `max` bytes
    /// buffered). Returns the bytes read (0 at end of stream).
    pub(crate) fn read_from<R: Read + ?Sized>(
        &mut self,
        stream: &mut R,
        max: usize,
    ) -> io::Result<usize> {
        if self.buf.is_empty() {
            self.buf.resize(INITIAL, 0);
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < max {
                let grown = (self.buf.len() * 2).min(max.max(INITIAL));
                self.buf.resize(grown, 0);
            }
        }
        if self.end == self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "read buffer full",
            ));
        }
        let count = stream.read(&mut self.buf[self.end..])?;
        self.end += count;
        Ok(count)
    }
}
