//! A demand-paged region: address space reserved from the mapping area
//! (with its guard page) whose pages get a zeroed frame, mapped writable,
//! at their first touch, up to a limit of frames. The library OS's
//! exception entry serves these faults itself, before any handler the
//! program registered sees them ([`crate::exception`]); a fault beyond
//! the limit goes on to that handler (or ends the program, reported).
//!
//! One region per program, made by [`reserve`]; the heap can grow over it
//! ([`crate::heap::use_demand_region`]). Its frames stay mapped for the
//! life of the program (the kernel takes them back at exit).
use crate::exception::ExceptionFrame;
use crate::{sys, Error, MapFlags, PAGE_SIZE};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The region: first address and end (0, 0: none).
static BASE: AtomicU64 = AtomicU64::new(0);
static END: AtomicU64 = AtomicU64::new(0);
/// Most frames it may map, and how many it has.
static LIMIT: AtomicU64 = AtomicU64::new(0);
static MAPPED: AtomicU64 = AtomicU64::new(0);

/// Reserves the region: `pages` pages of address space, at most `limit`
/// of them backed by frames; its first address. `InvalidArgument` if the
/// program has one already or either number is 0.
pub fn reserve(pages: u64, limit: u64) -> Result<u64, Error> {
    if pages == 0 || limit == 0 || active() {
        return Err(Error::InvalidArgument);
    }
    let base = crate::mem::reserve_pages(pages)?;
    LIMIT.store(limit, Relaxed);
    BASE.store(base, Relaxed);
    END.store(base + pages * PAGE_SIZE, Relaxed);
    crate::exception::ensure_entry()?;
    Ok(base)
}

/// Whether the program has a region.
pub fn active() -> bool {
    END.load(Relaxed) != 0
}

/// Frames the region has mapped so far.
pub fn mapped() -> u64 {
    MAPPED.load(Relaxed)
}

/// Serves `f` if it is a first touch of a page of the region within the
/// limit: maps a zeroed frame there. Whether it did (then the faulting
/// access can run again). Allocates nothing: it runs wherever the
/// program faulted, perhaps inside the heap with its lock held.
pub(crate) fn serve(f: &ExceptionFrame) -> bool {
    let page = f.cr2 & !(PAGE_SIZE - 1);
    // A not-present page fault (error bit 0 clear) inside the region.
    if f.vector != 14
        || f.error & 1 != 0
        || !(BASE.load(Relaxed)..END.load(Relaxed)).contains(&page)
    {
        return false;
    }
    let mapped = MAPPED.load(Relaxed);
    if mapped >= LIMIT.load(Relaxed) {
        return false;
    }
    let Ok(frame) = sys::frame_alloc() else {
        return false;
    };
    if sys::map(frame, page, MapFlags::WRITE).is_err() {
        // SAFETY: the frame is mapped nowhere.
        let _ = unsafe { sys::frame_free(frame) };
        return false;
    }
    MAPPED.store(mapped + 1, Relaxed);
    true
}
