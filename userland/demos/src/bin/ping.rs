//! ping: a client of `pong`. Finds pong's published endpoint by name (the
//! kernel badges the send capability with our pid, so pong knows who
//! calls), makes 100 calls and checks each answer and badge, sends a frame
//! with a call and gets it back stamped, then tells pong to stop.
#![no_std]
#![no_main]

use libos::ipc::SendCap;
use libos::{println, sys, Error, Frame, MapFlags, Mapping};

libos::entry!(main);

const CALLS: u64 = 100;

fn main() -> Result<(), Error> {
    let pong = loop {
        match SendCap::lookup("pong") {
            Ok(cap) => break cap,
            // Not published yet: pong has not run. Wait one tick.
            Err(Error::NoSuchProcess) => sys::yield_now(),
            Err(e) => return Err(e),
        }
    };
    let me = sys::getpid();
    for n in 1..=CALLS {
        let got = pong.call([n, 0])?;
        if got.words != [n + 1, me] {
            println!(
                "ping: FAILED: call {n} answered {:?} (our pid {me})",
                got.words
            );
            return Err(Error::InvalidArgument);
        }
    }
    println!("ping: {CALLS} calls answered, each with our pid as the badge pong saw");
    let mut frame = Frame::alloc()?;
    {
        let mut page = Mapping::new(&mut frame, MapFlags::WRITE)?;
        page.as_mut_slice()[..8].copy_from_slice(&41u64.to_le_bytes());
    }
    let handle = frame.into_raw();
    // SAFETY: moved; `frame`'s mapping is gone (dropped above).
    let got = unsafe { pong.call_cap([0, 0], handle, false)? };
    let Some(back) = got.cap else {
        println!("ping: FAILED: the frame did not come back");
        return Err(Error::InvalidArgument);
    };
    // SAFETY: pong moved the capability back: only we hold it.
    let mut frame = unsafe { Frame::from_raw(back)? };
    let stamped = {
        let page = Mapping::new(&mut frame, MapFlags::NONE)?;
        u64::from_le_bytes(page.as_slice()[..8].try_into().unwrap_or([0; 8]))
    };
    println!("ping: a frame went to pong and came back holding {stamped}");
    let done = pong.call([0, 0])?;
    println!("ping: pong answered {} calls in all", done.words[1]);
    if stamped != 42 {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}
