//! What each task does.

use crate::yield_now::yield_n;
use serde::Serialize;
use std::hash::{DefaultHasher, Hasher};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub enum Work {
    /// Returns at once.
    Ready,
    /// Yields to the scheduler 4 times, then returns.
    Yield4,
    /// Hashes for a few microseconds, of four sizes in turn (the CPU-heavy item mix).
    Cpu,
}

impl Work {
    pub fn describe(self) -> &'static str {
        match self {
            Work::Ready => "tasks that return at once",
            Work::Yield4 => "tasks that yield 4 times",
            Work::Cpu => "tasks that hash for 1-8 µs",
        }
    }
}

pub async fn work(kind: Work, i: u64) -> u64 {
    match kind {
        Work::Ready => i,
        Work::Yield4 => {
            yield_n(4).await;
            i
        }
        Work::Cpu => hash_rounds(i, CPU_ROUNDS[(i % 4) as usize]),
    }
}

/// SipHash rounds per item, in turn: mixed sizes, about 1, 2, 4 and 8 µs on this machine.
const CPU_ROUNDS: [u32; 4] = [128, 256, 512, 1024];

/// `rounds` chained SipHash-1-3 hashes of one word: real CPU work the optimiser cannot skip.
pub fn hash_rounds(seed: u64, rounds: u32) -> u64 {
    let mut h = seed;
    for _ in 0..rounds {
        let mut s = DefaultHasher::new();
        s.write_u64(h);
        h = s.finish();
    }
    std::hint::black_box(h)
}
