//! edu: drives QEMU's `edu` teaching device (PCI 1234:11e8) from user
//! space: MMIO registers, a computation, and DMA within the device's limit.
//!
//! Finds the device through ECAM (`exo_demos::pci`) and keeps its
//! configuration page, which makes this process its owner; turns on memory
//! decoding and bus mastering; claims BAR0's register page as a device
//! capability (mapped uncached); checks the identification and liveness
//! registers; has the device compute a factorial; then DMA: the device
//! reaches only the low 2^28 bytes (its default `dma_mask`; `-m 1G` gives
//! RAM above that), so both buffers are contiguous frames allocated with
//! `max_phys = 1 << 28`. The device copies one buffer into its own memory
//! and back out into the other; every byte is checked. Bus mastering is
//! turned off again before the buffers go back to the kernel. The driver
//! does not poll: it binds an interrupt vector to an endpoint of its own,
//! points the device's MSI at it, and blocks in `recv` until the device
//! says the factorial or the DMA is done.
//!
//! Registers (QEMU `hw/misc/edu.c`; 4-byte accesses below 0x80, 4 or 8
//! bytes from 0x80): 0x00 identification `0xRRrr00ed`, 0x04 liveness
//! (reads back the complement), 0x08 factorial, 0x20 status (bit 0: still
//! computing), 0x80 DMA source, 0x88 destination, 0x90 count, 0x98
//! command (bit 0 start, cleared when done; bit 1 direction: 0 RAM to the
//! device, 1 the device to RAM; bit 2 interrupt when done). The device's
//! buffer is 4 KiB at device address 0x40000.
#![no_std]
#![no_main]

use abi::IoFlags;
use exo_demos::edu::{
    DEVICE, DMA_BYTES, DMA_COMMAND, DMA_COUNT, DMA_DESTINATION, DMA_IRQ, DMA_LIMIT, DMA_SOURCE,
    DMA_START, DMA_TO_RAM, EDU_BUFFER, VENDOR,
};
use exo_demos::pci::{self, Bar, COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::ipc::{self, Endpoint};
use libos::{println, DeviceRegion, DmaBuffer, Error, PAGE_SIZE};

libos::entry!(main);

const IDENTIFICATION: usize = 0x00;
const LIVENESS: usize = 0x04;
const FACTORIAL: usize = 0x08;
const STATUS: usize = 0x20;
const STATUS_COMPUTING: u32 = 1 << 0;
/// Status bit 7: raise an interrupt when the factorial is done.
const STATUS_IRQ: u32 = 1 << 7;
/// Interrupt acknowledge: clears these status bits.
const INTERRUPT_ACK: usize = 0x64;

/// Identification register: version 1.0, magic 0xed.
const EDU_ID: u32 = 0x0100_00ed;
/// Timer ticks to wait for the device's interrupt (a DMA takes 100 ms of
/// virtual time; 10 ticks are 100 ms).
const PATIENCE: u64 = 500;

fn main() -> Result<(), Error> {
    let Some((f, config)) = pci::find("edu", |v, d| (v, d) == (VENDOR, DEVICE))? else {
        println!("edu: FAILED: no device {VENDOR:04x}:{DEVICE:04x} on bus 0");
        return Err(Error::InvalidArgument);
    };
    let Some(Bar::Memory {
        address: bar0,
        size,
        ..
    }) = config.bars(f)[0]
    else {
        println!("edu: FAILED: BAR0 is not a memory BAR");
        return Err(Error::InvalidArgument);
    };
    if bar0 == 0 {
        println!("edu: FAILED: the firmware left BAR0 unassigned");
        return Err(Error::InvalidArgument);
    }
    // The registers are in BAR0's first page; only that page is claimed.
    let regs = exo_demos::claim("edu", &"edu's registers", bar0, PAGE_SIZE as usize)?;
    // In the function's own DMA address space (behind VT-d it reaches
    // nothing else): the device reads the source, writes the destination.
    let device = config.device(f).ok_or(Error::InvalidArgument)?;
    let mut source = DmaBuffer::for_device(device, 1, 1, DMA_LIMIT, IoFlags::READ)?;
    let destination = DmaBuffer::for_device(device, 1, 1, DMA_LIMIT, IoFlags::WRITE)?;
    let command = config.command(f);
    config.set_command(f, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    println!(
        "edu: found {VENDOR:04x}:{DEVICE:04x} at {f}, BAR0 {bar0:#x} ({}); command {command:#06x} -> {:#06x} (memory, bus master)",
        pci::Size(size),
        config.command(f)
    );
    // Interrupts, not polling: a vector bound to our endpoint, the
    // device's MSI pointed at it; the driver blocks in recv.
    let irq = Endpoint::create(false)?;
    let to_irq = irq.mint(0xed)?;
    let vector = ipc::irq_bind(regs.handle(0).ok_or(Error::InvalidArgument)?, &to_irq)?;
    let Some(msi) = pci::Msi::find(&config, f) else {
        println!("edu: FAILED: no MSI capability");
        return Err(Error::InvalidArgument);
    };
    msi.enable(&config, abi::MSI_ADDRESS as u32, u32::from(vector));
    println!("edu: MSI on vector {vector:#x}, delivered to our endpoint");
    let wait = Wait { irq: &irq, vector };
    let result = drive(&regs, &mut source, &destination, &wait);
    msi.disable(&config);
    // The vector goes back (exit would release it too).
    let released = ipc::irq_unbind(regs.handle(0).ok_or(Error::InvalidArgument)?)?;
    println!("edu: released {released} interrupt vector");
    // Quiesce before anything goes back: without bus mastering the device
    // cannot reach the DMA buffers any more, so freeing them is safe even
    // if a transfer had not finished.
    config.set_command(f, command);
    drop((source, destination));
    drop(regs);
    drop(config);
    result?;
    println!("edu: ok");
    Ok(())
}

fn drive(
    regs: &DeviceRegion,
    source: &mut DmaBuffer,
    destination: &DmaBuffer,
    wait: &Wait,
) -> Result<(), Error> {
    let id = regs.read32(IDENTIFICATION);
    if id != EDU_ID {
        println!("edu: FAILED: identification {id:#010x}, expected {EDU_ID:#010x}");
        return Err(Error::InvalidArgument);
    }
    println!(
        "edu: identification {id:#010x}: version {}.{}",
        id >> 24,
        (id >> 16) & 0xff
    );

    let probe = 0x1234_5678;
    regs.write32(LIVENESS, probe);
    let answer = regs.read32(LIVENESS);
    if answer != !probe {
        println!("edu: FAILED: liveness {probe:#010x} -> {answer:#010x}");
        return Err(Error::InvalidArgument);
    }
    println!("edu: liveness {probe:#010x} -> {answer:#010x} (complement): alive");

    let n = 12;
    regs.write32(STATUS, STATUS_IRQ);
    regs.write32(FACTORIAL, n);
    wait.for_interrupt("the factorial", regs)?;
    if regs.read32(STATUS) & STATUS_COMPUTING != 0 {
        println!("edu: FAILED: interrupted before the factorial was done");
        return Err(Error::InvalidArgument);
    }
    let factorial = regs.read32(FACTORIAL);
    let expected: u32 = (1..=n).product();
    if factorial != expected {
        println!("edu: FAILED: {n}! = {factorial}, expected {expected}");
        return Err(Error::InvalidArgument);
    }
    println!("edu: the device computed {n}! = {factorial}");

    dma(regs, source, destination, wait)
}

fn dma(
    regs: &DeviceRegion,
    source: &mut DmaBuffer,
    destination: &DmaBuffer,
    wait: &Wait,
) -> Result<(), Error> {
    for buffer in [&*source, destination] {
        if buffer.bus() + buffer.len() as u64 > DMA_LIMIT {
            println!(
                "edu: FAILED: DMA buffer at {:#x} is beyond the device's reach",
                buffer.bus()
            );
            return Err(Error::InvalidArgument);
        }
    }
    println!(
        "edu: DMA buffers at I/O addresses {:#x} and {:#x} (below the 28-bit limit {DMA_LIMIT:#x})",
        source.bus(),
        destination.bus()
    );
    for i in 0..source.len() {
        source.write8(i, pattern(i));
    }

    // RAM -> the device's buffer.
    run_dma(regs, source.bus(), EDU_BUFFER, 0, wait)?;
    // The device's buffer -> the other RAM buffer.
    run_dma(regs, EDU_BUFFER, destination.bus(), DMA_TO_RAM, wait)?;

    // The device is done (it cleared the start bit): read what it wrote.
    if let Some(i) = (0..DMA_BYTES).find(|&i| destination.read8(i) != pattern(i)) {
        println!(
            "edu: FAILED: byte {i} came back as {:#04x}, expected {:#04x}",
            destination.read8(i),
            pattern(i)
        );
        return Err(Error::InvalidArgument);
    }
    if (DMA_BYTES..destination.len()).any(|i| destination.read8(i) != 0) {
        println!("edu: FAILED: the DMA wrote past {DMA_BYTES} bytes");
        return Err(Error::InvalidArgument);
    }
    println!(
        "edu: DMA {DMA_BYTES} bytes RAM {:#x} -> edu {EDU_BUFFER:#x} -> RAM {:#x}: every byte matches",
        source.bus(),
        destination.bus()
    );
    Ok(())
}

/// Programs one transfer of [`DMA_BYTES`] and blocks until the device's
/// interrupt says it is done.
fn run_dma(
    regs: &DeviceRegion,
    from: u64,
    to: u64,
    direction: u64,
    wait: &Wait,
) -> Result<(), Error> {
    regs.write64(DMA_SOURCE, from);
    regs.write64(DMA_DESTINATION, to);
    regs.write64(DMA_COUNT, DMA_BYTES as u64);
    regs.write64(DMA_COMMAND, DMA_START | direction | DMA_IRQ);
    wait.for_interrupt("the DMA", regs)?;
    if regs.read64(DMA_COMMAND) & DMA_START != 0 {
        println!("edu: FAILED: interrupted before the DMA was done");
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

/// The driver's endpoint for the device's interrupts.
struct Wait<'a> {
    irq: &'a Endpoint,
    vector: u8,
}

impl Wait<'_> {
    /// Blocks for the device's next interrupt (bounded), then
    /// acknowledges it at the device.
    fn for_interrupt(&self, what: &str, regs: &DeviceRegion) -> Result<(), Error> {
        match self.irq.recv(PATIENCE) {
            Ok(m) if m.irq && m.badge == 0xed && m.words[0] == u64::from(self.vector) => {
                regs.write32(INTERRUPT_ACK, u32::MAX);
                Ok(())
            }
            Ok(m) => {
                println!("edu: FAILED: waiting for {what}, got {m:?}");
                Err(Error::InvalidArgument)
            }
            Err(e) => {
                println!("edu: FAILED: no interrupt for {what}: {e}");
                Err(e)
            }
        }
    }
}

/// Byte `i` of the test pattern (not periodic in 256, so a shifted copy
/// shows).
fn pattern(i: usize) -> u8 {
    (i * 7 + i / 251) as u8 ^ 0x5a
}
