//! hpet: drives the HPET from user space, the exokernel way.
//!
//! Claims the HPET's registers by physical address (0xfed0_0000, the
//! ACPI default that QEMU's q35 uses) with a `DeviceRegion`: a device
//! capability per page, mapped uncached. Reads the counter period from the
//! capabilities register, runs the main counter for a moment and reads it
//! advance, then shows that a claimed device page is exclusive: claiming
//! it a second time (a `DeviceFrame`) is refused until it is released.
#![no_std]
#![no_main]

use libos::{println, sys, DeviceFrame, Error};

libos::entry!(main);

/// The HPET's register block (the ACPI default, what QEMU uses).
const HPET: u64 = 0xfed0_0000;
/// General capabilities and ID: period in femtoseconds in bits 63..32.
const CAPABILITIES: usize = 0x00;
/// General configuration: bit 0 runs the main counter.
const CONFIGURATION: usize = 0x10;
/// Main counter value.
const COUNTER: usize = 0xf0;
/// Femtoseconds per second.
const FS_PER_S: u64 = 1_000_000_000_000_000;

fn main() -> Result<(), Error> {
    let before = sys::frame_stats().device_by_caller;
    let hpet = exo_demos::claim("hpet", &"the HPET", HPET, 0x400)?;
    println!(
        "hpet: claimed the HPET at phys {:#x} ({} device page(s)), mapped uncached",
        hpet.phys(),
        sys::frame_stats().device_by_caller - before
    );
    let caps = hpet.read64(CAPABILITIES);
    let period_fs = caps >> 32;
    let vendor = (caps >> 16) & 0xffff;
    let timers = ((caps >> 8) & 0x1f) + 1;
    if period_fs == 0 || period_fs > 100_000_000 {
        println!("hpet: FAILED: period {period_fs} fs: that is not an HPET");
        return Err(Error::InvalidFrame);
    }
    println!(
        "hpet: vendor {vendor:#06x}, {timers} timers, counter period {period_fs} fs ({} MHz)",
        FS_PER_S / period_fs / 1_000_000
    );

    let config = hpet.read64(CONFIGURATION);
    hpet.write64(CONFIGURATION, config | 1);
    let first = hpet.read64(COUNTER);
    for _ in 0..10 {
        sys::yield_now();
    }
    let second = hpet.read64(COUNTER);
    hpet.write64(CONFIGURATION, config);
    if second <= first {
        println!("hpet: FAILED: the main counter did not advance ({first} -> {second})");
        return Err(Error::InvalidFrame);
    }
    let elapsed_us = u128::from(second - first) * u128::from(period_fs) / 1_000_000_000;
    println!("hpet: main counter {first} -> {second}: advanced ({elapsed_us} us)");

    match DeviceFrame::claim(HPET) {
        Err(Error::FrameInUse) => println!("hpet: claiming it twice refused: FrameInUse"),
        other => {
            println!(
                "hpet: FAILED: a second claim gave {:?}",
                other.map(|f| f.handle())
            );
            return Err(Error::InvalidFrame);
        }
    }
    drop(hpet);
    let again = DeviceFrame::claim(HPET)?;
    println!(
        "hpet: released, then claimed again at phys {:#x}",
        again.phys()?
    );
    drop(again);
    println!(
        "hpet: released; device pages held: {}",
        sys::frame_stats().device_by_caller
    );
    println!("hpet: ok");
    Ok(())
}
