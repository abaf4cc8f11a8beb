//! test-send-block-peer: the other side of `test-send-block`. Part 1: it
//! fills `test-send-block`'s queue, checks that one more is refused with
//! `WouldBlock`, sends it with `SEND_BLOCK` (blocked until the receiver
//! drains one) and says when it returned. Part 2: it publishes an
//! endpoint, never receives, and exits while `test-send-block` is blocked
//! sending to it.
#![no_std]
#![no_main]

use libos::ipc::{Endpoint, SendCap};
use libos::{println, Error};

libos::entry!(main);

/// Keep equal to `test-send-block`'s.
const DONE: u64 = 0xd0e;
/// Ticks we live after publishing in part 2: time for `test-send-block`
/// to fill our queue and block.
const LINGER_TICKS: u64 = 20;

fn main() -> Result<(), Error> {
    let nap = Endpoint::create(false)?;
    let sleep = |ticks| match nap.recv(ticks) {
        Err(Error::WouldBlock) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Err(Error::InvalidArgument),
    };
    let to = loop {
        match SendCap::lookup("test-send-block") {
            Ok(cap) => break cap,
            Err(Error::NoSuchProcess) => sleep(1)?,
            Err(e) => return Err(e),
        }
    };
    let q = abi::bounds::QUEUE as u64;
    for k in 0..q {
        to.send([k, 0], false)?;
    }
    match to.send([q, 0], false) {
        Err(Error::WouldBlock) => {
            println!("test-send-block-peer: a 17th send without SEND_BLOCK: refused: WouldBlock")
        }
        other => {
            println!("test-send-block-peer: FAILED: a 17th send without SEND_BLOCK: got {other:?}");
            return Err(Error::InvalidArgument);
        }
    }
    let before = exo_demos::rdtsc();
    to.send([q, before], true)?;
    let woke = exo_demos::rdtsc();
    println!("test-send-block-peer: the 17th send with SEND_BLOCK blocked, then returned ok");
    to.send([DONE, woke], false)?;
    drop(to);

    let _published = Endpoint::create(true)?;
    sleep(LINGER_TICKS)?;
    println!("test-send-block-peer: exiting with a full queue and a sender blocked on it");
    Ok(())
}
