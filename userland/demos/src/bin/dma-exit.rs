//! dma-exit: a driver that exits in the middle of a DMA (issue 17). It
//! fills edu's buffer with 0xee (a transfer from its own mapped buffer),
//! copies it into its target frame once (so the IOMMU caches that
//! translation), gives `dma-victim` a copy of edu's device capability
//! (so the function outlives it: only its own mappings go) and the target's
//! address, starts a second transfer (edu takes 100 ms of virtual time)
//! and exits at once, holding everything. The kernel takes its frames out of the
//! device's DMA address space and flushes the IOTLB before it frees them,
//! so when `dma-victim` takes the freed frame and the transfer comes, it
//! is blocked: the victim's bytes stay. A driver only with the boot option
//! `drivers=dma-exit`.
#![no_std]
#![no_main]

use abi::IoFlags;
use exo_demos::edu::{self, DMA_LIMIT, EDU_BUFFER};
use exo_demos::pci::{COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, DmaBuffer, Error};

libos::entry!(main);

/// `dma-victim`'s command: watch this frame after I end.
const WATCH: u64 = 5;

fn main() -> Result<(), Error> {
    let Some(e) = edu::claim("dma-exit")? else {
        return Ok(());
    };
    let device = e.config.device(e.f).ok_or(Error::InvalidArgument)?;
    let command = e.config.command(e.f);
    e.config
        .set_command(e.f, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    let mut source = DmaBuffer::for_device(device, 1, 1, DMA_LIMIT, IoFlags::READ)?;
    for i in 0..source.len() {
        source.write8(i, 0xee);
    }
    let target = DmaBuffer::for_device(device, 1, 1, DMA_LIMIT, IoFlags::WRITE)?;
    let clock = Endpoint::create(false)?;
    // RAM -> edu: edu's buffer now holds 0xee.
    e.start_dma(source.bus(), EDU_BUFFER, false);
    e.wait_dma("dma-exit", &clock)?;
    // Once into the target, waited for: the IOMMU now caches its
    // translation, which the kernel must flush before the frame goes.
    e.start_dma(EDU_BUFFER, target.bus(), true);
    e.wait_dma("dma-exit", &clock)?;
    if target.read8(0) != 0xee {
        println!("dma-exit: FAILED: the first DMA into its frame did not arrive");
        return Err(Error::InvalidArgument);
    }
    // The victim gets a copy of the device capability: the function stays
    // held after we end, so only our mappings go (not the whole space).
    let victim = SendCap::lookup("dma-victim")?;
    // SAFETY: a copy: our handle and everything mapped through it stay.
    unsafe { victim.call_with([WATCH, target.bus()], device, abi::SEND_COPY)? };
    // edu -> RAM again, and gone before it happens.
    e.start_dma(EDU_BUFFER, target.bus(), true);
    println!(
        "dma-exit: started a DMA of 0xee bytes into its frame {:#x}; exiting now, holding everything",
        target.bus()
    );
    sys::exit(0)
}
