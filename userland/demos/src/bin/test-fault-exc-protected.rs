//! test-fault-exc-protected: the save area's page is made read-only after
//! the handler was registered (which armed the kernel's delivery fast
//! path). The `protect` must disarm it: the delivery checks again, finds
//! the save area unwritable and ends the process with a report saying
//! why, without writing the page or running the handler.
#![no_std]
#![no_main]

use abi::{MapFlags, Protection};
use libos::{println, sys};

const STACK_VA: u64 = 0x0000_3300_0000_0000;

fn entry() -> ! {
    println!("test-fault-exc-protected: NOT STOPPED: the handler ran");
    sys::exit(0)
}

exo_demos::fault_program!(
    "test-fault-exc-protected",
    "a fault with the save area's page protected read-only",
    {
        let run = || -> Result<(), libos::Error> {
            let stack = sys::frame_alloc()?;
            sys::map(stack, STACK_VA, MapFlags::WRITE)?;
            // SAFETY: the save area is at the bottom of our own stack page; the
            // entry never returns.
            unsafe { sys::exc_handler(entry as *const () as u64, STACK_VA + 4096, STACK_VA)? };
            // SAFETY: nothing refers to the page.
            unsafe { sys::protect(STACK_VA, 1, Protection::Read)? };
            Ok(())
        };
        if let Err(e) = run() {
            println!("test-fault-exc-protected: set-up failed: {e}");
            return Err(e);
        }
        // SAFETY: deliberately faulting.
        unsafe { core::arch::asm!("ud2") };
    }
);
