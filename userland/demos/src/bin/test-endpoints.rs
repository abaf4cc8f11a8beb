//! test-endpoints: what endpoints refuse and what they guarantee, each
//! checked for its exact outcome: sending without a send capability, the
//! badge the minter chose (the sender cannot pick one), a full queue, a
//! capability queued and then dropped with its endpoint (charged to us
//! meanwhile, every frame back after), timeouts (alone in the machine, so
//! the kernel idles), a reply nobody is owed, a dead endpoint, and a call
//! whose receiver dies before it replies (`test-endpoints-peer`).
#![no_std]
#![no_main]

use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, Error, Frame};

libos::entry!(main);

struct T {
    failed: u32,
}

impl T {
    fn expect<V: core::fmt::Debug>(&mut self, what: &str, got: Result<V, Error>, want: Error) {
        match got {
            Err(e) if e == want => println!("test-endpoints: {what}: refused: {e:?}"),
            other => {
                println!("test-endpoints: FAILED: {what}: got {other:?}, expected {want:?}");
                self.failed += 1;
            }
        }
    }
    fn check(&mut self, what: &str, ok: bool) {
        if ok {
            println!("test-endpoints: {what}: ok");
        } else {
            println!("test-endpoints: FAILED: {what}");
            self.failed += 1;
        }
    }
}

fn main() -> Result<(), Error> {
    let mut t = T { failed: 0 };
    let ep = Endpoint::create(false)?;
    // SAFETY: cap 0: nothing moves.
    let (rax, _) = unsafe { abi::raw::send(ep.handle(), 1, 2, 0, 0) };
    t.expect(
        "send through a receive capability",
        Error::check(rax),
        Error::PermissionDenied,
    );
    let frame = Frame::alloc()?;
    // SAFETY: refused before anything moves.
    let (rax, _) = unsafe { abi::raw::send(frame.handle(), 1, 2, 0, 0) };
    t.expect(
        "send through a frame capability",
        Error::check(rax),
        Error::InvalidArgument,
    );
    t.expect(
        "recv on an empty queue, no wait",
        ep.recv(0),
        Error::WouldBlock,
    );
    let t0 = exo_demos::rdtsc();
    t.expect("recv with a 3-tick timeout", ep.recv(3), Error::WouldBlock);
    let waited = exo_demos::rdtsc() - t0;
    t.check(
        "the timeout waited (the kernel idled meanwhile)",
        waited > 0,
    );

    let badged = ep.mint(77)?;
    badged.send([5, 6], false)?;
    let got = ep.recv(0)?;
    t.check(
        "the badge is the minter's (77), the words as sent",
        got.badge == 77 && got.words == [5, 6] && got.cap.is_none() && !got.call,
    );
    let mut sent = 0;
    let full = loop {
        match badged.send([sent, 0], false) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    t.check(
        "a full queue refuses the 17th message with WouldBlock",
        sent == abi::bounds::QUEUE as u64 && full == Error::WouldBlock,
    );
    drop(ep);
    t.expect(
        "send to an endpoint that is gone",
        badged.send([0, 0], false),
        Error::NoSuchProcess,
    );
    drop(badged);

    // A capability in a queue is charged to its sender; dropping the
    // endpoint gives it back.
    let base = sys::frame_stats();
    let ep = Endpoint::create(false)?;
    let to_self = ep.mint(1)?;
    let run = Frame::alloc_contiguous(4, 1, 0)?;
    // SAFETY: moved: `run` has no mapping.
    unsafe { to_self.send_cap([0, 0], run.into_raw(), false)? };
    let queued = sys::frame_stats();
    t.check(
        "a queued run of 4 frames is still charged to its sender",
        queued.held_by_caller == base.held_by_caller && queued.queued_by_caller == 4,
    );
    drop(ep);
    drop(to_self);
    let after = sys::frame_stats();
    t.check(
        "dropping the endpoint returned the queued frames",
        after.held_by_caller == base.held_by_caller
            && after.queued_by_caller == 0
            && after.free == base.free,
    );
    // SAFETY: no capability moves.
    let (rax, _) = unsafe { abi::raw::reply(1, 2, 0, 0) };
    t.expect(
        "reply when none is owed",
        Error::check(rax),
        Error::InvalidArgument,
    );
    t.expect(
        "lookup of a process that published nothing",
        SendCap::lookup("test-endpoints").map(|c| c.into_raw()),
        Error::NoSuchProcess,
    );
    let ep = Endpoint::create(false)?;
    let to = ep.mint(3)?;
    t.expect(
        "irq_bind without a device capability (a RAM frame's)",
        libos::ipc::irq_bind(frame.handle(), &to),
        Error::PermissionDenied,
    );
    drop((to, ep));
    drop(frame);

    // The peer receives our call and exits without answering.
    let peer = loop {
        match SendCap::lookup("test-endpoints-peer") {
            Ok(cap) => break cap,
            Err(Error::NoSuchProcess) => sys::yield_now(),
            Err(e) => return Err(e),
        }
    };
    t.expect(
        "a call whose receiver exits before replying",
        peer.call([9, 9]).map(|m| m.words),
        Error::NoSuchProcess,
    );
    println!("test-endpoints: {} failed", t.failed);
    if t.failed == 0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}
