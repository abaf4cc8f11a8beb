//! virtio-blk: a disk driver in a library OS, on the `virtio-drivers`
//! crate and exo's frame capabilities.
//!
//! Finds the virtio-blk function through ECAM and keeps its configuration
//! page (so this process owns the device; see `exo_demos::pci`), claims
//! every memory BAR as device capabilities (assigning an address first if
//! the firmware left one unassigned), and gives `virtio-drivers` what it
//! needs through its `Hal` trait (`exo_demos::virtio`: DMA memory from
//! contiguous frames, shared buffers through bounce pages).
//!
//! Completions come by interrupt: a vector bound to our endpoint
//! (`irq_bind`), the device's MSI-X entry 0 pointed at it and the queue's
//! MSI-X vector set (`exo_demos::virtio::route_queue_to`); each request is
//! issued with `virtio-drivers`' non-blocking calls and the driver blocks
//! in `recv` until the device's interrupt says it is done (the used ring
//! is read once per interrupt, never spun on). `virtio-drivers` 0.12 has
//! no non-blocking flush: the flush alone still waits in the crate.
//!
//! Then it reads sector 1 and checks the pattern the xtask wrote into the
//! disk image before boot, writes sector 2 with a known pattern, flushes,
//! and reads it back. After QEMU exits the xtask checks sector 2 of the
//! image file.
#![no_std]
#![no_main]

use exo_demos::pci::{self, Ecam, Function};
use exo_demos::virtio::{self, ExoHal, VENDOR as VIRTIO_VENDOR};
use libos::ipc::Endpoint;
use libos::{println, Error};
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk, SECTOR_SIZE};

/// How long a request may take before we call the device dead: 2 s of
/// 100 Hz timer ticks.
const COMPLETION_TICKS: u64 = 200;

type Disk = VirtIOBlk<ExoHal, virtio::Transport>;

/// Where the device's completion interrupts arrive, and how many came.
struct Completions {
    ep: Endpoint,
    interrupts: u64,
}

impl Completions {
    /// Blocks until the device has completed request `token`: in `recv`
    /// for its interrupt, the used ring read once after each.
    fn wait(&mut self, disk: &mut Disk, token: u16, what: &str) -> Result<(), Error> {
        loop {
            match self.ep.recv(COMPLETION_TICKS) {
                Ok(m) if m.irq => {
                    self.interrupts += m.words[1];
                    disk.ack_interrupt();
                }
                Ok(_) => {}
                Err(Error::WouldBlock) => {
                    println!("virtio-blk: FAILED: no completion interrupt for the {what} within {COMPLETION_TICKS} ticks");
                    return Err(Error::WouldBlock);
                }
                Err(e) => return Err(e),
            }
            if disk.peek_used() == Some(token) {
                return Ok(());
            }
        }
    }
}

libos::entry!(main);

/// virtio-blk, transitional (legacy + modern) device ID: what QEMU
/// gives a device on q35's root bus.
const BLK_TRANSITIONAL: u16 = 0x1001;
/// virtio-blk, modern-only device ID.
const BLK_MODERN: u16 = 0x1042;

/// The sector the xtask fills before boot.
const READ_SECTOR: usize = 1;
/// The sector this program writes (the xtask checks it after QEMU).
const WRITE_SECTOR: usize = 2;

/// Byte `i` of the known pattern of `sector`: `(7 i + 0x31 sector) mod
/// 256`, as `tools/xtask/src/qemu.rs` (`disk_pattern`) computes it.
fn pattern(sector: usize, i: usize) -> u8 {
    ((i * 7 + sector * 0x31) % 256) as u8
}

fn main() -> Result<(), Error> {
    let wanted = |v, d| v == VIRTIO_VENDOR && matches!(d, BLK_TRANSITIONAL | BLK_MODERN);
    let Some((f, config)) = pci::find("virtio-blk", wanted)? else {
        println!("virtio-blk: FAILED: no virtio-blk function on bus 0");
        return Err(Error::InvalidArgument);
    };
    let (vendor, device) = config.id(f).unwrap_or_default();
    println!("virtio-blk: found {vendor:04x}:{device:04x} at {f}");

    let command = config.command(f);
    let result = drive(f, &config);
    // Whatever happened: no more bus mastering, then the BAR pages and the
    // configuration page go back.
    config.set_command(f, command);
    virtio::release();
    drop(config);
    result?;
    println!("virtio-blk: ok");
    Ok(())
}

fn drive(f: Function, config: &Ecam) -> Result<(), Error> {
    let transport = virtio::transport("virtio-blk", f, config)?;
    let mut disk = VirtIOBlk::<ExoHal, _>::new(transport).map_err(virtio_error)?;
    let ep = Endpoint::create(false)?;
    let vector = virtio::bind_irq(&ep.mint(0xb1c)?)?;
    let msix = virtio::route_queue_to(f, config, 0, vector)?;
    disk.enable_interrupts();
    println!("virtio-blk: completions by MSI-X on vector {vector:#x}, delivered to our endpoint");
    let mut irq = Completions { ep, interrupts: 0 };
    let result = requests(&mut disk, &mut irq);
    msix.disable(config);
    result?;
    println!(
        "virtio-blk: {} completion interrupts, waited for in recv",
        irq.interrupts
    );
    // Dropping the driver resets the device (the transport goes first),
    // then frees the queue's DMA memory.
    drop(disk);
    let left = virtio::allocations_left();
    println!("virtio-blk: device reset; DMA allocations left: {left}");
    Ok(())
}

/// Reads `sector`, waiting for the completion interrupt.
fn read(
    disk: &mut Disk,
    irq: &mut Completions,
    sector: usize,
    buf: &mut [u8],
) -> Result<(), Error> {
    let mut req = BlkReq::default();
    let mut resp = BlkResp::default();
    // SAFETY: `req`, `buf` and `resp` stay borrowed here, untouched, until
    // the device completed the request and `complete_read_blocks` took it
    // back. On an error return before that they go, but the device never
    // sees them: it reads and writes bounce pages (`ExoHal::share`), kept
    // until `virtio::release`, after the driver is dropped (device reset).
    let token =
        unsafe { disk.read_blocks_nb(sector, &mut req, buf, &mut resp) }.map_err(virtio_error)?;
    irq.wait(disk, token, "read")?;
    // SAFETY: the same buffers as `read_blocks_nb` got.
    unsafe { disk.complete_read_blocks(token, &req, buf, &mut resp) }.map_err(virtio_error)
}

/// Writes `sector`, waiting for the completion interrupt.
fn write(disk: &mut Disk, irq: &mut Completions, sector: usize, buf: &[u8]) -> Result<(), Error> {
    let mut req = BlkReq::default();
    let mut resp = BlkResp::default();
    // SAFETY: as in `read`.
    let token =
        unsafe { disk.write_blocks_nb(sector, &mut req, buf, &mut resp) }.map_err(virtio_error)?;
    irq.wait(disk, token, "write")?;
    // SAFETY: the same buffers as `write_blocks_nb` got.
    unsafe { disk.complete_write_blocks(token, &req, buf, &mut resp) }.map_err(virtio_error)
}

fn requests(disk: &mut Disk, irq: &mut Completions) -> Result<(), Error> {
    println!(
        "virtio-blk: {} sectors of {SECTOR_SIZE} bytes ({} KiB){}",
        disk.capacity(),
        disk.capacity() * SECTOR_SIZE as u64 / 1024,
        if disk.readonly() { ", read-only" } else { "" }
    );

    let mut sector = [0u8; SECTOR_SIZE];
    read(disk, irq, READ_SECTOR, &mut sector)?;
    if let Some(i) = (0..SECTOR_SIZE).find(|&i| sector[i] != pattern(READ_SECTOR, i)) {
        println!(
            "virtio-blk: FAILED: sector {READ_SECTOR} byte {i} is {:#04x}, expected {:#04x}",
            sector[i],
            pattern(READ_SECTOR, i)
        );
        return Err(Error::InvalidArgument);
    }
    println!("virtio-blk: sector {READ_SECTOR} holds the pattern the xtask wrote");

    for (i, byte) in sector.iter_mut().enumerate() {
        *byte = pattern(WRITE_SECTOR, i);
    }
    write(disk, irq, WRITE_SECTOR, &sector)?;
    disk.flush().map_err(virtio_error)?;
    let mut back = [0u8; SECTOR_SIZE];
    read(disk, irq, WRITE_SECTOR, &mut back)?;
    if back != sector {
        println!("virtio-blk: FAILED: sector {WRITE_SECTOR} reads back differently");
        return Err(Error::InvalidArgument);
    }
    println!("virtio-blk: wrote sector {WRITE_SECTOR}, flushed, read it back: same bytes");
    Ok(())
}

fn virtio_error(e: virtio_drivers::Error) -> Error {
    virtio::error("virtio-blk", e)
}
