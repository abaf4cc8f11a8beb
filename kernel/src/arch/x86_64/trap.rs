//! Trap entry: one assembly stub per vector (0..256) saves the full register
//! state as a [`TrapFrame`] on the kernel stack and calls
//! [`crate::trap::dispatch`]; returning pops whatever frame is there now, so
//! the dispatcher switches processes by rewriting the frame. `syscall` entry
//! (syscall.rs) builds the same frame and leaves through the same exit. The
//! stubs of the exceptions a library OS may handle first try the delivery
//! fast path (`exo_exc_fast`, in [`crate::exception`]), which joins the
//! common path whenever it cannot deliver.
use core::arch::global_asm;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// Vectors with stubs: all 256 (the 32 exceptions, the PICs' 32..48, the
/// local APIC's timer and spurious vectors, and every vector a device's
/// MSI could name: an interrupt on a vector beyond the IDT's limit would be
/// a #GP in whatever process runs).
pub const VECTORS: usize = 256;
/// The pseudo-vector of frames built by `syscall` entry.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// The register state of an interrupted context, as the stubs lay it out.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Vector number (or [`SYSCALL_VECTOR`]).
    pub vector: u64,
    /// The CPU's error code, or 0.
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// What the kernel keeps of a process that is not running: its trap frame
/// and its data segment selectors; and, kept across switches, its exception
/// handler. `repr(C)`, the frame first and the selectors right after it:
/// the IPC stub (syscall.rs) writes both in place.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct UserContext {
    /// The registers the trap path saves.
    pub frame: TrapFrame,
    /// DS, ES, FS and GS (saved and loaded only when processes switch).
    pub segments: super::gdt::UserSegments,
    /// The exception handler and whether a delivery is pending (not
    /// touched by switches).
    pub exc: crate::exception::ExcState,
}

impl TrapFrame {
    /// Whether the trap came from ring 3.
    #[allow(clippy::wrong_self_convention)] // "from" as in "came from"
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }
}

// Exceptions 8, 10-14, 17, 21, 29, 30 push an error code; the others get a
// zero pushed so that every frame has the same shape. An *interrupt* on one
// of those vectors (a device's MSI can name any vector) pushes none: the CPU
// aligns rsp to 16 before pushing its 5-word frame, so rsp = 8 (mod 16)
// means "no error code" and the stub pushes the missing zero.
global_asm!(
    r#"
.macro TRAP_NOERR n
exo_trap_\n:
    push 0
    push \n
    jmp exo_trap_common
.endm
.macro TRAP_ERR n
exo_trap_\n:
    test spl, 8
    jz 1f
    push 0
1:
    push \n
    jmp exo_trap_common
.endm
// The exceptions a library OS's handler may take first try the delivery
// fast path (crate::exception), which falls back to exo_trap_common.
// Only #GP and #PF take it: both always push an error code, so the
// stack's alignment tells the CPU's exception (error code pushed) from a
// device interrupt aimed at the same vector (none), which goes to the
// common path and its in-service check. #DE, #BP, #UD and #NM push none
// and so cannot be told from an MSI on their vector without reading the
// local APIC: they keep the common path (they are not hot).
.macro TRAP_ERR_EXC n
exo_trap_\n:
    test spl, 8
    jz 1f
    push 0
    push \n
    jmp exo_trap_common
1:
    push \n
    jmp exo_exc_fast
.endm

.section .text
TRAP_NOERR 0
TRAP_NOERR 1
TRAP_NOERR 2
TRAP_NOERR 3
TRAP_NOERR 4
TRAP_NOERR 5
TRAP_NOERR 6
TRAP_NOERR 7
TRAP_ERR 8
TRAP_NOERR 9
TRAP_ERR 10
TRAP_ERR 11
TRAP_ERR 12
TRAP_ERR_EXC 13
TRAP_ERR_EXC 14
TRAP_NOERR 15
TRAP_NOERR 16
TRAP_ERR 17
TRAP_NOERR 18
TRAP_NOERR 19
TRAP_NOERR 20
TRAP_ERR 21
TRAP_NOERR 22
TRAP_NOERR 23
TRAP_NOERR 24
TRAP_NOERR 25
TRAP_NOERR 26
TRAP_NOERR 27
TRAP_NOERR 28
TRAP_ERR 29
TRAP_ERR 30
TRAP_NOERR 31
// 32..256: interrupts (PIC lines, the local APIC, any MSI vector).
.irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
TRAP_NOERR \n
.endr
.irp n, 64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95
TRAP_NOERR \n
.endr
.irp n, 96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127
TRAP_NOERR \n
.endr
.irp n, 128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159
TRAP_NOERR \n
.endr
.irp n, 160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191
TRAP_NOERR \n
.endr
.irp n, 192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223
TRAP_NOERR \n
.endr
.irp n, 224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255
TRAP_NOERR \n
.endr

.global exo_trap_common
exo_trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {dispatch}
.global exo_trap_return
exo_trap_return:
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq

// In .data: absolute addresses in a PIE need (load-time) relocation.
.section .data
.balign 8
exo_trap_table:
.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exo_trap_\n
.endr
.irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63
    .quad exo_trap_\n
.endr
.irp n, 64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95
    .quad exo_trap_\n
.endr
.irp n, 96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127
    .quad exo_trap_\n
.endr
.irp n, 128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159
    .quad exo_trap_\n
.endr
.irp n, 160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191
    .quad exo_trap_\n
.endr
.irp n, 192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223
    .quad exo_trap_\n
.endr
.irp n, 224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255
    .quad exo_trap_\n
.endr
.global exo_trap_table_ptr
exo_trap_table_ptr:
    .quad exo_trap_table
.section .text
"#,
    dispatch = sym crate::trap::dispatch_from_asm,
);

extern "C" {
    static exo_trap_table_ptr: *const u64;
    /// Pops a [`TrapFrame`] at `rsp` and `iretq`s.
    pub fn exo_trap_return() -> !;
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Idt([Gate; VECTORS]);

const EMPTY_GATE: Gate = Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    attributes: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
};

/// Built once, then only read (by the CPU).
static IDT: spin::Once<Idt> = spin::Once::new();

/// Fills the IDT with the stubs (all ring-0 interrupt gates, so `int n` from
/// user space is a #GP) and loads it. A second call loads the same table.
pub fn init() {
    let idt = IDT.call_once(build);
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(idt),
    };
    // SAFETY: the IDT lives in a static for ever and is never written
    // again; its gates point at the stubs above, with the kernel code
    // selector of the loaded GDT.
    unsafe { lidt(&pointer) };
}

fn build() -> Idt {
    let code = super::gdt::selectors().kernel_code.0;
    // SAFETY: `exo_trap_table_ptr` (defined above, relocated at load time)
    // points at the table of VECTORS stub addresses in .data, which nothing
    // writes.
    let table = unsafe { core::slice::from_raw_parts(exo_trap_table_ptr, VECTORS) };
    let mut gates = [EMPTY_GATE; VECTORS];
    for (vector, (gate, &addr)) in gates.iter_mut().zip(table).enumerate() {
        let ist = match vector {
            8 => super::gdt::DOUBLE_FAULT_IST as u8 + 1,
            // An NMI can arrive anywhere, even in the syscall entry before
            // the switch to the kernel stack: give it a stack of its own.
            2 => super::gdt::NMI_IST as u8 + 1,
            // Likewise a machine check (the `syscall` paths run briefly on
            // the user's rsp in ring 0).
            18 => super::gdt::MCE_IST as u8 + 1,
            _ => 0,
        };
        *gate = Gate {
            offset_low: addr as u16,
            selector: code,
            ist,
            attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            reserved: 0,
        };
    }
    Idt(gates)
}

/// Names of the CPU exceptions, for reports.
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "divide error",
        "debug",
        "NMI",
        "breakpoint",
        "overflow",
        "bound range exceeded",
        "invalid opcode",
        "device not available",
        "double fault",
        "coprocessor segment overrun",
        "invalid TSS",
        "segment not present",
        "stack-segment fault",
        "general protection fault",
        "page fault",
        "reserved",
        "x87 floating point",
        "alignment check",
        "machine check",
        "SIMD floating point",
        "virtualization",
        "control protection",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "reserved",
        "hypervisor injection",
        "VMM communication",
        "security",
        "reserved",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}
