//! test-fault-int80: a software interrupt (int 0x80) from ring 3. The
//! kernel must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-int80", "a software interrupt (int 0x80)", {
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("int 0x80");
    }
});
