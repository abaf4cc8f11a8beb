//! test-fault-x87: an x87 instruction (no FPU state is kept for user space)
//! from ring 3. The kernel must end this process (expected by the boot) and
//! nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!(
    "test-fault-x87",
    "an x87 instruction (no FPU state is kept for user space)",
    {
        // SAFETY: deliberately faulting; the kernel ends the process here.
        unsafe {
            core::arch::asm!("fld1");
        }
    }
);
