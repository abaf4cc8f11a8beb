//! What happens on a trap: timer ticks, and CPU exceptions reported with
//! their vector, error code, RIP and (page faults) CR2. A fault in the
//! kernel ends the run with a failure verdict; a breakpoint is reported and
//! execution continues.
use crate::arch::pic;
use crate::arch::trap::{exception_name, TrapFrame, SYSCALL_VECTOR};
use crate::arch::{exit, Verdict};
use crate::process;

/// Entry from the assembly stubs.
///
/// # Safety
/// Called only by `exo_trap_common` with a pointer to the frame it built on
/// the kernel stack.
pub unsafe extern "C" fn dispatch_from_asm(frame: *mut TrapFrame) {
    // SAFETY: the stub passes the frame it just pushed; nothing aliases it.
    dispatch(unsafe { &mut *frame });
}

fn dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector;
    if vector == SYSCALL_VECTOR {
        crate::syscall::dispatch(frame);
        return;
    }
    if (pic::PIC_BASE as u64..pic::PIC_BASE as u64 + 16).contains(&vector) {
        if vector == pic::TIMER_VECTOR as u64 {
            pic::tick();
        }
        pic::end_of_interrupt(vector as u8);
        if frame.from_user() && vector == pic::TIMER_VECTOR as u64 {
            // Preemption: round robin.
            process::with(|k| {
                let current = k.current();
                crate::sched::save_current(k, frame);
                crate::sched::switch_after(k, current, frame);
            });
        }
        return;
    }
    if vector == 2 {
        // Nothing in exo raises NMIs; one can only come from hardware a
        // driver programmed. Note it and carry on, wherever it landed (even
        // in the middle of a console line: hence `emergency`).
        crate::serial::emergency(format_args!("NMI at rip={:#x}: ignored", frame.rip));
        return;
    }
    if frame.from_user() {
        // A fault in a library OS ends that process only.
        let fault = Fault::of(frame);
        process::with(|k| {
            let current = k.current();
            // Ending a process allocates anyway (its results record); the
            // report above is printed before, allocation-free.
            let why = alloc::format!("{fault}");
            process::end(k, current, process::Ending::Faulted(why));
            if !crate::sched::switch_after(k, current, frame) {
                crate::finish(k);
            }
        });
        return;
    }
    if vector == 3 && !frame.from_user() {
        crate::serial::emergency(format_args!(
            "breakpoint at rip={:#x}: continuing",
            frame.rip
        ));
        return;
    }
    report(frame);
    exit(Verdict::Failure)
}

/// What an exception was: vector, RIP, error code and, for page faults,
/// the faulting address (CR2). Plain numbers, printed as name, vector,
/// RIP, error code and CR2 by `Display`: the reports allocate nothing (a
/// fault can come while the heap lock is held), and a killed process's
/// reason is kept in its result as this, not as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    vector: u64,
    rip: u64,
    error: u64,
    cr2: Option<u64>,
}

impl Fault {
    /// The exception `frame` records (CR2 is read now, for page faults).
    pub fn of(frame: &TrapFrame) -> Self {
        Fault {
            vector: frame.vector,
            rip: frame.rip,
            error: frame.error,
            cr2: (frame.vector == 14).then(x86_64::registers::control::Cr2::read_raw),
        }
    }
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (vector {}) at rip={:#x} error={:#x}",
            exception_name(self.vector),
            self.vector,
            self.rip,
            self.error
        )?;
        if let Some(cr2) = self.cr2 {
            write!(f, " cr2={cr2:#x}")?;
            if crate::loader::STACK_GUARD.contains(&cr2) {
                write!(
                    f,
                    ": stack overflow (hit the guard page below the {} KiB stack)",
                    abi::USER_STACK_PAGES * abi::PAGE_SIZE / 1024
                )?;
            }
        }
        Ok(())
    }
}

/// Prints the report of an exception in the kernel (allocation-free, and
/// printed even if the console lock is held).
pub fn report(frame: &TrapFrame) {
    crate::serial::emergency(format_args!(
        "EXCEPTION: {} rsp={:#x}",
        Fault::of(frame),
        frame.rsp
    ));
}
