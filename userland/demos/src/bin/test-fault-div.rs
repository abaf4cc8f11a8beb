//! test-fault-div: a divide error from ring 3. The kernel must end this
//! process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-div", "a divide error", {
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("div rcx", in("rcx") 0u64, inout("rax") 1u64 => _, inout("rdx") 0u64 => _);
    }
});
