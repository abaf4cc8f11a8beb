//! test-nmi-driver: a driver that makes its device raise NMIs. It points
//! QEMU's `edu` device's MSI at the local APIC with delivery mode NMI and
//! runs 20 DMAs that interrupt when done. A DMA takes 100 ms of virtual
//! time, so each NMI comes whenever the device finishes, mostly while
//! `test-nmi-printer` is writing its long lines, that is in the middle of
//! the kernel's console output, with the console lock held. The kernel may
//! take no lock on the NMI path: it counts them, reports them at the next
//! timer tick, and the run finishes.
#![no_std]
#![no_main]

use exo_demos::pci::{self, COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::{println, sys, DmaBuffer, Error, PAGE_SIZE};

libos::entry!(main);

const DMAS: u32 = 20;
/// edu's interrupt acknowledge register (clears status bits) and its DMA
/// registers (see the `edu` demo): source, destination, count, command
/// (start, and interrupt when done).
const INTERRUPT_ACK: usize = 0x64;
const DMA_SOURCE: usize = 0x80;
const DMA_DESTINATION: usize = 0x88;
const DMA_COUNT: usize = 0x90;
const DMA_COMMAND: usize = 0x98;
const DMA_START: u64 = 1 << 0;
const DMA_IRQ: u64 = 1 << 2;
/// The device's buffer, and its 28-bit DMA reach.
const EDU_BUFFER: u64 = 0x40000;
const DMA_LIMIT: u64 = 1 << 28;
/// MSI: the local APIC's address (destination 0), and data with delivery
/// mode 100b (NMI) in bits 10..8.
const MSI_ADDRESS: u32 = 0xfee0_0000;
const MSI_DATA_NMI: u32 = 0b100 << 8;

fn main() -> Result<(), Error> {
    let Some((f, config)) = pci::find("test-nmi-driver", |v, d| (v, d) == (0x1234, 0x11e8))? else {
        println!("test-nmi-driver: FAILED: no edu device");
        return Err(Error::InvalidArgument);
    };
    let Some(msi) = pci::Msi::find(&config, f) else {
        println!("test-nmi-driver: FAILED: edu has no MSI capability");
        return Err(Error::InvalidArgument);
    };
    msi.enable(&config, MSI_ADDRESS, MSI_DATA_NMI);
    let Some(pci::Bar::Memory { address: bar0, .. }) = config.bars(f)[0] else {
        println!("test-nmi-driver: FAILED: no BAR0");
        return Err(Error::InvalidArgument);
    };
    let command = config.command(f);
    // DMA and MSI (a write by the device) need bus mastering.
    config.set_command(f, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    let regs = exo_demos::claim(
        "test-nmi-driver",
        &"edu's registers",
        bar0,
        PAGE_SIZE as usize,
    )?;
    let buffer = DmaBuffer::new(1, 1, DMA_LIMIT)?;
    println!("test-nmi-driver: edu's MSI now delivers NMIs; {DMAS} DMAs that interrupt when done");
    for _ in 0..DMAS {
        regs.write64(DMA_SOURCE, buffer.phys());
        regs.write64(DMA_DESTINATION, EDU_BUFFER);
        regs.write64(DMA_COUNT, 64);
        regs.write64(DMA_COMMAND, DMA_START | DMA_IRQ);
        let mut patience = 10_000_000u32;
        while regs.read64(DMA_COMMAND) & DMA_START != 0 && patience > 0 {
            sys::yield_now();
            patience -= 1;
        }
        regs.write32(INTERRUPT_ACK, u32::MAX);
        if patience == 0 {
            println!("test-nmi-driver: FAILED: a DMA did not finish");
            return Err(Error::WouldBlock);
        }
    }
    msi.disable(&config);
    config.set_command(f, command);
    drop(buffer);
    println!("test-nmi-driver: {DMAS} DMAs done, MSI off again");
    Ok(())
}
