//! test-fault-wrfsbase: setting the FS base (wrfsbase; FSGSBASE is off) from ring 3. The kernel
//! must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!(
    "test-fault-wrfsbase",
    "setting the FS base (wrfsbase; FSGSBASE is off)",
    {
        // SAFETY: deliberately faulting; the kernel ends the process here.
        unsafe {
            core::arch::asm!("wrfsbase {0}", in(reg) 0x1234_5000u64);
        }
    }
);
