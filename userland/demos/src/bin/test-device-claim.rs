//! test-device-claim: a device page belongs to one process at a time.
//!
//! With `test-device-claim-peer`. This process claims the HPET's
//! register page (0xfed0_0000, a hole in the memory map: device space that
//! no other program of this test uses), shows that the capability names
//! exactly that physical address and counts as a device frame, not RAM, and
//! reads the HPET's capabilities register through it. (The IOAPIC and the
//! local APIC, the kernel's own interrupt hardware, cannot be claimed.) Then, in steps the two
//! processes agree on through a shared RAM page:
//!
//! 1. it holds the page: the peer's claim must get `FrameInUse`;
//! 2. it frees the page: the peer's claim must succeed (and the peer frees
//!    it again);
//! 3. it claims the page again and exits without freeing it: the peer's
//!    claim must get `FrameInUse` until this process is gone, then succeed.
//!
//! Shared page layout: byte [`STEP`] written here, byte [`ACK`] by the
//! peer (it acknowledges step `n` by writing `n`).
#![no_std]
#![no_main]

use exo_demos::device_claim::{ACK, DEVICE, STEP};
use exo_demos::PATIENCE;
use libos::{println, sys, Error, Frame, Handle, MapFlags, Mapping, Rights};

libos::entry!(main);

const PEER: &str = "test-device-claim-peer";

fn main() -> Result<(), Error> {
    let before = sys::frame_stats();
    let device = sys::frame_alloc_at(DEVICE)?;
    let after = sys::frame_stats();
    let phys = sys::frame_phys(device)?;
    println!("test-device-claim: frame_phys of the device capability = {phys:#x} (asked for {DEVICE:#x})");
    println!(
        "test-device-claim: device frames held by me: {} -> {}; RAM frames held by me: {} -> {}",
        before.device_by_caller,
        after.device_by_caller,
        before.held_by_caller,
        after.held_by_caller
    );
    if phys != DEVICE
        || after.device_by_caller != before.device_by_caller + 1
        || after.held_by_caller != before.held_by_caller
    {
        println!("test-device-claim: FAILED: not a device frame at the asked address");
        return Err(Error::InvalidFrame);
    }
    let id = read_capabilities(device)?;
    println!(
        "test-device-claim: HPET vendor {:#06x}, {} timers",
        id >> 16,
        ((id >> 8) & 0x1f) + 1
    );

    let mut frame = Frame::alloc()?;
    let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?;
    let peer = find(PEER)?;
    // SAFETY: a copy (no move), so our mapping stays; from here the peer
    // writes the page too, and we access it only with volatile accesses.
    unsafe {
        sys::cap_transfer(
            page.handle(),
            peer,
            Rights::READ | Rights::WRITE | Rights::MAP,
            false,
        )
    }?;

    // 1. We hold it; the peer must be refused.
    step(&mut page, 1)?;
    // 2. Free it; the peer must get it (and gives it back).
    // SAFETY: `read_capabilities` unmapped its mapping; nothing refers to it.
    unsafe { sys::frame_free(device) }?;
    println!("test-device-claim: freed the device page");
    step(&mut page, 2)?;
    // 3. Claim it again and exit holding it.
    let _held = sys::frame_alloc_at(DEVICE)?;
    println!("test-device-claim: claimed it again");
    step(&mut page, 3)?;
    println!("test-device-claim: exiting while holding the device page");
    println!("test-device-claim: ok");
    Ok(())
}

/// Reads the HPET's capabilities register (low half) through a temporary
/// uncached mapping of the device capability.
fn read_capabilities(device: Handle) -> Result<u32, Error> {
    let address = libos::mem::reserve_pages(1)?;
    sys::map(device, address, MapFlags::UNCACHED)?;
    // SAFETY: the page at `address` is the HPET's register page, just mapped
    // (uncached, read-only); the register is an aligned u32 at +0x00;
    // nothing else maps it.
    let value = unsafe { (address as *const u32).read_volatile() };
    // SAFETY: no reference into the mapping exists (only the raw read
    // above, which is done).
    unsafe { sys::unmap(address) }?;
    Ok(value)
}

/// Announces step `n` and waits for the peer to acknowledge it.
fn step(page: &mut Mapping<'_>, n: u8) -> Result<(), Error> {
    page.volatile_write(STEP, &[n]);
    for _ in 0..PATIENCE {
        let mut ack = [0u8];
        page.volatile_read(ACK, &mut ack);
        if ack[0] == n {
            return Ok(());
        }
        if ack[0] == u8::MAX {
            println!("test-device-claim: FAILED: the peer reports a failure at step {n}");
            return Err(Error::InvalidArgument);
        }
        sys::yield_now();
    }
    println!("test-device-claim: FAILED: no acknowledgement of step {n}");
    Err(Error::WouldBlock)
}

/// The pid of process `name`, waiting (a bounded while) for it to appear.
fn find(name: &str) -> Result<u64, Error> {
    for _ in 0..PATIENCE {
        match sys::process_find(name) {
            Err(Error::NoSuchProcess) => sys::yield_now(),
            other => return other,
        }
    }
    Err(Error::NoSuchProcess)
}
