//! The loop's extra sources: descriptors besides the signal pipe that the
//! master's one `poll` waits on (the control socket and its clients; the
//! `/metrics` listener). There is no thread for them: before each wait the
//! loop asks every source for its descriptors (and its nearest deadline,
//! which shortens the wait), and after it hands each source what `poll`
//! reported for them. A source only does non-blocking work there (accept,
//! read and write until `EAGAIN`, drop a client past its deadline), so no
//! client can hold the loop: signals, reaping and heartbeat checks go on
//! whatever a client does. A source that wants the master to act asks for
//! signals ([`LoopSource::requested`]), which the loop handles as if they
//! had been sent: the same `handle_<signal>` code paths.

use std::fmt;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::Signal;

use super::Arbiter;

/// A source of work for the master's loop, served without blocking.
pub(crate) trait LoopSource: fmt::Debug {
    /// What it is, to find it again (`metrics`, `control`).
    fn name(&self) -> &'static str;

    /// The descriptors to wait on, with the events wanted (asked again
    /// before every wait, so a source's set may change between waits).
    fn poll_fds(&self) -> Vec<PollFd<'_>>;

    /// Runs after every wait (also when it timed out): `ready` holds the
    /// events `poll` reported for the descriptors of the last
    /// [`LoopSource::poll_fds`], in the same order. Do what is ready and
    /// check deadlines; never block. The master's state is read-only here:
    /// a source that wants something done asks for it as a signal would
    /// ([`LoopSource::requested`]).
    fn serve(&mut self, ready: &[PollFlags], arbiter: &Arbiter);

    /// The earliest instant (monotonic) by which [`LoopSource::serve`]
    /// must run again even if nothing is ready: a client's deadline.
    fn next_deadline(&self) -> Option<Duration> {
        None
    }

    /// The signals this source asks the master to handle, taken (in
    /// order, repeats kept: `workers add 3` is three TTINs).
    fn requested(&mut self) -> Vec<Signal> {
        Vec::new()
    }

    /// The master exits: close, and remove what this source made (a
    /// socket file). Not called in a worker, which only drops its copies.
    fn close(self: Box<Self>) {}
}

impl Arbiter {
    /// Replaces the source named `name` with `source` (or removes it),
    /// closing the old one.
    pub(super) fn replace_source(&mut self, name: &str, source: Option<Box<dyn LoopSource>>) {
        let (old, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sources)
            .into_iter()
            .partition(|each| each.name() == name);
        self.sources = kept;
        for each in old {
            each.close();
        }
        self.sources.extend(source);
    }

    /// Serves every source with its share of `ready` (`counts[i]`
    /// descriptors each, in order); returns the signals they ask for.
    pub(super) fn serve_sources(&mut self, counts: &[usize], ready: &[PollFlags]) -> Vec<Signal> {
        let mut sources = std::mem::take(&mut self.sources);
        let mut offset = 0;
        let mut requested = Vec::new();
        for (source, &count) in sources.iter_mut().zip(counts) {
            let end = (offset + count).min(ready.len());
            source.serve(&ready[offset.min(end)..end], self);
            requested.extend(source.requested());
            offset = end;
        }
        // A source added while serving (none today) comes after the old ones.
        sources.append(&mut self.sources);
        self.sources = sources;
        requested
    }

    /// The nearest deadline of any source.
    pub(super) fn sources_deadline(&self) -> Option<Duration> {
        self.sources
            .iter()
            .filter_map(|source| source.next_deadline())
            .min()
    }
}
