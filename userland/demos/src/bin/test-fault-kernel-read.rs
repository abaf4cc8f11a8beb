//! test-fault-kernel-read: reading kernel memory from ring 3. The kernel
//! must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-kernel-read", "reading kernel memory", {
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        let _ = core::ptr::read_volatile(0xffff_ffff_8000_0000 as *const u64);
    }
});
