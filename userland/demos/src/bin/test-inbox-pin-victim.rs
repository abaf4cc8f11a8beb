//! test-inbox-pin-victim: the idle receiver of `test-inbox-pin`: never
//! receives, waits until the sender is gone, and checks that the frames
//! it was sent are free again (nothing pinned in its inbox).
#![no_std]
#![no_main]

use libos::{println, sys, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let start = sys::frame_stats().free;
    // Let the sender run (it finds us, sends and exits).
    while sys::process_find("test-inbox-pin").is_err() {
        sys::yield_now();
    }
    while sys::process_find("test-inbox-pin").is_ok() {
        sys::yield_now();
    }
    let end = sys::frame_stats();
    println!(
        "test-inbox-pin-victim: the sender is gone: {} frames free, {} before it sent; we hold {}",
        end.free, start, end.held_by_caller
    );
    if end.free + 16 < start {
        println!("test-inbox-pin-victim: FAILED: the sent frames stayed allocated");
        return Err(Error::OutOfMemory);
    }
    println!("test-inbox-pin-victim: nothing pinned: ok");
    Ok(())
}
