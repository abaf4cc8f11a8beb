//! The scheduler: round robin in pid order, preempted by the timer. Saves
//! and loads the trap frame and the data segment selectors and switches
//! address spaces; which process runs next is the object model's
//! (`Procs::next_after`).
use crate::arch::gdt::UserSegments;
use crate::arch::trap::TrapFrame;
use crate::process::Kernel;

/// Switches `frame` to the next runnable process after `after` (round
/// robin). Returns false when no process is left.
pub fn switch_after(k: &mut Kernel, after: u64, frame: &mut TrapFrame) -> bool {
    let Some(next) = k.procs().next_after(after) else {
        return false;
    };
    let Some(proc) = k.procs_mut().get_mut(next) else {
        return false;
    };
    proc.space.activate();
    *frame = proc.regs.frame;
    proc.regs.segments.load();
    k.set_current(next);
    crate::arch::syscall::CURRENT_PID.store(next, core::sync::atomic::Ordering::Relaxed);
    true
}

/// Saves the running process's registers from `frame`.
pub fn save_current(k: &mut Kernel, frame: &TrapFrame) {
    let current = k.current();
    if let Some(proc) = k.procs_mut().get_mut(current) {
        proc.regs.frame = *frame;
        proc.regs.segments = UserSegments::read();
    }
}
