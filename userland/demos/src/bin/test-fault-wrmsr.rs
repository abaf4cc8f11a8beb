//! test-fault-wrmsr: writing an MSR (wrmsr to LSTAR) from ring 3. The
//! kernel must end this process (expected by the boot) and nothing else.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-wrmsr", "writing an MSR (wrmsr to LSTAR)", {
    // SAFETY: deliberately faulting; the kernel ends the process here.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") 0xc000_0082u32, in("eax") 0u32, in("edx") 0u32);
    }
});
