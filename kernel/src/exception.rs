//! Exceptions delivered to library OSes: the handler a process registers
//! (`exc_handler`), the delivery of a ring-3 fault to it, and `resume`,
//! which loads a context the library OS wrote, sanitised.
//!
//! The state lives in the process's [`UserContext`](crate::arch::trap::UserContext)
//! (a kernel-side field of the object model's saved registers): the handler,
//! and whether a delivery is pending (the handler runs and has not resumed).
//! A fault while one is pending is a nested fault and ends the process, so
//! a handler that faults cannot loop in the kernel; a fault storm (fault,
//! resume, fault, ...) is the program's own time: every round returns to
//! ring 3 with interrupts on, and the timer preempts it like any loop.
use crate::arch::syscall::{USER_CS, USER_SS};
use crate::arch::trap::TrapFrame;
use crate::memory::PAGE;
use crate::process::{Kernel, Process};
use abi::{
    Error, ExceptionFrame, EXCEPTION_VECTORS, RESUME_RFLAGS, USER_MAP_TOP, USER_MIN, USER_TOP,
};
use exo_core::object::AddressSpace as _;
use zerocopy::IntoBytes;

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
    /// and the save area's page at registration. A delivery walks the
    /// page tables again and takes the fast path only if each page still
    /// maps the same frame the same way: a frame that was RAM is RAM for
    /// ever, so the memory-map lookup need not be repeated.
    frames: [u64; 3],
}

/// A process's exception state.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExcState {
    /// The registered handler, if any.
    pub handler: Option<Handler>,
    /// A delivery is pending: the handler has not resumed yet.
    pub delivering: bool,
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
    p.regs.exc = ExcState {
        handler,
        delivering: false,
    };
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
    let state = p.regs.exc;
    let Some(h) = state.handler else {
        return Err(Undelivered::NoHandler);
    };
    if !EXCEPTION_VECTORS.contains(&frame.vector) {
        return Err(Undelivered::NoHandler);
    }
    if state.delivering {
        return Err(Undelivered::Nested);
    }
    let h = recheck(p, &h).map_err(Undelivered::Unusable)?;
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
    };
    // SAFETY: `recheck` found the save area's page mapped writable in the
    // caller's space to this RAM frame (in the offset mapping), and the
    // area lies within the page; the kernel holds no reference into it.
    unsafe { save_area(&h).write_unaligned(saved) };
    p.regs.exc = ExcState {
        handler: Some(h),
        delivering: true,
    };
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
    let c = match p.regs.exc.handler {
        // The save area itself, still where it was: read it in place.
        Some(h) if h.save == ptr && unchanged(p, &h) => {
            // SAFETY: `unchanged` found the save area's page mapped to the
            // registered RAM frame; the area lies within it.
            unsafe { save_area(&h).read_unaligned() }
        }
        _ => {
            let mut c = ExceptionFrame::default();
            crate::syscall::copy_from_user_into(p, ptr, c.as_mut_bytes())?;
            c
        }
    };
    let frame = sanitise(&c)?;
    p.regs.exc.delivering = false;
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
