//! lspci: lists the PCI functions of bus 0 from user space.
//!
//! Claims bus 0's configuration space through ECAM (1 MiB at the base the
//! kernel read from ACPI's MCFG table and reports in `sys_info`; see
//! `exo_demos::pci`) as 256 device capabilities mapped uncached, lists
//! every function as `bus:dev.fn vendor:device class`, and sizes each BAR
//! (write all-ones, read back, restore). Holding the whole bus means no
//! other demo drives a PCI device meanwhile (the demos' convention), so
//! the sizing disturbs nobody.
#![no_std]
#![no_main]

use exo_demos::pci::{Ecam, Function, DEVICES, FUNCTIONS};
use libos::{println, sys, Error};

libos::entry!(main);

/// QEMU's edu device, which the machine always has.
const EDU: (u16, u16) = (0x1234, 0x11e8);

fn main() -> Result<(), Error> {
    let before = sys::frame_stats().device_by_caller;
    let info = sys::sys_info();
    let ecam = Ecam::bus0("lspci")?;
    println!(
        "lspci: bus 0 configuration space at phys {:#x} (ECAM from ACPI MCFG, buses {}..={}): {} device capabilities, mapped uncached",
        info.ecam_phys,
        info.ecam_bus_start,
        info.ecam_bus_end,
        sys::frame_stats().device_by_caller - before
    );
    let mut found = 0;
    let mut edu = false;
    for device in 0..DEVICES {
        for function in 0..FUNCTIONS {
            let f = Function::new(device, function);
            let Some((vendor, id)) = ecam.id(f) else {
                if function == 0 {
                    break; // no device: no other function either
                }
                continue;
            };
            found += 1;
            edu |= (vendor, id) == EDU;
            let class = ecam.class(f);
            println!(
                "lspci: {f} {vendor:04x}:{id:04x} class {class:06x} {}",
                class_name(class)
            );
            for (i, bar) in ecam.bars(f).iter().enumerate() {
                if let Some(bar) = bar {
                    println!("lspci:     BAR{i} {bar}");
                }
            }
            if function == 0 && ecam.header_type(f) & 0x80 == 0 {
                break; // a single-function device
            }
        }
    }
    drop(ecam);
    println!(
        "lspci: {found} functions; released bus 0 (device capabilities held: {})",
        sys::frame_stats().device_by_caller
    );
    if !edu {
        println!("lspci: FAILED: no edu device (1234:11e8) on bus 0");
        return Err(Error::InvalidArgument);
    }
    println!("lspci: ok");
    Ok(())
}

/// A name for the class codes q35 has (class and subclass).
fn class_name(class: u32) -> &'static str {
    match class >> 8 {
        0x0000 => "(unclassified)",
        0x0100 => "(SCSI storage)",
        0x0101 => "(IDE storage)",
        0x0106 => "(SATA storage)",
        0x0180 => "(storage)",
        0x0200 => "(Ethernet)",
        0x0300 => "(VGA)",
        0x0380 => "(display)",
        0x0600 => "(host bridge)",
        0x0601 => "(ISA bridge)",
        0x0604 => "(PCI bridge)",
        0x0c03 => "(USB)",
        0x0c05 => "(SMBus)",
        0x00ff | 0xff00 => "(other)",
        _ => "",
    }
}
