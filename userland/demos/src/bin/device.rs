//! device: drives a real device from user space, the exokernel way.
//!
//! Claims the HPET's registers (physical 0xfed0_0000 on QEMU's q35) with a
//! `DeviceRegion` (a device capability per page, mapped uncached), reads
//! the capabilities register, runs the main counter for a moment and reads
//! it advance, then shows that a claimed device page is exclusive.
#![no_std]
#![no_main]

use libos::{println, sys, DeviceRegion, Error, Frame};

libos::entry!(main);

/// The HPET's register block (the ACPI default, what QEMU uses).
const HPET: u64 = 0xfed0_0000;
/// General capabilities and ID: period in femtoseconds in bits 63..32.
const CAPABILITIES: usize = 0x00;
/// General configuration: bit 0 runs the main counter.
const CONFIGURATION: usize = 0x10;
/// Main counter value.
const COUNTER: usize = 0xf0;

fn main() -> Result<(), Error> {
    let before = sys::frame_stats().device_by_caller;
    let hpet = DeviceRegion::new(HPET, 0x400)?;
    let claimed = sys::frame_stats().device_by_caller - before;
    println!(
        "device: claimed the HPET at phys {:#x} ({} device page(s))",
        hpet.phys(),
        claimed
    );
    let caps = hpet.read64(CAPABILITIES);
    let period_fs = caps >> 32;
    let vendor = (caps >> 16) & 0xffff;
    let timers = ((caps >> 8) & 0x1f) + 1;
    println!("device: vendor {vendor:#06x}, {timers} timers, tick {period_fs} fs");
    if period_fs == 0 || period_fs > 100_000_000 {
        println!("device: FAILED: that is not an HPET");
        return Err(Error::InvalidFrame);
    }

    let config = hpet.read64(CONFIGURATION);
    hpet.write64(CONFIGURATION, config | 1);
    let first = hpet.read64(COUNTER);
    for _ in 0..10 {
        sys::yield_now();
    }
    let second = hpet.read64(COUNTER);
    hpet.write64(CONFIGURATION, config);
    println!("device: main counter {first} -> {second}");
    if second <= first {
        println!("device: FAILED: the counter did not advance");
        return Err(Error::InvalidFrame);
    }

    match Frame::alloc_at(HPET) {
        Err(Error::FrameInUse) => println!("device: claim it twice refused: FrameInUse"),
        other => {
            println!(
                "device: FAILED: second claim gave {:?}",
                other.map(|f| f.handle())
            );
            return Err(Error::InvalidFrame);
        }
    }
    drop(hpet);
    let now = sys::frame_stats().device_by_caller;
    println!("device: released; device pages held: {now}");
    println!("device: ok");
    Ok(())
}
