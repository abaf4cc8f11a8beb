//! QEMU's `edu` teaching device (1234:11e8) as the demos drive it: its
//! register layout, finding and claiming it as a driver, and a DMA waited
//! for by sleeping. Shared by `edu`, `dma-stray`, `dma-hostile` and
//! `dma-exit` (`edu` itself waits for the device's interrupt instead).
use crate::pci::{self, Bar, Ecam, Function};
use libos::ipc::Endpoint;
use libos::{println, DeviceRegion, Error, PAGE_SIZE};

/// edu's PCI vendor and device IDs.
pub const VENDOR: u16 = 0x1234;
/// edu's PCI device ID.
pub const DEVICE: u16 = 0x11e8;
/// DMA source address register.
pub const DMA_SOURCE: usize = 0x80;
/// DMA destination address register.
pub const DMA_DESTINATION: usize = 0x88;
/// DMA byte count register.
pub const DMA_COUNT: usize = 0x90;
/// DMA command register.
pub const DMA_COMMAND: usize = 0x98;
/// DMA command: start (the device clears it when done).
pub const DMA_START: u64 = 1 << 0;
/// DMA command: from the device's buffer to RAM (else RAM to it).
pub const DMA_TO_RAM: u64 = 1 << 1;
/// DMA command: raise an interrupt when done.
pub const DMA_IRQ: u64 = 1 << 2;
/// The device's DMA buffer, in its own address space.
pub const EDU_BUFFER: u64 = 0x40000;
/// Bytes per transfer: QEMU 7.2's edu aborts the VM on a 4096-byte one
/// (an off-by-one in its range check), so one byte of its buffer stays
/// unused.
pub const DMA_BYTES: usize = 4095;
/// The device's DMA reach: its default `dma_mask` is 28 bits.
pub const DMA_LIMIT: u64 = 1 << 28;

/// edu, claimed by a driver: the function, its configuration page and its
/// register page (BAR0's first page).
pub struct Edu {
    /// The function.
    pub f: Function,
    /// Its configuration page (the device capability: `config.device(f)`).
    pub config: Ecam,
    /// Its registers.
    pub regs: DeviceRegion,
}

/// Finds edu on bus 0 and claims it for `who`. `Ok(None)` (after saying
/// so) when `who` is not a driver in this run: the hostile DMA programs
/// are drivers only with their test's boot option `drivers=who`.
pub fn claim(who: &str) -> Result<Option<Edu>, Error> {
    let found = match pci::find(who, |v, d| (v, d) == (VENDOR, DEVICE)) {
        Err(Error::PermissionDenied) => {
            println!("{who}: not a driver here (boot option drivers={who} makes it one): skipped");
            return Ok(None);
        }
        other => other?,
    };
    let Some((f, config)) = found else {
        println!("{who}: FAILED: no device {VENDOR:04x}:{DEVICE:04x} on bus 0");
        return Err(Error::InvalidArgument);
    };
    let Some(Bar::Memory { address: bar0, .. }) = config.bars(f)[0] else {
        println!("{who}: FAILED: BAR0 is not a memory BAR");
        return Err(Error::InvalidArgument);
    };
    let regs = crate::claim(who, &"edu's registers", bar0, PAGE_SIZE as usize)?;
    Ok(Some(Edu { f, config, regs }))
}

impl Edu {
    /// [`start_dma`] on its registers.
    pub fn start_dma(&self, source: u64, destination: u64, to_ram: bool) {
        start_dma(&self.regs, source, destination, to_ram);
    }

    /// [`wait_dma`] on its registers.
    pub fn wait_dma(&self, who: &str, clock: &Endpoint) -> Result<(), Error> {
        wait_dma(&self.regs, who, clock)
    }
}

/// Starts a transfer of [`DMA_BYTES`] from `source` to `destination`
/// (device addresses; `to_ram`: from edu's buffer to memory).
pub fn start_dma(regs: &DeviceRegion, source: u64, destination: u64, to_ram: bool) {
    regs.write64(DMA_SOURCE, source);
    regs.write64(DMA_DESTINATION, destination);
    regs.write64(DMA_COUNT, DMA_BYTES as u64);
    let direction = if to_ram { DMA_TO_RAM } else { 0 };
    regs.write64(DMA_COMMAND, DMA_START | direction);
}

/// Waits until the device says the transfer is done (it takes 100 ms of
/// virtual time), asleep on `clock` in 50 ms steps, 5 s at most.
pub fn wait_dma(regs: &DeviceRegion, who: &str, clock: &Endpoint) -> Result<(), Error> {
    let mut steps = 0;
    while regs.read64(DMA_COMMAND) & DMA_START != 0 {
        if steps == 100 {
            println!("{who}: FAILED: the device never finished the DMA");
            return Err(Error::InvalidArgument);
        }
        let _ = clock.recv(5);
        steps += 1;
    }
    Ok(())
}
