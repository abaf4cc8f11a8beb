//! The global heap: talc over frames the libOS maps for itself, on demand.
//!
//! The heap is one contiguous virtual range from [`HEAP_BASE`]. It starts
//! empty; when talc runs out, its OOM handler asks the kernel for frames,
//! maps them writable at the top of the range and hands the new span to
//! talc (`claim` the first time, `extend` after). Each growth asks for one
//! physically contiguous run (`frame_alloc_contiguous`), so a big heap
//! costs few capabilities (a process holds at most 1024), and falls back
//! to smaller runs, down to single frames, when memory is fragmented. The
//! heap grows by at least an eighth of its size, so the number of runs
//! grows only logarithmically. The frames belong to the libOS for the life
//! of the process and are never given back: the kernel reclaims them at
//! exit. A program that never allocates never maps a heap page.

use abi::{MapFlags, PAGE_SIZE};
use core::alloc::Layout;
use talc::{OomHandler, Span, Talc, Talck};

/// Where the heap starts (virtual).
pub const HEAP_BASE: u64 = 0x0000_1000_0000_0000;
/// Where the heap must stop (the mapping area starts there).
pub const HEAP_LIMIT: u64 = crate::mem::MAP_AREA_BASE;

/// Least growth per OOM: 16 pages, so small allocations do not cost two
/// system calls each.
const MIN_GROW_PAGES: u64 = 16;
/// Room for talc's own bookkeeping (its bins, about 1 KiB, and chunk tags).
const SLACK: u64 = PAGE_SIZE;

/// Talc's OOM handler: maps more frames at the top of the heap.
pub struct GrowOnOom {
    /// The heap as talc knows it (empty before the first growth).
    heap: Span,
    /// First address above the mapped part of the heap.
    top: u64,
}

impl GrowOnOom {
    const fn new() -> Self {
        GrowOnOom {
            heap: Span::empty(),
            top: HEAP_BASE,
        }
    }
}

/// Largest run one `frame_alloc_contiguous` may ask for (the ABI's limit).
const MAX_RUN_PAGES: u64 = abi::MAX_CONTIGUOUS_FRAMES;

/// Maps up to `pages` fresh frames writable from `top`, in as few runs as
/// the kernel can give; returns how many pages were mapped (fewer when the
/// kernel runs out of frames or capability slots).
fn map_pages(top: u64, pages: u64) -> u64 {
    let mut mapped = 0;
    let mut run = pages.min(MAX_RUN_PAGES);
    while mapped < pages {
        run = run.min(pages - mapped);
        let Ok(handle) = crate::sys::frame_alloc_contiguous(run, 1, 0) else {
            if run == 1 {
                break;
            }
            run /= 2;
            continue;
        };
        if crate::sys::map(handle, top + mapped * PAGE_SIZE, MapFlags::WRITE).is_err() {
            // SAFETY: nothing was mapped through this handle.
            let _ = unsafe { crate::sys::frame_free(handle) };
            break;
        }
        mapped += run;
    }
    mapped
}

impl OomHandler for GrowOnOom {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        let need = (layout.size() as u64)
            .checked_add(layout.align() as u64 + SLACK)
            .ok_or(())?;
        let top = talc.oom_handler.top;
        let size_pages = (top - HEAP_BASE) / PAGE_SIZE;
        let pages = need
            .div_ceil(PAGE_SIZE)
            .max(MIN_GROW_PAGES)
            .max(size_pages / 8);
        let room = (HEAP_LIMIT - top) / PAGE_SIZE;
        let mapped = map_pages(top, pages.min(room));
        if mapped == 0 {
            return Err(());
        }
        let new_top = top + mapped * PAGE_SIZE;
        talc.oom_handler.top = new_top;
        let span = Span::new(HEAP_BASE as *mut u8, new_top as *mut u8);
        let old = talc.oom_handler.heap;
        talc.oom_handler.heap = if old.is_empty() {
            // SAFETY: [HEAP_BASE, new_top) was just mapped writable with
            // frames only this allocator uses; it does not contain null.
            unsafe { talc.claim(span)? }
        } else {
            // SAFETY: `old` came from `claim`/`extend` of this allocator;
            // `span` contains it and its new part was just mapped writable.
            unsafe { talc.extend(old, span) }
        };
        Ok(())
    }
}

/// The allocator behind `alloc` (`Box`, `Vec`, `String`, ...).
#[global_allocator]
static ALLOCATOR: Talck<spin::Mutex<()>, GrowOnOom> = Talc::new(GrowOnOom::new()).lock();
