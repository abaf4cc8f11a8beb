//! test-fault-div: a divide error from ring 3. The kernel must end this
//! process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

use libos::{println, Error};

libos::entry!(main);

fn main() -> Result<(), Error> {
    println!("test-fault-div: trying a divide error");
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("div rcx", in("rcx") 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _);
    }
    println!("test-fault-div: NOT STOPPED");
    Ok(())
}
