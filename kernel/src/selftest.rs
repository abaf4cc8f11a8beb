//! Boot-time self tests, chosen by a `!selftest` ramdisk entry (the QEMU
//! tests use them): `breakpoint` (reported, execution continues),
//! `pagefault` (reported with its address, failure exit), `ticks` (the local
//! APIC timer advances).
use crate::arch::apic;
use crate::kprintln;

/// Runs self test `name`.
pub fn run(name: &str) {
    match name {
        "breakpoint" => {
            x86_64::instructions::interrupts::int3();
            kprintln!("selftest breakpoint: execution continued");
        }
        "pagefault" => {
            let addr = 0xdead_b000 as *const u64;
            // SAFETY: deliberately unsound: this address is unmapped and the
            // page fault handler ends the run. That is the test.
            let value = unsafe { core::ptr::read_volatile(addr) };
            kprintln!("selftest pagefault: read {value:#x}: NOT REACHED");
        }
        "ticks" => {
            let start = apic::ticks();
            let begin = crate::arch::rdtsc();
            while apic::ticks() < start + 10 {
                x86_64::instructions::interrupts::enable_and_hlt();
                x86_64::instructions::interrupts::disable();
            }
            kprintln!(
                "selftest ticks: {} -> {} ({} TSC cycles for 10 ticks at {} Hz)",
                start,
                apic::ticks(),
                crate::arch::rdtsc() - begin,
                apic::TICK_HZ
            );
        }
        other => kprintln!("selftest {other}: unknown test"),
    }
}
