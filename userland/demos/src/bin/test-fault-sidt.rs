//! test-fault-sidt: the IDT's address (sidt; UMIP) from ring 3. The kernel
//! must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-sidt", "the IDT's address (sidt; UMIP)", {
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        let mut d = [0u8; 10];
        core::arch::asm!("sidt [{0}]", in(reg) d.as_mut_ptr());
    }
});
