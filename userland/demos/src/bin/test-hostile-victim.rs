//! test-hostile-victim: shares a frame (read-only, in a message) with
//! test-hostile, writes a marker and one of its own live handles into it,
//! hands test-hostile a send capability to its own endpoint, then exits
//! while the frame is still shared (the frame must outlive it; its handle
//! must be useless to anyone else; a call blocked on its endpoint wakes
//! with an error).
#![no_std]
#![no_main]

use abi::Rights;
use libos::ipc::{Endpoint, SendCap};
use libos::{sys, Error, Frame, MapFlags, Mapping};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let mut frame = Frame::alloc()?;
    let other = Frame::alloc()?;
    let page = Mapping::new(&mut frame, MapFlags::WRITE)?;
    // Not a driver: device space is out of reach. test-hostile sees the
    // marker only if this claim was refused.
    let refused = sys::frame_alloc_at(0xfed0_0000) == Err(Error::PermissionDenied);
    // Our own endpoint: test-hostile calls it once we answered nothing.
    let ep = Endpoint::create(false)?;
    let mine = ep.mint(1)?;
    let attacker = loop {
        match SendCap::lookup("test-hostile") {
            Ok(cap) => break cap,
            Err(_) => sys::yield_now(),
        }
    };
    // SAFETY: the mapping is ours and writable; 16 bytes fit in a page.
    unsafe {
        let marker: u64 = if refused { 0x5eed_f00d } else { 0xbad };
        core::ptr::write_volatile(page.address() as *mut u64, marker);
        core::ptr::write_volatile((page.address() + 8) as *mut u64, other.handle().raw());
    }
    let read_only = abi::SEND_COPY | abi::send_rights(Rights::READ | Rights::MAP);
    // SAFETY: a copy: our mapping stays valid until we exit.
    unsafe { attacker.send_with([1, 0], page.handle(), read_only) }?;
    // The call returns once the attacker took both messages (a copy not
    // yet received would go with us).
    // SAFETY: `mine` is a send capability: no mapping goes with it.
    unsafe { attacker.call_with([2, 0], mine.into_raw(), 0) }?;
    // Exit holding everything, our endpoint included (test-hostile calls
    // it next): the kernel must return it all but the frame the attacker
    // still holds, and wake the attacker with an error.
    let _ = ep;
    sys::exit(0)
}
