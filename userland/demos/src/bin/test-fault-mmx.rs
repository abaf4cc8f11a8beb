//! test-fault-mmx: an MMX instruction (it would share registers between
//! processes) from ring 3. The kernel must end this process (expected by
//! the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!(
    "test-fault-mmx",
    "an MMX instruction (it would share registers between processes)",
    {
        // SAFETY: deliberately faulting; the kernel ends the process here.
        unsafe {
            core::arch::asm!("movq mm0, rax", in("rax") 0x5ec2e7u64);
        }
    }
);
