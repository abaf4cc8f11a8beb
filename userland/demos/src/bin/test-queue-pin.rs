//! test-queue-pin: the inbox attack of the endpoints issue, tried on an
//! endpoint. Once `test-queue-pin-victim` has published an endpoint (its
//! consent: without that nobody can send it anything), we move 64 MiB of
//! contiguous runs into its queue, which it never receives, and exit
//! without answering its call. What we sent is charged to us while queued
//! (checked here) and goes back with us: the victim sees every frame free
//! again, and conservation exact, once we are gone.
#![no_std]
#![no_main]

use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, Error, Frame, Rights};

libos::entry!(main);

const RUNS: u64 = abi::bounds::QUEUE as u64;
const RUN: u64 = 1024;

fn main() -> Result<(), Error> {
    let ep = Endpoint::create(true)?;
    // The victim calls us once its endpoint is published; it wakes when we
    // are gone.
    let call = ep.recv(abi::FOREVER)?;
    let victim = SendCap::lookup("test-queue-pin-victim")?;
    let before = sys::frame_stats();
    for i in 0..RUNS {
        let run = Frame::alloc_contiguous(RUN, 1, 0)?;
        if let Err((e, _)) = run.send(&victim, [i, 0], Rights::WRITABLE) {
            return Err(e);
        }
    }
    // The queue is full: one more is refused at once (no SEND_BLOCK), and
    // the run stays ours.
    let extra = Frame::alloc_contiguous(RUN, 1, 0)?;
    match extra.send(&victim, [RUNS, 0], Rights::WRITABLE) {
        Err((Error::WouldBlock, back)) => {
            println!("test-queue-pin: the full queue refused one more: WouldBlock");
            drop(back);
        }
        Err((e, _)) => return Err(e),
        Ok(()) => {
            println!("test-queue-pin: FAILED: a full queue took one more");
            return Err(Error::InvalidArgument);
        }
    }
    let after = sys::frame_stats();
    println!(
        "test-queue-pin: moved {} frames into the victim's queue (call {}); still charged to us: {}",
        RUNS * RUN,
        call.call,
        after.queued_by_caller - before.queued_by_caller
    );
    // Exit owing the reply, with everything still queued.
    sys::exit(0)
}
