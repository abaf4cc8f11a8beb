//! Exceptions handled by the library OS: one handler per program, a plain
//! Rust `fn` that gets the interrupted context as a typed
//! [`ExceptionFrame`] (vector, error code, `cr2`, every register, all
//! writable) and says whether to [`Action::Resume`] it or to
//! [`Action::Kill`] the program (the kernel then reports the fault as it
//! would without a handler).
//!
//! Resuming is Aegis-style, without entering the kernel: the entry clears
//! the save area's `pending` word, reloads every register from the save
//! area, RFLAGS with `popfq` (which in ring 3 cannot change IF or IOPL:
//! nothing the program could not do itself), then RSP and RIP with a
//! RIP-relative load and an indirect jump, so the interrupted stack (its
//! red zone included) is not touched. What ring 3 cannot restore exactly
//! goes through the kernel's `resume`, which sanitises it: a set trap flag
//! (the #DB must come after the resumed instruction, not in this code), a
//! `rip` at or above `USER_MAP_TOP` or an `rsp` in the upper half (which
//! `resume` refuses, so the program ends with a clear report).
//!
//! This module owns the exception stack (16 KiB) and the save area, both
//! statics, and the entry point the kernel jumps to, which first serves
//! first touches of the demand-paged region ([`crate::demand`]) and gives
//! the handler everything else.
//!
//! The handler runs on the exception stack while the program is stopped
//! wherever it faulted, possibly inside the heap allocator or `println!`
//! with their locks held: it must not allocate or print (spin locks would
//! spin for ever). A fault inside the handler ends the program (a nested
//! fault).
use crate::{sys, Error};
use abi::exc_offsets as off;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

pub use abi::ExceptionFrame;

/// What to do with the interrupted context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Continue at `frame.rip` with the frame's registers.
    Resume,
    /// End the program: the handler is removed and the fault repeats,
    /// reported by the kernel.
    Kill,
}

/// A handler: the frame in, the decision out.
pub type Handler = fn(&mut ExceptionFrame) -> Action;

/// The exception stack's size.
pub const STACK_BYTES: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK_BYTES]>);

/// Aligned to 256 bytes so that it never crosses a page (the kernel
/// requires the save area within one page).
#[repr(C, align(256))]
struct Save(UnsafeCell<ExceptionFrame>);

// SAFETY: one thread per program; the kernel writes the save area and the
// stack only while the program is stopped, and only the handler (never
// two at once: a nested fault ends the program) touches them.
unsafe impl Sync for Stack {}
// SAFETY: as for `Stack`.
unsafe impl Sync for Save {}

static STACK: Stack = Stack(UnsafeCell::new([0; STACK_BYTES]));
static SAVE: Save = Save(UnsafeCell::new(ExceptionFrame {
    r15: 0,
    r14: 0,
    r13: 0,
    r12: 0,
    r11: 0,
    r10: 0,
    r9: 0,
    r8: 0,
    rbp: 0,
    rdi: 0,
    rsi: 0,
    rdx: 0,
    rcx: 0,
    rbx: 0,
    rax: 0,
    vector: 0,
    error: 0,
    rip: 0,
    cs: 0,
    rflags: 0,
    rsp: 0,
    ss: 0,
    cr2: 0,
    pending: 0,
}));
/// The registered [`Handler`] as an address (0: none).
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Registers `handler` for the program's faults (#DE, #BP, #UD, #NM, #GP,
/// #PF, #AC), replacing any other. (First touches of the demand-paged
/// region, [`crate::demand`], never reach it.)
pub fn register(handler: Handler) -> Result<(), Error> {
    HANDLER.store(handler as usize, Ordering::Relaxed);
    ensure_entry()
}

/// Registers this module's entry with the kernel (again: that also ends
/// any pending delivery), with or without a [`Handler`].
pub(crate) fn ensure_entry() -> Result<(), Error> {
    let stack_top = STACK.0.get() as u64 + STACK_BYTES as u64;
    // SAFETY: `entry` takes the save area in rdi and never returns; the
    // stack and the save area are this module's statics, used by nothing
    // but the handler.
    unsafe { sys::exc_handler(entry as *const () as u64, stack_top, SAVE.0.get() as u64) }
}

/// RFLAGS.TF.
const TRAP_FLAG: u64 = 0x100;

extern "C" {
    /// Continues in the context in [`SAVE`], without the kernel (see the
    /// module documentation).
    ///
    /// # Safety
    /// [`SAVE`] holds a context to continue: `rip` and `rsp` the program's
    /// own, RFLAGS without TF.
    fn exo_libos_resume() -> !;
}

// Ring-3 resume: every load is RIP-relative from the static save area, so
// no register is needed as a base, and the last two instructions set rsp
// and rip without touching the interrupted stack.
core::arch::global_asm!(
    ".global exo_libos_resume",
    "exo_libos_resume:",
    "push qword ptr [rip + {save} + {rflags}]",
    "mov qword ptr [rip + {save} + {pending}], 0",
    "mov r15, [rip + {save} + {r15}]",
    "mov r14, [rip + {save} + {r14}]",
    "mov r13, [rip + {save} + {r13}]",
    "mov r12, [rip + {save} + {r12}]",
    "mov r11, [rip + {save} + {r11}]",
    "mov r10, [rip + {save} + {r10}]",
    "mov r9, [rip + {save} + {r9}]",
    "mov r8, [rip + {save} + {r8}]",
    "mov rbp, [rip + {save} + {rbp}]",
    "mov rdi, [rip + {save} + {rdi}]",
    "mov rsi, [rip + {save} + {rsi}]",
    "mov rdx, [rip + {save} + {rdx}]",
    "mov rcx, [rip + {save} + {rcx}]",
    "mov rbx, [rip + {save} + {rbx}]",
    "mov rax, [rip + {save} + {rax}]",
    "popfq",
    "mov rsp, [rip + {save} + {rsp}]",
    "jmp qword ptr [rip + {save} + {rip}]",
    save = sym SAVE,
    rflags = const off::RFLAGS,
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
    rsp = const off::RSP,
    rip = const off::RIP,
);

/// Removes the handler: faults end the program again (except first
/// touches of the demand-paged region, which the entry keeps serving).
pub fn unregister() -> Result<(), Error> {
    HANDLER.store(0, Ordering::Relaxed);
    if crate::demand::active() {
        return Ok(());
    }
    remove_entry()
}

/// Removes the entry from the kernel: every fault ends the program.
fn remove_entry() -> Result<(), Error> {
    // SAFETY: removing registers nothing the kernel could write.
    unsafe { sys::exc_handler(0, 0, 0) }
}

/// Where the kernel starts the handler: rdi = the save area, rsp = the top
/// of [`STACK`] minus 8 (as after a call).
extern "C" fn entry(save: *mut ExceptionFrame) -> ! {
    let handler = HANDLER.load(Ordering::Relaxed);
    // SAFETY: the kernel just wrote the save area; nothing refers to it.
    let action = if crate::demand::serve(unsafe { &*save }) {
        Action::Resume
    } else if handler == 0 {
        Action::Kill
    } else {
        // SAFETY: `HANDLER` only ever holds a `Handler` stored by `register`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
        // SAFETY: the kernel just wrote the save area; the interrupted
        // code is stopped and nothing else refers to it until we resume.
        handler(unsafe { &mut *save })
    };
    if action == Action::Kill {
        let _ = remove_entry();
    } else if save == SAVE.0.get() {
        // SAFETY: the save area is ours and nothing else refers to it now.
        let f = unsafe { &mut *save };
        if f.rflags & TRAP_FLAG == 0 && f.rip < abi::USER_MAP_TOP && f.rsp < abi::USER_TOP {
            f.rflags = (f.rflags & abi::RESUME_RFLAGS) | 0x202;
            // SAFETY: the context is the interrupted one as the handler
            // left it, with RFLAGS as `resume` would take them.
            unsafe { exo_libos_resume() }
        }
    }
    // SAFETY: the context is the interrupted one, as the handler left it;
    // after Kill the fault simply repeats without a handler.
    let refused = unsafe { sys::resume(save) };
    // Only a context the handler broke is refused.
    crate::println!("libos: resume refused: {refused}");
    sys::exit(abi::exit_code::PANIC)
}
