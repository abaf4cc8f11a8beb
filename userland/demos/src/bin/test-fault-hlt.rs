//! test-fault-hlt: a privileged instruction (hlt) from ring 3. The kernel
//! must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-hlt", "a privileged instruction (hlt)", {
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("hlt");
    }
});
