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
//! Then it reads sector 1 and checks the pattern the xtask wrote into the
//! disk image before boot, writes sector 2 with a known pattern, flushes,
//! and reads it back. After QEMU exits the xtask checks sector 2 of the
//! image file.
#![no_std]
#![no_main]

use exo_demos::pci::{self, Ecam, Function};
use exo_demos::virtio::{self, ExoHal, VENDOR as VIRTIO_VENDOR};
use libos::{println, Error};
use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};

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
    println!(
        "virtio-blk: {} sectors of {SECTOR_SIZE} bytes ({} KiB){}",
        disk.capacity(),
        disk.capacity() * SECTOR_SIZE as u64 / 1024,
        if disk.readonly() { ", read-only" } else { "" }
    );

    let mut sector = [0u8; SECTOR_SIZE];
    disk.read_blocks(READ_SECTOR, &mut sector)
        .map_err(virtio_error)?;
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
    disk.write_blocks(WRITE_SECTOR, &sector)
        .map_err(virtio_error)?;
    disk.flush().map_err(virtio_error)?;
    let mut back = [0u8; SECTOR_SIZE];
    disk.read_blocks(WRITE_SECTOR, &mut back)
        .map_err(virtio_error)?;
    if back != sector {
        println!("virtio-blk: FAILED: sector {WRITE_SECTOR} reads back differently");
        return Err(Error::InvalidArgument);
    }
    println!("virtio-blk: wrote sector {WRITE_SECTOR}, flushed, read it back: same bytes");
    // Dropping the driver resets the device (the transport goes first),
    // then frees the queue's DMA memory.
    drop(disk);
    let left = virtio::allocations_left();
    println!("virtio-blk: device reset; DMA allocations left: {left}");
    Ok(())
}

fn virtio_error(e: virtio_drivers::Error) -> Error {
    virtio::error("virtio-blk", e)
}
