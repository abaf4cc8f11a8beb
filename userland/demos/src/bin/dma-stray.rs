//! dma-stray: a hostile driver's DMA through a PCI function it no longer
//! claims is blocked by VT-d (issue 17).
//!
//! Finds QEMU's `edu` (1234:11e8), claims its register page (BAR0) and a
//! DMA buffer it fills with 0xa5, turns on bus mastering, and then gives
//! the function's configuration page back: nobody claims the function any
//! more, so the kernel blocks its DMA (context entry not present). Keeping
//! the register page, it still programs the device to copy its (zeroed)
//! 4 KiB buffer into the RAM buffer, waits until the device says the
//! transfer is done, and checks that every byte is still 0xa5. Then it
//! claims the configuration page again (the kernel reports the blocked
//! write from the unit's fault record when it does) and turns bus
//! mastering off. Without an IOMMU (`--no-iommu`) the copy goes through
//! and the check fails: this program is for the IOMMU run only. It is not
//! one of the image tool's default drivers, so in a run that does not make
//! it one (`demos-all`) it says so and exits 0.
#![no_std]
#![no_main]

use exo_demos::pci::{self, Bar, Ecam, COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::ipc::Endpoint;
use libos::{println, DmaBuffer, Error, PAGE_SIZE};

libos::entry!(main);

const VENDOR: u16 = 0x1234;
const DEVICE: u16 = 0x11e8;
const DMA_SOURCE: usize = 0x80;
const DMA_DESTINATION: usize = 0x88;
const DMA_COUNT: usize = 0x90;
const DMA_COMMAND: usize = 0x98;
const DMA_START: u64 = 1 << 0;
const DMA_TO_RAM: u64 = 1 << 1;
/// The device's DMA buffer, in its own address space.
const EDU_BUFFER: u64 = 0x40000;
/// Bytes copied (see `edu`: one byte of the device buffer stays unused).
const DMA_BYTES: usize = 4095;
/// The device's 28-bit DMA limit.
const DMA_LIMIT: u64 = 1 << 28;
/// What the victim buffer holds (the device's buffer holds zeros).
const FILL: u8 = 0xa5;

fn main() -> Result<(), Error> {
    let found = match pci::find("dma-stray", |v, d| (v, d) == (VENDOR, DEVICE)) {
        // Not a driver in this run (it is in none by default: its test
        // makes it one, with the IOMMU on): nothing to show.
        Err(Error::PermissionDenied) => {
            println!("dma-stray: not a driver here (boot option drivers=dma-stray makes it one): skipped");
            return Ok(());
        }
        other => other?,
    };
    let Some((f, config)) = found else {
        println!("dma-stray: FAILED: no device {VENDOR:04x}:{DEVICE:04x} on bus 0");
        return Err(Error::InvalidArgument);
    };
    let Some(Bar::Memory { address: bar0, .. }) = config.bars(f)[0] else {
        println!("dma-stray: FAILED: BAR0 is not a memory BAR");
        return Err(Error::InvalidArgument);
    };
    let regs = exo_demos::claim("dma-stray", &"edu's registers", bar0, PAGE_SIZE as usize)?;
    let mut victim = DmaBuffer::new(1, 1, DMA_LIMIT)?;
    for i in 0..victim.len() {
        victim.write8(i, FILL);
    }
    let command = config.command(f);
    config.set_command(f, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    // From here nobody claims the function: the IOMMU blocks its DMA.
    drop(config);
    println!(
        "dma-stray: gave {f}'s configuration page back with bus mastering on; programming a DMA edu {EDU_BUFFER:#x} -> RAM {:#x}",
        victim.phys()
    );
    regs.write64(DMA_SOURCE, EDU_BUFFER);
    regs.write64(DMA_DESTINATION, victim.phys());
    regs.write64(DMA_COUNT, DMA_BYTES as u64);
    regs.write64(DMA_COMMAND, DMA_START | DMA_TO_RAM);
    // The device takes 100 ms of virtual time; wait in 50 ms steps.
    let clock = Endpoint::create(false)?;
    let mut steps = 0;
    while regs.read64(DMA_COMMAND) & DMA_START != 0 {
        if steps == 100 {
            println!("dma-stray: FAILED: the device never finished the DMA");
            return Err(Error::InvalidArgument);
        }
        let _ = clock.recv(5);
        steps += 1;
    }
    if let Some(i) = (0..victim.len()).find(|&i| victim.read8(i) != FILL) {
        println!(
            "dma-stray: FAILED: byte {i} of the buffer is {:#04x}: the DMA reached RAM",
            victim.read8(i)
        );
        return Err(Error::InvalidArgument);
    }
    println!(
        "dma-stray: the device finished; all {} bytes are still {FILL:#04x}: the DMA was blocked",
        victim.len()
    );
    // Claim the function again to turn bus mastering off.
    let config = Ecam::function("dma-stray", f)?;
    config.set_command(f, command);
    drop(config);
    drop(regs);
    drop(victim);
    println!("dma-stray: ok");
    Ok(())
}
