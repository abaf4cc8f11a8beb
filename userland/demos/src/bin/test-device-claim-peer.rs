//! test-device-claim-peer: the second claimant of `test-device-claim`'s
//! device page (see that file for the steps and the shared page layout).
//!
//! At each step it tries to claim the same device page (a `DeviceFrame`):
//! refused
//! with `FrameInUse` while the owner holds it, granted once the owner has
//! freed it, refused again once the owner re-claims it, and granted after
//! the owner has exited still holding it (exit gives everything back).
#![no_std]
#![no_main]

use exo_demos::device_claim::{ACK, DEVICE, STEP};
use exo_demos::PATIENCE;
use libos::{println, sys, DeviceFrame, Error, Frame, Handle, MapFlags, Mapping};

libos::entry!(main);

const OWNER: &str = "test-device-claim";

fn main() -> Result<(), Error> {
    let handle = receive()?;
    // SAFETY: `cap_recv` gave us this handle: we own it and nothing else
    // frees it (its size comes from the kernel). The owner writes the page too: we use volatile accesses.
    let mut frame = unsafe { Frame::from_raw(handle)? };
    let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?;
    let result = steps(&mut page);
    if result.is_err() {
        page.volatile_write(ACK, &[u8::MAX]);
    }
    result?;
    println!("test-device-claim-peer: ok");
    Ok(())
}

fn steps(page: &mut Mapping<'_>) -> Result<(), Error> {
    wait_step(page, 1)?;
    expect_refused("while test-device-claim holds it")?;
    page.volatile_write(ACK, &[1]);

    wait_step(page, 2)?;
    let claimed = DeviceFrame::claim(DEVICE)?;
    let phys = claimed.phys()?;
    let held = sys::frame_stats().device_by_caller;
    println!(
        "test-device-claim-peer: claim after test-device-claim freed it: ok (frame_phys {phys:#x}, device frames held: {held})"
    );
    drop(claimed);
    if phys != DEVICE || held != 1 {
        println!("test-device-claim-peer: FAILED: wrong frame or count");
        return Err(Error::InvalidFrame);
    }
    page.volatile_write(ACK, &[2]);

    wait_step(page, 3)?;
    expect_refused("after test-device-claim claimed it again")?;
    page.volatile_write(ACK, &[3]);

    // The owner now exits holding the page; exit must give it back.
    let mut waited = 0;
    while sys::process_find(OWNER).is_ok() {
        waited += 1;
        if waited == PATIENCE {
            println!("test-device-claim-peer: FAILED: {OWNER} does not exit");
            return Err(Error::WouldBlock);
        }
        sys::yield_now();
    }
    let claimed = DeviceFrame::claim(DEVICE).inspect_err(|e| {
        println!("test-device-claim-peer: FAILED: claim after the owner exited: {e}");
    })?;
    println!("test-device-claim-peer: claim after test-device-claim exited holding it: ok");
    drop(claimed);
    Ok(())
}

/// A claim that must be refused with `FrameInUse`.
fn expect_refused(when: &str) -> Result<(), Error> {
    match DeviceFrame::claim(DEVICE) {
        Err(Error::FrameInUse) => {
            println!("test-device-claim-peer: claim {when}: refused: FrameInUse");
            Ok(())
        }
        Err(e) => {
            println!("test-device-claim-peer: FAILED: claim {when}: {e}");
            Err(e)
        }
        Ok(_granted) => {
            println!("test-device-claim-peer: FAILED: claim {when} was granted");
            Err(Error::InvalidArgument)
        }
    }
}

/// Waits for the owner to announce step `n`.
fn wait_step(page: &Mapping<'_>, n: u8) -> Result<(), Error> {
    for _ in 0..PATIENCE {
        let mut step = [0u8];
        page.volatile_read(STEP, &mut step);
        if step[0] == n {
            return Ok(());
        }
        sys::yield_now();
    }
    println!("test-device-claim-peer: FAILED: step {n} never came");
    Err(Error::WouldBlock)
}

/// Waits (a bounded while) for the shared page to arrive.
fn receive() -> Result<Handle, Error> {
    for _ in 0..PATIENCE {
        match sys::cap_recv() {
            Err(Error::WouldBlock) => sys::yield_now(),
            other => return other,
        }
    }
    println!("test-device-claim-peer: nothing received after {PATIENCE} yields");
    Err(Error::WouldBlock)
}
