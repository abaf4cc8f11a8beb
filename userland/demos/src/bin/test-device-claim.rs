//! test-device-claim: a device page belongs to one process at a time.
//!
//! With `test-device-claim-peer`. First libos's two kinds of frame: a
//! RAM `Frame` of device space and a `DeviceFrame` of RAM are both refused
//! with `InvalidFrame`, and what the kernel granted is given back. Then
//! this process claims the HPET's register page (0xfed0_0000, a hole in
//! the memory map: device space that no other program of this test uses)
//! as a `DeviceFrame`, shows that the capability names exactly that
//! physical address and counts as a device frame, not RAM, and reads the
//! HPET's capabilities register through a `DeviceRegion` of it. (The
//! IOAPIC and the local APIC, the kernel's own interrupt hardware, cannot
//! be claimed.) Then, in steps: each is a `call` to the peer's published
//! endpoint (words: the step), answered by its `reply` once it checked
//! (words: the step, 0 for ok); nobody polls:
//!
//! 1. it holds the page: the peer's claim must get `FrameInUse`;
//! 2. it frees the page: the peer's claim must succeed (and the peer frees
//!    it again);
//! 3. it claims the page again and exits without freeing it: the peer's
//!    claim must get `FrameInUse` until this process is gone, then succeed
//!    (the peer learns we are gone when its call to our published
//!    endpoint, which we never receive, wakes with `NoSuchProcess`).
#![no_std]
#![no_main]

use exo_demos::device_claim::DEVICE;
use exo_demos::PATIENCE;
use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, DeviceFrame, DeviceRegion, Error, Frame};

libos::entry!(main);

const PEER: &str = "test-device-claim-peer";

fn main() -> Result<(), Error> {
    kinds()?;
    let before = sys::frame_stats();
    let device = DeviceFrame::claim(DEVICE)?;
    let after = sys::frame_stats();
    let phys = device.phys()?;
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
    let device = DeviceRegion::from_frame(device)?;
    // The HPET's capabilities and ID register (low half).
    let id = device.read32(0);
    println!(
        "test-device-claim: HPET vendor {:#06x}, {} timers",
        id >> 16,
        ((id >> 8) & 0x1f) + 1
    );

    // The peer calls this once it has seen step 3; we never receive, so
    // its call wakes when we are gone.
    let _gone = Endpoint::create(true)?;
    let peer = find(PEER)?;

    // 1. We hold it; the peer must be refused.
    step(&peer, 1)?;
    // 2. Free it; the peer must get it (and gives it back).
    drop(device);
    println!("test-device-claim: freed the device page");
    step(&peer, 2)?;
    // 3. Claim it again and exit holding it.
    let _held = DeviceFrame::claim(DEVICE)?;
    println!("test-device-claim: claimed it again");
    step(&peer, 3)?;
    println!("test-device-claim: exiting while holding the device page");
    println!("test-device-claim: ok");
    Ok(())
}

/// RAM and device space do not mix: `Frame::alloc_at` of device space and
/// `DeviceFrame::claim` of RAM are refused with `InvalidFrame`, and the
/// frame the kernel granted meanwhile is given back.
fn kinds() -> Result<(), Error> {
    let held = || sys::frame_stats().device_by_caller;
    let before = held();
    match Frame::alloc_at(DEVICE) {
        Err(Error::InvalidFrame) if held() == before => println!(
            "test-device-claim: a RAM Frame of device space: refused: InvalidFrame (device frames held: {before})"
        ),
        other => {
            println!(
                "test-device-claim: FAILED: Frame::alloc_at({DEVICE:#x}) gave {:?}, device frames held {before} -> {}",
                other.map(|f| f.handle()),
                held()
            );
            return Err(Error::InvalidFrame);
        }
    }
    // A frame that was free a moment ago (nothing else here allocates).
    let ram = Frame::alloc()?.phys()?;
    match DeviceFrame::claim(ram) {
        Err(Error::InvalidFrame) => {}
        other => {
            println!(
                "test-device-claim: FAILED: DeviceFrame::claim({ram:#x}) of RAM gave {:?}",
                other.map(|f| f.handle())
            );
            return Err(Error::InvalidFrame);
        }
    }
    // It was given back: free RAM again.
    let again = Frame::alloc_at(ram).inspect_err(|e| {
        println!("test-device-claim: FAILED: RAM at {ram:#x} was not given back: {e}");
    })?;
    drop(again);
    println!(
        "test-device-claim: a DeviceFrame of RAM: refused: InvalidFrame, and the RAM given back"
    );
    Ok(())
}

/// Announces step `n` and waits for the peer's verdict.
fn step(peer: &SendCap, n: u64) -> Result<(), Error> {
    match peer.call([n, 0]) {
        Ok(m) if m.words == [n, 0] => Ok(()),
        other => {
            println!("test-device-claim: FAILED: step {n}: the peer answered {other:?}");
            Err(Error::InvalidArgument)
        }
    }
}

/// A send capability to `name`'s published endpoint, waiting (a bounded
/// while) for it to appear.
fn find(name: &str) -> Result<SendCap, Error> {
    for _ in 0..PATIENCE {
        match SendCap::lookup(name) {
            Err(Error::NoSuchProcess) => sys::yield_now(),
            other => return other,
        }
    }
    Err(Error::NoSuchProcess)
}
