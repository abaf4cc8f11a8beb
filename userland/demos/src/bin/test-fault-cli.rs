//! test-fault-cli: a privileged instruction (cli) from ring 3. The kernel must end this
//! process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

use libos::{println, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    println!("test-fault-cli: trying a privileged instruction (cli)");
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("cli");
    }
    println!("test-fault-cli: NOT STOPPED");
    Ok(())
}
