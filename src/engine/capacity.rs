//! Giving back memory after a burst.
//!
//! `VecDeque` keeps its peak capacity, so a pool that once held a million queued tasks would
//! keep megabytes for the rest of its life. The queue, the id table and group results call
//! [`shrink_after_burst`] when they shrink: a load and a compare unless a burst has passed.

use std::collections::VecDeque;

/// Below this capacity nothing is given back: small buffers cost little and churn more.
const KEEP: usize = 1024;

/// Halves the capacity of `v` once it is less than an eighth full (and above [`KEEP`]).
///
/// The new capacity (a quarter of the old) is at least twice the length, so the buffer can
/// grow again before it reallocates, and one that hovers near the threshold does not
/// reallocate on every call.
#[inline]
pub(crate) fn shrink_after_burst<T>(v: &mut VecDeque<T>) {
    let cap = v.capacity();
    if cap > KEEP && v.len() < cap / 8 {
        shrink(v, cap);
    }
}

#[cold]
#[inline(never)]
fn shrink<T>(v: &mut VecDeque<T>, cap: usize) {
    v.shrink_to((cap / 4).max(KEEP));
}

#[cfg(test)]
mod tests {
    use super::shrink_after_burst;
    use std::collections::VecDeque;

    #[test]
    fn capacity_follows_length_down_after_a_burst() {
        let mut v: VecDeque<u64> = (0..1_000_000).collect();
        while v.len() > 10 {
            v.pop_front();
            shrink_after_burst(&mut v);
        }
        assert!(v.capacity() <= 2048, "capacity {}", v.capacity());
        let mut small: VecDeque<u64> = VecDeque::with_capacity(1000);
        small.push_back(1);
        shrink_after_burst(&mut small);
        assert!(small.capacity() >= 1000, "small buffers are left alone");
    }
}
