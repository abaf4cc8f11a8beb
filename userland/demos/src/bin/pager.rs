//! pager: demand paging in the library OS. Reserves a 256 MiB region
//! (nothing mapped), touches 64 pages scattered over it, and lets its
//! exception handler map a fresh zeroed frame at each first touch (up to
//! a limit; a fault outside the region or beyond the limit ends the
//! program as it would without a handler). Checks that each page reads
//! zero at first touch and keeps what was written, that exactly the
//! touched pages cost frames (frames used vs reserved), and gives them
//! all back.
#![no_std]
#![no_main]

use abi::MapFlags;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use libos::exception::{self, Action, ExceptionFrame};
use libos::{println, sys, Error};

libos::entry!(main);

const REGION: u64 = 0x0000_2200_0000_0000;
const REGION_PAGES: u64 = 65_536;
const LIMIT: usize = 128;
const PAGE: u64 = 4096;
const TOUCHES: u64 = 64;

/// The frames the handler mapped (handles), in order; the handler cannot
/// use the heap (the program may have faulted inside it).
static FRAMES: [AtomicU64; LIMIT] = [const { AtomicU64::new(0) }; LIMIT];
static USED: AtomicU64 = AtomicU64::new(0);

fn handler(f: &mut ExceptionFrame) -> Action {
    let page = f.cr2 & !(PAGE - 1);
    let in_region = (REGION..REGION + REGION_PAGES * PAGE).contains(&page);
    // Not-present faults only (error bit 0 clear): a protection fault in
    // the region is a bug.
    if f.vector != 14 || !in_region || f.error & 1 != 0 {
        return Action::Kill;
    }
    let used = USED.load(Relaxed) as usize;
    if used == LIMIT {
        return Action::Kill;
    }
    let Ok(frame) = sys::frame_alloc() else {
        return Action::Kill;
    };
    if sys::map(frame, page, MapFlags::WRITE).is_err() {
        return Action::Kill;
    }
    FRAMES[used].store(frame.raw(), Relaxed);
    USED.store(used as u64 + 1, Relaxed);
    Action::Resume
}

fn main() -> Result<(), Error> {
    let before = sys::frame_stats().held_by_caller;
    exception::register(handler)?;
    // Pages spread over the region by a fixed stride (prime, so they
    // differ), each touched by a read, then written, then read again.
    let page_of = |i: u64| REGION + (i * 1021 % REGION_PAGES) * PAGE;
    let mut zero = true;
    for i in 0..TOUCHES {
        let p = (page_of(i) + 8 * i % PAGE) as *mut u64;
        // SAFETY: a page of our reserved region: the first read faults and
        // the handler maps a fresh frame there; nothing else refers to it.
        unsafe {
            zero &= core::ptr::read_volatile(p) == 0;
            core::ptr::write_volatile(p, 0x5eed_0000 + i);
        }
    }
    let mut kept = true;
    for i in 0..TOUCHES {
        let p = (page_of(i) + 8 * i % PAGE) as *const u64;
        // SAFETY: mapped by the handler above, written by us.
        kept &= unsafe { core::ptr::read_volatile(p) } == 0x5eed_0000 + i;
    }
    let used = USED.load(Relaxed);
    let held = sys::frame_stats().held_by_caller - before;
    println!(
        "pager: {used} frames used for a {} MiB region ({REGION_PAGES} pages reserved), {TOUCHES} pages touched",
        (REGION_PAGES * PAGE) >> 20
    );
    println!(
        "pager: every page read zero at first touch: {}",
        if zero { "ok" } else { "FAILED" }
    );
    println!(
        "pager: every page kept what was written: {}",
        if kept { "ok" } else { "FAILED" }
    );
    let counted = used == TOUCHES && held == TOUCHES;
    println!(
        "pager: one frame per touched page ({held} held): {}",
        if counted { "ok" } else { "FAILED" }
    );
    exception::unregister()?;
    for (i, slot) in FRAMES.iter().take(used as usize).enumerate() {
        // SAFETY: the region is ours and nothing refers into it any more.
        unsafe {
            sys::unmap(page_of(i as u64))?;
            sys::frame_free(abi::Handle::from_raw(slot.load(Relaxed)))?;
        }
    }
    let back = sys::frame_stats().held_by_caller == before;
    println!(
        "pager: every frame given back: {}",
        if back { "ok" } else { "FAILED" }
    );
    if zero && kept && counted && back {
        println!("pager: ok");
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
