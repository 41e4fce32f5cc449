//! A counting allocator: wraps the system allocator and tracks bytes currently allocated
//! and the peak since the last reset, so an evaluation can report an honest per-model
//! memory figure. Counts only; never changes how memory is allocated. The counters move
//! only in a program that installs it (`#[global_allocator]`); elsewhere they read zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counted. A binary installs it with
/// `#[global_allocator] static ALLOCATOR: CountingAllocator = CountingAllocator;`.
pub struct CountingAllocator;

static CURRENT_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn added(bytes: usize) {
    let current = CURRENT_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(current, Ordering::Relaxed);
}

fn removed(bytes: usize) {
    CURRENT_BYTES.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            added(layout.size());
        }
        pointer
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            added(layout.size());
        }
        pointer
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        removed(layout.size());
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_pointer = unsafe { System.realloc(pointer, layout, new_size) };
        if !new_pointer.is_null() {
            removed(layout.size());
            added(new_size);
        }
        new_pointer
    }
}

/// Bytes allocated right now.
pub fn current_bytes() -> usize {
    CURRENT_BYTES.load(Ordering::Relaxed)
}

/// Peak bytes allocated since the last `reset_peak`.
pub fn peak_bytes() -> usize {
    PEAK_BYTES.load(Ordering::Relaxed)
}

/// Starts a new peak measurement from the current level.
pub fn reset_peak() {
    PEAK_BYTES.store(current_bytes(), Ordering::Relaxed);
}

/// What building a model cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BuildCost {
    /// Wall time of the build.
    pub seconds: f64,
    /// Allocation peak during the build, above the level it started from.
    pub peak_bytes: usize,
    /// Bytes still allocated once the build is done (what the model holds).
    pub held_bytes: usize,
}

/// Builds with `build`, measuring wall time, the allocation peak above the starting level,
/// and the bytes still held afterwards.
pub fn measured<T>(build: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, BuildCost)> {
    let before = current_bytes();
    reset_peak();
    let started = Instant::now();
    let built = build()?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_bytes = peak_bytes().saturating_sub(before);
    let held_bytes = current_bytes().saturating_sub(before);
    Ok((
        built,
        BuildCost {
            seconds,
            peak_bytes,
            held_bytes,
        },
    ))
}

/// The process's peak resident memory (Linux `VmHWM`) in MiB; `None` where it is not known.
pub fn peak_resident_megabytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes / 1024.0)
}
