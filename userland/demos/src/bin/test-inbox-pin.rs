//! test-inbox-pin: the inbox attack of the endpoints issue. Moves 64 MiB
//! of contiguous runs into the inbox of `test-inbox-pin-victim`, which
//! never receives, and exits. What it sent is charged to it while queued
//! (checked here) and goes back with it: the victim sees every frame free
//! again after we are gone.
#![no_std]
#![no_main]

use libos::{println, sys, Error, Frame, Rights};

libos::entry!(main);

const RUNS: u64 = 16;
const RUN: u64 = 1024;

fn main() -> Result<(), Error> {
    let victim = loop {
        match sys::process_find("test-inbox-pin-victim") {
            Ok(pid) => break pid,
            Err(_) => sys::yield_now(),
        }
    };
    let before = sys::frame_stats();
    for _ in 0..RUNS {
        let run = Frame::alloc_contiguous(RUN, 1, 0)?;
        if let Err((e, _)) = run.transfer(victim, Rights::WRITABLE) {
            return Err(e);
        }
    }
    let after = sys::frame_stats();
    println!(
        "test-inbox-pin: moved {} frames into the victim's inbox; still charged to us: {}",
        RUNS * RUN,
        after.queued_by_caller - before.queued_by_caller
    );
    Ok(())
}
