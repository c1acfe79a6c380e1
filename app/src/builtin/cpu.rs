//! `builtin:cpu`: burns `?n=N` rounds (default 1000) of a fixed hash loop,
//! then answers with the digest. The CPU-bound workload of the comparisons:
//! the same `n` is the same work on every worker class.

use std::hint::black_box;

use super::query;
use crate::contract::{App, AppError, Call};

/// Rounds when `?n` is absent.
const DEFAULT_ROUNDS: u64 = 1000;

/// Mixing steps per round: about a microsecond of work on a current core.
const STEPS_PER_ROUND: u64 = 256;

/// Burns CPU, then answers `cpu N rounds: DIGEST`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// splitmix64, iterated: fixed, branch-free work the optimiser cannot skip.
pub(crate) fn burn(rounds: u64) -> u64 {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..rounds {
        for step in 0..STEPS_PER_ROUND {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15 ^ round ^ step);
            let mut mixed = state;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            state = black_box(mixed ^ (mixed >> 31));
        }
    }
    state
}

impl App for Cpu {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let rounds = match query::number(call.head().query(), "n", DEFAULT_ROUNDS) {
            Ok(rounds) => rounds,
            Err(message) => return super::bad_request(call, &message),
        };
        let body = format!("cpu {rounds} rounds: {:016x}\n", burn(rounds)).into_bytes();
        super::plain(call, 200, &body)
    }
}
