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
use exo_demos::pci::{self, Bar, COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::ipc::{Endpoint, SendCap};
use libos::{println, sys, DmaBuffer, Error, PAGE_SIZE};

libos::entry!(main);

const VENDOR: u16 = 0x1234;
const DEVICE: u16 = 0x11e8;
const DMA_SOURCE: usize = 0x80;
const DMA_DESTINATION: usize = 0x88;
const DMA_COUNT: usize = 0x90;
const DMA_COMMAND: usize = 0x98;
const DMA_START: u64 = 1 << 0;
const DMA_TO_RAM: u64 = 1 << 1;
const EDU_BUFFER: u64 = 0x40000;
const DMA_BYTES: u64 = 4095;
const DMA_LIMIT: u64 = 1 << 28;
/// `dma-victim`'s command: watch this frame after I end.
const WATCH: u64 = 5;

fn main() -> Result<(), Error> {
    let found = match pci::find("dma-exit", |v, d| (v, d) == (VENDOR, DEVICE)) {
        Err(Error::PermissionDenied) => {
            println!(
                "dma-exit: not a driver here (boot option drivers=dma-exit makes it one): skipped"
            );
            return Ok(());
        }
        other => other?,
    };
    let Some((f, config)) = found else {
        println!("dma-exit: FAILED: no device {VENDOR:04x}:{DEVICE:04x} on bus 0");
        return Err(Error::InvalidArgument);
    };
    let Some(Bar::Memory { address: bar0, .. }) = config.bars(f)[0] else {
        println!("dma-exit: FAILED: BAR0 is not a memory BAR");
        return Err(Error::InvalidArgument);
    };
    let regs = exo_demos::claim("dma-exit", &"edu's registers", bar0, PAGE_SIZE as usize)?;
    let device = config.device(f).ok_or(Error::InvalidArgument)?;
    config.set_command(f, config.command(f) | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    let mut source = DmaBuffer::for_device(device, 1, 1, DMA_LIMIT, IoFlags::READ)?;
    for i in 0..source.len() {
        source.write8(i, 0xee);
    }
    let target = DmaBuffer::for_device(device, 1, 1, DMA_LIMIT, IoFlags::WRITE)?;
    // RAM -> edu, waited for: edu's buffer now holds 0xee.
    regs.write64(DMA_SOURCE, source.bus());
    regs.write64(DMA_DESTINATION, EDU_BUFFER);
    regs.write64(DMA_COUNT, DMA_BYTES);
    regs.write64(DMA_COMMAND, DMA_START);
    let clock = Endpoint::create(false)?;
    let mut steps = 0;
    while regs.read64(DMA_COMMAND) & DMA_START != 0 {
        if steps == 100 {
            println!("dma-exit: FAILED: the device never finished the DMA");
            return Err(Error::InvalidArgument);
        }
        let _ = clock.recv(5);
        steps += 1;
    }
    // Once into the target, waited for: the IOMMU now caches its
    // translation, which the kernel must flush before the frame goes.
    regs.write64(DMA_SOURCE, EDU_BUFFER);
    regs.write64(DMA_DESTINATION, target.bus());
    regs.write64(DMA_COUNT, DMA_BYTES);
    regs.write64(DMA_COMMAND, DMA_START | DMA_TO_RAM);
    while regs.read64(DMA_COMMAND) & DMA_START != 0 {
        let _ = clock.recv(5);
    }
    if target.read8(0) != 0xee {
        println!("dma-exit: FAILED: the first DMA into its frame did not arrive");
        return Err(Error::InvalidArgument);
    }
    // The victim gets a copy of the device capability: the function stays
    // held after we end, so only our mappings go (not the whole space).
    let victim = SendCap::lookup("dma-victim")?;
    // SAFETY: a copy: our handle and everything mapped through it stay.
    unsafe { victim.call_with([WATCH, target.bus()], device, abi::SEND_COPY)? };
    // edu -> RAM, and gone before it happens.
    regs.write64(DMA_SOURCE, EDU_BUFFER);
    regs.write64(DMA_DESTINATION, target.bus());
    regs.write64(DMA_COUNT, DMA_BYTES);
    regs.write64(DMA_COMMAND, DMA_START | DMA_TO_RAM);
    println!(
        "dma-exit: started a DMA of 0xee bytes into its frame {:#x}; exiting now, holding everything",
        target.bus()
    );
    sys::exit(0)
}
