//! test-device-claim-peer: the second claimant of `test-device-claim`'s
//! device page (see that file for the steps).
//!
//! It publishes an endpoint; each step is a call from the owner. It tries
//! to claim the same device page (a `DeviceFrame`): refused with
//! `FrameInUse` while the owner holds it, granted once the owner has freed
//! it, refused again once the owner re-claims it, and granted after the
//! owner has exited still holding it (exit gives everything back). Its
//! reply carries the verdict (words: the step, 0 for ok).
#![no_std]
#![no_main]

use exo_demos::device_claim::DEVICE;
use libos::ipc::{self, Endpoint, SendCap};
use libos::{println, sys, DeviceFrame, Error};

libos::entry!(main);

const OWNER: &str = "test-device-claim";

fn main() -> Result<(), Error> {
    let ep = Endpoint::create(true)?;
    for n in 1..=3 {
        let m = ep.recv(abi::FOREVER)?;
        if m.words[0] != n || !m.call {
            println!(
                "test-device-claim-peer: FAILED: expected step {n}, got {:?}",
                m.words
            );
            return Err(Error::InvalidArgument);
        }
        let verdict = step(n);
        ipc::reply([n, u64::from(verdict.is_err())])?;
        verdict?;
    }
    // The owner now exits holding the page; exit must give it back. Our
    // call to its endpoint (never received) wakes when it is gone.
    let gone = match SendCap::lookup(OWNER) {
        Ok(owner) => owner.call([0, 0]).map(drop),
        Err(e) => Err(e),
    };
    if gone != Err(Error::NoSuchProcess) {
        println!("test-device-claim-peer: FAILED: waiting for {OWNER} to exit: {gone:?}");
        return Err(Error::InvalidArgument);
    }
    let claimed = DeviceFrame::claim(DEVICE).inspect_err(|e| {
        println!("test-device-claim-peer: FAILED: claim after the owner exited: {e}");
    })?;
    println!("test-device-claim-peer: claim after test-device-claim exited holding it: ok");
    drop(claimed);
    println!("test-device-claim-peer: ok");
    Ok(())
}

/// Checks step `n`.
fn step(n: u64) -> Result<(), Error> {
    match n {
        1 => expect_refused("while test-device-claim holds it"),
        2 => {
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
            Ok(())
        }
        _ => expect_refused("after test-device-claim claimed it again"),
    }
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
