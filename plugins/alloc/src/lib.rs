//! The built-in components' allocator: free lists per size class in front of talc.
#![no_std]
//!
//! A batch is thousands of small strings and lists, allocated while it is built and freed
//! together once the host has copied it. General allocators (dlmalloc, talc, rlsf) spent
//! about a sixth of a 1M-row resync splitting and merging blocks for them; a free list per
//! 16-byte class reuses the same blocks batch after batch at the cost of a pointer swap.
//! Blocks of a class are never handed back to talc, so memory stays at the peak batch.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

/// Class granularity and alignment.
const STEP: usize = 16;
/// Classes: sizes up to STEP * CLASSES bytes; larger blocks go to the inner allocator.
const CLASSES: usize = 32;

pub struct Classes<A> {
    inner: A,
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: the component is single-threaded (wasm32 without the atomics feature).
#[cfg(not(target_feature = "atomics"))]
unsafe impl<A: Sync> Sync for Classes<A> {}

impl<A> Classes<A> {
    pub const fn new(inner: A) -> Self {
        Classes {
            inner,
            free: UnsafeCell::new([core::ptr::null_mut(); CLASSES]),
        }
    }
}

/// The class of a layout, if it has one.
fn class(layout: Layout) -> Option<usize> {
    (layout.align() <= STEP && layout.size() <= STEP * CLASSES)
        .then(|| layout.size().max(1).div_ceil(STEP) - 1)
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for Classes<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            return unsafe { self.inner.alloc(layout) };
        };
        // SAFETY: single-threaded; a free block's first word links to the next free block.
        unsafe {
            let head = &mut (*self.free.get())[c];
            if head.is_null() {
                let block = Layout::from_size_align_unchecked((c + 1) * STEP, STEP);
                return self.inner.alloc(block);
            }
            let block = *head;
            *head = *(block as *mut *mut u8);
            block
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            return unsafe { self.inner.dealloc(ptr, layout) };
        };
        // SAFETY: `ptr` is a block of class `c` (the layout is the one it was allocated
        // with), at least 16 bytes and 16-aligned, so it can hold the link.
        unsafe {
            let head = &mut (*self.free.get())[c];
            *(ptr as *mut *mut u8) = *head;
            *head = ptr;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to the alignment, fits isize.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            (Some(a), Some(b)) if a == b => ptr,
            (None, None) => unsafe { self.inner.realloc(ptr, layout, new_size) },
            _ => unsafe {
                let fresh = self.alloc(new);
                if !fresh.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                fresh
            },
        }
    }
}

/// Makes [`Classes`] over talc the component's global allocator.
#[macro_export]
macro_rules! install {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        static ALLOC: $crate::Classes<$crate::talc::wasm::WasmDynamicTalc> =
            $crate::Classes::new($crate::talc::wasm::new_wasm_dynamic_allocator());
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use talc;
