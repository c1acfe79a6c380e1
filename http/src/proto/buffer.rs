//! [`ReadBuffer`], the read buffer of one connection: bytes received and not
//! yet consumed, kept across requests (pipelining) and across hand-offs to a
//! poller. Both drivers use it: the blocking one reads into it with
//! [`ReadBuffer::read_from`], the async worker with [`ReadBuffer::spare`]
//! then [`ReadBuffer::filled`].
//!
//! It is allocated (and zeroed) once, on the first read, at 4 KiB: enough
//! for any ordinary head, and one page less per idle connection than 8 KiB,
//! which is what a green worker holding thousands of idle keep-alive
//! connections pays for. A head that needs more grows it, up to the head
//! cap; it is compacted in place, so steady-state reads allocate nothing.

use std::io::{self, Read};

/// Initial size; grown up to the head cap only when one head needs it.
const INITIAL: usize = 4 * 1024;

/// A compacting byte buffer filled by reads from a stream.
#[derive(Debug, Default)]
pub struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    /// An empty buffer; nothing is allocated before the first read.
    pub fn new() -> ReadBuffer {
        ReadBuffer::default()
    }

    /// The buffered, unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// No unconsumed bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The number of unconsumed bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Drop `count` bytes from the front (all of them if `count` is more).
    pub fn consume(&mut self, count: usize) {
        self.start += count.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into, making some first (compacting, or growing up to
    /// `max` bytes buffered). Fails with `OutOfMemory` when `max` bytes are
    /// already buffered. Report what was read with [`ReadBuffer::filled`].
    pub fn spare(&mut self, max: usize) -> io::Result<&mut [u8]> {
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
        Ok(&mut self.buf[self.end..])
    }

    /// `count` bytes were read into [`ReadBuffer::spare`].
    pub fn filled(&mut self, count: usize) {
        self.end = (self.end + count).min(self.buf.len());
    }

    /// Read once from `stream`, making room first (up to `max` bytes
    /// buffered). Returns the bytes read (0 at end of stream).
    pub fn read_from<R: Read + ?Sized>(&mut self, stream: &mut R, max: usize) -> io::Result<usize> {
        let count = stream.read(self.spare(max)?)?;
        self.filled(count);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(buffer: &mut ReadBuffer, bytes: &[u8], max: usize) {
        let spare = buffer.spare(max).unwrap();
        spare[..bytes.len()].copy_from_slice(bytes);
        buffer.filled(bytes.len());
    }

    #[test]
    fn bytes_are_kept_across_consumes_and_compacted() {
        let mut buffer = ReadBuffer::new();
        push(&mut buffer, b"GET / HTTP/1.1\r\n", 1 << 16);
        assert_eq!(buffer.data(), b"GET / HTTP/1.1\r\n");
        buffer.consume(4);
        assert_eq!(buffer.data(), b"/ HTTP/1.1\r\n");
        buffer.consume(usize::MAX);
        assert!(buffer.is_empty());
        assert_eq!(buffer.spare(1 << 16).unwrap().len(), INITIAL);
    }

    #[test]
    fn it_grows_to_the_cap_and_then_refuses() {
        let mut buffer = ReadBuffer::new();
        let full = vec![b'x'; INITIAL];
        push(&mut buffer, &full, 2 * INITIAL);
        push(&mut buffer, &full, 2 * INITIAL);
        assert_eq!(buffer.len(), 2 * INITIAL);
        assert!(buffer.spare(2 * INITIAL).is_err());
        buffer.consume(10);
        assert_eq!(buffer.spare(2 * INITIAL).unwrap().len(), 10);
        assert_eq!(buffer.len(), 2 * INITIAL - 10);
    }

    #[test]
    fn read_from_reads_into_the_spare_room() {
        let mut buffer = ReadBuffer::new();
        let mut stream: &[u8] = b"abc";
        assert_eq!(buffer.read_from(&mut stream, 1 << 16).unwrap(), 3);
        assert_eq!(buffer.data(), b"abc");
        assert_eq!(buffer.read_from(&mut stream, 1 << 16).unwrap(), 0);
    }
}
