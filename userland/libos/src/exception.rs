//! Exceptions handled by the library OS: one handler per program, a plain
//! Rust `fn` that gets the interrupted context as a typed
//! [`ExceptionFrame`] (vector, error code, `cr2`, every register, all
//! writable) and says whether to [`Action::Resume`] it (through the
//! kernel's `resume`, which sanitises what the handler changed) or to
//! [`Action::Kill`] the program (the kernel then reports the fault as it
//! would without a handler).
//!
//! This module owns the exception stack (16 KiB) and the save area, both
//! statics, and the entry point the kernel jumps to.
//!
//! The handler runs on the exception stack while the program is stopped
//! wherever it faulted, possibly inside the heap allocator or `println!`
//! with their locks held: it must not allocate or print (spin locks would
//! spin for ever). A fault inside the handler ends the program (a nested
//! fault).
use crate::{sys, Error};
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
}));
/// The registered [`Handler`] as an address (0: none).
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Registers `handler` for the program's faults (#DE, #BP, #UD, #NM, #GP,
/// #PF, #AC), replacing any other.
pub fn register(handler: Handler) -> Result<(), Error> {
    HANDLER.store(handler as usize, Ordering::Relaxed);
    let stack_top = STACK.0.get() as u64 + STACK_BYTES as u64;
    // SAFETY: `entry` takes the save area in rdi and never returns; the
    // stack and the save area are this module's statics, used by nothing
    // but the handler.
    unsafe { sys::exc_handler(entry as *const () as u64, stack_top, SAVE.0.get() as u64) }
}

/// Removes the handler: faults end the program again.
pub fn unregister() -> Result<(), Error> {
    // SAFETY: removing registers nothing the kernel could write.
    unsafe { sys::exc_handler(0, 0, 0) }
}

/// Where the kernel starts the handler: rdi = the save area, rsp = the top
/// of [`STACK`] minus 8 (as after a call).
extern "C" fn entry(save: *mut ExceptionFrame) -> ! {
    let handler = HANDLER.load(Ordering::Relaxed);
    let action = if handler == 0 {
        Action::Kill
    } else {
        // SAFETY: `HANDLER` only ever holds a `Handler` stored by `register`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
        // SAFETY: the kernel just wrote the save area; the interrupted
        // code is stopped and nothing else refers to it until we resume.
        handler(unsafe { &mut *save })
    };
    if action == Action::Kill {
        let _ = unregister();
    }
    // SAFETY: the context is the interrupted one, as the handler left it;
    // after Kill the fault simply repeats without a handler.
    let refused = unsafe { sys::resume(save) };
    // Only a context the handler broke is refused.
    crate::println!("libos: resume refused: {refused}");
    sys::exit(abi::exit_code::PANIC)
}
