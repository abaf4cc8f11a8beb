//! test-hostile-spin: spins without ever yielding until test-hostile has
//! finished. Only timer preemption lets test-hostile run meanwhile.
#![no_std]
#![no_main]

use libos::{println, sys, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    let mut spins: u64 = 0;
    while sys::process_find("test-hostile").is_ok() {
        spins += 1;
        core::hint::spin_loop();
    }
    println!("hostile-spin: test-hostile finished while we spun ({spins} polls): preemption works");
    Ok(())
}
