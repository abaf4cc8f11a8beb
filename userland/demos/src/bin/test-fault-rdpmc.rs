//! test-fault-rdpmc: reading a performance counter (rdpmc; CR4.PCE is off) from ring 3. The kernel
//! must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!(
    "test-fault-rdpmc",
    "reading a performance counter (rdpmc; CR4.PCE is off)",
    {
        // SAFETY: deliberately faulting; the kernel ends the process here.
        unsafe {
            core::arch::asm!("xor ecx, ecx", "rdpmc", out("eax") _, out("edx") _, out("ecx") _);
        }
    }
);
