//! test-fault-hlt: a privileged instruction (hlt) from ring 3. The kernel must end this
//! process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

use libos::{println, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    println!("test-fault-hlt: trying a privileged instruction (hlt)");
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("hlt");
    }
    println!("test-fault-hlt: NOT STOPPED");
    Ok(())
}
