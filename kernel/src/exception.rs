//! Exceptions delivered to library OSes: the handler a process registers
//! (`exc_handler`), the delivery of a ring-3 fault to it (a lean assembly
//! fast path, [`FAST`], and the general path, [`deliver`]), and `resume`,
//! which loads a context the library OS wrote, sanitised.
//!
//! The handler lives in the process's [`UserContext`](crate::arch::trap::UserContext)
//! (a kernel-side field of the object model's saved registers). Whether a
//! delivery is pending (the handler runs and has not resumed) is the save
//! area's `pending` word: the kernel sets it as it delivers, the handler
//! clears it when it resumes, with `resume` or in ring 3 by itself (the
//! library OS can restore every register, RFLAGS as far as `popfq` goes,
//! RSP and RIP without the kernel). A fault while it is set is a nested
//! fault and ends the process, so a handler that faults cannot loop in the
//! kernel; a handler that clears it early only loses that check for itself.
//! A fault storm (fault, resume, fault, ...) is the program's own time:
//! every round returns to ring 3 with interrupts on, and the timer preempts
//! it like any loop.
//!
//! The fast path: registration (and every general delivery) *arms* a slot
//! of [`FAST`] with what the checks found (the save area's kernel address,
//! the entry, the stack), and the process's address space *watches* the
//! handler's three pages: a `protect` or `unmap` of one of them, or the end
//! of the space, disarms the slot (`fast_disarm`) before the change
//! returns. Frames stay RAM and stay the process's while they are mapped,
//! so an armed slot's save area is still the process's writable RAM. A
//! ring-3 #GP or #PF (the two that push an error code, which tells them
//! from a device MSI on their vector) of the running process, with
//! tracing off, an armed slot and no delivery pending, is then delivered
//! by `exo_exc_fast` (about 70 instructions: the trap stub, the save-area
//! writes, the `iretq`); anything else joins the common trap path. No lock:
//! one CPU; the slots are written only by kernel code, which runs with
//! interrupts off, and the fast path runs only on a fault from ring 3,
//! where no kernel code is in progress (an NMI handler touches no slot).
use crate::arch::syscall::{USER_CS, USER_SS};
use crate::arch::trap::TrapFrame;
use crate::memory::PAGE;
use crate::process::{Kernel, Process};
use abi::{
    exc_offsets as off, Error, ExceptionFrame, EXCEPTION_VECTORS, RESUME_RFLAGS, USER_MAP_TOP,
    USER_MIN, USER_TOP,
};
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_core::object::AddressSpace as _;
use zerocopy::IntoBytes;

// The save area starts with the trap frame, word for word: the fast path
// copies one into the other by these offsets.
const _: () = {
    type T = TrapFrame;
    assert!(offset_of!(T, r15) == off::R15 && offset_of!(T, r14) == off::R14);
    assert!(offset_of!(T, r13) == off::R13 && offset_of!(T, r12) == off::R12);
    assert!(offset_of!(T, r11) == off::R11 && offset_of!(T, r10) == off::R10);
    assert!(offset_of!(T, r9) == off::R9 && offset_of!(T, r8) == off::R8);
    assert!(offset_of!(T, rbp) == off::RBP && offset_of!(T, rdi) == off::RDI);
    assert!(offset_of!(T, rsi) == off::RSI && offset_of!(T, rdx) == off::RDX);
    assert!(offset_of!(T, rcx) == off::RCX && offset_of!(T, rbx) == off::RBX);
    assert!(offset_of!(T, rax) == off::RAX && offset_of!(T, vector) == off::VECTOR);
    assert!(offset_of!(T, error) == off::ERROR && offset_of!(T, rip) == off::RIP);
    assert!(offset_of!(T, cs) == off::CS && offset_of!(T, rflags) == off::RFLAGS);
    assert!(offset_of!(T, rsp) == off::RSP && offset_of!(T, ss) == off::SS);
    assert!(core::mem::size_of::<T>() == off::CR2);
};

/// Where a process's exceptions go, and the frames its three pages
/// mapped when it was registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handler {
    /// The handler's first instruction.
    pub entry: u64,
    /// The top of its exception stack (16-aligned).
    pub stack_top: u64,
    /// The save area: an [`ExceptionFrame`], 8-aligned, within one page.
    pub save: u64,
    /// The RAM frames (physical addresses) of the entry's, the stack's
    /// and the save area's page at registration. A delivery by the
    /// general path walks the page tables again and skips the full check
    /// if each page still maps the same frame the same way: a frame that
    /// was RAM is RAM for ever, so the memory-map lookup need not be
    /// repeated.
    frames: [u64; 3],
}

/// A process's exception state (whether a delivery is pending is the
/// save area's `pending` word).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExcState {
    /// The registered handler, if any.
    pub handler: Option<Handler>,
}

/// Slots of the fast path's table (a process uses slot `pid % FAST_SLOTS`).
const FAST_SLOTS: usize = 16;
/// Words of a slot (a power of two: the fast path shifts by it).
const SLOT_WORDS: usize = 8;
/// A slot's words: the pid that owns it (0: none), the save area's kernel
/// address and user address, the entry, the handler's first rsp (stack top
/// minus 8), the owner's PML4 (which names its address space).
const OWNER: usize = 0;
const SAVE_KVA: usize = 1;
const SAVE_UVA: usize = 2;
const ENTRY: usize = 3;
const STACK: usize = 4;
const PML4: usize = 5;

/// The fast path's table (see the module documentation): plain words,
/// read by `exo_exc_fast`, written only by the kernel with interrupts off.
static FAST: [[AtomicU64; SLOT_WORDS]; FAST_SLOTS] =
    [const { [const { AtomicU64::new(0) }; SLOT_WORDS] }; FAST_SLOTS];

/// Arms `pid`'s slot with handler `h` (checked just now) and watches its
/// pages in `p`'s space.
fn fast_arm(p: &mut Process, h: &Handler) {
    let i = p.pid as usize % FAST_SLOTS;
    let slot = &FAST[i];
    let words = [
        (OWNER, p.pid),
        (SAVE_KVA, save_area(h) as u64),
        (SAVE_UVA, h.save),
        (ENTRY, h.entry),
        (STACK, h.stack_top - 8),
        (PML4, p.space.pml4()),
    ];
    for (w, v) in words {
        slot[w].store(v, Relaxed);
    }
    let pages = pages(h.entry, h.stack_top, h.save).map(|(page, _)| page);
    p.space.watch(pages, i);
}

/// Disarms slot `slot` if the space whose PML4 is `pml4` still owns it
/// (called by the space when a watched page changes or the space ends).
pub fn fast_disarm(slot: usize, pml4: u64) {
    if let Some(s) = FAST.get(slot) {
        if s[PML4].load(Relaxed) == pml4 {
            s[OWNER].store(0, Relaxed);
        }
    }
}

/// Bytes of the save area.
const SAVE_LEN: u64 = core::mem::size_of::<ExceptionFrame>() as u64;

/// RFLAGS the handler starts with: IF and the always-one bit 1.
const HANDLER_RFLAGS: u64 = 0x202;

/// What a user page must be for a handler.
#[derive(Clone, Copy)]
enum Need {
    /// Executable RAM (the entry).
    Exec,
    /// Writable RAM (the stack, the save area).
    Write,
}

/// Checks one page of the caller: `NotMapped` if nothing is mapped there,
/// `PermissionDenied` if it is not what `need` asks for; its frame.
fn check_page(p: &Process, page: u64, need: Need) -> Result<u64, Error> {
    let (phys, flags) = p.space.translate(page).ok_or(Error::NotMapped)?;
    let fits = match need {
        Need::Exec => flags.exec,
        Need::Write => flags.write,
    };
    if fits && crate::syscall::is_ram(phys) {
        Ok(phys)
    } else {
        Err(Error::PermissionDenied)
    }
}

/// The pages a handler uses: the entry's, the stack's (under its top),
/// the save area's, with what each must be.
fn pages(entry: u64, stack_top: u64, save: u64) -> [(u64, Need); 3] {
    [
        (entry & !(PAGE - 1), Need::Exec),
        ((stack_top - 1) & !(PAGE - 1), Need::Write),
        (save & !(PAGE - 1), Need::Write),
    ]
}

/// Checks a handler's pieces against the caller's address space; the
/// handler with its frames.
fn check(p: &Process, entry: u64, stack_top: u64, save: u64) -> Result<Handler, Error> {
    let user = USER_MIN..USER_MAP_TOP;
    if !user.contains(&entry)
        || !stack_top.is_multiple_of(16)
        || stack_top <= USER_MIN
        || stack_top > USER_MAP_TOP
        || !save.is_multiple_of(8)
        || !user.contains(&save)
        // Within one page (so also below USER_MAP_TOP).
        || (save & (PAGE - 1)) + SAVE_LEN > PAGE
    {
        return Err(Error::InvalidAddress);
    }
    let mut frames = [0; 3];
    for (frame, (page, need)) in frames.iter_mut().zip(pages(entry, stack_top, save)) {
        *frame = check_page(p, page, need)?;
    }
    Ok(Handler {
        entry,
        stack_top,
        save,
        frames,
    })
}

/// Whether the handler's pages still map the frames they mapped when it
/// was registered, the same way (the cheap check at each use).
fn unchanged(p: &Process, h: &Handler) -> bool {
    pages(h.entry, h.stack_top, h.save)
        .iter()
        .zip(h.frames)
        .all(|(&(page, need), frame)| match p.space.translate(page) {
            Some((phys, flags)) => {
                phys == frame
                    && match need {
                        Need::Exec => flags.exec,
                        Need::Write => flags.write,
                    }
            }
            None => false,
        })
}

/// The handler, checked again for use: itself if its pages are unchanged,
/// else as registration checks it (with the frames it maps now).
fn recheck(p: &Process, h: &Handler) -> Result<Handler, Error> {
    if unchanged(p, h) {
        Ok(*h)
    } else {
        check(p, h.entry, h.stack_top, h.save)
    }
}

/// The save area of `h` (its frame checked RAM, writable, the caller's).
fn save_area(h: &Handler) -> *mut ExceptionFrame {
    crate::memory::phys_to_virt(h.frames[2] + (h.save & (PAGE - 1))).cast()
}

/// `exc_handler(entry, stack_top, save)`: registers (all three 0:
/// removes) the caller's handler; ends a pending delivery either way.
pub fn register(
    k: &mut Kernel,
    pid: u64,
    entry: u64,
    stack_top: u64,
    save: u64,
) -> Result<u64, Error> {
    let p = k.caller(pid)?;
    let handler = if (entry, stack_top, save) == (0, 0, 0) {
        None
    } else {
        Some(check(p, entry, stack_top, save)?)
    };
    p.space.unwatch();
    if let Some(h) = &handler {
        // SAFETY: `check` found the save area's page mapped writable to
        // this RAM frame; the area lies within the page.
        unsafe { (*save_area(h)).pending = 0 };
        fast_arm(p, h);
    }
    p.regs.exc = ExcState { handler };
    Ok(0)
}

/// Why a fault was not delivered (the process ends with this reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undelivered {
    /// No handler, or a vector handlers do not get: the report as ever.
    NoHandler,
    /// The fault came while the handler ran (before it resumed).
    Nested,
    /// The handler no longer passes its checks (unmapped since, say).
    Unusable(Error),
}

impl core::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Undelivered::NoHandler => Ok(()),
            Undelivered::Nested => write!(f, " in its exception handler (nested fault)"),
            Undelivered::Unusable(e) => write!(f, " with an unusable exception handler ({e:?})"),
        }
    }
}

/// Delivers the ring-3 exception in `frame` (page-fault address `cr2`) to
/// process `pid`'s handler: writes the save area and points `frame` at the
/// handler. On `Err` nothing was written and `frame` is unchanged.
pub fn deliver(
    k: &mut Kernel,
    pid: u64,
    frame: &mut TrapFrame,
    cr2: u64,
) -> Result<(), Undelivered> {
    let p = k.caller(pid).map_err(|_| Undelivered::NoHandler)?;
    let Some(h) = p.regs.exc.handler else {
        return Err(Undelivered::NoHandler);
    };
    if !EXCEPTION_VECTORS.contains(&frame.vector) {
        return Err(Undelivered::NoHandler);
    }
    let h = recheck(p, &h).map_err(Undelivered::Unusable)?;
    // SAFETY: `recheck` found the save area's page mapped writable in the
    // caller's space to this RAM frame; the area lies within the page.
    if unsafe { (*save_area(&h)).pending } != 0 {
        return Err(Undelivered::Nested);
    }
    let saved = ExceptionFrame {
        r15: frame.r15,
        r14: frame.r14,
        r13: frame.r13,
        r12: frame.r12,
        r11: frame.r11,
        r10: frame.r10,
        r9: frame.r9,
        r8: frame.r8,
        rbp: frame.rbp,
        rdi: frame.rdi,
        rsi: frame.rsi,
        rdx: frame.rdx,
        rcx: frame.rcx,
        rbx: frame.rbx,
        rax: frame.rax,
        vector: frame.vector,
        error: frame.error,
        rip: frame.rip,
        cs: frame.cs,
        rflags: frame.rflags,
        rsp: frame.rsp,
        ss: frame.ss,
        cr2,
        pending: 1,
    };
    // SAFETY: `recheck` found the save area's page mapped writable in the
    // caller's space to this RAM frame (in the offset mapping), and the
    // area lies within the page; the kernel holds no reference into it.
    unsafe { save_area(&h).write_unaligned(saved) };
    p.regs.exc = ExcState { handler: Some(h) };
    fast_arm(p, &h);
    frame.rip = h.entry;
    // As if the entry had been called: rsp = 8 mod 16.
    frame.rsp = h.stack_top - 8;
    frame.rflags = HANDLER_RFLAGS;
    frame.rdi = h.save;
    frame.rsi = saved.vector;
    frame.cs = USER_CS;
    frame.ss = USER_SS;
    Ok(())
}

/// `resume(ptr)`: the context at `ptr`, sanitised, as the frame to return
/// to; ends a pending delivery. The caller's frame is untouched on `Err`.
pub fn resume(k: &mut Kernel, pid: u64, ptr: u64) -> Result<TrapFrame, Error> {
    let p = k.caller(pid)?;
    if !ptr.is_multiple_of(8) {
        return Err(Error::InvalidAddress);
    }
    // The save area, if it is still where it was registered.
    let area = match p.regs.exc.handler {
        Some(h) if unchanged(p, &h) => Some((h.save, save_area(&h))),
        _ => None,
    };
    let c = match area {
        // SAFETY: `unchanged` found the save area's page mapped to the
        // registered RAM frame; the area lies within it.
        Some((save, area)) if save == ptr => unsafe { area.read_unaligned() },
        _ => {
            let mut c = ExceptionFrame::default();
            crate::syscall::copy_from_user_into(p, ptr, c.as_mut_bytes())?;
            c
        }
    };
    let frame = sanitise(&c)?;
    if let Some((_, area)) = area {
        // SAFETY: as above; writable RAM of the caller's.
        unsafe { (*area).pending = 0 };
    }
    Ok(frame)
}

/// The trap frame for context `c`: `rip` below `USER_MAP_TOP` (so `iretq`
/// never meets a non-canonical or kernel address), `rsp` in the lower half,
/// the user selectors whatever `c` says, and only [`RESUME_RFLAGS`] from
/// its flags (IF always on).
fn sanitise(c: &ExceptionFrame) -> Result<TrapFrame, Error> {
    if c.rip >= USER_MAP_TOP || c.rsp >= USER_TOP {
        return Err(Error::InvalidAddress);
    }
    Ok(TrapFrame {
        r15: c.r15,
        r14: c.r14,
        r13: c.r13,
        r12: c.r12,
        r11: c.r11,
        r10: c.r10,
        r9: c.r9,
        r8: c.r8,
        rbp: c.rbp,
        rdi: c.rdi,
        rsi: c.rsi,
        rdx: c.rdx,
        rcx: c.rcx,
        rbx: c.rbx,
        rax: c.rax,
        vector: crate::arch::trap::SYSCALL_VECTOR,
        error: 0,
        rip: c.rip,
        cs: USER_CS,
        rflags: (c.rflags & RESUME_RFLAGS) | HANDLER_RFLAGS,
        rsp: c.rsp,
        ss: USER_SS,
    })
}

// The delivery fast path (see the module documentation). The stubs of
// vectors 13 and 14 jump here only for the CPU's exception, told from a
// device MSI aimed at the vector by the error code the CPU pushed (QEMU's
// local APIC accepts vectors below 16 that real ones refuse; an MSI there
// goes to the common path, which acknowledges it as an interrupt), with
// the vector and the error code on the CPU's frame:
// [rsp] vector, +8 error, +16 rip, +24 cs, +32 rflags, +40 rsp, +48 ss.
// From ring 3, with tracing off, the running process's slot armed and no
// delivery pending, it writes the save area and rewrites the frame to enter
// the handler (rip = entry, rsp = stack top - 8, RFLAGS = IF, the user
// selectors, rdi = the save area, rsi = the vector; every other register
// as the program left it), and `iretq`s. Anything else goes to the common
// trap path with the frame as it came. Interrupts are off (interrupt gates).
core::arch::global_asm!(
    r#"
.section .text
.global exo_exc_fast
exo_exc_fast:
    test byte ptr [rsp + 24], 3
    jz exo_trap_common
    cmp byte ptr [rip + {trace_on}], 0
    jne exo_trap_common
    push rax
    push rbx
    push rcx
    // The CPU's frame is 24 bytes further now.
    mov rax, [rip + {current_pid}]
    mov ebx, eax
    and ebx, {slots} - 1
    shl ebx, {slot_shift}
    lea rcx, [rip + {fast}]
    add rbx, rcx
    cmp rax, [rbx + {owner}]
    jne 9f
    mov rax, [rbx + {save_kva}]
    cmp qword ptr [rax + {pending}], 0
    jne 9f
    mov [rax + {r15}], r15
    mov [rax + {r14}], r14
    mov [rax + {r13}], r13
    mov [rax + {r12}], r12
    mov [rax + {r11}], r11
    mov [rax + {r10}], r10
    mov [rax + {r9}], r9
    mov [rax + {r8}], r8
    mov [rax + {rbp}], rbp
    mov [rax + {rdi}], rdi
    mov [rax + {rsi}], rsi
    mov [rax + {rdx}], rdx
    mov rcx, [rsp]
    mov [rax + {rcx}], rcx
    mov rcx, [rsp + 8]
    mov [rax + {rbx}], rcx
    mov rcx, [rsp + 16]
    mov [rax + {rax}], rcx
    mov rsi, [rsp + 24]
    mov [rax + {vector}], rsi
    mov rcx, [rsp + 32]
    mov [rax + {error}], rcx
    mov rcx, [rsp + 40]
    mov [rax + {rip}], rcx
    mov rcx, [rsp + 48]
    mov [rax + {cs}], rcx
    mov rcx, [rsp + 56]
    mov [rax + {rflags}], rcx
    mov rcx, [rsp + 64]
    mov [rax + {rsp}], rcx
    mov rcx, [rsp + 72]
    mov [rax + {ss}], rcx
    xor ecx, ecx
    cmp esi, 14
    jne 1f
    mov rcx, cr2
1:
    mov [rax + {cr2}], rcx
    mov qword ptr [rax + {pending}], 1
    mov rcx, [rbx + {entry}]
    mov [rsp + 40], rcx
    mov qword ptr [rsp + 48], {user_cs}
    mov qword ptr [rsp + 56], {handler_rflags}
    mov rcx, [rbx + {stack}]
    mov [rsp + 64], rcx
    mov qword ptr [rsp + 72], {user_ss}
    mov rdi, [rbx + {save_uva}]
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
9:
    pop rcx
    pop rbx
    pop rax
    jmp exo_trap_common
"#,
    trace_on = sym crate::arch::syscall::TRACE_ON,
    current_pid = sym crate::arch::syscall::CURRENT_PID,
    fast = sym FAST,
    slots = const FAST_SLOTS,
    slot_shift = const SLOT_WORDS.trailing_zeros() + 3,
    owner = const OWNER * 8,
    save_kva = const SAVE_KVA * 8,
    save_uva = const SAVE_UVA * 8,
    entry = const ENTRY * 8,
    stack = const STACK * 8,
    pending = const off::PENDING,
    r15 = const off::R15,
    r14 = const off::R14,
    r13 = const off::R13,
    r12 = const off::R12,
    r11 = const off::R11,
    r10 = const off::R10,
    r9 = const off::R9,
    r8 = const off::R8,
    rbp = const off::RBP,
    rdi = const off::RDI,
    rsi = const off::RSI,
    rdx = const off::RDX,
    rcx = const off::RCX,
    rbx = const off::RBX,
    rax = const off::RAX,
    vector = const off::VECTOR,
    error = const off::ERROR,
    rip = const off::RIP,
    cs = const off::CS,
    rflags = const off::RFLAGS,
    rsp = const off::RSP,
    ss = const off::SS,
    cr2 = const off::CR2,
    user_cs = const USER_CS,
    user_ss = const USER_SS,
    handler_rflags = const HANDLER_RFLAGS,
);

const _: () = assert!(FAST_SLOTS.is_power_of_two() && SLOT_WORDS.is_power_of_two());
const _: () = assert!(PML4 < SLOT_WORDS);
