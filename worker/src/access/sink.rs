//! [`Sink`]: where one process's access lines go, and when they are
//! written. Lines gather in a buffer and go out as whole lines in one
//! `write` (no system call per line): when [`FLUSH_BYTES`] are waiting, when
//! the oldest waiting line is [`FLUSH_AGE`] old at a tick (the worker's
//! heartbeat, at least once a second), and when the worker stops. A file
//! is opened with `O_APPEND`, so the writes of several workers land whole,
//! one after the other; standard output (`-`), which may be a pipe, is
//! written in pieces of at most `PIPE_BUF` bytes cut at line ends, the
//! size a pipe writes without interleaving.
//!
//! The kinds of target are an enum so another (syslog) is one more arm.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Buffered bytes that are written at once, without waiting for a tick.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// A tick writes the buffer once its oldest line has waited this long
/// (ticks come at least once a second, so a line waits under 1.5 s).
pub const FLUSH_AGE: Duration = Duration::from_millis(500);

/// The most bytes one write to a pipe keeps whole (POSIX `PIPE_BUF` on Linux).
const PIPE_BUF: usize = 4096;

/// Where the lines go.
#[derive(Debug)]
pub enum Target {
    /// `-`: the process's standard output (descriptor 1, so
    /// `--capture-output` sends it where it sends `print()`).
    Stdout,
    /// A file opened for appending; reopened by path on USR1.
    File {
        /// The path, for the reopen.
        path: PathBuf,
        /// The open file.
        file: File,
    },
}

/// One process's buffered access lines and their target.
#[derive(Debug)]
pub struct Sink {
    target: Target,
    buffer: Vec<u8>,
    /// When the oldest buffered line came.
    since: Option<Instant>,
    /// A write failed and was reported; reported again only after a success.
    failing: bool,
}

impl Sink {
    /// The sink `--access-logfile` names: `-` is standard output, anything
    /// else a file, created if missing and appended to.
    pub fn open(spec: &str) -> io::Result<Sink> {
        let target = if spec == "-" {
            Target::Stdout
        } else {
            let path = PathBuf::from(spec);
            let file = open_append(&path)?;
            Target::File { path, file }
        };
        Ok(Sink {
            target,
            buffer: Vec::with_capacity(FLUSH_BYTES),
            since: None,
            failing: false,
        })
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Adds whole lines; writes the buffer out once it holds [`FLUSH_BYTES`].
    pub fn push(&mut self, lines: &[u8]) {
        self.push_with(|buffer| buffer.extend_from_slice(lines));
    }

    /// Adds the whole lines `render` appends to the buffer itself (a line
    /// is rendered in place, not copied); then as [`Sink::push`].
    pub fn push_with(&mut self, render: impl FnOnce(&mut Vec<u8>)) {
        if self.buffer.is_empty() {
            self.since = Some(Instant::now());
        }
        render(&mut self.buffer);
        if self.buffer.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// Whether a tick at `now` should write the buffer out.
    pub fn due(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|since| now.saturating_duration_since(since) >= FLUSH_AGE)
    }

    /// Bytes waiting.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Writes out every buffered line. A failure (a full disk, a closed
    /// pipe) drops them and is reported once, until a write succeeds again.
    pub fn flush(&mut self) {
        self.since = None;
        if self.buffer.is_empty() {
            return;
        }
        let result = match &self.target {
            Target::Stdout => write_in_pieces(io::stdout(), &self.buffer),
            Target::File { file, .. } => write_all(file, &self.buffer),
        };
        self.buffer.clear();
        match result {
            Ok(()) => self.failing = false,
            Err(err) if !self.failing => {
                self.failing = true;
                tracing::error!("cannot write the access log ({}): {err}", self.describe());
            }
            Err(_) => {}
        }
    }

    /// Writes what is buffered, then opens the file again by its path (it
    /// was renamed by logrotate: the lines from now on go to a new file).
    pub fn reopen(&mut self) {
        self.flush();
        if let Target::File { path, file } = &mut self.target {
            match open_append(path) {
                Ok(fresh) => *file = fresh,
                Err(err) => tracing::error!(
                    "cannot reopen the access log {}: {err} (lines keep going to the old file)",
                    path.display()
                ),
            }
        }
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Stdout => "standard output".to_owned(),
            Target::File { path, .. } => path.display().to_string(),
        }
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// One `write` (more only if the kernel takes part of it, which a regular
/// file does not short of a full disk).
fn write_all(fd: impl AsFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(&fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(count) => data = &data[count..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Whole lines in writes of at most [`PIPE_BUF`] bytes (a longer line alone).
fn write_in_pieces(fd: impl AsFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let end = if data.len() <= PIPE_BUF {
            data.len()
        } else {
            match data[..PIPE_BUF].iter().rposition(|&byte| byte == b'\n') {
                Some(newline) => newline + 1,
                None => data
                    .iter()
                    .position(|&byte| byte == b'\n')
                    .map_or(data.len(), |newline| newline + 1),
            }
        };
        write_all(&fd, &data[..end])?;
        data = &data[end..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_for_a_flush_and_a_reopen_follows_a_rename() {
        let dir = std::env::temp_dir().join(format!("runicorn-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let mut sink = Sink::open(path.to_str().unwrap()).unwrap();
        sink.push(b"one\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert!(!sink.due(Instant::now()));
        assert!(sink.due(Instant::now() + FLUSH_AGE));
        sink.flush();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        sink.push(b"two\n");
        std::fs::rename(&path, dir.join("access.log.1")).unwrap();
        sink.reopen();
        sink.push(b"three\n");
        sink.flush();
        assert_eq!(
            std::fs::read(dir.join("access.log.1")).unwrap(),
            b"one\ntwo\n"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"three\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_buffer_goes_out_without_a_tick() {
        let dir = std::env::temp_dir().join(format!("runicorn-sink-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let mut sink = Sink::open(path.to_str().unwrap()).unwrap();
        let line = [b'x'; 99]
            .iter()
            .copied()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        for _ in 0..FLUSH_BYTES / line.len() {
            sink.push(&line);
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        sink.push(&line);
        assert_eq!(sink.buffered(), 0);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            (FLUSH_BYTES / line.len() + 1) * line.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pieces_for_a_pipe_end_at_line_ends() {
        let (reader, writer) = nix::unistd::pipe().unwrap();
        let line = [b'y'; 999]
            .iter()
            .copied()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        let data: Vec<u8> = line.iter().copied().cycle().take(line.len() * 9).collect();
        write_in_pieces(&writer, &data).unwrap();
        drop(writer);
        let mut back = Vec::new();
        io::Read::read_to_end(&mut File::from(reader), &mut back).unwrap();
        assert_eq!(back, data);
    }
}
