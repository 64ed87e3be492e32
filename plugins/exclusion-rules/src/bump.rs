//! The plugin's allocator: a bump allocator over fresh WebAssembly pages.
//!
//! Why: the host hands every string and list of a batch over through `cabi_realloc` (wit/README.md,
//! "Only what a plugin reads"), the bindings free each of them when the batch is dropped, and
//! every verdict's strings are allocated here and freed after the host read them (post-return):
//! about twenty allocator calls per email, which with the standard allocator (dlmalloc) were a
//! large part of this plugin's cost per record. Here an allocation is an add and a compare.
//!
//! How: allocations are carved one after the other out of pages taken with `memory.grow`
//! (256 KiB at a time, or more for a larger allocation; a region continues the previous one
//! when nothing else grew the memory in between). Freeing gives memory back only when it is
//! the most recent allocation (a vector growing at the end grows in place); anything else
//! stays allocated until the instance is dropped.
//!
//! Why that is safe here: the host makes a fresh instance for every call (every batch, and
//! `describe`) and drops it after the answer is read, so nothing accumulates beyond what one
//! call allocates. That is about what the standard allocator would hold at its peak anyway:
//! the batch and the verdicts are alive until the call returns in both cases, and this
//! plugin's own temporaries are a few small vectors per batch. It is never reset, so nothing
//! still in use (the standard library's own allocations) can be handed out twice. A request
//! the memory limit refuses returns null, and the standard library then aborts: the host
//! reports the batch as over its memory limit, as it would with any allocator.
//!
//! WebAssembly here is single-threaded (`wasm32-wasip2` has no threads), hence the `Cell`s.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

const PAGE: usize = 64 * 1024;
/// Pages taken at a time (256 KiB), so `memory.grow` (a call into the host) is rare.
const CHUNK_PAGES: usize = 4;

/// The allocator: the next free byte and the end of the current region.
pub struct Bump {
    next: Cell<usize>,
    end: Cell<usize>,
}

// SAFETY: wasm32-wasip2 has one thread; the allocator is never shared across threads.
unsafe impl Sync for Bump {}

impl Bump {
    pub const fn new() -> Self {
        Bump {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    /// `layout` at the next free byte, if the current region holds it.
    fn carve(&self, layout: Layout) -> Option<*mut u8> {
        let start = self.next.get().checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = start.checked_add(layout.size())?;
        if start == 0 || end > self.end.get() {
            return None;
        }
        self.next.set(end);
        Some(start as *mut u8)
    }

    /// Takes fresh pages for `layout` and carves it from them.
    fn grow(&self, layout: Layout) -> *mut u8 {
        let Some(need) = layout.size().checked_add(layout.align()) else {
            return std::ptr::null_mut();
        };
        let pages = need.div_ceil(PAGE).max(CHUNK_PAGES);
        let old = core::arch::wasm32::memory_grow::<0>(pages);
        if old == usize::MAX {
            return std::ptr::null_mut();
        }
        let base = old * PAGE;
        if base != self.end.get() {
            // Not contiguous with the current region (the first growth, or something else
            // grew the memory): start a new region, leaving the rest of the old one unused.
            self.next.set(base);
        }
        self.end.set(base + pages * PAGE);
        self.carve(layout).unwrap_or(std::ptr::null_mut())
    }
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.carve(layout) {
            Some(p) => p,
            None => self.grow(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // The most recent allocation is given back; any other stays until the instance ends.
        if ptr as usize + layout.size() == self.next.get() {
            self.next.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = ptr as usize;
        // The most recent allocation grows or shrinks in place when the region holds it.
        if at + layout.size() == self.next.get() {
            if let Some(end) = at.checked_add(new_size).filter(|&e| e <= self.end.get()) {
                self.next.set(end);
                return ptr;
            }
        }
        // SAFETY: the caller guarantees `new_size` rounded to the alignment does not
        // overflow (GlobalAlloc::realloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` is not zero-sized (realloc's contract).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are at least this long, and a new block never overlaps a
            // live one.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` was allocated here with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}
