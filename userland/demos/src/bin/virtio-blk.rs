//! virtio-blk: a disk driver in a library OS, on the `virtio-drivers`
//! crate and exo's frame capabilities.
//!
//! Finds the virtio-blk function through ECAM and keeps its configuration
//! page (so this process owns the device; see `exo_demos::pci`), claims
//! every memory BAR as device capabilities (assigning an address first if
//! the firmware left one unassigned), and gives `virtio-drivers` what it
//! needs through its `Hal` trait:
//!
//! - `dma_alloc`: physically contiguous frames (`DmaBuffer`), their
//!   address from `frame_phys`; kept in a registry so `dma_dealloc` frees
//!   exactly them.
//! - `mmio_phys_to_virt`: the address inside a claimed BAR region.
//! - `share`/`unshare`: there is no IOMMU, so a device address is a
//!   physical address; but a libOS runs on virtual addresses and exo has
//!   no "translate my pointer" call (physical names come only with
//!   capabilities), and the driver hands over buffers on the stack. So
//!   each shared buffer is copied through a DMA bounce page whose physical
//!   address is known (as swiotlb does), and copied back on unshare.
//!
//! Then it reads sector 1 and checks the pattern the xtask wrote into the
//! disk image before boot, writes sector 2 with a known pattern, flushes,
//! and reads it back. After QEMU exits the xtask checks sector 2 of the
//! image file.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::cell::RefCell;
use core::ptr::NonNull;
use exo_demos::pci::{self, Bar, Ecam, Function, BAR0, COMMAND_BUS_MASTER, COMMAND_MEMORY};
use libos::{println, DeviceRegion, DmaBuffer, Error, PAGE_SIZE};
use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

libos::entry!(main);

/// Red Hat / virtio's PCI vendor.
const VIRTIO_VENDOR: u16 = 0x1af4;
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

/// Where BARs the firmware left unassigned go: a window of q35's 32-bit
/// PCI hole (SeaBIOS and OVMF assign BARs themselves, so under them this
/// is never used).
const BAR_WINDOW: u64 = 0xe000_0000;
const BAR_WINDOW_END: u64 = 0xf000_0000;

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
    with(|r| r.mmio.clear());
    drop(config);
    result?;
    println!("virtio-blk: ok");
    Ok(())
}

fn drive(f: Function, config: &Ecam) -> Result<(), Error> {
    claim_bars(f, config)?;
    config.set_command(f, config.command(f) | COMMAND_MEMORY | COMMAND_BUS_MASTER);

    let mut root = PciRoot::new(EcamAccess(config));
    let df = DeviceFunction {
        bus: 0,
        device: f.device,
        function: f.function,
    };
    let transport = PciTransport::new::<ExoHal, _>(&mut root, df).map_err(|e| {
        println!("virtio-blk: FAILED: PCI transport: {e}");
        Error::InvalidArgument
    })?;
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
    let left = with(|r| r.dma.len() + r.bounces.len());
    println!("virtio-blk: device reset; DMA allocations left: {left}");
    Ok(())
}

fn virtio_error(e: virtio_drivers::Error) -> Error {
    println!("virtio-blk: FAILED: {e}");
    Error::InvalidArgument
}

/// Claims every memory BAR of `f` (assigning unassigned ones first) and
/// records it for [`ExoHal::mmio_phys_to_virt`].
fn claim_bars(f: Function, config: &Ecam) -> Result<(), Error> {
    let mut next = BAR_WINDOW;
    for (i, bar) in config.bars(f).iter().enumerate() {
        let Some(Bar::Memory {
            mut address,
            size,
            wide,
            ..
        }) = *bar
        else {
            continue;
        };
        if address == 0 {
            address = next.next_multiple_of(size);
            next = address + size;
            if next > BAR_WINDOW_END {
                println!("virtio-blk: FAILED: no room to assign BAR{i}");
                return Err(Error::OutOfMemory);
            }
            let register = BAR0 + 4 * i as u16;
            config.write32(f, register, address as u32);
            if wide {
                config.write32(f, register + 4, (address >> 32) as u32);
            }
            println!("virtio-blk: BAR{i} was unassigned: put it at {address:#x}");
        }
        let what = format_args!("BAR{i} of {f}");
        let region = exo_demos::claim("virtio-blk", &what, address, size as usize)?;
        println!(
            "virtio-blk: BAR{i} at {address:#x} ({}): {} device pages, mapped uncached",
            pci::Size(size),
            region.pages()
        );
        with(|r| r.mmio.push(region));
    }
    Ok(())
}

/// [`ConfigurationAccess`] for `virtio-drivers` over our claimed ECAM
/// page(s); functions we hold no page of read as absent.
#[derive(Clone, Copy)]
struct EcamAccess<'a>(&'a Ecam);

impl EcamAccess<'_> {
    fn function(df: DeviceFunction) -> Option<Function> {
        (df.bus == 0 && df.valid()).then(|| Function::new(df.device, df.function))
    }
}

impl ConfigurationAccess for EcamAccess<'_> {
    fn read_word(&self, df: DeviceFunction, register: u8) -> u32 {
        Self::function(df).map_or(u32::MAX, |f| self.0.read32(f, register.into()))
    }

    fn write_word(&mut self, df: DeviceFunction, register: u8, data: u32) {
        match Self::function(df) {
            Some(f) if self.0.covers(f) => self.0.write32(f, register.into(), data),
            _ => panic!("virtio-blk: config write to {df}, which we do not own"),
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        *self
    }
}

/// What the HAL handed out, so that it can take it back.
struct Registry {
    /// `dma_alloc`ations (the virtqueue).
    dma: Vec<DmaBuffer>,
    /// Bounce pages of buffers shared with the device right now.
    bounces: Vec<DmaBuffer>,
    /// The device's BARs.
    mmio: Vec<DeviceRegion>,
}

struct Global(RefCell<Registry>);

// SAFETY: an exo process has a single thread and no signal handlers, so
// the cell is never reached from two places at once.
unsafe impl Sync for Global {}

static REGISTRY: Global = Global(RefCell::new(Registry {
    dma: Vec::new(),
    bounces: Vec::new(),
    mmio: Vec::new(),
}));

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    f(&mut REGISTRY.0.borrow_mut())
}

/// `virtio-drivers`' view of the machine, on exo's capabilities.
struct ExoHal;

// SAFETY: `dma_alloc` returns fresh, zeroed, page-aligned, physically
// contiguous frames mapped only here, live until `dma_dealloc` frees them,
// and aliased by nothing (the registry only keeps the `DmaBuffer`, which
// hands out no reference, and this program never reads them);
// `mmio_phys_to_virt` returns addresses inside BAR regions the registry
// keeps claimed and mapped (uncached) until the driver is gone, of which
// no reference exists (`DeviceRegion` offers only volatile accesses);
// `share` returns the physical address of a bounce page holding the
// buffer's bytes (written and read back with `DmaBuffer`'s volatile
// copies), live until `unshare`.
unsafe impl Hal for ExoHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match DmaBuffer::new(pages as u64, 1, 0) {
            Ok(buffer) => {
                let phys = buffer.phys();
                let address = NonNull::new(buffer.address() as *mut u8).expect("mapped above 0");
                with(|r| r.dma.push(buffer));
                (phys, address)
            }
            Err(e) => {
                // `Dma::new` turns physical address 0 into `DmaError`.
                println!("virtio-blk: dma_alloc of {pages} pages: {e}");
                (0, NonNull::dangling())
            }
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        let buffer = with(|r| {
            let i = r.dma.iter().position(|b| b.phys() == paddr)?;
            Some(r.dma.swap_remove(i))
        });
        match buffer {
            Some(buffer) => {
                drop(buffer); // frame_free: unmapped, back to the kernel
                0
            }
            None => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let address = with(|r| {
            r.mmio.iter().find_map(|m| {
                let offset = paddr.checked_sub(m.phys())?;
                (offset + size as u64 <= m.len() as u64)
                    .then(|| m.as_mut_ptr().wrapping_add(offset as usize))
            })
        });
        address
            .and_then(NonNull::new)
            .unwrap_or_else(|| panic!("MMIO {paddr:#x} (+{size}) is in no claimed BAR"))
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        let pages = len.div_ceil(PAGE_SIZE as usize).max(1) as u64;
        let mut bounce =
            DmaBuffer::new(pages, 1, 0).unwrap_or_else(|e| panic!("bounce buffer: {e}"));
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller passes a valid buffer that nothing else
            // touches during this call.
            let bytes = unsafe { buffer.as_ref() };
            bounce.copy_from(0, bytes);
        }
        let phys = bounce.phys();
        with(|r| r.bounces.push(bounce));
        phys
    }

    unsafe fn unshare(paddr: PhysAddr, mut buffer: NonNull<[u8]>, direction: BufferDirection) {
        let bounce = with(|r| {
            let i = r.bounces.iter().position(|b| b.phys() == paddr)?;
            Some(r.bounces.swap_remove(i))
        });
        let bounce = bounce.unwrap_or_else(|| panic!("unshare of {paddr:#x}, never shared"));
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: the caller passes the valid buffer it shared, which
            // nothing else touches during this call; the device is done
            // with the bounce page.
            let out = unsafe { buffer.as_mut() };
            bounce.copy_to(0, out);
        }
    }
}
