//! The scheduler: round robin in pid order over the runnable processes,
//! preempted by the timer. Saves and loads the trap frame and the data
//! segment selectors and switches address spaces (the IPC fast path's
//! switch, [`switch_saved`], copies no registers: the stub saved the
//! caller's in place and loads the next one's from its save area, which
//! [`enter`] names in `arch::syscall::SAVE_TOP`); which process runs next
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
    let to = enter(k, next);
    if !to.is_null() {
        // SAFETY: `enter` returned the save area of `next`, which is live
        // (its record is boxed and `k` is held); `frame` is elsewhere (the
        // kernel stack or the boot stack).
        *frame = unsafe { to.read() };
    }
}

/// Makes process `next` (runnable) the running one: its address space, its
/// segments, the running pid, and [`SAVE_TOP`](crate::arch::syscall::SAVE_TOP)
/// (where the IPC stub saves its registers at its next `call` or
/// `reply_recv`). Returns its save area, whose registers the caller
/// loads, or null (nothing changed) if it is not live.
pub fn enter(k: &mut Kernel, next: u64) -> *const TrapFrame {
    enter_with(k, next, None)
}

/// [`enter`], with `loaded` what the segment registers hold now (as
/// [`UserSegments::bits`]), if known: their load is skipped when `next`'s
/// are the same.
#[inline(always)]
fn enter_with(k: &mut Kernel, next: u64, loaded: Option<u64>) -> *const TrapFrame {
    let Some(proc) = k.switch_current(next) else {
        return core::ptr::null();
    };
    proc.space.activate();
    if Some(proc.regs.segments.bits()) != loaded {
        proc.regs.segments.load();
    }
    crate::arch::syscall::CURRENT_PID.store(next, Ordering::Relaxed);
    let save: *mut TrapFrame = &mut proc.regs.frame;
    // The save area is boxed (`UserContext` behind `process::Hw::Regs`):
    // it does not move while the process lives, even when the process
    // table shifts its records; and the process cannot end before it next
    // enters the kernel, when the stub has used the address.
    crate::arch::syscall::SAVE_TOP.store(save.wrapping_add(1) as u64, Ordering::Relaxed);
    save
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

/// The IPC fast path's switch to `next` (runnable): the running process's
/// registers and selectors are in its save area already (the stub put them
/// there; `segments` are the selectors, still in the registers, as
/// [`UserSegments::bits`]), so this is [`enter`] `next`, loading its
/// selectors only if they differ. Returns `next`'s save area, or null
/// (nothing changed) if it is not live.
#[inline(always)]
pub fn switch_saved(k: &mut Kernel, next: u64, segments: u64) -> *const TrapFrame {
    enter_with(k, next, Some(segments))
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
