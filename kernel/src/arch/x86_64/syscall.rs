//! `syscall` entry, four ways in (see the comment on the assembly): a
//! register-only fast path for `getpid`; a direct path that calls
//! [`crate::syscall::direct`] with the arguments in registers and returns
//! with `sysretq`, for every call that stays in the calling process; the
//! IPC path for `call` and `reply_recv`, which saves the caller's
//! registers straight into its save area (at [`SAVE_TOP`]) and, when the
//! IPC fast path switches, leaves with `sysretq` from the save area of the
//! process it switched to; and the slow path, which switches to the kernel stack, pushes what an
//! interrupt would have pushed (the user's ss, rsp, rflags, cs, rip) plus
//! the pseudo vector [`SYSCALL_VECTOR`](super::trap::SYSCALL_VECTOR), and
//! joins the common trap path, which saves the rest of the
//! [`TrapFrame`](super::trap::TrapFrame) and hands it to
//! [`crate::syscall::dispatch`]. Leaving through the common trap exit lets
//! a syscall end in another process (yield, exit) and lets tracing see
//! every register.
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

// Fast path (as seL4 has one): `getpid` with tracing off is answered right
// here from a mirror of the scheduler's state, without touching the stack,
// and returns with `sysretq`. `rcx` is the user's own return address: it is
// canonical because no user page may be mapped at the top of the lower half
// (see `abi::USER_MAP_TOP`), the condition that keeps `sysret` safe.
//
// Direct path: every other call that cannot switch processes (the table's
// `local` section), with tracing off. On the kernel stack it saves what
// the SysV call may clobber and the user must get back (rcx = user rip,
// r11 = user rflags, rdi, rsi, r8, r9, r10), calls
// `crate::syscall::direct(a0, a1, a2, a3, number)` (the fourth argument
// comes in r10, not rcx; no call takes more than four), which returns the
// result pair in rax:rdx, restores and leaves with `sysretq`. Every
// register but rax and rdx comes back as the user left it, so no kernel
// value leaks out.
//
// IPC path (`call` and `reply_recv`, tracing off): see the comment on
// `IPC_FAST` below.
//
// Slow path (the other switching calls: exit, yield, resume, send, recv;
// every call while tracing is on): the full `TrapFrame`, built as an
// interrupt would, through the common trap path, which can end in another
// process or context. With tracing on, `call`, `reply_recv` and the local
// calls above them build the same frame but go to
// `crate::syscall::ipc_entry` (the general dispatcher, which traces them)
// and leave through the same exit.
//
// Routing comes from the syscall table (`abi::SWITCHING`, the calls that
// may switch processes, one block of numbers; `abi::MAX_LOCAL_ARGS`): the
// asserts below stop the build if a switching call falls outside the block
// this stub tests, or a local call takes more arguments than the direct
// path passes.
//
// Single CPU: the user rsp is parked in a static while the kernel stack is
// in use. SFMASK clears IF, so nothing can run between the two moves.
global_asm!(
    r#"
.section .text
// What an interrupt pushes, made by hand for a `syscall` (user ss, the
// user rsp saved in `exo_user_rsp`, rflags from r11, user cs, rip from
// rcx, no error code, the syscall vector): the top of a `TrapFrame`.
.macro SYSCALL_IRET_FRAME
    push {user_ss}
    push qword ptr [rip + exo_user_rsp]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {vector}
.endm
// The general registers, in `TrapFrame`'s order (rax at the highest
// address): the rest of the frame.
.macro SYSCALL_PUSH_GPRS
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
.endm
.global exo_syscall_entry
exo_syscall_entry:
    cmp rax, {getpid}
    jne 1f
    cmp byte ptr [rip + {trace_on}], 0
    jne 2f
    mov rdx, [rip + {current_pid}]
    xor eax, eax
    sysretq
1:
    lea rax, [rax - {first_switching}]
    cmp rax, {switching_span}
    lea rax, [rax + {first_switching}]
    jb 4f
    cmp byte ptr [rip + {trace_on}], 0
    jne 2f
    mov [rip + exo_user_rsp], rsp
    mov rsp, [rip + exo_kernel_rsp]
    push rcx
    push r11
    push rdi
    push rsi
    push r8
    push r9
    push r10
    sub rsp, 8
    mov rcx, r10
    mov r8, rax
    call {direct}
    add rsp, 8
    pop r10
    pop r9
    pop r8
    pop rsi
    pop rdi
    pop r11
    pop rcx
    mov rsp, [rip + exo_user_rsp]
    sysretq
4:
    cmp rax, {call}
    je 3f
    cmp rax, {reply_recv}
    je 5f
2:
    mov [rip + exo_user_rsp], rsp
    mov rsp, [rip + exo_kernel_rsp]
    SYSCALL_IRET_FRAME
    cmp rax, {resume}
    je exo_trap_common
    cmp rax, {call}
    jae exo_syscall_ipc
    jmp exo_trap_common

// IPC fast path: `call` and `reply_recv` with tracing off. The user's
// registers go straight into the running process's save area (its
// `UserContext`: the `TrapFrame`, whose end `SAVE_TOP` holds, laid out as
// the slow path lays out its frame, and the segment selectors after it);
// then, on the kernel stack, below a frame-sized slot for the general
// path, `crate::syscall::ipc_call` or `ipc_reply_recv` runs with the
// call's registers as its arguments (the handle, the two words, the
// capability moved in rcx for r10, the flags; and in r9 the selectors just
// stored, as one word). It returns the save area of
// the process to run (the fast path switched: every register comes from
// there, and `sysretq`, with rcx and r11 the rip and rflags saved there,
// which it checked canonical) or null (the slot holds the frame to leave
// with, through the trap exit's `iretq`).
.macro IPC_FAST handler
    cmp byte ptr [rip + {trace_on}], 0
    jne 2b
    mov [rip + exo_user_rsp], rsp
    mov rsp, [rip + {save_top}]
    SYSCALL_IRET_FRAME
    SYSCALL_PUSH_GPRS
    mov [rsp + {segments}], ds
    mov [rsp + {segments} + 2], es
    mov [rsp + {segments} + 4], fs
    mov [rsp + {segments} + 6], gs
    mov r9, [rsp + {segments}]
    mov rsp, [rip + exo_kernel_rsp]
    sub rsp, {frame_size}
    mov rcx, r10
    call \handler
    test rax, rax
    jz exo_trap_return
    mov rsp, rax
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
    mov rcx, [rsp + 16]
    mov r11, [rsp + 32]
    mov rsp, [rsp + 40]
    sysretq
.endm
3:
    IPC_FAST {ipc_call}
5:
    IPC_FAST {ipc_reply_recv}

// Tracing on: `call`, `reply_recv` and the local calls above them build
// the same `TrapFrame` as the common trap path and leave through its exit,
// but enter `crate::syscall::ipc_entry` (the general dispatcher) straight
// from here, without the vector dispatch.
exo_syscall_ipc:
    SYSCALL_PUSH_GPRS
    mov rdi, rsp
    call {ipc_entry}
    jmp exo_trap_return

.section .data
.balign 8
.global exo_kernel_rsp
exo_user_rsp:
    .quad 0
exo_kernel_rsp:
    .quad 0
.section .text
"#,
    user_ss = const USER_SS,
    user_cs = const USER_CS,
    vector = const super::trap::SYSCALL_VECTOR,
    getpid = const abi::Sysnum::GetPid as u64,
    first_switching = const FIRST_SWITCHING,
    switching_span = const SWITCHING_SPAN,
    direct = sym crate::syscall::direct,
    ipc_entry = sym crate::syscall::ipc_entry,
    call = const abi::Sysnum::Call as u64,
    reply_recv = const abi::Sysnum::ReplyRecv as u64,
    save_top = sym SAVE_TOP,
    frame_size = const core::mem::size_of::<super::trap::TrapFrame>(),
    segments = const core::mem::offset_of!(super::trap::UserContext, segments),
    ipc_call = sym crate::syscall::ipc_call,
    ipc_reply_recv = sym crate::syscall::ipc_reply_recv,
    resume = const abi::Sysnum::Resume as u64,
    trace_on = sym TRACE_ON,
    current_pid = sym CURRENT_PID,
);

const _: () = assert!(
    core::mem::offset_of!(super::trap::UserContext, frame) == 0,
    "the IPC stub pushes the frame at the start of the save area"
);

/// The switching calls are one block of numbers, `FIRST_SWITCHING ..
/// FIRST_SWITCHING + SWITCHING_SPAN`: the stub tests the block with one
/// unsigned compare (however many switching calls there are), moving rax
/// down and back up with `lea`, which leaves the flags alone.
const FIRST_SWITCHING: u64 = min(abi::SWITCHING);
const SWITCHING_SPAN: u64 = abi::SWITCHING.len() as u64;

const fn min(numbers: &[u64]) -> u64 {
    let mut m = u64::MAX;
    let mut i = 0;
    while i < numbers.len() {
        if numbers[i] < m {
            m = numbers[i];
        }
        i += 1;
    }
    m
}

const _: () = assert!(
    abi::SWITCHING_MASK == ((1u64 << SWITCHING_SPAN) - 1) << FIRST_SWITCHING,
    "the switching calls must be one block of numbers: the stub tests a range"
);
const _: () = assert!(
    abi::MAX_LOCAL_ARGS <= 4,
    "the direct path passes four argument registers (rdi, rsi, rdx, r10)"
);
const _: () = assert!(
    abi::Sysnum::Call.switches()
        && abi::Sysnum::ReplyRecv.switches()
        && (abi::Sysnum::Call as u64) < abi::Sysnum::ReplyRecv as u64
        && (abi::Sysnum::Call as u64) < abi::Sysnum::Resume as u64,
    "the slow path sends `call` and every number above it but `resume` to the IPC path"
);
const _: () = assert!(
    !abi::Sysnum::GetPid.switches(),
    "the fast path answers getpid in place"
);

/// Whether syscall tracing is on (read by the fast path).
pub static TRACE_ON: AtomicBool = AtomicBool::new(false);
/// The running process's pid (read by the fast path).
pub static CURRENT_PID: AtomicU64 = AtomicU64::new(0);
/// The end of the running process's save area (`UserContext::frame`),
/// where the IPC stub pushes the caller's registers: set by
/// `sched::enter` whenever a process starts to run, so that it is always
/// the running process's (boxed, so it does not move) when a `syscall`
/// can arrive.
pub static SAVE_TOP: AtomicU64 = AtomicU64::new(0);

/// User data selector with RPL 3 (GDT slot 3).
pub const USER_SS: u64 = 0x1b;
/// User code selector with RPL 3 (GDT slot 4).
pub const USER_CS: u64 = 0x23;

extern "C" {
    fn exo_syscall_entry();
    static mut exo_kernel_rsp: u64;
}

/// The running process's save area, where the IPC stub has just saved its
/// registers (the `UserContext` that ends at [`SAVE_TOP`]'s frame).
pub fn ipc_saved() -> *const super::trap::UserContext {
    let top = SAVE_TOP.load(core::sync::atomic::Ordering::Relaxed) as *const super::trap::TrapFrame;
    top.wrapping_sub(1).cast()
}

/// The frame-sized slot the IPC stub leaves below the kernel stack's top
/// (the general path's frame when the fast path declines).
pub fn ipc_slot() -> *mut super::trap::TrapFrame {
    // SAFETY: written once in `init`, before any syscall; only read since.
    let top = unsafe { exo_kernel_rsp } as *mut super::trap::TrapFrame;
    top.wrapping_sub(1)
}

/// Programs EFER.SCE, STAR, LSTAR and SFMASK.
pub fn init() {
    let sel = super::gdt::selectors();
    assert_eq!(sel.user_data.0 as u64, USER_SS, "GDT layout changed");
    assert_eq!(sel.user_code.0 as u64, USER_CS, "GDT layout changed");
    // SAFETY: written once, before any syscall can happen.
    unsafe { exo_kernel_rsp = super::gdt::kernel_stack_top() };
    Star::write(
        sel.user_code,
        sel.user_data,
        sel.kernel_code,
        sel.kernel_data,
    )
    .expect("STAR selectors");
    LStar::write(VirtAddr::new(exo_syscall_entry as *const () as u64));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK,
    );
    // SAFETY: enabling `syscall` changes nothing until a program uses it;
    // NXE only gives meaning to the NO_EXECUTE bit our user mappings set.
    unsafe {
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS | EferFlags::NO_EXECUTE_ENABLE))
    };
}
