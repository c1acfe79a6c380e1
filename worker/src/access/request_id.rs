//! [`RequestIds`]: `--request-id-header` (Gunicorn has none). A client's
//! id is kept when it is sane ([`is_sane`]); otherwise the worker makes one:
//! 128 bits as 32 hex digits, from a per-worker random seed (read from
//! `/dev/urandom` after fork, so no two workers share it) and a counter
//! through a bijective mixer, so ids within a worker never repeat and cost
//! a few multiplications, not a system call.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest client id kept.
pub const MAX_LEN: usize = 128;

/// Whether a client's id is kept: 1 to [`MAX_LEN`] bytes of visible ASCII
/// without quotes or backslashes (so it can be logged and echoed as is).
pub fn is_sane(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len())
        && value
            .iter()
            .all(|&byte| byte.is_ascii_graphic() && !matches!(byte, b'"' | b'\'' | b'\\'))
}

/// One worker's id maker.
#[derive(Debug)]
pub struct RequestIds {
    seed: [u64; 2],
    counter: AtomicU64,
}

impl RequestIds {
    /// A maker with a fresh random seed (the clock and pid if
    /// `/dev/urandom` cannot be read).
    pub fn new() -> RequestIds {
        let mut bytes = [0u8; 16];
        let read = File::open("/dev/urandom").and_then(|mut random| random.read_exact(&mut bytes));
        let seed = if read.is_ok() {
            [
                u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(bytes[8..].try_into().unwrap_or_default()),
            ]
        } else {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos() as u64);
            [nanos, u64::from(std::process::id())]
        };
        RequestIds::with_seed(seed)
    }

    /// A maker with a given seed (tests).
    pub fn with_seed(seed: [u64; 2]) -> RequestIds {
        RequestIds {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// The next id, 32 lower-case hex digits.
    pub fn next(&self) -> [u8; 32] {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let high = mix(self.seed[0].wrapping_add(count));
        let low = mix(self.seed[1] ^ count.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut out = [0u8; 32];
        for (index, byte) in high
            .to_be_bytes()
            .into_iter()
            .chain(low.to_be_bytes())
            .enumerate()
        {
            out[index * 2] = HEX[usize::from(byte >> 4)];
            out[index * 2 + 1] = HEX[usize::from(byte & 0xf)];
        }
        out
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// SplitMix64's finalizer: a bijection on 64 bits.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_visible_ascii_without_quotes() {
        assert!(is_sane(b"abc-123_XYZ.=+/:"));
        assert!(is_sane(&[b'a'; MAX_LEN]));
        for bad in [
            &b""[..],
            &[b'a'; MAX_LEN + 1],
            b"a b",
            b"a\"b",
            b"a'b",
            b"a\\b",
            b"\xe9",
            b"a\tb",
        ] {
            assert!(!is_sane(bad), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_hex_and_do_not_repeat() {
        let ids = RequestIds::with_seed([1, 2]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next();
            assert!(id.iter().all(u8::is_ascii_hexdigit));
            assert!(seen.insert(id));
        }
        assert_ne!(RequestIds::new().next(), RequestIds::new().next());
    }
}
