//! test-fault-sldt: the LDT selector (sldt; UMIP) from ring 3. The kernel
//! must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-sldt", "the LDT selector (sldt; UMIP)", {
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("sldt {0:x}", out(reg) _);
    }
});
