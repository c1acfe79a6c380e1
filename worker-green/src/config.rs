//! The may runtime's settings, applied in the worker after fork and logged
//! at boot: worker threads, core pinning, coroutine stack size.
//!
//! may reads its configuration once, when its scheduler starts (lazily, on
//! the first spawn or socket registration), so [`RuntimeConfig::apply`] runs
//! before anything touches may, and only ever in a forked worker: the master
//! never starts may's threads.
//!
//! **Pinning is off.** By default may pins its thread *i* to core *i* in
//! every process; with several workers that piles every worker's first
//! thread onto core 0 while the other cores idle. Off, the kernel places the
//! threads (and an operator can still pin whole workers with `taskset`).
//!
//! **Why 64 KiB of stack by default.** may's own default is 4096 words
//! (32 KiB), sized for its echo and HTTP benchmarks. runicorn runs app code
//! it did not write, including native libraries behind the C ABI, on that
//! stack: `format!`/`tracing` frames, a TLS or JSON library, a C function
//! with a few KiB of locals. 32 KiB leaves little margin for that, so we
//! double it. The doubling costs almost nothing, because a stack is an
//! `mmap` whose pages are only committed when touched: 1,000 coroutines
//! reserve 64 MiB of address space but cost a page or two of RSS each for
//! ordinary handlers, so memory does not argue for the smaller size; apps
//! with deep recursion or big stack buffers raise it. Each stack has a guard
//! page, so an overflow is caught, never silent corruption: may's
//! `generator` prints "coroutine has overflowed its stack" and abandons that
//! coroutine without unwinding it, so its client gets no answer (it times
//! out) and its connection slot is not given back until the worker is
//! recycled. Raise `--green-stack-size` when that line appears.

use std::time::Duration;

use runicorn_worker::Settings;

/// How many finished coroutines (stacks ready for the next connection) may
/// keeps. may's own default, 1,000, is made when its scheduler starts: a
/// thousand stacks touched before the first connection, 8 KiB of RSS each
/// (8 MB per worker, idle). Past this many, a new connection's coroutine
/// gets a fresh stack (an `mmap`) and a finished one beyond it is unmapped.
pub const POOLED_COROUTINES: usize = 64;

/// Bytes per may stack "word" (may sizes stacks in `usize` units).
const WORD: usize = size_of::<usize>();

/// The smallest stack accepted, whatever the setting says (the cli
/// validates 16 KiB too; this guards direct users of the crate).
pub const MIN_STACK_BYTES: usize = 16 * 1024;

/// The settings of may in one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// may worker threads (`--threads`, at least 1).
    pub workers: usize,
    /// Coroutine stack size in bytes (`--green-stack-size`).
    pub stack_bytes: usize,
    /// Connections held at once (`--worker-connections`, at least 1).
    pub worker_connections: usize,
    /// Whether may pins its threads to cores: always false here.
    pub pin_workers: bool,
}

impl RuntimeConfig {
    /// The runtime settings `settings` ask for.
    pub fn from_settings(settings: &Settings) -> RuntimeConfig {
        RuntimeConfig {
            workers: settings.threads.max(1),
            stack_bytes: settings.green_stack_size.max(MIN_STACK_BYTES),
            worker_connections: settings.worker_connections.max(1),
            pin_workers: false,
        }
    }

    /// The stack size in may's unit (words), rounded up to an even count:
    /// an odd count would make may's `generator` fill the whole stack to
    /// track its usage, committing every page of every stack.
    pub fn stack_words(&self) -> usize {
        let words = self.stack_bytes.div_ceil(WORD);
        words + words % 2
    }

    /// Sets may's global configuration. Call before may is first used.
    pub fn apply(&self) {
        let config = may::config();
        config.set_workers(self.workers);
        config.set_stack_size(self.stack_words());
        config.set_worker_pin(self.pin_workers);
        config.set_pool_capacity(POOLED_COROUTINES.min(self.worker_connections));
    }

    /// The boot log line.
    pub fn describe(&self, keepalive: Duration) -> String {
        format!(
            "Green worker on may: {} thread{}, worker pinning {}, coroutine stack {} bytes, \
             worker_connections {}, keep-alive {:.1}s",
            self.workers,
            if self.workers == 1 { "" } else { "s" },
            if self.pin_workers { "on" } else { "off" },
            self.stack_words() * WORD,
            self.worker_connections,
            keepalive.as_secs_f64(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_settings_with_pinning_off() {
        let config = RuntimeConfig::from_settings(&Settings::default());
        assert_eq!(config.workers, 1);
        assert_eq!(config.stack_bytes, 64 * 1024);
        assert_eq!(config.worker_connections, 1000);
        assert!(!config.pin_workers);
        assert_eq!(config.stack_words() * WORD, 64 * 1024);
        let line = config.describe(Duration::from_secs(2));
        assert!(line.contains("worker pinning off"), "{line}");
        assert!(line.contains("1 thread,"), "{line}");
        assert!(line.contains("65536 bytes"), "{line}");
    }

    #[test]
    fn odd_and_tiny_sizes_are_made_safe() {
        let settings = Settings {
            threads: 0,
            green_stack_size: 100,
            worker_connections: 0,
            ..Settings::default()
        };
        let config = RuntimeConfig::from_settings(&settings);
        assert_eq!(config.workers, 1);
        assert_eq!(config.worker_connections, 1);
        assert_eq!(config.stack_bytes, MIN_STACK_BYTES);
        let odd = RuntimeConfig {
            stack_bytes: 3 * WORD,
            ..config
        };
        assert_eq!(odd.stack_words(), 4);
        assert_eq!(odd.stack_words() % 2, 0);
    }
}
