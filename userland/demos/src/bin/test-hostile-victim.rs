//! test-hostile-victim: shares a frame with test-hostile, writes a marker
//! and one of its own live handles into it, then exits while the frame is
//! still shared (the frame must outlive it; its handle must be useless to
//! anyone else).
#![no_std]
#![no_main]

use abi::Rights;
use libos::{sys, Error, Frame, MapFlags, Mapping};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let mut frame = Frame::alloc()?;
    let other = Frame::alloc()?;
    let page = Mapping::new(&mut frame, MapFlags::WRITE)?;
    // Not a driver: device space is out of reach. test-hostile sees the
    // marker only if this claim was refused.
    let refused = sys::frame_alloc_at(0xfed0_0000) == Err(Error::PermissionDenied);
    let attacker = loop {
        match sys::process_find("test-hostile") {
            Ok(pid) => break pid,
            Err(_) => sys::yield_now(),
        }
    };
    // SAFETY: the mapping is ours and writable; 16 bytes fit in a page.
    unsafe {
        let marker: u64 = if refused { 0x5eed_f00d } else { 0xbad };
        core::ptr::write_volatile(page.address() as *mut u64, marker);
        core::ptr::write_volatile((page.address() + 8) as *mut u64, other.handle().raw());
    }
    // SAFETY: a copy: our mapping stays valid until we exit.
    unsafe { sys::cap_transfer(page.handle(), attacker, Rights::READ | Rights::MAP, false) }?;
    // A copy not yet received would go with us: wait until the attacker
    // took it (it is charged to us until then).
    while sys::frame_stats().queued_by_caller > 0 {
        sys::yield_now();
    }
    // Exit holding everything: the kernel must return it all but the frame
    // the attacker still holds.
    sys::exit(0)
}
