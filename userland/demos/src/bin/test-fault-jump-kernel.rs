//! test-fault-jump-kernel: jumping into the kernel from ring 3. The kernel
//! must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-jump-kernel", "jumping into the kernel", {
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("jmp rax", in("rax") 0xffff_ffff_8000_1000u64);
    }
});
