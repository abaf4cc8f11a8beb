//! The global heap: small allocations from talc over frames the libOS maps
//! for itself, large ones in mappings of their own that go back on free.
//!
//! - **Small** (below [`LARGE`] bytes, alignment at most a page): talc,
//!   over one contiguous virtual range from [`HEAP_BASE`]. It starts empty;
//!   when talc runs out, its OOM handler maps frames writable at the top
//!   of the range and hands the new span to talc (`claim` the first time,
//!   `extend` after). A growth first maps what the allocation needs, all
//!   or nothing: if the kernel cannot give all of it, every frame this
//!   growth took goes straight back and the allocation fails. Only then
//!   does it try for more (at least [`MIN_GROW_PAGES`], and an eighth of
//!   the heap's size, so the number of growths stays logarithmic), taking
//!   what it gets. Each growth takes its whole 64-page blocks with the bulk
//!   calls (`frame_alloc_many` + `map_many`: two kernel entries for up to
//!   4 MiB, frames the kernel zeroed ahead of need when its pool has
//!   them), and the rest as physically contiguous runs
//!   (`frame_alloc_contiguous`), so a big heap costs few capabilities (a
//!   process holds at most 1024), falling back to smaller runs, down to
//!   single frames, when memory is fragmented. Talc's frames stay with the
//!   heap for the life of the process (the kernel reclaims them at exit):
//!   it holds at most the peak of live small allocations plus the growth
//!   margin.
//! - **Large** ([`LARGE`] bytes or more, or aligned to more than a page):
//!   a mapping of their own, address space from the mapping area
//!   ([`reserve_pages`](crate::mem::reserve_pages), with its guard page
//!   after). One header page in front of the data lists the capabilities
//!   of the frames (at most [`LARGE_RUNS`] runs); freeing the allocation
//!   frees them, which unmaps them, so every frame goes back at once. A
//!   large allocation the kernel cannot satisfy gives back what it took
//!   and fails. Fresh frames are zeroed by the kernel, so `alloc_zeroed`
//!   writes nothing. Growing a large allocation (`realloc`) maps a new
//!   one and copies.
//!
//! A program that never allocates never maps a heap page.

use abi::{Handle, MapFlags, PAGE_SIZE};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;
use talc::{OomHandler, Span, Talc, Talck};

/// Where the small-allocation heap starts (virtual).
pub const HEAP_BASE: u64 = 0x0000_1000_0000_0000;
/// Where it must stop (the mapping area starts there).
pub const HEAP_LIMIT: u64 = crate::mem::MAP_AREA_BASE;

/// Allocations of this many bytes or more get a mapping of their own.
pub const LARGE: usize = 128 * 1024;

/// Least growth of the small heap: 16 pages, so small allocations do not
/// cost two system calls each.
pub const MIN_GROW_PAGES: u64 = 16;
/// Room for talc's own bookkeeping (its bins, about 1 KiB, and chunk tags).
const SLACK: u64 = PAGE_SIZE;

/// Most runs of frames one large allocation may use (what its header page
/// holds besides the count).
pub const LARGE_RUNS: usize = (PAGE_SIZE as usize / 8) - 1;

/// Most runs one all-or-nothing growth of the small heap may take: the
/// pages a small allocation can need ([`LARGE`], a page of alignment and
/// [`SLACK`]), one frame each in the worst case.
const GROW_RUNS: usize = LARGE / PAGE_SIZE as usize + 2;

/// Largest run one `frame_alloc_contiguous` may ask for (the ABI's limit).
const MAX_RUN_PAGES: u64 = abi::MAX_CONTIGUOUS_FRAMES;

/// Whether `layout` gets a mapping of its own.
fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE || layout.align() > PAGE_SIZE as usize
}

/// Gives capabilities back; they were mapped only where nothing refers.
fn give_back(handles: &[Handle]) {
    if handles.is_empty() {
        return;
    }
    // SAFETY: the callers pass handles of frames they mapped for an
    // allocation that failed or is being freed: no reference into those
    // pages exists.
    if unsafe { crate::sys::free_many(handles) }.is_ok() {
        return;
    }
    for &h in handles.iter().rev() {
        // SAFETY: as above (one at a time: more than one call takes).
        let _ = unsafe { crate::sys::frame_free(h) };
    }
}

/// Frames in a block `frame_alloc_many` hands out as one capability.
const BLOCK_PAGES: u64 = 64;

/// Blocks one `frame_alloc_many` of [`map_blocks`] asks for: 1 MiB, with
/// a 2 KiB handle buffer on the stack (room for a frame each, as the call
/// requires).
const BLOCKS_PER_CALL: u64 = 4;

/// Maps as many whole 64-page blocks of fresh zeroed frames as fit in
/// `pages` and in `handles` (one capability each), writable from `at`,
/// two calls (`frame_alloc_many` + `map_many`) per [`BLOCKS_PER_CALL`].
/// Returns the pages and handles it took; it stops at the first refusal
/// (the caller goes on with contiguous runs from there).
fn map_blocks(at: u64, pages: u64, handles: &mut [Handle]) -> (u64, usize) {
    let (mut mapped, mut used) = (0, 0);
    loop {
        let blocks = ((pages - mapped) / BLOCK_PAGES)
            .min((handles.len() - used) as u64)
            .min(BLOCKS_PER_CALL);
        if blocks == 0 {
            return (mapped, used);
        }
        let count = blocks * BLOCK_PAGES;
        let mut got = [Handle::from_raw(0); (BLOCKS_PER_CALL * BLOCK_PAGES) as usize];
        let Ok(n) = crate::sys::frame_alloc_many(count, &mut got[..count as usize]) else {
            return (mapped, used);
        };
        // Single frames (no aligned block was free) would cost a handle
        // and a mapping each: not for the heap.
        let va = at + mapped * PAGE_SIZE;
        if n as u64 != blocks || crate::sys::map_many(&got[..n], va, MapFlags::WRITE).is_err() {
            give_back(&got[..n]);
            return (mapped, used);
        }
        handles[used..used + n].copy_from_slice(&got[..n]);
        mapped += count;
        used += n;
    }
}

/// Maps `pages` fresh frames writable from `at`, in as few runs as the
/// kernel gives, recording each run's capability in `handles`. Returns
/// how many runs it took, or `None`, having given every one back, if the
/// kernel ran out of frames or capability slots or `handles` is full
/// before all `pages` were mapped.
fn map_all(at: u64, pages: u64, handles: &mut [Handle]) -> Option<usize> {
    let (mut mapped, mut runs) = map_blocks(at, pages, handles);
    let mut run = pages.min(MAX_RUN_PAGES);
    while mapped < pages {
        run = run.min(pages - mapped);
        let taken = if runs == handles.len() {
            None
        } else {
            crate::sys::frame_alloc_contiguous(run, 1, 0).ok()
        };
        let Some(handle) = taken else {
            if run > 1 && runs < handles.len() {
                run /= 2;
                continue;
            }
            give_back(&handles[..runs]);
            return None;
        };
        handles[runs] = handle;
        runs += 1;
        if crate::sys::map(handle, at + mapped * PAGE_SIZE, MapFlags::WRITE).is_err() {
            give_back(&handles[..runs]);
            return None;
        }
        mapped += run;
    }
    Some(runs)
}

/// Maps up to `pages` fresh frames writable from `at`, as many as the
/// kernel gives (they stay: the small heap's margin); returns how many.
fn map_some(at: u64, pages: u64) -> u64 {
    // The blocks' handles are not kept: the margin stays for the life of
    // the process.
    let mut blocks = [Handle::from_raw(0); 64];
    let (mut mapped, _) = map_blocks(at, pages, &mut blocks);
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
        if crate::sys::map(handle, at + mapped * PAGE_SIZE, MapFlags::WRITE).is_err() {
            give_back(&[handle]);
            break;
        }
        mapped += run;
    }
    mapped
}

/// Talc's OOM handler: maps more frames at the top of the small heap.
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

impl OomHandler for GrowOnOom {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        let need = (layout.size() as u64)
            .checked_add(layout.align() as u64 + SLACK)
            .ok_or(())?;
        let top = talc.oom_handler.top;
        let room = (HEAP_LIMIT - top) / PAGE_SIZE;
        let need_pages = need.div_ceil(PAGE_SIZE);
        if need_pages > room {
            return Err(());
        }
        // What the allocation needs, all or nothing.
        let mut handles = [Handle::from_raw(0); GROW_RUNS];
        map_all(top, need_pages, &mut handles).ok_or(())?;
        // The margin, as far as the kernel gives it.
        let size_pages = (top - HEAP_BASE) / PAGE_SIZE;
        let want = MIN_GROW_PAGES.max(size_pages / 8).min(room);
        let extra = map_some(
            top + need_pages * PAGE_SIZE,
            want.saturating_sub(need_pages),
        );
        let new_top = top + (need_pages + extra) * PAGE_SIZE;
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

/// Lets the small heap grow over a demand-paged region of `pages` pages,
/// at most `limit` of them backed by frames ([`crate::demand::reserve`]):
/// talc gets the whole region as a second arena at once, and a page costs
/// a frame only when an allocation first touches it. Its first address.
pub fn use_demand_region(pages: u64, limit: u64) -> Result<u64, crate::Error> {
    let base = crate::demand::reserve(pages, limit)?;
    let span = Span::from_base_size(base as *mut u8, (pages * PAGE_SIZE) as usize);
    let mut talc = ALLOCATOR.small.lock();
    // SAFETY: the region is address space reserved for this allocator
    // alone (not null); each page is mapped writable, zeroed, at its first
    // touch by the exception entry, which allocates nothing.
    unsafe { talc.claim(span) }
        .map(|_| base)
        .map_err(|()| crate::Error::OutOfMemory)
}

/// A large allocation's header page: how many runs, then their handles.
#[repr(C)]
struct Header {
    runs: u64,
    handles: [Handle; LARGE_RUNS],
}

const _: () = assert!(core::mem::size_of::<Header>() == PAGE_SIZE as usize);

/// Maps a large allocation: a header page, then the data, the data
/// aligned to `layout`'s alignment (at least a page). Null if the kernel
/// cannot give every frame (all taken go back).
fn alloc_large(layout: Layout) -> *mut u8 {
    let align = (layout.align() as u64).max(PAGE_SIZE);
    let data_pages = (layout.size() as u64).div_ceil(PAGE_SIZE).max(1);
    let pages = data_pages + 1;
    // Room to move the data up to its alignment.
    let Ok(base) = crate::mem::reserve_pages(pages + align / PAGE_SIZE - 1) else {
        return null_mut();
    };
    let data = (base + PAGE_SIZE).next_multiple_of(align);
    let header = data - PAGE_SIZE;
    let mut handles = [Handle::from_raw(0); LARGE_RUNS];
    let Some(runs) = map_all(header, pages, &mut handles) else {
        return null_mut();
    };
    // SAFETY: the header page was just mapped writable with a frame only
    // this allocation uses, page aligned (so aligned for `Header`).
    unsafe {
        (header as *mut Header).write(Header {
            runs: runs as u64,
            handles,
        })
    };
    data as *mut u8
}

/// Frees a large allocation made by [`alloc_large`].
///
/// # Safety
/// `ptr` came from `alloc_large` and nothing refers into it any more.
unsafe fn dealloc_large(ptr: *mut u8) {
    let header = (ptr as u64 - PAGE_SIZE) as *const Header;
    // SAFETY: `alloc_large` wrote the header in the page before the data,
    // which stays mapped until its own run (the first) is freed, last.
    let runs = unsafe { (*header).runs } as usize;
    // All at once: the kernel reads the list (in the header page, which
    // goes too) before it frees anything; no reference to it is made.
    let list = header as u64 + core::mem::offset_of!(Header, handles) as u64;
    // SAFETY: the caller guarantees nothing refers into the data; the
    // header is named only by the raw pointer, and not read after.
    let (rax, _) = unsafe { abi::raw::free_many(list, runs.min(LARGE_RUNS) as u64) };
    if rax == 0 {
        return;
    }
    for i in (0..runs.min(LARGE_RUNS)).rev() {
        // SAFETY: as above; run `i > 0` does not hold the header page, and
        // run 0 is read before it is freed.
        let h = unsafe { (*header).handles[i] };
        // SAFETY: the caller guarantees nothing refers into the data; the
        // header is not referred to either (read by value above).
        let _ = unsafe { crate::sys::frame_free(h) };
    }
}

/// The global allocator: talc for small allocations, a mapping each for
/// large ones (see the module documentation).
pub struct Heap {
    small: Talck<spin::Mutex<()>, GrowOnOom>,
}

// SAFETY: small allocations are talc's (a `GlobalAlloc`); large ones are
// whole mappings of fresh frames, at least `layout.size()` bytes aligned
// to `layout.align()`, given back exactly once by `dealloc` with the
// layout they were made with (which routes them the same way).
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            alloc_large(layout)
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.small.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            // The kernel zeroes every frame it hands out.
            alloc_large(layout)
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.small.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout) {
            // SAFETY: `ptr` was allocated with `layout`, so by
            // `alloc_large`; the caller no longer uses it.
            unsafe { dealloc_large(ptr) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.small.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow `isize`.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_large(&layout) && !is_large(&new) {
            // SAFETY: forwarded contract (talc may grow in place).
            return unsafe { self.small.realloc(ptr, layout, new_size) };
        }
        // Across the two kinds, or large to large: a new allocation and a
        // copy (a large one's pages are never grown in place).
        // SAFETY: `new` is a valid layout with a non-zero size (the
        // caller's contract).
        let moved = unsafe { self.alloc(new) };
        if !moved.is_null() {
            // SAFETY: both blocks are live, distinct, and at least the
            // smaller size long.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        moved
    }
}

/// The allocator behind `alloc` (`Box`, `Vec`, `String`, ...).
#[global_allocator]
static ALLOCATOR: Heap = Heap {
    small: Talc::new(GrowOnOom::new()).lock(),
};
