//! test-fault-trapflag: single-stepping into the kernel. The program sets
//! RFLAGS.TF with `popfq` right before a `syscall` (the getpid fast path,
//! where the kernel runs on the user's stack pointer), so the syscall
//! starts with TF set. SFMASK clears TF on entry: no debug trap may happen
//! in ring 0 (it would be taken on the user's stack, in ring 0). `sysretq`
//! restores TF, so the trap comes after the syscall, in ring 3: the
//! process is ended with a debug exception, and nothing else happens.
#![no_std]
#![no_main]

exo_demos::fault_program!("test-fault-trapflag", "a syscall with the trap flag set", {
    // SAFETY: deliberately faulting: after the syscall the single-step
    // trap ends the process.
    unsafe {
        core::arch::asm!(
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            "syscall",
            in("rax") abi::Sysnum::GetPid as u64,
            lateout("rax") _, out("rcx") _, out("rdx") _, out("r11") _,
        );
    }
});
