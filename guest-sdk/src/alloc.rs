//! The flow's heap: small blocks kept on free lists by size, everything else from libc.
//!
//! Why: a flow that moves rows makes and drops many small values (strings, map nodes), and on
//! `wasm32-wasip2` every one went through wasi-libc's dlmalloc. In rpa1 over 100,000 rows,
//! `malloc` and `free` were 10% of the whole run's time. A freed block of up to 256 bytes now
//! goes on a list for its size class and the next allocation of that class takes it back in a
//! few instructions; only a miss reaches libc. Each list keeps at most [`KEPT_PER_CLASS`]
//! blocks (under 1 MiB in all), and the rest go back to libc, so a flow that frees a lot gets
//! its memory back as before.
//!
//! Flows are single-threaded components, so the lists need no locking; the type is only used as
//! the global allocator on WASI (`lib.rs`), and natively by its tests.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use std::alloc::System;

/// Blocks are kept in classes of 16, 32, ..., 256 bytes, aligned to 8: what libc's `malloc`
/// gives without asking for more (Rust's `System` asks wasm32's libc for anything aligned
/// beyond 8 through the slower `aligned_alloc`).
const CLASS_BYTES: usize = 16;
const CLASS_ALIGN: usize = 8;
const CLASSES: usize = 16;
const LARGEST: usize = CLASS_BYTES * CLASSES;
/// At most this many free blocks per class (64 KiB of 16-byte blocks, 1 MiB of 256-byte ones).
pub const KEPT_PER_CLASS: u32 = 4096;

/// A size-class cache in front of libc's allocator.
pub struct FlowAllocator {
    lists: UnsafeCell<[FreeList; CLASSES]>,
}

#[derive(Clone, Copy)]
struct FreeList {
    /// The first free block; each free block holds the address of the next.
    head: *mut u8,
    len: u32,
}

// SAFETY: flows run on one thread (wasm32-wasip2 components have no threads); the native
// tests use an allocator of their own per test, never shared.
unsafe impl Sync for FlowAllocator {}

impl FlowAllocator {
    /// An allocator with empty lists.
    pub const fn new() -> FlowAllocator {
        FlowAllocator {
            lists: UnsafeCell::new(
                [FreeList {
                    head: null_mut(),
                    len: 0,
                }; CLASSES],
            ),
        }
    }

    /// The class of a layout the lists serve, or `None` (large, or aligned beyond 8).
    fn class(layout: Layout) -> Option<usize> {
        (layout.size() <= LARGEST && layout.align() <= CLASS_ALIGN)
            .then(|| layout.size().max(1).div_ceil(CLASS_BYTES) - 1)
    }

    /// The layout every block of `class` is allocated from libc with.
    fn class_layout(class: usize) -> Layout {
        // SAFETY: a multiple of 16 up to 256, aligned to 8.
        unsafe { Layout::from_size_align_unchecked((class + 1) * CLASS_BYTES, CLASS_ALIGN) }
    }

    #[allow(clippy::mut_from_ref)]
    fn list(&self, class: usize) -> &mut FreeList {
        // SAFETY: one thread; no other reference to the lists is alive while this one is
        // used (every use below is a short, non-reentrant read or update).
        unsafe { &mut (*self.lists.get())[class] }
    }
}

impl Default for FlowAllocator {
    fn default() -> Self {
        FlowAllocator::new()
    }
}

unsafe impl GlobalAlloc for FlowAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = Self::class(layout) else {
            // SAFETY: the caller's layout, passed on.
            return unsafe { System.alloc(layout) };
        };
        let list = self.list(class);
        let block = list.head;
        if block.is_null() {
            // SAFETY: a valid, non-zero layout.
            return unsafe { System.alloc(Self::class_layout(class)) };
        }
        // SAFETY: a free block of this class holds the next one's address in its first bytes.
        list.head = unsafe { (block as *mut *mut u8).read() };
        list.len -= 1;
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = Self::class(layout) else {
            // SAFETY: `ptr` came from `System.alloc(layout)` above.
            return unsafe { System.dealloc(ptr, layout) };
        };
        let list = self.list(class);
        if list.len >= KEPT_PER_CLASS {
            // SAFETY: every block of a class is allocated with the class layout.
            return unsafe { System.dealloc(ptr, Self::class_layout(class)) };
        }
        // SAFETY: the block is at least 16 bytes and 8-aligned, and it is ours again.
        unsafe { (ptr as *mut *mut u8).write(list.head) };
        list.head = ptr;
        list.len += 1;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size` is valid for `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (Self::class(layout), Self::class(new_layout)) {
            // Both large: libc grows or moves it.
            // SAFETY: `ptr` came from `System.alloc(layout)`.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            // The block already has room (same class).
            (Some(old), Some(new)) if old == new => ptr,
            _ => {
                // SAFETY: a valid layout; copying the smaller size, both blocks live.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_freed_small_block_is_given_out_again_for_its_class() {
        let heap = FlowAllocator::new();
        unsafe {
            let a = heap.alloc(layout(20, 8));
            heap.dealloc(a, layout(20, 8));
            // 17..=32 bytes share a class: the same block comes back.
            let b = heap.alloc(layout(32, 4));
            assert_eq!(a, b);
            // Another class does not get it.
            heap.dealloc(b, layout(32, 4));
            let c = heap.alloc(layout(48, 8));
            assert_ne!(c, b);
            heap.dealloc(c, layout(48, 8));
        }
    }

    #[test]
    fn contents_survive_realloc_across_classes_and_into_libc() {
        let heap = FlowAllocator::new();
        unsafe {
            let mut size = 5;
            let mut p = heap.alloc(layout(size, 1));
            for i in 0..size {
                *p.add(i) = i as u8;
            }
            // Grow through small classes, past 256 bytes into libc, and back down.
            for new_size in [16, 17, 200, 256, 257, 4000, 300, 100, 3] {
                p = heap.realloc(p, layout(size, 1), new_size);
                assert!(!p.is_null());
                for i in 0..size.min(new_size) {
                    assert_eq!(
                        *p.add(i),
                        (i % 251) as u8,
                        "byte {i} after {size} -> {new_size}"
                    );
                }
                for i in size.min(new_size)..new_size {
                    *p.add(i) = (i % 251) as u8;
                }
                size = new_size;
            }
            heap.dealloc(p, layout(size, 1));
        }
    }

    #[test]
    fn large_or_over_aligned_layouts_go_to_libc_and_lists_are_bounded() {
        assert_eq!(FlowAllocator::class(layout(1, 1)), Some(0));
        assert_eq!(FlowAllocator::class(layout(256, 8)), Some(15));
        assert_eq!(FlowAllocator::class(layout(257, 8)), None);
        assert_eq!(FlowAllocator::class(layout(64, 16)), None);
        let heap = FlowAllocator::new();
        unsafe {
            let blocks: Vec<*mut u8> = (0..KEPT_PER_CLASS + 10)
                .map(|_| heap.alloc(layout(24, 8)))
                .collect();
            let distinct: std::collections::HashSet<_> = blocks.iter().collect();
            assert_eq!(distinct.len(), blocks.len(), "live blocks never overlap");
            for b in &blocks {
                heap.dealloc(*b, layout(24, 8));
            }
            assert_eq!(heap.list(1).len, KEPT_PER_CLASS);
            // Every kept block is given out once before libc is asked again.
            let again: std::collections::HashSet<_> = (0..KEPT_PER_CLASS)
                .map(|_| heap.alloc(layout(24, 8)))
                .collect();
            assert_eq!(again.len(), KEPT_PER_CLASS as usize);
            assert!(again.iter().all(|b| distinct.contains(b)));
            assert_eq!(heap.list(1).len, 0);
        }
    }
}
