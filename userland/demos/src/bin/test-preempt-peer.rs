//! test-preempt-peer: the other half of `test-preempt`: after the driver
//! has gone, yields 100 times (each yield hands the CPU to the spinner,
//! which only the timer takes it back from) and exits.
#![no_std]
#![no_main]

use libos::{println, sys, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    while sys::process_find("test-hpet-legacy").is_ok() {
        sys::yield_now();
    }
    for _ in 0..100 {
        sys::yield_now();
    }
    println!("test-preempt-peer: 100 yields to a spinner came back");
    Ok(())
}
