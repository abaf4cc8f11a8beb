//! What happens on a trap: timer ticks, and CPU exceptions reported with
//! their vector, error code, RIP and (page faults) CR2. A fault in the
//! kernel ends the run with a failure verdict; a breakpoint is reported and
//! execution continues.
use crate::arch::pic;
use crate::arch::trap::{exception_name, TrapFrame, SYSCALL_VECTOR};
use crate::arch::{exit, Verdict};
use crate::kprintln;
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
        // driver programmed. Note it and carry on, wherever it landed.
        kprintln!("NMI at rip={:#x}: ignored", frame.rip);
        return;
    }
    if frame.from_user() {
        // A fault in a library OS ends that process only.
        let why = describe(frame);
        process::with(|k| {
            let current = k.current();
            process::end(k, current, process::Ending::Faulted(why));
            if !crate::sched::switch_after(k, current, frame) {
                crate::finish(k);
            }
        });
        return;
    }
    if vector == 3 && !frame.from_user() {
        kprintln!("breakpoint at rip={:#x}: continuing", frame.rip);
        return;
    }
    report(frame);
    exit(Verdict::Failure)
}

/// What an exception was: name, vector, RIP, error code and, for page
/// faults, the faulting address (CR2). Used by both reports.
fn describe(frame: &TrapFrame) -> alloc::string::String {
    let mut s = alloc::format!(
        "{} (vector {}) at rip={:#x} error={:#x}",
        exception_name(frame.vector),
        frame.vector,
        frame.rip,
        frame.error
    );
    if frame.vector == 14 {
        let cr2 = x86_64::registers::control::Cr2::read_raw();
        s.push_str(&alloc::format!(" cr2={cr2:#x}"));
    }
    s
}

/// Prints the report of an exception in the kernel.
pub fn report(frame: &TrapFrame) {
    crate::serial::emergency(format_args!(
        "EXCEPTION: {} rsp={:#x}",
        describe(frame),
        frame.rsp
    ));
}
