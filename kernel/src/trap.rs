//! What happens on a trap: timer ticks, NMIs and other interrupts (counted
//! without a lock, reported later), and CPU exceptions: in ring 3 delivered
//! to the process's handler ([`crate::exception`]) or reported with their
//! vector, error code, RIP and (page faults) CR2 as the process ends. A fault in the kernel
//! ends the run with a failure verdict; a breakpoint is reported and
//! execution continues.
use crate::arch::trap::{exception_name, TrapFrame, SYSCALL_VECTOR};
use crate::arch::{apic, pic};
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
    if vector == 2 {
        // Nothing in exo raises NMIs; one can only come from hardware a
        // driver programmed, and it can land anywhere, even where the
        // console or the kernel lock is held: count it, take no lock, and
        // let the timer report it.
        events::nmi(frame.rip, frame.from_user());
        return;
    }
    // An interrupt the local APIC delivered has its vector in service; an
    // exception never does. So a device's MSI on an exception vector
    // (16..31) is not taken for that exception.
    let vector = vector as u8;
    if vector >= 32 || apic::in_service(vector) {
        interrupt(vector, frame);
        return;
    }
    if frame.from_user() {
        // A fault in a library OS goes to its handler, or ends that
        // process only.
        let fault = Fault::of(frame);
        let next = process::with(|k| {
            let current = k.current();
            let cr2 = fault.cr2.unwrap_or(0);
            let undelivered = match crate::exception::deliver(k, current, frame, cr2) {
                Ok(()) => {
                    trace_delivery(current, &fault, frame.rip);
                    return crate::sched::Next::Run;
                }
                Err(why) => why,
            };
            // Ending a process allocates anyway (its results record); the
            // report above is printed before, allocation-free.
            let why = alloc::format!("{fault}{undelivered}");
            process::end(k, current, process::Ending::Faulted(why));
            let next = crate::sched::switch_after(k, current, frame);
            if next == crate::sched::Next::Done {
                crate::finish(k);
            }
            next
        });
        crate::sched::after(next, frame);
        return;
    }
    if vector == 3 {
        crate::serial::emergency(format_args!(
            "breakpoint at rip={:#x}: continuing",
            frame.rip
        ));
        return;
    }
    report(frame);
    exit(Verdict::Failure)
}

/// Zeroed frames a timer tick may add to the pool (each one `rep stosq`
/// of 4 KiB: about 515 instructions, 100-200 cycles on hardware).
const TICK_REFILL: usize = 8;

/// With tracing on, a delivered exception is a plain kernel line beside
/// the syscall records (which show the handler's calls, `resume` too).
fn trace_delivery(pid: u64, fault: &Fault, handler: u64) {
    if crate::arch::syscall::TRACE_ON.load(core::sync::atomic::Ordering::Relaxed) {
        crate::kprintln!(
            "[exo] trace: pid {pid}: {fault} delivered to its handler at {handler:#x}"
        );
    }
}

/// An interrupt: the timer ticks and preempts (interrupts arrive only in
/// ring 3 or in the kernel's idle `hlt`, where no lock is held, so it may
/// print); anything else (only a device's MSI can send one: the PICs are
/// masked) is acknowledged and counted.
fn interrupt(vector: u8, frame: &mut TrapFrame) {
    match vector {
        apic::TIMER_VECTOR => {
            apic::tick();
            apic::end_of_interrupt();
            events::report();
            if frame.from_user() {
                // A program was running, so no lock is held: top the pool
                // of zeroed frames up a little, off every call path. Then
                // expired waits end, and preemption: round robin (the
                // preempted process is runnable, so someone runs).
                crate::memory::refill_zero_pool(TICK_REFILL);
                process::with(|k| {
                    k.tick(apic::ticks());
                    let current = k.current();
                    crate::sched::save_current(k, frame);
                    crate::sched::switch_after(k, current, frame);
                });
            }
        }
        // A true spurious interrupt sets no in-service bit and must not be
        // acknowledged; anything else delivered on any vector (a device's
        // MSI can name the spurious vector too) must be, or its in-service
        // bit would hold back every interrupt of its priority class and
        // below, the timer's included.
        _ => {
            if (pic::PIC_BASE..pic::PIC_BASE + 16).contains(&vector) {
                pic::end_of_interrupt(vector);
            }
            let delivered = apic::in_service(vector);
            if delivered {
                apic::end_of_interrupt();
            }
            // A vector a driver bound: a message on its endpoint, and the
            // woken driver runs at once (interrupt to driver without a
            // round of the scheduler). Interrupts arrive in ring 3 or in
            // the idle loop, where the kernel lock is free.
            let bound = delivered
                && exo_core::object::IRQ_VECTORS.contains(&vector)
                && process::with(|k| match k.irq_fire(vector) {
                    None => false,
                    Some(woke) => {
                        if let (Some(pid), true) = (woke, frame.from_user()) {
                            crate::sched::save_current(k, frame);
                            crate::sched::switch_to(k, pid, frame);
                        }
                        true
                    }
                });
            if !bound {
                events::unexpected(vector);
            }
        }
    }
}

/// Events counted where nothing may be printed (an NMI can interrupt the
/// console's lock holder) and reported by the next timer tick and at the
/// end of the run. Lock-free: atomics only.
pub mod events {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    static NMIS: AtomicU64 = AtomicU64::new(0);
    static NMIS_IN_KERNEL: AtomicU64 = AtomicU64::new(0);
    static LAST_NMI_RIP: AtomicU64 = AtomicU64::new(0);
    static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
    static LAST_UNEXPECTED: AtomicU64 = AtomicU64::new(0);
    static REPORTED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

    /// Counts an NMI that interrupted `rip` (in a program or the kernel).
    pub fn nmi(rip: u64, in_user: bool) {
        LAST_NMI_RIP.store(rip, Relaxed);
        if !in_user {
            NMIS_IN_KERNEL.fetch_add(1, Relaxed);
        }
        NMIS.fetch_add(1, Relaxed);
    }

    /// Counts an interrupt nobody asked for.
    pub fn unexpected(vector: u8) {
        LAST_UNEXPECTED.store(u64::from(vector), Relaxed);
        UNEXPECTED.fetch_add(1, Relaxed);
    }

    /// NMIs and unexpected interrupts so far.
    pub fn counts() -> (u64, u64) {
        (NMIS.load(Relaxed), UNEXPECTED.load(Relaxed))
    }

    /// Prints a line for what was counted since the last report. Only where
    /// no lock is held (the timer interrupt, the end of the run).
    pub fn report() {
        let (nmis, unexpected) = counts();
        let seen = REPORTED[0].load(Relaxed);
        if nmis != seen {
            REPORTED[0].store(nmis, Relaxed);
            crate::kprintln!(
                "[exo] {} NMI(s) ignored (last at rip={:#x}; {nmis} in all, {} in the kernel)",
                nmis - seen,
                LAST_NMI_RIP.load(Relaxed),
                NMIS_IN_KERNEL.load(Relaxed)
            );
        }
        let seen = REPORTED[1].load(Relaxed);
        if unexpected != seen {
            REPORTED[1].store(unexpected, Relaxed);
            crate::kprintln!(
                "[exo] {} unexpected interrupt(s) ignored (last on vector {}; {unexpected} in all)",
                unexpected - seen,
                LAST_UNEXPECTED.load(Relaxed)
            );
        }
    }
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
