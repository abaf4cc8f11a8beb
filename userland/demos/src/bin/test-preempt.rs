//! test-preempt: preemption works, whatever a driver did to the HPET.
//! Booted next to `test-hpet-legacy` (which takes IRQ 0 from the PIT and
//! exits) and `test-preempt-peer`: once the driver is gone, this one spins
//! without ever yielding until the peer has finished its 100 yields and
//! exited. Only the timer taking the CPU from this spinner lets the peer
//! run, so the run finishes only if preemption still works (a run without
//! it is a timeout, which fails the test).
#![no_std]
#![no_main]

use libos::{println, sys, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    while sys::process_find("test-hpet-legacy").is_ok() {
        sys::yield_now();
    }
    let mut polls: u64 = 0;
    while sys::process_find("test-preempt-peer").is_ok() {
        polls += 1;
    }
    println!(
        "test-preempt: the peer finished while we spun without yielding ({polls} polls): preemption works"
    );
    Ok(())
}
