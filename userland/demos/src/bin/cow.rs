//! cow: copy-on-write between two mappings, built only from `protect`,
//! the exception handler and the dirty bits. Eight pages are filled
//! through one mapping (`SRC`), then "forked": the same frames are mapped
//! a second time (`DST`), both sides are protected read-only in one call
//! each and their accessed/dirty bits cleared. A write to either side
//! faults; the handler copies the page into a fresh frame, maps the copy
//! writable in place of the shared page and resumes the write. Checks
//! that each side sees its own writes and the other side's old data,
//! that only written pages were copied, and that the dirty bits name
//! exactly the written pages.
#![no_std]
#![no_main]

use abi::{MapFlags, Protection};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use libos::exception::{self, Action, ExceptionFrame};
use libos::{println, sys, Error, Handle};

libos::entry!(main);

const PAGE: u64 = 4096;
const PAGES: u64 = 8;
const SRC: u64 = 0x0000_2300_0000_0000;
const DST: u64 = SRC + 0x10_0000;
/// Where the handler maps a copy while it fills it.
const TEMP: u64 = SRC + 0x20_0000;
const MAX_COPIES: usize = 2 * PAGES as usize;

/// The copies the handler made (handles), for the cleanup.
static COPIES: [AtomicU64; MAX_COPIES] = [const { AtomicU64::new(0) }; MAX_COPIES];
static NCOPIES: AtomicU64 = AtomicU64::new(0);

fn in_cow(page: u64) -> bool {
    (SRC..SRC + PAGES * PAGE).contains(&page) || (DST..DST + PAGES * PAGE).contains(&page)
}

fn handler(f: &mut ExceptionFrame) -> Action {
    let page = f.cr2 & !(PAGE - 1);
    // A write (bit 1) to a present page (bit 0) of the region.
    if f.vector != 14 || f.error & 3 != 3 || !in_cow(page) {
        return Action::Kill;
    }
    let n = NCOPIES.load(Relaxed) as usize;
    if n == MAX_COPIES {
        return Action::Kill;
    }
    match copy(page) {
        Ok(h) => {
            COPIES[n].store(h.raw(), Relaxed);
            NCOPIES.store(n as u64 + 1, Relaxed);
            Action::Resume
        }
        Err(_) => Action::Kill,
    }
}

/// Replaces the shared page at `page` by a private writable copy.
fn copy(page: u64) -> Result<Handle, Error> {
    let h = sys::frame_alloc()?;
    sys::map(h, TEMP, MapFlags::WRITE)?;
    // SAFETY: `page` is mapped readable, `TEMP` writable (just mapped);
    // the interrupted code is stopped and holds no reference into either.
    unsafe {
        core::ptr::copy_nonoverlapping(page as *const u8, TEMP as *mut u8, PAGE as usize);
        sys::unmap(TEMP)?;
        sys::unmap(page)?;
    }
    sys::map(h, page, MapFlags::WRITE)?;
    Ok(h)
}

fn word(base: u64, i: u64) -> *mut u64 {
    (base + i * PAGE + 8 * i) as *mut u64
}

fn main() -> Result<(), Error> {
    let before = sys::frame_stats().held_by_caller;
    let mut frames = [Handle::from_raw(0); PAGES as usize];
    for (i, f) in frames.iter_mut().enumerate() {
        *f = sys::frame_alloc()?;
        sys::map(*f, SRC + i as u64 * PAGE, MapFlags::WRITE)?;
        // SAFETY: just mapped writable, our own.
        unsafe { word(SRC, i as u64).write_volatile(100 + i as u64) };
    }
    // Fork: share every frame, both sides read-only, bits cleared.
    let read_only = MapFlags::from_bits(0).ok_or(Error::InvalidArgument)?;
    for (i, f) in frames.iter().enumerate() {
        sys::map(*f, DST + i as u64 * PAGE, read_only)?;
    }
    // SAFETY: no reference into either side is live.
    unsafe {
        sys::protect(SRC, PAGES, Protection::Read)?;
        sys::protect(DST, PAGES, Protection::Read)?;
    }
    sys::page_bits(SRC, PAGES, true)?;
    sys::page_bits(DST, PAGES, true)?;
    exception::register(handler)?;

    // DST writes pages 1, 4, 6; SRC writes page 2.
    let dst_writes = [1u64, 4, 6];
    for &i in &dst_writes {
        // SAFETY: our page; the write faults once and the handler gives
        // DST a private copy.
        unsafe { word(DST, i).write_volatile(200 + i) };
    }
    // SAFETY: as above, on the SRC side.
    unsafe { word(SRC, 2).write_volatile(300) };

    let mut sides_ok = true;
    for i in 0..PAGES {
        // SAFETY: every page of both sides is mapped readable.
        let (s, d) = unsafe { (word(SRC, i).read_volatile(), word(DST, i).read_volatile()) };
        let want_s = if i == 2 { 300 } else { 100 + i };
        let want_d = if dst_writes.contains(&i) {
            200 + i
        } else {
            100 + i
        };
        sides_ok &= s == want_s && d == want_d;
    }
    let copies = NCOPIES.load(Relaxed);
    let dirty = |bits: u64| {
        (0..PAGES)
            .filter(|i| bits >> (2 * i + 1) & 1 != 0)
            .fold(0u64, |m, i| m | 1 << i)
    };
    let dst_dirty = dirty(sys::page_bits(DST, PAGES, false)?);
    let src_dirty = dirty(sys::page_bits(SRC, PAGES, false)?);
    let extra = sys::frame_stats().held_by_caller - before - PAGES;
    println!("cow: {PAGES} pages shared by two mappings, 4 writes, {copies} copies, {extra} extra frames");
    let line = |what: &str, ok: bool| println!("cow: {what}: {}", if ok { "ok" } else { "FAILED" });
    line(
        "each side sees its own writes and the other's old data",
        sides_ok,
    );
    line("only written pages were copied", copies == 4 && extra == 4);
    line(
        "the dirty bits name exactly the written pages",
        dst_dirty == 0b101_0010 && src_dirty == 0b100,
    );
    exception::unregister()?;
    // SAFETY: nothing refers into either side any more.
    unsafe {
        for i in 0..PAGES {
            sys::unmap(SRC + i * PAGE)?;
            sys::unmap(DST + i * PAGE)?;
        }
        for f in frames {
            sys::frame_free(f)?;
        }
        for c in COPIES.iter().take(copies as usize) {
            sys::frame_free(Handle::from_raw(c.load(Relaxed)))?;
        }
    }
    let back = sys::frame_stats().held_by_caller == before;
    line("every frame given back", back);
    if sides_ok
        && copies == 4
        && extra == 4
        && dst_dirty == 0b101_0010
        && src_dirty == 0b100
        && back
    {
        println!("cow: ok");
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
