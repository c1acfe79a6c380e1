//! The read buffer of one connection: bytes received and not yet consumed,
//! kept across requests (pipelining). Allocated once per connection and
//! compacted in place, so steady-state reads allocate nothing.

use std::io;

/// Initial size; grown up to the head cap only when one head needs it.
const INITIAL: usize = 8 * 1024;

/// A compacting byte buffer that async reads fill.
#[derive(Debug, Default)]
pub(crate) struct InputBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl InputBuffer {
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

    /// Room to read into, making some first (compacting, or growing up to
    /// `max` bytes buffered). Fails when `max` bytes are already buffered.
    pub(crate) fn spare(&mut self, max: usize) -> io::Result<&mut [u8]> {
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

    /// `count` bytes were read into [`InputBuffer::spare`].
    pub(crate) fn filled(&mut self, count: usize) {
        self.end = (self.end + count).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(buffer: &mut InputBuffer, bytes: &[u8], max: usize) {
        let spare = buffer.spare(max).unwrap();
        spare[..bytes.len()].copy_from_slice(bytes);
        buffer.filled(bytes.len());
    }

    #[test]
    fn bytes_are_kept_across_consumes_and_compacted() {
        let mut buffer = InputBuffer::default();
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
        let mut buffer = InputBuffer::default();
        let full = vec![b'x'; INITIAL];
        push(&mut buffer, &full, 2 * INITIAL);
        push(&mut buffer, &full, 2 * INITIAL);
        assert_eq!(buffer.len(), 2 * INITIAL);
        assert!(buffer.spare(2 * INITIAL).is_err());
        buffer.consume(10);
        assert_eq!(buffer.spare(2 * INITIAL).unwrap().len(), 10);
        assert_eq!(buffer.len(), 2 * INITIAL - 10);
    }
}
