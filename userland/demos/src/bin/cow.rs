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
//!
//! Then a fork between two processes: four more frames, filled and
//! protected read-only here, go to `cow-peer` (a copied capability each,
//! in a `call`), which maps them read-only at the same address with the
//! same kind of handler. The peer writes two pages (two copies of its
//! own), this side one (one copy): checks that each process sees its own
//! writes and the shared data everywhere else, and that both give every
//! frame back.
#![no_std]
#![no_main]

use abi::{MapFlags, Protection};
use exo_demos::cow::Copies;
use libos::exception::{self, Action, ExceptionFrame};
use libos::ipc::SendCap;
use libos::{println, sys, Error, Handle};

libos::entry!(main);

const PAGE: u64 = 4096;
const PAGES: u64 = 8;
const SRC: u64 = 0x0000_2300_0000_0000;
const DST: u64 = SRC + 0x10_0000;
/// Where the handler maps a copy while it fills it.
const TEMP: u64 = SRC + 0x20_0000;
const MAX_COPIES: usize = 2 * PAGES as usize;
/// The fork with `cow-peer` (must match `cow-peer.rs`).
const FORK: u64 = SRC + 0x0200_0000_0000;
const FORK_PAGES: u64 = 4;
/// Yields before giving up on the peer's endpoint.
const PATIENCE: u32 = 100_000;

/// The copies the handler made (handles), for the cleanup.
static COPIES: Copies<{ MAX_COPIES }> = Copies::new();

fn in_cow(page: u64) -> bool {
    (SRC..SRC + PAGES * PAGE).contains(&page)
        || (DST..DST + PAGES * PAGE).contains(&page)
        || (FORK..FORK + FORK_PAGES * PAGE).contains(&page)
}

fn handler(f: &mut ExceptionFrame) -> Action {
    COPIES.on_write(f, in_cow, TEMP)
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
    let copies = COPIES.count();
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
        COPIES.free_all()?;
    }
    let back = sys::frame_stats().held_by_caller == before;
    line("every frame given back", back);
    let forked = fork(&line)?;
    if forked
        && sides_ok
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

/// The fork with `cow-peer` (see the module documentation); whether every
/// check held.
fn fork(line: &dyn Fn(&str, bool)) -> Result<bool, Error> {
    let before = sys::frame_stats().held_by_caller;
    COPIES.reset();
    let mut frames = [Handle::from_raw(0); FORK_PAGES as usize];
    let at = |i: u64| (FORK + i * PAGE + 8 * i) as *mut u64;
    for (i, f) in frames.iter_mut().enumerate() {
        *f = sys::frame_alloc()?;
        sys::map(*f, FORK + i as u64 * PAGE, MapFlags::WRITE)?;
        // SAFETY: just mapped writable, our own.
        unsafe { at(i as u64).write_volatile(500 + i as u64) };
    }
    // SAFETY: no reference into the pages is live.
    unsafe { sys::protect(FORK, FORK_PAGES, Protection::Read)? };
    exception::register(handler)?;
    let peer = find("cow-peer")?;
    for (i, f) in frames.iter().enumerate() {
        // SAFETY: a copy: our mapping stays; the peer maps it read-only
        // and copies before it writes, so neither side's writes reach the
        // shared frame.
        unsafe { peer.call_cap([i as u64, 0], *f, true)? };
    }
    let go = peer.call([0, 0])?;
    // SAFETY: every page is mapped readable.
    let read = |i: u64| unsafe { at(i).read_volatile() };
    let untouched = (0..FORK_PAGES).all(|i| read(i) == 500 + i);
    // SAFETY: our page; the write faults once and the handler copies it.
    unsafe { at(1).write_volatile(701) };
    let ours = read(1) == 701 && (0..FORK_PAGES).all(|i| i == 1 || read(i) == 500 + i);
    let again = peer.call([1, 0])?;
    let copies = COPIES.count();
    exception::unregister()?;
    // SAFETY: nothing refers into the pages any more.
    unsafe {
        for i in 0..FORK_PAGES {
            sys::unmap(FORK + i * PAGE)?;
        }
        for f in frames {
            sys::frame_free(f)?;
        }
        COPIES.free_all()?;
    }
    let back = sys::frame_stats().held_by_caller == before;
    println!(
        "cow: fork: {FORK_PAGES} pages shared with cow-peer by copied capabilities; it wrote 2 ({} copies), we wrote 1 ({copies} copy)",
        go.words[0]
    );
    let peer_ok = go.words == [2, 1];
    line(
        "fork: the peer saw its own writes and the shared data",
        peer_ok,
    );
    line("fork: the peer's writes stayed in its copies", untouched);
    line("fork: our write stayed in our copy", ours && copies == 1);
    line(
        "fork: the peer still reads the shared data in the page we wrote, and gave back its frames",
        again.words[0] == 1,
    );
    line("fork: every frame of ours given back", back);
    Ok(peer_ok && untouched && ours && copies == 1 && again.words[0] == 1 && back)
}

/// A send capability to the endpoint `name` published, waiting (a bounded
/// while) for it to be published: the peer may not have run yet.
fn find(name: &str) -> Result<SendCap, Error> {
    for _ in 0..PATIENCE {
        match SendCap::lookup(name) {
            Err(Error::NoSuchProcess) => sys::yield_now(),
            other => return other,
        }
    }
    Err(Error::NoSuchProcess)
}
