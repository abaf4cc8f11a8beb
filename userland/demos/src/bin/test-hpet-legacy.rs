//! test-hpet-legacy: a driver that takes IRQ 0 away from the PIT. It
//! claims the HPET, sets `LEG_RT_CNF` (legacy replacement: HPET timer 0
//! replaces the PIT on IRQ 0, timer 1 the RTC on IRQ 8; with the counter
//! not running, nothing ticks on IRQ 0 at all), and exits with it set. Preemption must not care: the kernel's timer
//! is the local APIC's, which no driver can claim (`test-preempt` checks
//! it goes on after this exits).
#![no_std]
#![no_main]

use libos::{println, Error};

libos::entry!(main);

const HPET: u64 = 0xfed0_0000;
const CONFIGURATION: usize = 0x10;
const LEG_RT_CNF: u64 = 1 << 1;

fn main() -> Result<(), Error> {
    let hpet = exo_demos::claim("test-hpet-legacy", &"the HPET", HPET, 0x400)?;
    let config = hpet.read64(CONFIGURATION);
    hpet.write64(CONFIGURATION, config | LEG_RT_CNF);
    println!(
        "test-hpet-legacy: HPET configuration {config:#x} -> {:#x} (legacy replacement on: IRQ 0 is the HPET's now), exiting with it set",
        hpet.read64(CONFIGURATION)
    );
    Ok(())
}
