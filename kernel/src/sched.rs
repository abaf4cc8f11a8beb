//! The scheduler: round robin in pid order over the runnable processes,
//! preempted by the timer. Saves and loads the trap frame and the data
//! segment selectors and switches address spaces; which process runs next
//! is the object model's (`Procs::next_after`, which skips blocked ones).
//! When every live process is blocked, the CPU tops up the pool of zeroed
//! frames and halts in [`idle`] until an interrupt makes one runnable (a
//! timeout, or a device's interrupt bound to an endpoint).
use crate::arch::gdt::UserSegments;
use crate::arch::trap::TrapFrame;
use crate::process::{self, Kernel};
use core::sync::atomic::{AtomicU64, Ordering};

/// What runs after a switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A process is loaded into the frame.
    Run,
    /// Processes are alive but all blocked: [`idle`] must run.
    Idle,
    /// No process is left: the run is over.
    Done,
}

/// Frames the idle loop zeroes for the pool before each halt (the pool
/// holds 32).
const IDLE_REFILL: usize = 32;

/// Zeroed 64-frame blocks the idle loop adds to the pool before each halt
/// (one: 256 KiB of `rep stosq`, a bounded delay to the interrupt that
/// ends the halt).
const IDLE_BLOCK_REFILL: usize = 1;

/// Cycles (TSC) the CPU spent halted in [`idle`].
static HALTED_CYCLES: AtomicU64 = AtomicU64::new(0);

/// Halted cycles so far (for the run's last line).
pub fn halted_cycles() -> u64 {
    HALTED_CYCLES.load(Ordering::Relaxed)
}

/// Switches `frame` to the next runnable process after `after` (round
/// robin).
pub fn switch_after(k: &mut Kernel, after: u64, frame: &mut TrapFrame) -> Next {
    match k.procs().next_after(after) {
        Some(next) => {
            switch_to(k, next, frame);
            Next::Run
        }
        None if k.procs().is_empty() => Next::Done,
        None => Next::Idle,
    }
}

/// Switches `frame` to process `next` (runnable).
pub fn switch_to(k: &mut Kernel, next: u64, frame: &mut TrapFrame) {
    let Some(proc) = k.switch_current(next) else {
        return;
    };
    proc.space.activate();
    *frame = proc.regs.frame;
    proc.regs.segments.load();
    crate::arch::syscall::CURRENT_PID.store(next, Ordering::Relaxed);
}

/// Saves the running process's registers from `frame`.
pub fn save_current(k: &mut Kernel, frame: &TrapFrame) {
    let current = k.current();
    // The running process: found through the cached index.
    if let Some(proc) = k.procs_mut().running_mut(current) {
        proc.regs.frame = *frame;
        proc.regs.segments = UserSegments::read();
    }
}

/// Runs what [`switch_after`] decided, outside the kernel lock: nothing for
/// [`Next::Run`], the idle loop for [`Next::Idle`]. (`Done` ends the run
/// inside the lock, in the caller.)
pub fn after(next: Next, frame: &mut TrapFrame) {
    if next == Next::Idle {
        idle(frame);
    }
}

/// Every live process is blocked: halt until an interrupt, let the timer's
/// tick end expired waits, and leave with the first process that can run
/// loaded into `frame`. Runs without the kernel lock while halted
/// (interrupts arrive in ring 0 here: the timer counts and acknowledges,
/// nothing else takes a lock).
pub fn idle(frame: &mut TrapFrame) {
    // Nothing can ever wake anyone (no timeout, no bound interrupt): every
    // process waits for another that waits too. End them all, reported, and
    // the run with them, rather than halt for ever.
    process::with(|k| {
        if !k.can_wake() {
            crate::kprintln!("[exo] deadlock: every process is blocked and nothing can wake one");
            let pids: alloc::vec::Vec<u64> = k.procs().values().map(|p| p.pid).collect();
            for pid in pids {
                process::end(
                    k,
                    pid,
                    process::Ending::Faulted("deadlock: blocked for ever".into()),
                );
            }
            crate::finish(k);
        }
    });
    loop {
        // Nothing to run: the time to zero frames for the pool (bounded,
        // no lock held), before the CPU halts.
        crate::memory::refill_zero_pool(IDLE_REFILL);
        crate::memory::refill_zero_blocks(IDLE_BLOCK_REFILL);
        let start = crate::arch::rdtsc();
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        HALTED_CYCLES.fetch_add(crate::arch::rdtsc() - start, Ordering::Relaxed);
        let next = process::with(|k| {
            k.tick(crate::arch::apic::ticks());
            let after = k.current();
            let next = switch_after(k, after, frame);
            if next == Next::Done {
                crate::finish(k);
            }
            next
        });
        if next == Next::Run {
            return;
        }
    }
}
