//! x86_64: descriptor tables, traps, the local APIC (timer) and the
//! masked PICs, `syscall` entry, the VT-d units,
//! page tables and the QEMU exit port.
pub mod apic;
pub mod gdt;
pub mod paging;
pub mod pic;
pub mod syscall;
pub mod trap;
pub mod vtd;
pub mod zero;

use x86_64::instructions::port::Port;

/// How the kernel ends the QEMU run (the `isa-debug-exit` device at 0xf4).
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Verdict {
    /// QEMU exits with status 33 (`(0x10 << 1) | 1`).
    Success = 0x10,
    /// QEMU exits with status 35.
    Failure = 0x11,
}

/// Ends the run. If no `isa-debug-exit` device is present, says so and halts.
pub fn exit(verdict: Verdict) -> ! {
    let mut port: Port<u32> = Port::new(0xf4);
    // SAFETY: port I/O touches no memory. 0xf4 is the isa-debug-exit
    // device the QEMU runs add; where nothing decodes the port the write
    // goes nowhere, and the line below says so.
    unsafe { port.write(verdict as u32) };
    // QEMU 9 and later end the run from their main loop, not within the
    // port write: give it a moment (about 50 million instructions, well
    // under a second) before concluding that nothing decoded the port.
    for _ in 0..(1u32 << 24) {
        core::hint::spin_loop();
    }
    crate::serial::emergency(format_args!(
        "BUG: QEMU did not exit: the isa-debug-exit device (iobase=0xf4) is missing"
    ));
    halt_forever()
}

/// Stops the CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Reads the time-stamp counter (exact instruction count under `-icount`).
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter, which every x86_64
    // CPU has; in ring 0 it is allowed whatever CR4.TSD says.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The physical address width the CPU reports (CPUID 0x8000_0008).
pub fn phys_addr_bits() -> u32 {
    let max = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    if max >= 0x8000_0008 {
        core::arch::x86_64::__cpuid(0x8000_0008).eax & 0xff
    } else {
        36
    }
}

/// Turns x87, MMX and SSE off for user space (CR0.EM|MP set, CR4.OSFXSR
/// and OSXMMEXCPT clear): the kernel saves no FPU state, so using them in a
/// program faults (#NM for x87, #UD for MMX and SSE) and ends it, instead of
/// leaking registers between processes.
pub fn disable_fpu() {
    use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
    // SAFETY: these bits only make x87/MMX/SSE instructions fault. The
    // kernel's compiled code has none (target x86_64-unknown-none: soft
    // float, no SSE). Its one vector use, `zero::zero_pages` (AVX stores to
    // ymm0), turns the unit on around its stores itself, with interrupts
    // off, and puts CR0 and CR4 back, so this cannot land in the middle of
    // it nor be undone by it.
    unsafe {
        Cr4::update(|f| f.remove(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
        Cr0::update(|f| {
            f.insert(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::MONITOR_COPROCESSOR);
            f.remove(Cr0Flags::TASK_SWITCHED);
        });
    }
}

/// What [`restrict_user_instructions`] could turn on.
#[derive(Clone, Copy, Debug)]
pub struct UserRestrictions {
    /// CR4.UMIP: `sgdt`, `sidt`, `sldt`, `smsw` and `str` fault in ring 3
    /// instead of revealing where the kernel's tables are and CR0's low bits.
    pub umip: bool,
    /// CR4.SMEP: the kernel cannot execute a user page (a jump there from
    /// ring 0 faults instead of running the program's code with the
    /// kernel's privilege).
    pub smep: bool,
    /// CR4.SMAP: the kernel cannot read or write a user page through its
    /// user address. exo never does (it reaches user memory only through
    /// the physical-memory mapping, after checking the page tables), so
    /// nothing needs `stac`/`clac`; a kernel bug that dereferences a user
    /// pointer faults instead of following it.
    pub smap: bool,
}

/// Takes from ring 3 what CR4 can take: UMIP where the CPU has it (CPUID
/// leaf 7, ECX bit 2; QEMU's `-cpu max` has it, `qemu64` does not), SMEP
/// and SMAP for ring 0 where it has them (leaf 7, EBX bits 7 and 20), and
/// makes sure of what exo never turns on: FSGSBASE (so `wrfsbase` and
/// friends are #UD and a program cannot set an FS/GS base: both stay 0),
/// PCE (`rdpmc` is #GP) and TSD stays clear (`rdtsc` is allowed: the
/// instruction-count benchmarks read it).
pub fn restrict_user_instructions() -> UserRestrictions {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    let (leaf7_ebx, leaf7_ecx) = if core::arch::x86_64::__cpuid(0).eax >= 7 {
        let r = core::arch::x86_64::__cpuid_count(7, 0);
        (r.ebx, r.ecx)
    } else {
        (0, 0)
    };
    let umip = leaf7_ecx & (1 << 2) != 0;
    let smep = leaf7_ebx & (1 << 7) != 0;
    let smap = leaf7_ebx & (1 << 20) != 0;
    // SAFETY: UMIP only makes five descriptor-table instructions fault in
    // ring 3 (the kernel does not use them in ring 3); clearing FSGSBASE
    // and PCE only makes instructions fault in ring 3 that no program
    // needs, and the kernel uses none of them. SMEP and SMAP (each only
    // where CPUID has it) make ring 0 fault on executing, reading or
    // writing a user page through a user address: the kernel does none of
    // these (user memory is reached through the physical-memory mapping
    // only), so they change nothing but a bug's outcome.
    unsafe {
        Cr4::update(|f| {
            f.set(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION, umip);
            f.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, smep);
            f.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, smap);
            f.remove(Cr4Flags::FSGSBASE | Cr4Flags::PERFORMANCE_MONITOR_COUNTER);
        })
    };
    UserRestrictions { umip, smep, smap }
}

/// The physical page of the local APIC's registers (IA32_APIC_BASE).
pub fn local_apic_page() -> u64 {
    // SAFETY: every x86_64 CPU has a local APIC and so IA32_APIC_BASE
    // (architectural MSR 0x1b); reading it has no side effects.
    let base = unsafe { x86_64::registers::model_specific::Msr::new(0x1b).read() };
    base & 0x000f_ffff_ffff_f000
}

/// The IOAPIC's register page at the standard address, where QEMU and PC
/// firmware put it: refused to claims even where the MADT lists no IOAPIC
/// (the ones it lists are refused too: `Platform::kernel_owned`).
pub const IOAPIC_PAGE: u64 = 0xfec0_0000;

/// Starts user space: copies `frame` onto the top of the kernel stack, where
/// a trap from ring 3 would have left it, and returns through the common
/// trap exit. Never returns.
///
/// # Safety
/// `frame` is a ring-3 context the kernel built for a process (user code
/// and stack selectors, IOPL 0) in the address space now in CR3; the
/// caller runs on the boot stack, not on the kernel stack (nothing there is
/// in use, and `frame` is not there).
pub unsafe fn enter_user(frame: &trap::TrapFrame) -> ! {
    let top = gdt::kernel_stack_top();
    let at = (top - core::mem::size_of::<trap::TrapFrame>() as u64) as *mut trap::TrapFrame;
    // SAFETY: the kernel stack is unused and `frame` lies elsewhere (the
    // caller's guarantee), so the copy overwrites nothing live;
    // `exo_trap_return` pops exactly that TrapFrame and irets to the ring-3
    // context it describes, in the address space in CR3 (the caller's
    // guarantee again).
    unsafe {
        at.write(*frame);
        core::arch::asm!(
            "mov rsp, {0}",
            "jmp {1}",
            in(reg) at,
            sym trap::exo_trap_return,
            options(noreturn)
        );
    }
}
