//! virtio devices on exo: `virtio-drivers`' PCI transport and its [`Hal`]
//! on exo's capabilities, shared by the virtio driver programs
//! (`virtio-blk`, `httpd`). This module owns what the HAL hands out (DMA
//! memory, bounce pages, the device's claimed BARs) for the one device a
//! process drives, and gives it all back in [`release`].
//!
//! - `dma_alloc`: physically contiguous frames (`DmaBuffer::for_device`),
//!   mapped into the function's DMA address space (`iomap`, at I/O
//!   address = physical address); kept in a registry so `dma_dealloc`
//!   frees exactly them (the kernel unmaps them from the device first).
//! - `mmio_phys_to_virt`: the address inside a claimed BAR region.
//! - `share`/`unshare`: a libOS runs on virtual addresses and exo has no
//!   "translate my pointer" call (physical names come only with
//!   capabilities), and the drivers hand over buffers on the stack or the
//!   heap. So each shared buffer is copied through a DMA bounce page
//!   mapped for the device (as swiotlb does), and copied back on unshare.
//!   One-page bounces are kept for reuse (up to [`SPARE_BOUNCES`]), so a
//!   network driver does not allocate and free a frame per packet.
//!
//! Behind VT-d the device reaches only those pages. It must use the IOMMU
//! for that (QEMU's `iommu_platform=on`), and a virtio driver then has to
//! accept `VIRTIO_F_ACCESS_PLATFORM`, which `virtio-drivers` 0.12 never
//! does (its drivers mask the device's features with their own lists);
//! [`Transport`] accepts it for them.
use crate::pci::{self, Bar, Ecam, Function, BAR0, COMMAND_BUS_MASTER, COMMAND_MEMORY};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ptr::NonNull;
use libos::{println, DeviceRegion, DmaBuffer, Error, PAGE_SIZE};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Red Hat / virtio's PCI vendor.
pub const VENDOR: u16 = 0x1af4;

/// One-page bounce pages kept for reuse after `unshare`.
pub const SPARE_BOUNCES: usize = 64;

/// Where BARs the firmware left unassigned go: a window of q35's 32-bit
/// PCI hole (SeaBIOS and OVMF assign BARs themselves, so under them this
/// is never used).
const BAR_WINDOW: u64 = 0xe000_0000;
const BAR_WINDOW_END: u64 = 0xf000_0000;

/// Claims `f`'s BARs, turns on memory decoding and bus mastering, and
/// makes `virtio-drivers`' PCI transport for it. `who` prefixes what it
/// prints. Undo with [`release`].
pub fn transport(who: &'static str, f: Function, config: &Ecam) -> Result<Transport, Error> {
    let device = config.device(f);
    with(|r| {
        r.who = who;
        r.device = device;
    });
    claim_bars(who, f, config)?;
    config.set_command(f, config.command(f) | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    let mut root = PciRoot::new(EcamAccess(config));
    let df = DeviceFunction {
        bus: 0,
        device: f.device,
        function: f.function,
    };
    PciTransport::new::<ExoHal, _>(&mut root, df)
        .map(Transport)
        .map_err(|e| {
            println!("{who}: FAILED: PCI transport: {e}");
            Error::InvalidArgument
        })
}

/// `VIRTIO_F_ACCESS_PLATFORM` (bit 33): the device's DMA goes through the
/// platform's IOMMU, so its addresses are I/O addresses.
const ACCESS_PLATFORM: u64 = 1 << 33;

/// `virtio-drivers`' PCI transport, accepting `VIRTIO_F_ACCESS_PLATFORM`
/// whenever the device offers it (everything else as the transport does):
/// the HAL below gives the device I/O addresses mapped for it, which is
/// exactly what the feature means.
pub struct Transport(PciTransport);

impl virtio_drivers::transport::Transport for Transport {
    fn device_type(&self) -> DeviceType {
        self.0.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        let offered = self.0.read_device_features() & ACCESS_PLATFORM;
        self.0.write_driver_features(driver_features | offered);
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.0.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.0.notify(queue);
    }
    fn get_status(&self) -> DeviceStatus {
        self.0.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.0.set_status(status);
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.0.set_guest_page_size(guest_page_size);
    }
    fn requires_legacy_layout(&self) -> bool {
        self.0.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.0
            .queue_set(queue, size, descriptors, driver_area, device_area);
    }
    fn queue_unset(&mut self, queue: u16) {
        self.0.queue_unset(queue);
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.0.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.0.read_config_generation()
    }
    fn read_config_space<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<T> {
        self.0.read_config_space(offset)
    }
    fn write_config_space<T: zerocopy::IntoBytes + zerocopy::Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> virtio_drivers::Result<()> {
        self.0.write_config_space(offset, value)
    }
}

/// Gives back the BAR pages and every bounce page, including those of
/// buffers still posted to the device (a receive queue's). Only after the
/// driver is dropped, which resets the device; the caller restores the
/// command register first.
pub fn release() {
    with(|r| {
        r.mmio.clear();
        r.bounces.clear();
        r.spare.clear();
        r.device = None;
    });
}

/// Routes queue `queue`'s interrupts to `vector` of the local APIC by
/// MSI-X (after [`transport`], which claimed the BARs): entry 0 of `f`'s
/// MSI-X table gets the address and data and is unmasked, MSI-X is
/// enabled, and the queue's `queue_msix_vector` in the virtio common
/// configuration (found through its vendor capability, type 1) is set to
/// entry 0. `virtio-drivers` 0.12 leaves both alone (it polls). Returns the
/// capability, to disable it again before the device goes.
pub fn route_queue_to(
    f: Function,
    config: &Ecam,
    queue: u16,
    vector: u8,
) -> Result<pci::MsiX, Error> {
    let who = with(|r| r.who);
    let Some(msix) = pci::MsiX::find(config, f) else {
        println!("{who}: FAILED: no MSI-X capability");
        return Err(Error::InvalidArgument);
    };
    let bars = config.bars(f);
    let bar_address = |i: usize| match bars.get(i).copied().flatten() {
        Some(Bar::Memory { address, .. }) => Some(address),
        _ => None,
    };
    let table = bar_address(msix.table_bar).ok_or(Error::InvalidArgument)? + msix.table_offset;
    with_bar(table, pci::MsiX::ENTRY as usize, |r, o| {
        r.write32(o, abi::MSI_ADDRESS as u32);
        r.write32(o + 4, 0);
        r.write32(o + 8, u32::from(vector));
        // Vector control: bit 0 clear, unmasked.
        r.write32(o + 12, 0);
    })
    .ok_or(Error::InvalidArgument)?;
    msix.enable(config);
    // The common configuration: a vendor capability (ID 9) of type 1,
    // with its BAR at +4 and offset at +8.
    let common = pci::find_capabilities(config, f, 0x09)
        .find(|&at| config.read32(f, at) >> 24 == 1)
        .and_then(|at| {
            let bar = (config.read32(f, at + 4) & 0xff) as usize;
            Some(bar_address(bar)? + u64::from(config.read32(f, at + 8)))
        })
        .ok_or(Error::InvalidArgument)?;
    // queue_select at +0x16, queue_msix_vector at +0x1a (16 bits each);
    // the device answers 0xffff (no vector) if it refuses.
    let set = with_bar(common, 0x20, |r, o| {
        r.write16(o + 0x16, queue);
        r.write16(o + 0x1a, 0);
        r.read16(o + 0x1a)
    });
    if set != Some(0) {
        println!("{who}: FAILED: queue {queue} refused MSI-X entry 0 ({set:?})");
        msix.disable(config);
        return Err(Error::InvalidArgument);
    }
    Ok(msix)
}

/// Binds a free interrupt vector to `to`'s endpoint through the first page
/// of the device's first claimed BAR (its device capability proves the
/// device is ours); returns the vector (see `libos::ipc::irq_bind`).
pub fn bind_irq(to: &libos::ipc::SendCap) -> Result<u8, Error> {
    let device =
        with(|r| r.mmio.first().and_then(|m| m.handle(0))).ok_or(Error::InvalidArgument)?;
    libos::ipc::irq_bind(device, to)
}

/// Runs `f` on the claimed BAR region holding `[phys, phys + len)`, with
/// the offset of `phys` in it; `None` if no claimed BAR does.
fn with_bar<R>(phys: u64, len: usize, f: impl FnOnce(&DeviceRegion, usize) -> R) -> Option<R> {
    with(|r| {
        let m = r.mmio.iter().find(|m| {
            phys.checked_sub(m.phys())
                .is_some_and(|o| o + len as u64 <= m.len() as u64)
        })?;
        Some(f(m, (phys - m.phys()) as usize))
    })
}

/// DMA allocations and shared buffers still live (0 once the driver is
/// dropped).
pub fn allocations_left() -> usize {
    with(|r| r.dma.len() + r.bounces.len())
}

/// A `virtio-drivers` error, printed with `who`'s prefix.
pub fn error(who: &str, e: virtio_drivers::Error) -> Error {
    println!("{who}: FAILED: {e}");
    Error::InvalidArgument
}

/// Claims every memory BAR of `f` (assigning unassigned ones first) and
/// records it for [`ExoHal::mmio_phys_to_virt`].
fn claim_bars(who: &str, f: Function, config: &Ecam) -> Result<(), Error> {
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
                println!("{who}: FAILED: no room to assign BAR{i}");
                return Err(Error::OutOfMemory);
            }
            let register = BAR0 + 4 * i as u16;
            config.write32(f, register, address as u32);
            if wide {
                config.write32(f, register + 4, (address >> 32) as u32);
            }
            println!("{who}: BAR{i} was unassigned: put it at {address:#x}");
        }
        let what = format_args!("BAR{i} of {f}");
        let region = crate::claim(who, &what, address, size as usize)?;
        println!(
            "{who}: BAR{i} at {address:#x} ({}): {} device pages, mapped uncached",
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
            _ => panic!("virtio: config write to {df}, which we do not own"),
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        *self
    }
}

/// What the HAL handed out, so that it can take it back.
struct Registry {
    /// The program's name, for messages.
    who: &'static str,
    /// `dma_alloc`ations (the virtqueues).
    dma: Vec<DmaBuffer>,
    /// Bounce pages of buffers shared with the device right now.
    bounces: Vec<DmaBuffer>,
    /// One-page bounce pages free for the next `share`.
    spare: Vec<DmaBuffer>,
    /// The device's BARs.
    mmio: Vec<DeviceRegion>,
    /// The function's device capability (its configuration page), whose
    /// DMA address space the DMA memory is mapped into.
    device: Option<libos::Handle>,
}

struct Global(RefCell<Registry>);

// SAFETY: an exo process has a single thread and no signal handlers, so
// the cell is never reached from two places at once.
unsafe impl Sync for Global {}

static REGISTRY: Global = Global(RefCell::new(Registry {
    who: "virtio",
    dma: Vec::new(),
    bounces: Vec::new(),
    spare: Vec::new(),
    mmio: Vec::new(),
    device: None,
}));

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    f(&mut REGISTRY.0.borrow_mut())
}

/// `pages` contiguous frames mapped for the device (both ways: virtqueues
/// are read and written, and one-page bounces are reused either way).
fn dma_buffer(pages: u64) -> Result<DmaBuffer, Error> {
    match with(|r| r.device) {
        Some(device) => DmaBuffer::for_device(
            device,
            pages,
            1,
            0,
            abi::IoFlags::READ | abi::IoFlags::WRITE,
        ),
        None => DmaBuffer::new(pages, 1, 0),
    }
}

/// `virtio-drivers`' view of the machine, on exo's capabilities.
pub struct ExoHal;

// SAFETY: `dma_alloc` returns fresh, zeroed, page-aligned, physically
// contiguous frames mapped only here, live until `dma_dealloc` frees them,
// and aliased by nothing (the registry only keeps the `DmaBuffer`, which
// hands out no reference, and this module never reads them);
// `mmio_phys_to_virt` returns addresses inside BAR regions the registry
// keeps claimed and mapped (uncached) until `release`, which the drivers
// call after dropping the device, of which no reference exists
// (`DeviceRegion` offers only volatile accesses); `share` returns the
// physical address of a bounce page holding the buffer's bytes (written
// and read back with `DmaBuffer`'s volatile copies), live and used by
// nothing else until `unshare`.
unsafe impl Hal for ExoHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match dma_buffer(pages as u64) {
            Ok(buffer) => {
                let phys = buffer.bus();
                let address = NonNull::new(buffer.address() as *mut u8).expect("mapped above 0");
                with(|r| r.dma.push(buffer));
                (phys, address)
            }
            Err(e) => {
                // `Dma::new` turns physical address 0 into `DmaError`.
                println!("{}: dma_alloc of {pages} pages: {e}", with(|r| r.who));
                (0, NonNull::dangling())
            }
        }
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        let buffer = with(|r| {
            let i = r.dma.iter().position(|b| b.bus() == paddr)?;
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
        let spare = if pages == 1 {
            with(|r| r.spare.pop())
        } else {
            None
        };
        let mut bounce = match spare {
            Some(bounce) => bounce,
            None => dma_buffer(pages).unwrap_or_else(|e| panic!("bounce buffer: {e}")),
        };
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller passes a valid buffer that nothing else
            // touches during this call.
            let bytes = unsafe { buffer.as_ref() };
            bounce.copy_from(0, bytes);
        }
        let phys = bounce.bus();
        with(|r| r.bounces.push(bounce));
        phys
    }

    unsafe fn unshare(paddr: PhysAddr, mut buffer: NonNull<[u8]>, direction: BufferDirection) {
        let bounce = with(|r| {
            let i = r.bounces.iter().position(|b| b.bus() == paddr)?;
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
        with(|r| {
            if bounce.len() == PAGE_SIZE as usize && r.spare.len() < SPARE_BOUNCES {
                r.spare.push(bounce);
            }
        });
    }
}
