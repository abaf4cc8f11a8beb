//! test-fault-out: port I/O (out to 0xf4, the QEMU exit port) from ring 3.
//! The kernel must end this process (expected by the boot) and nothing
//! else.
#![no_std]
#![no_main]

exo_demos::fault_program!(
    "test-fault-out",
    "port I/O (out to 0xf4, the QEMU exit port)",
    {
        // SAFETY: deliberately faulting; the kernel ends the process here.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") 0xf4u16, in("al") 0x10u8);
        }
    }
);
