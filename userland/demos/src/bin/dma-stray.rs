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

use exo_demos::edu::{self, DMA_LIMIT, EDU_BUFFER};
use exo_demos::pci::{Ecam, COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::ipc::Endpoint;
use libos::{println, DmaBuffer, Error};

libos::entry!(main);

/// What the victim buffer holds (the device's buffer holds zeros).
const FILL: u8 = 0xa5;

fn main() -> Result<(), Error> {
    let Some(edu::Edu { f, config, regs }) = edu::claim("dma-stray")? else {
        return Ok(());
    };
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
    edu::start_dma(&regs, EDU_BUFFER, victim.phys(), true);
    edu::wait_dma(&regs, "dma-stray", &Endpoint::create(false)?)?;
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
