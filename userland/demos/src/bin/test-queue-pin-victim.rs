//! test-queue-pin-victim: the idle receiver of `test-queue-pin`: publishes
//! an endpoint, calls the sender and never receives. The call wakes with
//! `NoSuchProcess` when the sender is gone (no polling); then every frame
//! it queued must be free again and conservation exact.
#![no_std]
#![no_main]

use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let start = sys::frame_stats().free;
    let _queue = Endpoint::create(true)?;
    let sender = loop {
        match SendCap::lookup("test-queue-pin") {
            Ok(cap) => break cap,
            Err(_) => sys::yield_now(),
        }
    };
    let woke = sender.call([0, 0]).map(|m| m.words);
    let end = sys::frame_stats();
    println!(
        "test-queue-pin-victim: the sender is gone ({woke:?}): {} frames free, {} before it sent; we hold {}, queued by us {}",
        end.free, start, end.held_by_caller, end.queued_by_caller
    );
    let conserved = end.free + end.reserved + end.kernel + end.held_by_all == end.total;
    if woke != Err(Error::NoSuchProcess) || !conserved || end.queued_by_caller != 0 {
        println!("test-queue-pin-victim: FAILED: woke {woke:?}, conservation {conserved}");
        return Err(Error::InvalidArgument);
    }
    if end.free + 16 < start {
        println!("test-queue-pin-victim: FAILED: the sent frames stayed allocated");
        return Err(Error::OutOfMemory);
    }
    println!("test-queue-pin-victim: nothing pinned, conservation exact: ok");
    Ok(())
}
