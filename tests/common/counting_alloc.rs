//! A counting global allocator for the binaries that measure memory (`tests/memory.rs`,
//! `tests/stress.rs`, `benches/memory.rs`): live heap bytes as requested (the allocator's
//! rounding and headers come on top), their peak and the number of allocations. Including
//! this module makes it the binary's global allocator; the counts are the whole process's,
//! so tests that read them take turns.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCS.fetch_add(1, Relaxed);
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grown = new_size - layout.size();
                let now = LIVE.fetch_add(grown, Relaxed) + grown;
                PEAK.fetch_max(now, Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes now.
pub fn live() -> usize {
    LIVE.load(SeqCst)
}

/// Allocations made so far.
pub fn allocations() -> usize {
    ALLOCS.load(Relaxed)
}

/// Peak live bytes above the level at the call, while `f` runs.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let base = live();
    PEAK.store(base, Relaxed);
    let r = f();
    (PEAK.load(Relaxed) - base, r)
}
