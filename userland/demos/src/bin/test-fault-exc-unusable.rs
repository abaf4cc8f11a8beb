//! test-fault-exc-unusable: the exception stack is unmapped after the
//! handler was registered. The kernel checks again at delivery and must
//! end the process with a report saying why, not write or run anything.
#![no_std]
#![no_main]

use abi::MapFlags;
use libos::{println, sys};

const STACK_VA: u64 = 0x0000_3200_0000_0000;

fn entry() -> ! {
    println!("test-fault-exc-unusable: NOT STOPPED: the handler ran");
    sys::exit(0)
}

exo_demos::fault_program!(
    "test-fault-exc-unusable",
    "a fault with the exception stack unmapped",
    {
        let run = || -> Result<(), libos::Error> {
            let stack = sys::frame_alloc()?;
            sys::map(stack, STACK_VA, MapFlags::WRITE)?;
            // SAFETY: the save area is at the bottom of our own stack page; the
            // entry never returns.
            unsafe { sys::exc_handler(entry as *const () as u64, STACK_VA + 4096, STACK_VA)? };
            // SAFETY: nothing refers to the page.
            unsafe { sys::unmap(STACK_VA)? };
            Ok(())
        };
        if let Err(e) = run() {
            println!("test-fault-exc-unusable: set-up failed: {e}");
            return Err(e);
        }
        // SAFETY: deliberately faulting.
        unsafe { core::arch::asm!("ud2") };
    }
);
