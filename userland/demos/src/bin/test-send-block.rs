//! test-send-block: `send` with `SEND_BLOCK` on a full queue, between two
//! processes, each outcome checked exactly (with `test-send-block-peer`):
//!
//! 1. We receive: the peer fills our published endpoint's queue
//!    ([`abi::bounds::QUEUE`] messages), sees a 17th refused with
//!    `WouldBlock`, then sends it with `SEND_BLOCK` and blocks. We drain
//!    one message: the blocked one gets in behind the others (we then
//!    read all 17, in order), and the peer wakes with success. TSC stamps
//!    prove the order: the peer's, taken before its blocking send (in the
//!    message), is before our drain, and the one it takes when its send
//!    returns (sent afterwards) is after it.
//! 2. We send: the peer publishes an endpoint and never receives; we fill
//!    its queue (the first message carrying a 4-frame run, still charged
//!    to us while queued), then block sending one more. The peer exits:
//!    our send wakes with `NoSuchProcess`, and the queued frames went
//!    back (nothing charged to us any more, the free count as before).
//!
//! Waiting is sleeping (`recv` with a timeout on an endpoint nobody
//! sends to), never a `yield` loop.
#![no_std]
#![no_main]

use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, Error, Frame};

libos::entry!(main);

/// Ticks (10 ms each) we sleep while the peer fills our queue and blocks.
const FILL_TICKS: u64 = 20;
/// The peer's first word in its last message of part 1 (keep equal).
const DONE: u64 = 0xd0e;
const PEER: &str = "test-send-block-peer";

struct T {
    failed: u32,
}

impl T {
    fn check(&mut self, what: &str, ok: bool) {
        if ok {
            println!("test-send-block: {what}: ok");
        } else {
            println!("test-send-block: FAILED: {what}");
            self.failed += 1;
        }
    }
}

/// Sleeps `ticks` timer ticks.
fn sleep(nap: &Endpoint, ticks: u64) -> Result<(), Error> {
    match nap.recv(ticks) {
        Err(Error::WouldBlock) => Ok(()),
        Err(e) => Err(e),
        Ok(m) => {
            println!("test-send-block: FAILED: a message while sleeping: {m:?}");
            Err(Error::InvalidArgument)
        }
    }
}

fn main() -> Result<(), Error> {
    let mut t = T { failed: 0 };
    let nap = Endpoint::create(false)?;
    receiving(&mut t, &nap)?;
    sending(&mut t, &nap)?;
    println!("test-send-block: {} failed", t.failed);
    if t.failed == 0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}

/// Part 1: a sender blocked on our full queue gets in when we drain one.
fn receiving(t: &mut T, nap: &Endpoint) -> Result<(), Error> {
    let ep = Endpoint::create(true)?;
    sleep(nap, FILL_TICKS)?;
    let drained_at = exo_demos::rdtsc();
    let q = abi::bounds::QUEUE as u64;
    // At most 17 without waiting: the peer's next message comes only
    // after its blocked send returned.
    let mut got = alloc::vec::Vec::new();
    for _ in 0..=q {
        match ep.recv(0) {
            Ok(m) => got.push(m),
            Err(Error::WouldBlock) => break,
            Err(e) => return Err(e),
        }
    }
    t.check(
        "17 messages in order: the 16 that filled the queue, then the blocked one",
        got.len() as u64 == q + 1 && got.iter().zip(0..).all(|(m, k)| m.words[0] == k),
    );
    let sent_at = got.last().map_or(u64::MAX, |m| m.words[1]);
    t.check(
        "the blocked send began before our drain",
        sent_at < drained_at,
    );
    // The peer runs once we block: its send returned, it says when.
    let done = ep.recv(abi::FOREVER)?;
    t.check(
        "the blocked sender woke after the drain, its send returned success",
        done.words[0] == DONE && done.words[1] > drained_at,
    );
    Ok(())
}

/// Part 2: blocked sending to a peer that exits: woken with an error, the
/// queued capability returned.
fn sending(t: &mut T, nap: &Endpoint) -> Result<(), Error> {
    let to = loop {
        match SendCap::lookup(PEER) {
            Ok(cap) => break cap,
            // Not published yet: it publishes after part 1.
            Err(Error::NoSuchProcess) => sleep(nap, 1)?,
            Err(e) => return Err(e),
        }
    };
    let base = sys::frame_stats();
    let run = Frame::alloc_contiguous(4, 1, 0)?;
    // SAFETY: moved: `run` has no mapping.
    unsafe { to.send_cap([0, 0], run.into_raw(), false)? };
    for k in 1..abi::bounds::QUEUE as u64 {
        to.send([k, 0], false)?;
    }
    let queued = sys::frame_stats();
    t.check(
        "the peer's queue is full, our 4 frames queued in it are still charged to us",
        to.send([99, 0], false) == Err(Error::WouldBlock)
            && queued.queued_by_caller == 4
            && queued.held_by_caller == base.held_by_caller,
    );
    let blocked = to.send([100, 0], true);
    let after = sys::frame_stats();
    match blocked {
        Err(Error::NoSuchProcess) => {
            println!(
                "test-send-block: a send blocked when the receiver exits: refused: NoSuchProcess"
            )
        }
        other => {
            println!("test-send-block: FAILED: a send blocked when the receiver exits: got {other:?}, expected NoSuchProcess");
            t.failed += 1;
        }
    }
    t.check(
        "the queued frames went back: nothing charged to us, as many free frames as before",
        after.queued_by_caller == 0
            && after.held_by_caller == base.held_by_caller
            && after.free >= base.free,
    );
    Ok(())
}

extern crate alloc;
