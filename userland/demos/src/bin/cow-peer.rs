//! cow-peer: the other process of `cow`'s fork. Takes the four frames
//! `cow` sends (each a copied capability in a `call`, badge-checked),
//! maps them read-only at the same address as `cow` and registers a
//! copy-on-write handler like `cow`'s. On `cow`'s "go" it writes pages 0
//! and 3 (each first write copies the page into a frame of its own) and
//! answers with its copy count and whether it read its own writes and
//! `cow`'s data elsewhere; on "again" (after `cow` wrote page 1) whether
//! page 1 still holds the shared data. Then it gives everything back.
#![no_std]
#![no_main]

use exo_demos::cow::Copies;
use libos::exception::{self, Action, ExceptionFrame};
use libos::ipc::{self, Endpoint};
use libos::{println, sys, Error, Handle, MapFlags};

libos::entry!(main);

const PAGE: u64 = 4096;
/// Must match `cow.rs`.
const PAGES: u64 = 4;
const FORK: u64 = 0x0000_2500_0000_0000;
const TEMP: u64 = FORK + 0x10_0000;
/// Timer ticks to wait for each of `cow`'s calls.
const PATIENCE: u64 = 1000;

static COPIES: Copies<{ PAGES as usize }> = Copies::new();

fn handler(f: &mut ExceptionFrame) -> Action {
    COPIES.on_write(f, |page| (FORK..FORK + PAGES * PAGE).contains(&page), TEMP)
}

fn word(i: u64) -> *mut u64 {
    (FORK + i * PAGE + 8 * i) as *mut u64
}

/// The next call, from `cow` only (the kernel badges it with the pid).
fn next(service: &Endpoint, cow: u64) -> Result<ipc::Msg, Error> {
    let msg = service.recv(PATIENCE)?;
    if msg.badge != cow || !msg.call {
        println!(
            "cow-peer: FAILED: a message from pid {} (cow is {cow})",
            msg.badge
        );
        return Err(Error::PermissionDenied);
    }
    Ok(msg)
}

fn main() -> Result<(), Error> {
    let service = Endpoint::create(true)?;
    let cow = sys::process_find("cow")?;
    let before = sys::frame_stats().held_by_caller;
    let read_only = MapFlags::from_bits(0).ok_or(Error::InvalidArgument)?;
    let mut frames = [Handle::from_raw(0); PAGES as usize];
    for (i, f) in frames.iter_mut().enumerate() {
        let msg = next(&service, cow)?;
        *f = msg.cap.ok_or(Error::InvalidArgument)?;
        sys::map(*f, FORK + i as u64 * PAGE, read_only)?;
        ipc::reply([i as u64, 0])?;
    }
    exception::register(handler)?;

    next(&service, cow)?;
    // SAFETY: our own mappings; each first write faults once and the
    // handler gives us a private copy.
    unsafe {
        word(0).write_volatile(600);
        word(3).write_volatile(603);
    }
    // SAFETY: every page is mapped readable.
    let seen: [u64; PAGES as usize] =
        core::array::from_fn(|i| unsafe { word(i as u64).read_volatile() });
    let ok = seen == [600, 501, 502, 603];
    let copies = COPIES.count();
    ipc::reply([copies, u64::from(ok)])?;

    next(&service, cow)?;
    // SAFETY: as above.
    let again = unsafe { word(1).read_volatile() } == 501;
    exception::unregister()?;
    // SAFETY: nothing refers into the pages any more.
    unsafe {
        for i in 0..PAGES {
            sys::unmap(FORK + i * PAGE)?;
        }
        for f in frames {
            sys::frame_free(f)?;
        }
        COPIES.free_all()?;
    }
    let back = sys::frame_stats().held_by_caller == before;
    ipc::reply([u64::from(again && back), 0])?;
    println!(
        "cow-peer: saw {seen:?} after its writes, {copies} copies; every frame given back: {back}"
    );
    if ok && again && back {
        println!("cow-peer: ok");
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
